//! A decompression bomb against a server connection, with the heap measured: a compressed
//! message of 1 MiB that would inflate to 1 GiB, sent to a server whose message limit is
//! 1 MiB, fails the connection with 1009 while inflating, and the heap never grows by much
//! more than the limit. (Its own test binary: the counting allocator sees the whole process.)

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ws_proto::extension::deflate::{DeflateConfig, PerMessageDeflate};
use ws_proto::{Accept, CloseCode, Config, Connection, Error, Event, ProtocolError};

/// The system allocator, counting the bytes in use and their peak.
struct Counting;

static IN_USE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

// SAFETY: every call is forwarded to `System` with the same arguments; the counters only
// observe the sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let now = IN_USE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
        PEAK.fetch_max(now, Ordering::SeqCst);
        // SAFETY: forwarded unchanged; the caller upholds `alloc`'s contract.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        IN_USE.fetch_sub(layout.size(), Ordering::SeqCst);
        // SAFETY: forwarded unchanged.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if new_size > layout.size() {
            let now = IN_USE.fetch_add(new_size - layout.size(), Ordering::SeqCst) + new_size
                - layout.size();
            PEAK.fetch_max(now, Ordering::SeqCst);
        } else {
            IN_USE.fetch_sub(layout.size() - new_size, Ordering::SeqCst);
        }
        // SAFETY: forwarded unchanged.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// DEFLATE bits, least significant first (RFC 1951 §3.1.1).
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u64, count: u32) {
        self.acc |= value << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// A Huffman code, which is packed most significant bit first.
    fn code(&mut self, code: u64, len: u32) {
        let reversed = (0..len).fold(0, |r, i| r | ((code >> i) & 1) << (len - 1 - i));
        self.put(reversed, len);
    }
}

/// One dynamic-Huffman block (RFC 1951 §3.2.7) whose codes give the longest match (length
/// symbol 285: 258 bytes, at distance 1) one bit and its distance one bit: a zero byte, then
/// `repeats` such matches, then end-of-block, that is `1 + 258 * repeats` zeros in about
/// `repeats / 4` bytes, the best ratio DEFLATE allows (1:1032).
fn bomb(repeats: usize) -> Vec<u8> {
    let mut bits = Bits::default();
    bits.put(0b0, 1); // BFINAL = 0
    bits.put(0b10, 2); // BTYPE = dynamic Huffman codes
    bits.put(29, 5); // HLIT: 286 literal/length codes
    bits.put(0, 5); // HDIST: 1 distance code
    bits.put(14, 4); // HCLEN: 18 code length codes
                     // Code length code lengths, in the order 16 17 18 0 8 7 9 6 10 5 11 4 12 3 13 2 14 1:
                     // symbol 18 (a run of zeros) one bit, symbols 1 and 2 two bits.
    for len in [0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 2] {
        bits.put(len, 3);
    }
    // Canonical codes: 18 -> 0, 1 -> 10, 2 -> 11.
    let (zeros, one, two) = ((0b0, 1), (0b10, 2), (0b11, 2));
    // Literal/length lengths: 0 -> 2 bits, 1..=255 none, 256 -> 2 bits, 257..=284 none,
    // 285 -> 1 bit; then the one distance code -> 1 bit.
    bits.code(two.0, two.1);
    bits.code(zeros.0, zeros.1);
    bits.put(138 - 11, 7);
    bits.code(zeros.0, zeros.1);
    bits.put(117 - 11, 7);
    bits.code(two.0, two.1);
    bits.code(zeros.0, zeros.1);
    bits.put(28 - 11, 7);
    bits.code(one.0, one.1);
    bits.code(one.0, one.1);
    // Canonical codes: 285 -> 0, literal 0 -> 10, end of block -> 11; distance 0 -> 0.
    bits.code(0b10, 2);
    for _ in 0..repeats {
        bits.code(0b0, 1);
        bits.code(0b0, 1);
    }
    bits.code(0b11, 2);
    // A sync flush after it, whose `00 00 ff ff` the sender removes (RFC 7692 §7.2.1).
    bits.put(0, 3); // BFINAL 0, BTYPE 00 (stored)
    if bits.n > 0 {
        bits.put(0, 8 - bits.n);
    }
    bits.out
}

fn server_with_limit(limit: usize) -> (Connection, ()) {
    let mut config = Config::default();
    config.max_message_size = limit;
    config.max_frame_size = 2 << 20;
    config
        .extensions
        .push(Arc::new(PerMessageDeflate::new(DeflateConfig::default())));
    let now = Instant::now();
    let mut server = Connection::server(config, now);
    server.receive(
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
          Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
        now,
    );
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.accept(Accept::default(), now).unwrap();
    assert!(matches!(server.poll_event(), Some(Event::Open(_))));
    let n = server.pending_output().len();
    server.advance_output(n);
    (server, ())
}

/// One binary frame, RSV1, masked with a zero key (masking is not what is measured).
fn frame(compressed: &[u8]) -> Vec<u8> {
    let mut frame = vec![0xc2, 0x80 | 127];
    frame.extend_from_slice(&(compressed.len() as u64).to_be_bytes());
    frame.extend_from_slice(&[0; 4]);
    frame.extend_from_slice(compressed);
    frame
}

/// One test only: another running beside it would disturb the heap counts.
#[test]
fn a_one_gib_bomb_is_stopped_at_the_one_mib_limit() {
    const LIMIT: usize = 1 << 20;
    // The bomb is valid DEFLATE: a small one inflates to exactly what it claims.
    let (mut server, ()) = server_with_limit(LIMIT);
    server.receive(&frame(&bomb(1000)), Instant::now());
    assert_eq!(
        server.poll_event(),
        Some(Event::Binary(vec![0; 1 + 258 * 1000]))
    );

    // 1 GiB of zeros.
    let compressed = bomb((1 << 30) / 258);
    assert!(compressed.len() < 1_100_000, "{}", compressed.len());

    let (mut server, ()) = server_with_limit(LIMIT);
    let frame = frame(&compressed);
    let now = Instant::now();

    let before = IN_USE.load(Ordering::SeqCst);
    PEAK.store(before, Ordering::SeqCst);
    // Fed as a socket would: 64 KiB reads.
    let mut fed = 0;
    for read in frame.chunks(64 << 10) {
        server.receive(read, now);
        fed += read.len();
        if server.state() != ws_proto::State::Open {
            break;
        }
    }
    let growth = PEAK.load(Ordering::SeqCst) - before;
    eprintln!(
        "bomb: {} bytes for 1 GiB; stopped after {fed} bytes of input; peak heap growth {} KiB \
         (limit {} KiB)",
        compressed.len(),
        growth >> 10,
        LIMIT >> 10
    );
    match server.poll_event() {
        Some(Event::Error(Error::Protocol(e))) => {
            assert_eq!(
                e,
                ProtocolError::Extension(ws_proto::extension::ExtensionError::TooLarge)
            );
            assert_eq!(e.close_code(), CloseCode::MESSAGE_TOO_BIG);
        }
        other => panic!("{other:?}"),
    }
    // Stopped within the first reads: 1 MiB of output needs about 1 KiB of input.
    assert!(fed <= 64 << 10, "{fed}");
    // The message buffer (at most the limit and one byte), the inflate state and window,
    // and the unmasking buffer on the stack: the heap grows by little more than the limit.
    assert!(growth <= LIMIT + (128 << 10), "grew by {growth} bytes");
    // The close frame with 1009 is queued.
    assert_eq!(&server.pending_output()[..4], &[0x88, 0x02, 0x03, 0xf1]);
}
