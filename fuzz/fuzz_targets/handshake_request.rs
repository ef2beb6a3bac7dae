//! Arbitrary bytes as an upgrade request, fed whole and byte at a time: the same events and
//! output either way, and the output is the server's HTTP answer to the events: a 101 after
//! the accepted request, the error's response after a failed handshake, nothing before either.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use ws_fuzz::{config, drain};
use ws_proto::{Accept, Connection, Error, Event};

fn run(data: &[u8], chunk: usize, now: Instant) -> (Vec<Event>, Vec<u8>) {
    let mut conn = Connection::server(config(), now);
    let mut events = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        conn.receive(piece, now);
        while let Some(event) = conn.poll_event() {
            if let Event::Request(_) = event {
                conn.accept(Accept::default(), now)
                    .expect("a pending request can be accepted");
            }
            events.push(event);
        }
    }
    let n = conn.buffered_amount();
    (events, drain(&mut conn, n))
}

fuzz_target!(|data: &[u8]| {
    // Both runs at the same instant: nothing in them may depend on anything but the bytes.
    let now = Instant::now();
    let whole = run(data, data.len(), now);
    let bytewise = run(data, 1, now);
    assert_eq!(
        whole.0, bytewise.0,
        "events must not depend on how the bytes are split"
    );
    assert_eq!(
        whole.1, bytewise.1,
        "output must not depend on how the bytes are split"
    );
    let (events, output) = whole;
    match events.first() {
        // Accepted as soon as it was reported; the frames pipelined after it follow the 101.
        Some(Event::Request(_)) => {
            assert!(matches!(events.get(1), Some(Event::Open(_))), "{events:?}");
            assert!(output.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
        }
        Some(Event::Error(Error::Handshake(error))) => {
            assert_eq!(events.len(), 1, "a failed handshake ends the connection");
            assert_eq!(output, error.to_response().unwrap_or_default());
        }
        None => assert_eq!(
            output, b"",
            "nothing is written before the request is complete"
        ),
        Some(other) => panic!("{other:?} cannot be the first event of a server"),
    }
});
