//! Decode + unmask throughput of a server [`Connection`] on masked binary frames, side by side
//! with tungstenite on the same bytes and with plain memcpy of the same payloads as the ceiling.
//! See `common` for how cases are timed and `docs/benchmarks.md` for what each case does.

mod common;

use std::hint::black_box;
use std::io::{self, Read, Write};
use std::ops::Range;
use std::time::Instant;

use common::{
    bytes, isolate, print_summary, run_group, size_name, Case, Measured, Options, COPY_DISTANCE,
};
use tungstenite::protocol::frame::FrameSocket;
use tungstenite::protocol::{Role as TRole, WebSocket, WebSocketConfig};
use tungstenite::Message;
use ws_proto::frame::{FrameHeader, OpCode};
use ws_proto::mask::apply_mask;
use ws_proto::{Config, Connection, Event};

const SIZES: [usize; 4] = [16, 1 << 10, 64 << 10, 1 << 20];
/// Both sides allow this much per frame and per message, so neither rejects 1 MiB.
const MAX_FRAME: usize = 16 << 20;
const MAX_MESSAGE: usize = 64 << 20;
/// Bytes handed to `receive` per call: the read buffer size of the project's driver (ws-mio).
/// tungstenite keeps its own default (128 KiB per read from the stream).
const READ_CHUNK: usize = 64 << 10;

const REQUEST: &[u8] = b"GET /bench HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

/// `count` masked binary frames of `size` payload bytes each, as a client sends them.
struct Wire {
    bytes: Vec<u8>,
    /// Where each payload sits in `bytes`.
    payloads: Vec<Range<usize>>,
    /// The unmasked payloads, to check every decoder's output once.
    plain: Vec<Vec<u8>>,
}

fn build_wire(size: usize, count: usize) -> Wire {
    let mut wire = Wire {
        bytes: Vec::new(),
        payloads: Vec::new(),
        plain: Vec::new(),
    };
    for i in 0..count {
        let seed = (i as u64 + 1) * 0x9e37_79b9;
        let key_bytes = bytes(4, seed ^ 0x5555);
        let key = [key_bytes[0], key_bytes[1], key_bytes[2], key_bytes[3]];
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode: OpCode::Binary,
            mask: Some(key),
            payload_len: size as u64,
        };
        let (head, n) = header.encode();
        wire.bytes.extend_from_slice(&head[..n]);
        let plain = bytes(size, seed);
        let start = wire.bytes.len();
        wire.bytes.extend_from_slice(&plain);
        apply_mask(&mut wire.bytes[start..], key, 0);
        wire.payloads.push(start..start + size);
        wire.plain.push(plain);
    }
    wire
}

/// A server connection past the opening handshake.
fn open_server() -> Connection {
    let mut config = Config::default();
    config.max_frame_size = MAX_FRAME;
    config.max_message_size = MAX_MESSAGE;
    let now = Instant::now();
    let mut server = Connection::server(config, now);
    server.receive(REQUEST, now);
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.accept(Default::default(), now).expect("accept");
    while !server.pending_output().is_empty() {
        let n = server.pending_output().len();
        server.advance_output(n);
    }
    while let Some(event) = server.poll_event() {
        assert!(matches!(event, Event::Open(_)), "unexpected {event:?}");
    }
    server
}

/// Feeds the whole wire in `READ_CHUNK` pieces, taking every event; returns the message count.
fn ours_round(server: &mut Connection, wire: &[u8]) -> usize {
    let mut messages = 0;
    for chunk in wire.chunks(READ_CHUNK) {
        // A driver reads the clock once per socket read, as here per chunk.
        server.receive(chunk, Instant::now());
        while let Some(event) = server.poll_event() {
            black_box(event);
            messages += 1;
        }
    }
    messages
}

/// The same, but each chunk is first copied into a read buffer, the way a driver's socket read
/// copies bytes before `receive` sees them (tungstenite pays that copy reading its stream).
fn ours_via_read_buffer(server: &mut Connection, wire: &[u8], read_buf: &mut [u8]) -> usize {
    let mut messages = 0;
    for chunk in wire.chunks(READ_CHUNK) {
        let buf = &mut read_buf[..chunk.len()];
        buf.copy_from_slice(chunk);
        server.receive(buf, Instant::now());
        while let Some(event) = server.poll_event() {
            black_box(event);
            messages += 1;
        }
    }
    messages
}

