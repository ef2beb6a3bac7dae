//! permessage-deflate's receive path with low limits (64 KiB messages, 16 KiB frames).
//!
//! * Hostile frames (RSV1 or not, any opcode, any payload: corrupt, truncated or bomb-like
//!   DEFLATE data) against a server that negotiated deflate with settings chosen by the input:
//!   every message delivered is within the limit and valid for its type, and a failure closes
//!   with 1002, 1007 or 1009, the last event of the connection.
//! * Messages compressed by our client with settings chosen by the input, delivered in reads of
//!   any size: each arrives exactly as sent.
#![no_main]

use std::sync::Arc;
use std::time::Instant;

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use ws_proto::extension::deflate::{DeflateConfig, PerMessageDeflate};
use ws_proto::{Accept, ClientRequest, Config, Connection, Error, Event, State};

const MAX_MESSAGE: usize = 64 << 10;

#[derive(Arbitrary, Debug)]
enum Input {
    Frames { settings: Settings, frames: Vec<RawFrame> },
    RoundTrip { settings: Settings, messages: Vec<(bool, Vec<u8>)>, reads: Vec<u16> },
}

#[derive(Arbitrary, Debug)]
struct Settings {
    server_reset: bool,
    client_reset: bool,
    server_bits: u8,
    client_bits: u8,
    level: u8,
    min_size: u8,
    fragment: u16,
}

#[derive(Arbitrary, Debug)]
struct RawFrame {
    rsv1: bool,
    fin: bool,
    opcode: u8,
    payload: Vec<u8>,
}

fn config(s: &Settings) -> Config {
    let mut deflate = DeflateConfig::default();
    deflate.server_no_context_takeover = s.server_reset;
    deflate.client_no_context_takeover = s.client_reset;
    deflate.server_max_window_bits = 8 + s.server_bits % 8;
    deflate.client_max_window_bits = 8 + s.client_bits % 8;
    deflate.level = s.level % 10;
    deflate.min_size = usize::from(s.min_size);
    let mut config = Config::default();
    config.max_message_size = MAX_MESSAGE;
    config.max_frame_size = 16 << 10;
    config.fragment_size = usize::from(s.fragment).max(1);
    config.extensions.push(Arc::new(PerMessageDeflate::new(deflate)));
    config
}

fn pump(from: &mut Connection, to: &mut Connection, now: Instant) {
    while !from.pending_output().is_empty() {
        let n = from.pending_output().len();
        to.receive(from.pending_output(), now);
        from.advance_output(n);
    }
}

/// A client and a server, both configured with `settings`, after the handshake.
fn open_pair(settings: &Settings, now: Instant) -> (Connection, Connection) {
    let mut client = Connection::client(config(settings), ClientRequest::new("x", "/"), now);
    let mut server = Connection::server(config(settings), now);
    pump(&mut client, &mut server, now);
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.accept(Accept::default(), now).expect("accept");
    match server.poll_event() {
        Some(Event::Open(negotiated)) => assert_eq!(negotiated.extensions.len(), 1),
        other => panic!("{other:?}"),
    }
    pump(&mut server, &mut client, now);
    assert!(matches!(client.poll_event(), Some(Event::Open(_))));
    (client, server)
}

fn masked_frame(f: &RawFrame) -> Vec<u8> {
    let opcode = f.opcode & 0x0f;
    let mut out = vec![(u8::from(f.fin) << 7) | (u8::from(f.rsv1) << 6) | opcode];
    let len = f.payload.len();
    if len < 126 {
        out.push(0x80 | len as u8);
    } else if len <= 0xffff {
        out.push(0x80 | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(0x80 | 127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
    let key = [0x37, 0xfa, 0x21, 0x3d];
    out.extend_from_slice(&key);
    out.extend(f.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    out
}

fuzz_target!(|input: Input| {
    let now = Instant::now();
    match input {
        Input::Frames { settings, frames } => {
            let (_client, mut server) = open_pair(&settings, now);
            for frame in frames.iter().take(64) {
                server.receive(&masked_frame(frame), now);
            }
            let events: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
            for (i, event) in events.iter().enumerate() {
                match event {
                    Event::Text(t) => assert!(t.len() <= MAX_MESSAGE),
                    Event::Binary(b) => assert!(b.len() <= MAX_MESSAGE),
                    Event::Error(Error::Protocol(e)) => {
                        assert!(
                            matches!(e.close_code().as_u16(), 1002 | 1007 | 1008 | 1009),
                            "{e:?}"
                        );
                        assert_eq!(i + 1, events.len(), "a failure is the last event");
                        assert_ne!(server.state(), State::Open);
                    }
                    _ => {}
                }
            }
        }
        Input::RoundTrip { settings, messages, reads } => {
            let (mut client, mut server) = open_pair(&settings, now);
            let mut sent = Vec::new();
            for (text, bytes) in messages.into_iter().take(16) {
                let event = match (text, String::from_utf8(bytes)) {
                    (true, Ok(text)) => {
                        client.send_text(text.clone()).expect("send");
                        Event::Text(text)
                    }
                    (_, Ok(text)) => {
                        client.send_binary(text.clone().into_bytes()).expect("send");
                        Event::Binary(text.into_bytes())
                    }
                    (_, Err(e)) => {
                        let bytes = e.into_bytes();
                        client.send_binary(bytes.clone()).expect("send");
                        Event::Binary(bytes)
                    }
                };
                sent.push(event);
            }
            let wire = client.pending_output().to_vec();
            let mut at = 0;
            let mut reads = reads.into_iter().cycle();
            while at < wire.len() {
                let n = usize::from(reads.next().unwrap_or(u16::MAX)).max(1);
                let end = (at + n).min(wire.len());
                server.receive(&wire[at..end], now);
                at = end;
            }
            let received: Vec<Event> = std::iter::from_fn(|| server.poll_event()).collect();
            assert_eq!(received, sent);
        }
    }
});
