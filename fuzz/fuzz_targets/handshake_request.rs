//! Arbitrary bytes as an upgrade request, fed whole and byte at a time: no panic, and the
//! same events and output either way.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use ws_fuzz::{config, drain};
use ws_proto::{Accept, Connection, Event};

fn run(data: &[u8], chunk: usize) -> (Vec<Event>, Vec<u8>) {
    let mut conn = Connection::server(config(), Instant::now());
    let mut events = Vec::new();
    for piece in data.chunks(chunk.max(1)) {
        conn.receive(piece);
        while let Some(event) = conn.poll_event() {
            if let Event::Request(_) = event {
                conn.accept(Accept::default())
                    .expect("a pending request can be accepted");
            }
            events.push(event);
        }
    }
    let n = conn.buffered_amount();
    (events, drain(&mut conn, n))
}

fuzz_target!(|data: &[u8]| {
    let whole = run(data, data.len());
    let bytewise = run(data, 1);
    assert_eq!(
        whole.0, bytewise.0,
        "events must not depend on how the bytes are split"
    );
    assert_eq!(
        whole.1, bytewise.1,
        "output must not depend on how the bytes are split"
    );
});
