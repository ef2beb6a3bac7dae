//! Time (`handle_timeout` / `poll_timeout`): the opening handshake timeout, the closing
//! handshake timeout (§7.1.1), keepalive pings and their pong timeout, and ping flood control.
//!
//! The clock is never read: every instant is `t0()` plus an explicit duration.

mod common;

use std::time::Duration;

use common::*;
use ws_proto::CloseCode;
use ws_proto::{
    ClientRequest, Config, Connection, Error, Event, ProtocolError, State, TimeoutKind,
};

fn secs(s: u64) -> Duration {
    Duration::from_secs(s)
}

/// RFC 6455 §4.1 leaves the handshake's duration to the implementation; an endpoint that waits
/// forever for a head is an easy denial of service.
mod handshake_timeout {
    use super::*;

    #[test]
    fn server_gives_up_on_a_slow_request() {
        let mut server = Connection::server(Config::default(), t0());
        assert_eq!(server.poll_timeout(), Some(t0() + secs(10)));
        server.receive(b"GET /chat HTTP/1.1\r\n", t0());
        server.handle_timeout(t0() + secs(10) - Duration::from_nanos(1));
        assert_eq!(events(&mut server), []);
        assert!(!server.is_terminated());

        server.handle_timeout(t0() + secs(10));
        assert_eq!(
            events(&mut server),
            [Event::Error(Error::Timeout(TimeoutKind::Handshake))]
        );
        assert!(server.is_terminated());
        assert_eq!(server.state(), State::Closed);
        assert_eq!(server.poll_timeout(), None);
        assert_eq!(server.close_status().map(|c| c.code.as_u16()), Some(1006));
        server.receive(b"Host: late\r\n\r\n", t0());
        assert_eq!(events(&mut server), []);
    }

    #[test]
    fn server_gives_up_on_an_application_that_never_decides() {
        let mut server = Connection::server(
            {
                let mut config = Config::default();
                config.handshake_timeout = Some(secs(3));
                config
            },
            t0(),
        );
        server.receive(&upgrade_request("/", &[]), t0());
        assert!(matches!(server.poll_event(), Some(Event::Request(_))));
        server.handle_timeout(t0() + secs(3));
        assert_eq!(
            events(&mut server),
            [Event::Error(Error::Timeout(TimeoutKind::Handshake))]
        );
        assert!(server.is_terminated());
    }

    #[test]
    fn client_gives_up_on_a_silent_server() {
        let mut client = Connection::client(
            Config::default(),
            ClientRequest::new("example.com", "/"),
            t0(),
        );
        assert_eq!(client.poll_timeout(), Some(t0() + secs(10)));
        client.handle_timeout(t0() + secs(11));
        assert_eq!(
            events(&mut client),
            [Event::Error(Error::Timeout(TimeoutKind::Handshake))]
        );
        assert!(client.is_terminated());
    }

    #[test]
    fn completed_handshake_cancels_the_timer() {
        let mut server = open_server(Config::default());
        assert_eq!(server.poll_timeout(), None);
        server.handle_timeout(t0() + secs(60));
        assert_eq!(events(&mut server), []);
        assert_eq!(server.state(), State::Open);
        let mut client = open_client(Config::default());
        client.handle_timeout(t0() + secs(60));
        assert_eq!(events(&mut client), []);
        assert_eq!(client.state(), State::Open);
    }

    #[test]
    fn no_handshake_timeout_configured() {
        let mut server = Connection::server(
            {
                let mut config = Config::default();
                config.handshake_timeout = None;
                config
            },
            t0(),
        );
        assert_eq!(server.poll_timeout(), None);
        server.handle_timeout(t0() + secs(3600));
        assert_eq!(events(&mut server), []);
        assert!(!server.is_terminated());
    }
}

/// §7.1.1: "the client SHOULD wait for the server to close the connection but MAY close the
/// connection at any time after sending and receiving a Close message, e.g., if it has not
/// received a TCP Close from the server in a reasonable time period." And an endpoint that sent a
/// close cannot wait forever for the peer's.
mod close_timeout {
    use super::*;

