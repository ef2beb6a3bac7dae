//! Arbitrary bytes as the server's response to our upgrade request, whole and byte at a time.
//! `{ACCEPT}` in the input is replaced by the right accept key, so the fuzzer gets past it.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use ws_fuzz::{client_key, config, drain};
use ws_proto::handshake::accept_key;
use ws_proto::{ClientRequest, Connection, Event};

fn run(data: &[u8], chunk: usize) -> (Vec<String>, ws_proto::State) {
    let mut conn = Connection::client(
        config(),
        ClientRequest::new("example.com", "/chat"),
        Instant::now(),
    );
    let key = client_key(&conn);
    let n = conn.buffered_amount();
    drain(&mut conn, n);
    let accept = accept_key(key.as_bytes());
    let text = String::from_utf8_lossy(data).replace("{ACCEPT}", &accept);
    let mut events = Vec::new();
    for piece in text.as_bytes().chunks(chunk.max(1)) {
        conn.receive(piece);
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

fuzz_target!(|data: &[u8]| {
    let whole = run(data, data.len());
    let bytewise = run(data, 1);
    assert_eq!(
        whole, bytewise,
        "the outcome must not depend on how the bytes are split"
    );
});
