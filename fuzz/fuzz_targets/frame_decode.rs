//! Arbitrary bytes into the frame decoder of an open connection, both roles, split at an
//! arbitrary chunk size; every byte the connection writes back must be well-formed.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use ws_fuzz::{drain, open_client, open_server, WireChecker};
use ws_proto::frame::FrameHeader;
use ws_proto::Role;

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let _ = FrameHeader::decode(input);
    let role = if control & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let chunk = usize::from(control >> 1).max(1);
    let now = Instant::now();
    let mut conn = match role {
        Role::Server => open_server(now),
        Role::Client => open_client(now),
    };
    let mut wire = WireChecker::new(role);
    for piece in input.chunks(chunk) {
        conn.receive(piece);
        while conn.poll_event().is_some() {}
        let n = conn.buffered_amount();
        wire.feed(&drain(&mut conn, n));
    }
});