    /// `Duration::MAX` (or any timeout too large for `Instant`) means "never", not a panic.
    #[test]
    fn timeouts_too_large_for_instant_mean_never() {
        let mut config = Config::default();
        config.handshake_timeout = Some(Duration::MAX);
        config.close_timeout = Duration::MAX;
        config.ping_interval = Some(Duration::MAX);
        config.ping_timeout = Duration::MAX;
        let server = Connection::server(config.clone(), t0());
        assert_eq!(server.poll_timeout(), None);
        for role in ROLES {
            let mut conn = open(role, config.clone());
            conn.handle_timeout(t0());
            assert_eq!(conn.poll_timeout(), None, "{role:?}: no keepalive deadline");
            conn.close(CloseCode::NORMAL, "", t0()).unwrap();
            conn.handle_timeout(t0() + secs(3600));
            assert_eq!(conn.poll_timeout(), None, "{role:?}: no close deadline");
            assert_eq!(conn.state(), State::Closing);
        }
    }

    #[test]
    fn peer_that_never_answers_our_close() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            let t1 = t0() + secs(5);
            conn.close(CloseCode::NORMAL, "", t1).unwrap();
            drain(&mut conn);
            // The timer starts with the close, at the time the call carried.
            assert_eq!(conn.poll_timeout(), Some(t1 + secs(10)));
            conn.handle_timeout(t1 + secs(10) - Duration::from_millis(1));
            assert_eq!(events(&mut conn), []);
            assert_eq!(conn.state(), State::Closing);

            conn.handle_timeout(t1 + secs(10));
            assert_eq!(
                events(&mut conn),
                [Event::Error(Error::Timeout(TimeoutKind::Close))]
            );
            assert!(conn.is_terminated());
            assert_eq!(conn.state(), State::Closed);
            assert_eq!(conn.close_status().map(|c| c.code.as_u16()), Some(1006));
            assert_eq!(conn.poll_timeout(), None);
        }
    }

    #[test]
    fn client_stops_waiting_for_the_servers_eof() {
        let mut client = open_client({
            let mut config = Config::default();
            config.close_timeout = secs(2);
            config
        });
        client.receive(&Frame::close(1000, "").encode(), t0());
        assert_eq!(events(&mut client).len(), 1);
        drain(&mut client);
        client.handle_timeout(t0());
        assert_eq!(client.poll_timeout(), Some(t0() + secs(2)));
        assert!(!client.should_shutdown());
        client.handle_timeout(t0() + secs(2));
        // The closing handshake did complete: no error, the status stays the peer's.
        assert_eq!(events(&mut client), []);
        assert!(client.is_terminated());
        assert_eq!(client.close_status().map(|c| c.code.as_u16()), Some(1000));
    }

    #[test]
    fn failed_connection_is_dropped_after_the_close_timeout() {
        let mut client = open_client(Config::default());
        client.receive(&Frame::new(0x3, "").encode(), t0() + secs(1));
        assert_failed(&mut client, ProtocolError::ReservedOpcode(3), 1002);
        // The close timer starts with the read that failed the connection.
        assert_eq!(client.poll_timeout(), Some(t0() + secs(11)));
        client.handle_timeout(t0() + secs(11));
        assert_eq!(events(&mut client), []);
        assert!(client.is_terminated());
        assert_eq!(client.close_status().map(|c| c.code.as_u16()), Some(1002));
    }

    #[test]
    fn poll_timeout_is_a_real_deadline_at_once() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            let t1 = t0() + secs(3);
            conn.handle_timeout(t1);
            assert_eq!(conn.poll_timeout(), None);
            // No handle_timeout needed to start the timer: the close carried the time.
            conn.close(CloseCode::NORMAL, "", t1).unwrap();
            assert_eq!(conn.poll_timeout(), Some(t1 + secs(10)));
        }
    }

    #[test]
    fn an_input_with_an_older_time_does_not_move_the_clock_back() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            let t1 = t0() + secs(3);
            conn.handle_timeout(t1);
            conn.close(CloseCode::NORMAL, "", t0()).unwrap();
            assert_eq!(conn.poll_timeout(), Some(t1 + secs(10)));
        }
    }

    #[test]
    fn completed_close_before_the_deadline_raises_nothing() {
        let mut server = open_server(Config::default());
        server.close(CloseCode::NORMAL, "", t0()).unwrap();
        drain(&mut server);
        server.handle_timeout(t0());
        server.receive(&Frame::close(1000, "").masked(MASK).encode(), t0());
        assert_eq!(events(&mut server).len(), 1);
        server.receive_eof(t0());
        assert!(server.is_terminated());
        assert_eq!(server.poll_timeout(), None);
        server.handle_timeout(t0() + secs(100));
        assert_eq!(events(&mut server), []);
    }
}

