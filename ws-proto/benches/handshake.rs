//! Reading an upgrade request head in one read against one byte per read: the timing side of
//! the claim that reading a head is linear however it is split (CVE-2023-43669 was a reader
//! that re-parsed its whole buffer on every read, quadratic in the head's size). The test
//! `ws-mio/tests/dos.rs` proves the linearity exactly (bytes examined); this prints the cost.
//!
//! Each case reads a valid request head of exactly 16, 32 or 64 KiB (the usual upgrade
//! headers, then filler headers), either with a bare `HeadReader` plus `parse_request`, or
//! through a whole server `Connection` up to its `Event::Request`. Printed: time per head, ns
//! per byte, and the ratio "1-byte reads / one read" (the median of the per-round ratios; see
//! `common`). Results are recorded in `docs/security.md`.
//!
//! `cargo bench -p ws-proto --bench handshake` (filters: `head/64 KiB`, ...).

mod common;

use std::hint::black_box;
use std::time::Instant;

use common::{print_machine, run_group, size_name, Case, Measured, Options};
use ws_proto::handshake::{parse_request, HandshakeLimits, HeadReader};
use ws_proto::{Config, Connection, Event};

const SIZES: [usize; 3] = [16 << 10, 32 << 10, 64 << 10];

const REQUEST_START: &str = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n";

/// A valid upgrade request head of exactly `size` bytes (`size` up to 64 KiB, the default
/// head limit): the usual headers, then 100 filler headers sharing the rest.
fn request_head(size: usize) -> Vec<u8> {
    let mut head = REQUEST_START.as_bytes().to_vec();
    let fillers = 100;
    let room = size - head.len() - 2;
    for i in 0..fillers {
        let line_len = if i + 1 < fillers {
            room / fillers
        } else {
            room - (fillers - 1) * (room / fillers)
        };
        let name = format!("X-Pad-{i:03}: ");
        head.extend_from_slice(name.as_bytes());
        head.resize(head.len() + line_len - name.len() - 2, b'v');
        head.extend_from_slice(b"\r\n");
    }
    head.extend_from_slice(b"\r\n");
    assert_eq!(head.len(), size);
    head
}

fn reader_whole(head: &[u8], limits: &HandshakeLimits) {
    let mut reader = HeadReader::new(*limits);
    assert_eq!(reader.feed(head), Ok(Some(head.len())));
    black_box(parse_request(reader.head(), limits).unwrap());
}

fn reader_bytewise(head: &[u8], limits: &HandshakeLimits) {
    let mut reader = HeadReader::new(*limits);
    for byte in head {
        black_box(reader.feed(std::slice::from_ref(byte)).unwrap());
    }
    assert!(reader.is_complete());
    black_box(parse_request(reader.head(), limits).unwrap());
}

fn connection(head: &[u8], chunk: usize, now: Instant) {
    let mut server = Connection::server(Config::default(), now);
    for piece in head.chunks(chunk) {
        server.receive(piece, now);
    }
    match server.poll_event() {
        Some(Event::Request(request)) => {
            black_box(request);
        }
        other => panic!("expected the request, got {other:?}"),
    }
}

fn main() {
    let opts = Options::from_env();
    if opts.full {
        print_machine();
    }
    let limits = HandshakeLimits::default();
    let now = Instant::now();
    let mut summary = Vec::new();
    for size in SIZES {
        let group = format!("head/{}", size_name(size));
        if !opts.wants(&group) {
            continue;
        }
        let head = request_head(size);
        let head = &head[..];
        let bytes = size as u64;
        let cases = vec![
            Case::new("HeadReader, one read", bytes, 1, || {
                reader_whole(head, &limits)
            }),
            Case::new("HeadReader, 1-byte reads", bytes, 1, || {
                reader_bytewise(head, &limits)
            }),
            Case::new("Connection, one read", bytes, 1, || {
                connection(head, head.len(), now)
            }),
            Case::new("Connection, 1-byte reads", bytes, 1, || {
                connection(head, 1, now)
            }),
        ];
        let Some(measured) = run_group(&opts, &group, cases) else {
            continue;
        };
        println!("\n{group}");
        for m in &measured {
            let ns = m.median_ns();
            println!(
                "  {:<26} {:>10.1} µs per head  {:>6.2} ns/byte  ±{:.0} %",
                m.name,
                ns / 1e3,
                ns / size as f64,
                m.spread() * 100.0
            );
        }
        let ratio = |whole: &Measured, bytewise: &Measured| whole.ratio_to(bytewise);
        let reader = ratio(&measured[0], &measured[1]);
        let conn = ratio(&measured[2], &measured[3]);
        println!("  1-byte reads / one read: HeadReader {reader:.2}×, Connection {conn:.2}×");
        summary.push((
            size,
            measured[1].median_ns() / size as f64,
            reader,
            measured[3].median_ns() / size as f64,
            conn,
        ));
    }
    if !summary.is_empty() {
        println!("\nsummary (1-byte reads: ns per byte, and time over one read)");
        for (size, reader_ns, reader, conn_ns, conn) in summary {
            println!(
                "  {:>7}: HeadReader {reader_ns:.2} ns/byte ({reader:.2}×), Connection \
                 {conn_ns:.2} ns/byte ({conn:.2}×)",
                size_name(size)
            );
        }
    }
}
