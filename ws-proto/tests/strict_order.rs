//! RFC 6455 §7.1.7 with the order a strict peer expects (Autobahn 3.2, 5.x, 6.x): when a
//! message and a protocol violation arrive in the same read, the application still sees the
//! message first and what it sends in reply goes out before the close frame.

mod common;

use common::*;
use ws_proto::{Config, Event, ProtocolError, State};

#[test]
fn reply_to_a_message_goes_out_before_the_close_of_a_later_violation() {
    for role in ROLES {
        let mut conn = open(role, Config::default());
        let mut bad = Frame::text("bad");
        bad.rsv = 0b100;
        conn.receive(&incoming_all(role, [Frame::text("hello"), bad]), t0());
        assert_eq!(
            conn.state(),
            State::Open,
            "{role:?}: fails only once the message is seen"
        );
        assert_eq!(conn.poll_event(), Some(Event::Text("hello".into())));
        conn.send_text("echo: hello").unwrap();
        assert_eq!(
            conn.poll_event(),
            Some(Event::Error(ws_proto::Error::Protocol(
                ProtocolError::ReservedBits(0b100)
            )))
        );
        assert_eq!(conn.poll_event(), None);
        let frames = sent(&mut conn);
        assert_eq!(frames.len(), 2, "{role:?}: {frames:?}");
        assert_eq!(
            (frames[0].opcode, frames[0].payload.as_slice()),
            (TEXT, &b"echo: hello"[..])
        );
        assert_eq!(frames[1].opcode, CLOSE);
        assert_eq!(&frames[1].payload[..2], &1002u16.to_be_bytes());
        assert_eq!(conn.state(), State::Closed);
        assert!(conn.should_shutdown());
    }
}

#[test]
fn input_after_the_violation_is_not_read() {
    let mut conn = open(ws_proto::Role::Server, Config::default());
    let mut bad = Frame::ping("x");
    bad.fin = false;
    conn.receive(
        &incoming_all(
            ws_proto::Role::Server,
            [Frame::text("first"), bad, Frame::text("never delivered")],
        ),
        t0(),
    );
    let all = events(&mut conn);
    assert_eq!(all.len(), 2, "{all:?}");
    assert_eq!(all[0], Event::Text("first".into()));
    assert!(matches!(
        all[1],
        Event::Error(ws_proto::Error::Protocol(
            ProtocolError::FragmentedControlFrame
        ))
    ));
}

#[test]
fn reply_to_a_message_goes_out_before_the_echo_of_a_close_in_the_same_read() {
    for role in ROLES {
        let mut conn = open(role, Config::default());
        let close = Frame::new(CLOSE, 1000u16.to_be_bytes());
        conn.receive(
            &incoming_all(
                role,
                [Frame::text("last words"), close, Frame::ping("late")],
            ),
            t0(),
        );
        assert_eq!(conn.poll_event(), Some(Event::Text("last words".into())));
        conn.send_text("noted").unwrap();
        assert!(matches!(conn.poll_event(), Some(Event::Close(c)) if c.code == 1000));
        assert_eq!(
            conn.poll_event(),
            None,
            "{role:?}: nothing is read after the close"
        );
        let frames = sent(&mut conn);
        let kinds: Vec<u8> = frames.iter().map(|f| f.opcode).collect();
        assert_eq!(
            kinds,
            [TEXT, CLOSE],
            "{role:?}: the reply, then the close echo, no pong"
        );
        assert_eq!(conn.state(), State::Closed);
    }
}