/// §5.5.2 Ping: "A Ping frame MAY be sent after the connection is established and before the
/// connection is closed. [...] A Ping frame may serve either as a keepalive or as a means to
/// verify that the remote endpoint is still responsive." §5.5.3 Pong: "A Pong frame sent in
/// response to a Ping frame must have identical "Application data" as found in the message body
/// of the Ping frame being replied to."
mod keepalive {
    use super::*;

    fn keepalive() -> Config {
        let mut config = Config::default();
        config.ping_interval = Some(secs(5));
        config.ping_timeout = secs(3);
        config
    }

    /// A zero interval is no keepalive: a deadline of "now + 0" would always be due, and a
    /// driver sleeping until `poll_timeout` would spin.
    #[test]
    fn a_zero_interval_means_no_keepalive() {
        for role in ROLES {
            let mut config = Config::default();
            config.ping_interval = Some(Duration::ZERO);
            let mut conn = open(role, config);
            conn.handle_timeout(t0());
            assert_eq!(conn.poll_timeout(), None, "{role:?}");
            conn.handle_timeout(t0() + secs(60));
            assert_eq!(drain(&mut conn), b"", "{role:?}: no ping");
            assert_eq!(conn.poll_timeout(), None, "{role:?}");
        }
    }

    /// A close queued before the connection first learns the time (right after `accept`, or
    /// with the peer's close in the read that opened it) starts no keepalive: no ping deadline
    /// is left behind that nothing would consume, which would make `poll_timeout` stay in the
    /// past and the driver spin until the close timeout.
    #[test]
    fn a_close_before_the_first_handle_timeout_leaves_no_ping_deadline() {
        for role in ROLES {
            // Our close.
            let mut conn = open(role, keepalive());
            conn.close(CloseCode::NORMAL, "", t0()).unwrap();
            drain(&mut conn);
            conn.handle_timeout(t0());
            assert_eq!(conn.poll_timeout(), Some(t0() + secs(10)), "{role:?}");
            conn.handle_timeout(t0() + secs(6));
            assert_eq!(drain(&mut conn), b"", "{role:?}: no ping after the close");
            assert_eq!(conn.poll_timeout(), Some(t0() + secs(10)), "{role:?}");
        }
        // The peer's close in the client's first read, with the 101.
        let mut client = Connection::client(
            keepalive(),
            ClientRequest::new("server.example.com", "/chat"),
            t0(),
        );
        let request = drain(&mut client);
        let mut input = response_for(&request, &[]);
        input.extend(Frame::close(1000, "").encode());
        client.receive(&input, t0());
        events(&mut client);
        drain(&mut client);
        client.handle_timeout(t0());
        client.handle_timeout(t0() + secs(6));
        let next = client.poll_timeout().expect("the close timer");
        assert!(next > t0() + secs(6), "deadline in the past: {next:?}");
    }

    /// Opens a connection with keepalive, starts the timer at `t0()`, lets the first ping go out
    /// at `t0() + 5s` and returns it.
    fn pinged(role: ws_proto::Role) -> (Connection, Frame) {
        let mut conn = open(role, keepalive());
        conn.handle_timeout(t0());
        assert_eq!(conn.poll_timeout(), Some(t0() + secs(5)));
        conn.handle_timeout(t0() + secs(4));
        assert_eq!(drain(&mut conn), b"", "no ping before the interval");
        conn.handle_timeout(t0() + secs(5));
        let frames = sent(&mut conn);
        assert_eq!(frames.len(), 1);
        let ping = frames[0].clone().unmasked();
        assert_eq!(ping.opcode, PING);
        assert!(ping.fin);
        // Waiting for a pong until t0+8s; the next ping would be due at t0+10s.
        assert_eq!(conn.poll_timeout(), Some(t0() + secs(8)));
        assert_eq!(events(&mut conn), []);
        (conn, ping)
    }