/// An in-memory stream for tungstenite: reads come from the wire, writes are discarded.
struct MemStream<'a> {
    data: &'a [u8],
    pos: usize,
}

impl Read for MemStream<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = buf.len().min(self.data.len() - self.pos);
        buf[..n].copy_from_slice(&self.data[self.pos..self.pos + n]);
        self.pos += n;
        Ok(n)
    }
}

impl Write for MemStream<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn tungstenite_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_frame_size(Some(MAX_FRAME))
        .max_message_size(Some(MAX_MESSAGE))
}

/// Index of a `size`-byte window of a `size + 4095`-byte pool that sits `COPY_DISTANCE` bytes
/// above `src` modulo 4 KiB (see `common::window_for` for why placement matters).
fn placed_after(pool: &[u8], src: *const u8) -> usize {
    let want = (src as usize).wrapping_add(COPY_DISTANCE) % 4096;
    (want + 4096 - pool.as_ptr() as usize % 4096) % 4096
}

/// Puts glibc's malloc in the state a long-running process reaches, whatever the bench did
/// before: freeing a 16 MiB block that was `mmap`ped raises the dynamic mmap threshold to 16 MiB
/// and the heap trim threshold to 32 MiB. Without this, 1 MiB message buffers (one per message
/// in ws-proto, whose API hands out an owned `Vec`) can make the heap grow and shrink with
/// `brk` on every other message, and every byte written lands on a freshly faulted page;
/// whether that happens depends on the allocations made earlier in the process. tungstenite
/// reuses its read buffer and is not affected either way. `WS_BENCH_COLD_MALLOC=1` skips this.
fn warm_up_malloc() {
    let block: Vec<u8> = Vec::with_capacity(16 << 20);
    drop(black_box(block));
}

/// Checks once, outside the timing, that every contender yields exactly the payloads.
fn verify(wire: &Wire) {
    let mut server = open_server();
    server.receive(&wire.bytes, Instant::now());
    for plain in &wire.plain {
        match server.poll_event() {
            Some(Event::Binary(got)) => assert!(got == *plain, "ws-proto payload differs"),
            other => panic!("ws-proto: unexpected {other:?}"),
        }
    }
    assert!(server.poll_event().is_none() && server.pending_output().is_empty());

    let stream = MemStream {
        data: &wire.bytes,
        pos: 0,
    };
    let mut ws = WebSocket::from_raw_socket(stream, TRole::Server, Some(tungstenite_config()));
    for plain in &wire.plain {
        match ws.read().expect("tungstenite read") {
            Message::Binary(got) => assert!(got[..] == plain[..], "tungstenite payload differs"),
            other => panic!("tungstenite: unexpected {other:?}"),
        }
    }
    assert_eq!(ws.get_ref().pos, wire.bytes.len());
}

