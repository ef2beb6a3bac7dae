//! Arbitrary bytes as the server's response to our upgrade request, whole and byte at a time.
//! `{ACCEPT}` in the head is replaced by the right accept key, so the fuzzer gets past it.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use ws_fuzz::{client_key, config, drain};
use ws_proto::handshake::accept_key;
use ws_proto::{ClientRequest, Connection, Event};

fn run(data: &[u8], chunk: usize, now: Instant) -> (Vec<String>, ws_proto::State) {
    let mut conn = Connection::client(config(), ClientRequest::new("example.com", "/chat"), now);
    let key = client_key(&conn);
    let n = conn.buffered_amount();
    drain(&mut conn, n);
    let input = with_accept(data, &accept_key(key.as_bytes()));
    let mut events = Vec::new();
    for piece in input.chunks(chunk.max(1)) {
        conn.receive(piece, now);
        while let Some(event) = conn.poll_event() {
            // Headers hold the random key's echo: compare the event kinds only.
            events.push(match event {
                Event::Open(_) => "open".to_owned(),
                other => format!("{other:?}"),
            });
        }
    }
    (events, conn.state())
}

/// `data` with `{ACCEPT}` replaced by `accept` up to the first blank line, the earliest the head
/// can end. Each run's key, and so its accept value, is random: replaced after the head, it
/// would make the frames differ from one run to the other.
fn with_accept(data: &[u8], accept: &str) -> Vec<u8> {
    let head_end = (0..data.len())
        .find_map(|i| {
            let rest = &data[i..];
            (rest.starts_with(b"\n\n") || rest.starts_with(b"\n\r\n"))
                .then(|| i + if rest[1] == b'\n' { 2 } else { 3 })
        })
        .unwrap_or(data.len());
    let mut out = Vec::with_capacity(data.len() + 64);
    let mut i = 0;
    while i < head_end {
        if data[i..head_end].starts_with(b"{ACCEPT}") {
            out.extend_from_slice(accept.as_bytes());
            i += b"{ACCEPT}".len();
        } else {
            out.push(data[i]);
            i += 1;
        }
    }
    out.extend_from_slice(&data[head_end..]);
    out
}

fuzz_target!(|data: &[u8]| {
    let now = Instant::now();
    let whole = run(data, data.len(), now);
    let bytewise = run(data, 1, now);
    assert_eq!(
        whole, bytewise,
        "the outcome must not depend on how the bytes are split"
    );
});