    #[test]
    fn ping_goes_out_after_the_interval() {
        for role in ROLES {
            pinged(role);
        }
    }

    #[test]
    fn no_pong_before_the_timeout_fails_with_1011() {
        for role in ROLES {
            let (mut conn, _) = pinged(role);
            conn.handle_timeout(t0() + secs(8) - Duration::from_millis(1));
            assert_eq!(events(&mut conn), []);
            conn.handle_timeout(t0() + secs(8));
            assert_eq!(
                events(&mut conn),
                [Event::Error(Error::Timeout(TimeoutKind::Pong))]
            );
            assert_failed_quietly(&mut conn, 1011);
            // The close timer started with the failure.
            assert_eq!(conn.poll_timeout(), Some(t0() + secs(18)));
        }
    }

    #[test]
    fn matching_pong_clears_the_timeout() {
        for role in ROLES {
            let (mut conn, ping) = pinged(role);
            conn.receive(&incoming(role, Frame::pong(ping.payload.clone())), t0());
            assert_eq!(events(&mut conn), [Event::Pong(ping.payload.clone())]);
            assert_eq!(conn.poll_timeout(), Some(t0() + secs(10)));
            conn.handle_timeout(t0() + secs(8));
            assert_eq!(events(&mut conn), []);
            assert_eq!(conn.state(), ws_proto::State::Open);
            // And the next ping goes out on schedule.
            conn.handle_timeout(t0() + secs(10));
            let next = sent(&mut conn);
            assert_eq!(next.len(), 1);
            assert_eq!(next[0].opcode, PING);
        }
    }

    #[test]
    fn other_pong_does_not_clear_the_timeout() {
        for role in ROLES {
            let (mut conn, ping) = pinged(role);
            let mut other = ping.payload.clone();
            other[0] ^= 1;
            conn.receive(&incoming(role, Frame::pong(other.clone())), t0());
            assert_eq!(events(&mut conn), [Event::Pong(other)]);
            assert_eq!(conn.poll_timeout(), Some(t0() + secs(8)));
            conn.handle_timeout(t0() + secs(8));
            assert_eq!(
                events(&mut conn),
                [Event::Error(Error::Timeout(TimeoutKind::Pong))]
            );
        }
    }

    #[test]
    fn unsolicited_pong_is_accepted() {
        // §5.5.3: "A Pong frame MAY be sent unsolicited. This serves as a unidirectional
        // heartbeat. A response to an unsolicited Pong frame is not expected."
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(&incoming(role, Frame::pong("heartbeat")), t0());
            assert_eq!(events(&mut conn), [Event::Pong(b"heartbeat".to_vec())]);
            assert_eq!(drain(&mut conn), b"");
            assert_eq!(conn.state(), ws_proto::State::Open);
        }
    }

    #[test]
    fn no_keepalive_without_an_interval() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.handle_timeout(t0());
            assert_eq!(conn.poll_timeout(), None);
            conn.handle_timeout(t0() + secs(3600));
            assert_eq!(drain(&mut conn), b"");
        }
    }

    #[test]
    fn keepalive_stops_once_closing() {
        for role in ROLES {
            let mut conn = open(role, keepalive());
            conn.close(CloseCode::NORMAL, "", t0() + secs(1)).unwrap();
            drain(&mut conn);
            // Only the close timer is left.
            assert_eq!(conn.poll_timeout(), Some(t0() + secs(11)));
            conn.handle_timeout(t0() + secs(6));
            assert_eq!(drain(&mut conn), b"");
        }
    }

    #[test]
    fn poll_timeout_is_the_earliest_deadline() {
        // Pong timeout (3s) earlier than the next ping (5s) was checked in `pinged`; here the
        // next ping comes before the pong timeout.
        let mut server = open_server({
            let mut config = Config::default();
            config.ping_interval = Some(secs(2));
            config.ping_timeout = secs(30);
            config
        });
        server.handle_timeout(t0());
        assert_eq!(server.poll_timeout(), Some(t0() + secs(2)));
        server.handle_timeout(t0() + secs(2));
        assert_eq!(sent(&mut server).len(), 1);
        assert_eq!(server.poll_timeout(), Some(t0() + secs(4)));
        // A ping is outstanding: the next interval passes without a second one.
        server.handle_timeout(t0() + secs(4));
        assert_eq!(drain(&mut server), b"");
        assert_eq!(server.poll_timeout(), Some(t0() + secs(6)));
        // Closing: the close timer (10s from now) replaces the ping timer but the pong
        // deadline (t0+32s) is later, so the close deadline is the earliest.
        server.close(CloseCode::NORMAL, "", t0() + secs(5)).unwrap();
        assert_eq!(server.poll_timeout(), Some(t0() + secs(15)));
    }
}