fn main() {
    let opts = Options::from_env();
    let warm_malloc = !matches!(std::env::var_os("WS_BENCH_COLD_MALLOC"), Some(v) if !v.is_empty());
    if warm_malloc {
        warm_up_malloc();
    }
    opts.header(&format!(
        "(payload MiB/s; ws-proto gets {READ_CHUNK} bytes per receive call; \
         malloc thresholds {}; each size in a process of its own)",
        if warm_malloc { "warmed" } else { "cold" }
    ));
    let groups: Vec<String> = SIZES
        .iter()
        .map(|&size| format!("decode/{}", size_name(size)))
        .collect();
    if let Some(rows) = isolate(&opts, &groups) {
        print_summary(&opts, SUMMARY_HEADER, &rows);
        return;
    }
    let mut rows = Vec::new();
    for size in SIZES {
        let group = format!("decode/{}", size_name(size));
        if !opts.wants(&group) {
            continue;
        }
        // About 1 MiB of payload per iteration, at least 4 messages.
        let count = ((1 << 20) / size).max(4);
        let wire = build_wire(size, count);
        verify(&wire);
        let total = (size * count) as u64;
        let msgs = count as u64;
        let bytes = &wire.bytes[..];

        let mut dst_pool = vec![0u8; size + 4096];
        let copies: Vec<(Range<usize>, usize)> = wire
            .payloads
            .iter()
            .map(|r| {
                (
                    r.clone(),
                    placed_after(&dst_pool, bytes[r.start..].as_ptr()),
                )
            })
            .collect();
        let mut ours = open_server();
        let mut ours_rb = open_server();
        let mut read_pool = vec![0u8; READ_CHUNK + 4096];
        let read_start = placed_after(&read_pool, bytes.as_ptr());
        let mut ws = WebSocket::from_raw_socket(
            MemStream {
                data: bytes,
                pos: 0,
            },
            TRole::Server,
            Some(tungstenite_config()),
        );
        let mut frames = FrameSocket::new(MemStream {
            data: bytes,
            pos: 0,
        });

        let cases = vec![
            Case::new("memcpy of each payload (ceiling)", total, msgs, || {
                for (src, dst) in &copies {
                    let len = src.len();
                    black_box(&mut dst_pool[*dst..*dst + len]).copy_from_slice(&bytes[src.clone()]);
                }
            }),
            Case::new(
                "alloc + memcpy of each payload (to_vec)",
                total,
                msgs,
                || {
                    for (src, _) in &copies {
                        black_box(bytes[src.clone()].to_vec());
                    }
                },
            ),
            Case::new(
                "ws-proto Connection::receive + poll_event",
                total,
                msgs,
                || {
                    let n = ours_round(black_box(&mut ours), bytes);
                    debug_assert_eq!(n, count);
                },
            ),
            Case::new(
                "ws-proto, bytes first copied to a read buffer",
                total,
                msgs,
                || {
                    let buf = &mut read_pool[read_start..read_start + READ_CHUNK];
                    let n = ours_via_read_buffer(black_box(&mut ours_rb), bytes, buf);
                    debug_assert_eq!(n, count);
                },
            ),
            Case::new("tungstenite WebSocket::read", total, msgs, || {
                ws.get_mut().pos = 0;
                for _ in 0..count {
                    black_box(ws.read().expect("read"));
                }
            }),
            Case::new(
                "tungstenite FrameSocket::read (no unmask, no messages)",
                total,
                msgs,
                || {
                    frames.get_mut().pos = 0;
                    for _ in 0..count {
                        black_box(frames.read(Some(MAX_FRAME)).expect("read"));
                    }
                },
            ),
        ];
        let Some(m) = run_group(&opts, &group, cases) else {
            continue;
        };
        println!("\n### {group} ({count} messages per iteration)\n");
        println!(
            "| case | MiB/s median | ± (IQR/2) | msgs/s median | × memcpy | × tungstenite read |"
        );
        println!("|---|---:|---:|---:|---:|---:|");
        for case in &m {
            println!(
                "| {} | {:.0} | {:.1}% | {} | {:.2} | {:.2} |",
                case.name,
                case.mib_per_s(),
                case.spread() * 100.0,
                human(case.msgs_per_s()),
                case.ratio_to(&m[0]),
                case.ratio_to(&m[4]),
            );
        }
        rows.push(summary_row(&size_name(size), &m));
    }
    print_summary(&opts, SUMMARY_HEADER, &rows);
}

const SUMMARY_HEADER: &str = "\n### decode summary (medians; ratios are medians of per-round \
    ratios, in brackets from the best sample of each case)\n\n\
    | size | ws-proto MiB/s | ws-proto msgs/s | tungstenite MiB/s | tungstenite msgs/s \
    | ws-proto / tungstenite | ws-proto (read buffer) / tungstenite \
    | ws-proto / memcpy | tungstenite / memcpy |\n\
    |---|---:|---:|---:|---:|---:|---:|---:|---:|";

fn summary_row(size: &str, m: &[Measured]) -> String {
    let pair =
        |a: &Measured, b: &Measured| format!("{:.2} ({:.2})", a.ratio_to(b), a.best_ratio_to(b));
    let (memcpy, ours, ours_rb, tung) = (&m[0], &m[2], &m[3], &m[4]);
    format!(
        "| {size} | {:.0} | {} | {:.0} | {} | {} | {} | {} | {} |",
        ours.mib_per_s(),
        human(ours.msgs_per_s()),
        tung.mib_per_s(),
        human(tung.msgs_per_s()),
        pair(ours, tung),
        pair(ours_rb, tung),
        pair(ours, memcpy),
        pair(tung, memcpy),
    )
}

/// `12.3 M`, `456 k`, `789`.
fn human(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.1} M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.0} k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}