/// Ping flood control: a peer may not make the endpoint spend unbounded work answering pings.
/// Exceeding `max_pings_per_second` fails the connection with 1008 (policy violation, §7.4.1).
mod ping_flood {
    use super::*;

    fn limited() -> Config {
        let mut config = Config::default();
        config.max_pings_per_second = 3;
        config
    }

    #[test]
    fn auto_pong_echoes_the_payload() {
        for role in ROLES {
            for payload in [Vec::new(), vec![0xab; 125]] {
                let mut conn = open(role, Config::default());
                conn.receive(&incoming(role, Frame::ping(payload.clone())), t0());
                assert_eq!(events(&mut conn), [Event::Ping(payload.clone())]);
                assert_sent(&mut conn, &[Frame::pong(payload)]);
            }
        }
    }

    #[test]
    fn more_pings_than_allowed_in_one_second_fail_with_1008() {
        for role in ROLES {
            let mut conn = open(role, limited());
            conn.handle_timeout(t0() + Duration::from_millis(100));
            conn.receive(
                &incoming_all(role, (0..3u8).map(|i| Frame::ping(vec![i]))),
                t0(),
            );
            assert_eq!(events(&mut conn).len(), 3);
            assert_sent(
                &mut conn,
                &(0..3u8).map(|i| Frame::pong(vec![i])).collect::<Vec<_>>(),
            );
            conn.handle_timeout(t0() + Duration::from_millis(900));
            conn.receive(&incoming(role, Frame::ping("one too many")), t0());
            assert_failed(&mut conn, ProtocolError::PingFlood, 1008);
        }
    }

    #[test]
    fn the_budget_renews_every_second() {
        for role in ROLES {
            let mut conn = open(role, limited());
            for second in 0..5u64 {
                conn.handle_timeout(t0() + secs(second));
                conn.receive(
                    &incoming_all(role, (0..3u8).map(|i| Frame::ping(vec![i]))),
                    t0(),
                );
                assert_eq!(events(&mut conn).len(), 3, "second {second}");
                assert_eq!(sent(&mut conn).len(), 3);
            }
            assert_eq!(conn.state(), State::Open);
        }
    }
}

/// Closing ends keepalive: an unanswered ping sent before `close()` must not fail the
/// connection with 1011 while the closing handshake runs.
#[test]
fn close_cancels_the_pending_pong_timeout() {
    use std::time::Duration;
    use ws_proto::{Config, Event, State};
    let mut config = Config::default();
    config.ping_interval = Some(Duration::from_millis(100));
    config.ping_timeout = Duration::from_millis(200);
    config.close_timeout = Duration::from_secs(10);
    let t0 = common::t0();
    let mut server = common::open_server(config);
    server.handle_timeout(t0); // starts the keepalive timer
    server.handle_timeout(t0 + Duration::from_millis(150)); // sends a ping
    server.close(CloseCode::NORMAL, "bye", t0).unwrap();
    server.handle_timeout(t0 + Duration::from_millis(1000)); // past the pong deadline
    while let Some(event) = server.poll_event() {
        assert!(!matches!(event, Event::Error(_)), "unexpected {event:?}");
    }
    assert_eq!(server.state(), State::Closing);
}
