//! A raw RFC 6455 peer for the conformance suites (`conformance_server.rs`,
//! `conformance_client.rs`), written from the RFC on `std::net` alone: its own opening
//! handshake (either role), its own frame encoder (any FIN/RSV/opcode/mask/declared length,
//! including deliberately wrong ones) and its own frame decoder, so that the implementation
//! under test is never checked against itself.
//!
//! Every wait is bounded: reads carry a socket read timeout derived from a deadline, writes a
//! write timeout, accepts and child processes a deadline. Nothing here measures speed.
//!
//! Shared by two test crates, each using a different part of it.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use sha1::{Digest, Sha1};

/// Upper bound of any single wait for something that must happen (a frame, EOF, a line).
pub const WAIT: Duration = Duration::from_secs(20);

/// How long "nothing happens" is watched for when no later event can prove it.
pub const QUIET: Duration = Duration::from_millis(300);

/// Opcodes (§5.2), including the reserved ones as plain numbers.
pub mod op {
    pub const CONT: u8 = 0x0;
    pub const TEXT: u8 = 0x1;
    pub const BINARY: u8 = 0x2;
    pub const CLOSE: u8 = 0x8;
    pub const PING: u8 = 0x9;
    pub const PONG: u8 = 0xa;
}

/// The RSV bits as they sit in the first header byte, shifted down: RSV1 = 4, RSV2 = 2, RSV3 = 1.
pub const RSV1: u8 = 0b100;
pub const RSV2: u8 = 0b010;
pub const RSV3: u8 = 0b001;

/// The key of RFC 6455 §1.3 and the accept value the RFC computes for it.
pub const FIXED_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const FIXED_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// §4.2.2: base64(SHA-1(key + GUID)).
pub fn accept_for(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

// ------------------------------------------------------------------------------------------
// Encoding
// ------------------------------------------------------------------------------------------

/// XORs `buf` with `key` (§5.3), starting at key position 0.
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    for (i, b) in buf.iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// A frame header with any field, including a `declared_len` that need not match what
/// follows; the length uses the minimal form for its value (a 64-bit form when the value has
/// its top bit set, which is illegal on purpose).
pub fn encode_header(fin: bool, rsv: u8, opcode: u8, mask: Option<[u8; 4]>, len: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(14);
    out.push((u8::from(fin) << 7) | ((rsv & 7) << 4) | (opcode & 0x0f));
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    if len <= 125 {
        out.push(mask_bit | len as u8);
    } else if len <= 0xffff {
        out.push(mask_bit | 126);
        out.extend_from_slice(&(len as u16).to_be_bytes());
    } else {
        out.push(mask_bit | 127);
        out.extend_from_slice(&len.to_be_bytes());
    }
    if let Some(key) = mask {
        out.extend_from_slice(&key);
    }
    out
}

/// A whole frame: header (declaring the real length) and payload, masked with `mask` if given.
pub fn encode_frame(
    fin: bool,
    rsv: u8,
    opcode: u8,
    mask: Option<[u8; 4]>,
    payload: &[u8],
) -> Vec<u8> {
    let mut out = encode_header(fin, rsv, opcode, mask, payload.len() as u64);
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        apply_mask(&mut out[start..], key);
    }
    out
}

/// A close payload: the code big-endian, then the reason.
pub fn close_payload(code: u16, reason: &[u8]) -> Vec<u8> {
    let mut p = code.to_be_bytes().to_vec();
    p.extend_from_slice(reason);
    p
}

/// `len` bytes of UTF-8 text mixing 1- to 4-byte characters (padded with ASCII to the exact
/// length), so that fragment borders fall inside code points.
pub fn utf8_text(len: usize) -> Vec<u8> {
    const PATTERN: &str = "Hello, κόσμε! €uro 𝄞 music; ";
    let mut out = Vec::with_capacity(len);
    while out.len() + PATTERN.len() <= len {
        out.extend_from_slice(PATTERN.as_bytes());
    }
    while out.len() < len {
        out.push(b'a' + (out.len() % 26) as u8);
    }
    debug_assert!(std::str::from_utf8(&out).is_ok());
    out
}

/// `len` bytes of binary data with every byte value (a simple deterministic generator).
pub fn binary_data(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 24) as u8
        })
        .collect()
}

// ------------------------------------------------------------------------------------------
// UTF-8 test data (RFC 3629)
// ------------------------------------------------------------------------------------------

/// Valid UTF-8 that a validator could get wrong: each length's first and last code point,
/// the edges of the surrogate gap, noncharacters (valid UTF-8), U+10FFFF.
pub const VALID_UTF8: &[(&str, &str)] = &[
    ("6.2.1 mixed text", "Hello-µ@ßöäüàá-UTF-8!!"),
    ("6.5.1 Greek", "κόσμε"),
    ("6.6 first of each length", "\u{0}\u{80}\u{800}\u{10000}"),
    ("6.7 last of each length", "\u{7f}\u{7ff}\u{ffff}\u{10ffff}"),
    ("6.8 around the surrogates", "\u{d7ff}\u{e000}\u{fffd}"),
    (
        "6.9 noncharacters",
        "\u{fffe}\u{ffff}\u{fdd0}\u{fdef}\u{1fffe}\u{10fffe}",
    ),
    ("6.10 max 4-byte", "\u{10ffff}"),
];

/// Invalid UTF-8 (RFC 3629 §3-4, our own list): each must end the connection with 1007.
pub fn invalid_utf8() -> Vec<(&'static str, Vec<u8>)> {
    let kosme = "κόσμε".as_bytes();
    let with = |before: &[u8], bad: &[u8], after: &[u8]| [before, bad, after].concat();
    let leads = |range: std::ops::RangeInclusive<u8>| -> Vec<u8> {
        range.flat_map(|b| [b, b' ']).collect()
    };
    vec![
        (
            "6.3.1 Greek, surrogate, ASCII",
            with(kosme, b"\xed\xa0\x80", b"edited"),
        ),
        ("6.11.1 lone continuation 0x80", b"\x80".to_vec()),
        ("6.11.2 lone continuation 0xbf", b"\xbf".to_vec()),
        ("6.11.3 two continuations", b"\x80\xbf".to_vec()),
        ("6.11.4 three continuations", b"\x80\xbf\x80".to_vec()),
        ("6.11.5 all 64 continuation bytes", (0x80..=0xbf).collect()),
        (
            "6.12.1 every 2-byte lead followed by a space",
            leads(0xc0..=0xdf),
        ),
        (
            "6.12.2 every 3-byte lead followed by a space",
            leads(0xe0..=0xef),
        ),
        (
            "6.12.3 every 4-byte lead followed by a space",
            leads(0xf0..=0xf7),
        ),
        (
            "6.12.4 5-byte leads followed by a space",
            leads(0xf8..=0xfb),
        ),
        (
            "6.12.5 6-byte leads followed by a space",
            leads(0xfc..=0xfd),
        ),
        ("6.13.1 2-byte sequence cut at the end", b"abc\xc2".to_vec()),
        (
            "6.13.2 3-byte sequence cut after 1 byte",
            b"abc\xe2".to_vec(),
        ),
        (
            "6.13.3 3-byte sequence cut after 2 bytes",
            b"abc\xe2\x82".to_vec(),
        ),
        (
            "6.13.4 4-byte sequence cut after 3 bytes",
            b"abc\xf0\x9d\x84".to_vec(),
        ),
        (
            "6.13.5 last 4-byte code point cut",
            b"\xf4\x8f\xbf".to_vec(),
        ),
        (
            "6.13.6 cut sequences concatenated",
            b"\xc2\xe0\xa0\xf0\x90\x80".to_vec(),
        ),
        ("6.14.1 byte 0xfe", b"\xfe".to_vec()),
        ("6.14.2 byte 0xff", b"\xff".to_vec()),
        ("6.14.3 bytes fe fe ff ff", b"\xfe\xfe\xff\xff".to_vec()),
        ("6.15.1 overlong '/' in 2 bytes", b"\xc0\xaf".to_vec()),
        ("6.15.2 overlong '/' in 3 bytes", b"\xe0\x80\xaf".to_vec()),
        (
            "6.15.3 overlong '/' in 4 bytes",
            b"\xf0\x80\x80\xaf".to_vec(),
        ),
        (
            "6.15.4 overlong '/' in 5 bytes",
            b"\xf8\x80\x80\x80\xaf".to_vec(),
        ),
        (
            "6.15.5 overlong '/' in 6 bytes",
            b"\xfc\x80\x80\x80\x80\xaf".to_vec(),
        ),
        ("6.16.1 maximal overlong 2 bytes", b"\xc1\xbf".to_vec()),
        ("6.16.2 maximal overlong 3 bytes", b"\xe0\x9f\xbf".to_vec()),
        (
            "6.16.3 maximal overlong 4 bytes",
            b"\xf0\x8f\xbf\xbf".to_vec(),
        ),
        ("6.17.1 overlong NUL 2 bytes", b"\xc0\x80".to_vec()),
        ("6.17.2 overlong NUL 3 bytes", b"\xe0\x80\x80".to_vec()),
        ("6.17.3 overlong NUL 4 bytes", b"\xf0\x80\x80\x80".to_vec()),
        ("6.18.1 surrogate U+D800", b"\xed\xa0\x80".to_vec()),
        ("6.18.2 surrogate U+DB7F", b"\xed\xad\xbf".to_vec()),
        ("6.18.3 surrogate U+DB80", b"\xed\xae\x80".to_vec()),
        ("6.18.4 surrogate U+DBFF", b"\xed\xaf\xbf".to_vec()),
        ("6.18.5 surrogate U+DC00", b"\xed\xb0\x80".to_vec()),
        ("6.18.6 surrogate U+DF80", b"\xed\xbe\x80".to_vec()),
        ("6.18.7 surrogate U+DFFF", b"\xed\xbf\xbf".to_vec()),
        (
            "6.19.1 surrogate pair D800 DC00",
            b"\xed\xa0\x80\xed\xb0\x80".to_vec(),
        ),
        (
            "6.19.2 surrogate pair D800 DFFF",
            b"\xed\xa0\x80\xed\xbf\xbf".to_vec(),
        ),
        (
            "6.19.3 surrogate pair DBFF DFFF",
            b"\xed\xaf\xbf\xed\xbf\xbf".to_vec(),
        ),
        ("6.20.1 U+110000", b"\xf4\x90\x80\x80".to_vec()),
        ("6.20.2 lead 0xf5", b"\xf5\x80\x80\x80".to_vec()),
        ("6.20.3 lead 0xf7 (U+1FFFFF)", b"\xf7\xbf\xbf\xbf".to_vec()),
        ("6.20.4 5-byte U+200000", b"\xf8\x88\x80\x80\x80".to_vec()),
        (
            "6.20.5 6-byte U+4000000",
            b"\xfc\x84\x80\x80\x80\x80".to_vec(),
        ),
        (
            "6.21.1 invalid byte between ASCII",
            b"Hello\xc0World".to_vec(),
        ),
        ("6.21.2 valid text, then an invalid byte deep inside", {
            let mut t = utf8_text(3000);
            t.extend_from_slice(b"\xff");
            t.extend(utf8_text(100));
            t
        }),
    ]
}

/// Fail-fast cases (§8.1: fail as soon as invalid data is seen): text bytes up to and
/// including the first byte after which no continuation can make them valid UTF-8. Sent as
/// the start of a much longer frame whose rest never comes.
pub fn fail_fast_prefixes() -> Vec<(&'static str, Vec<u8>)> {
    let kosme = "κόσμε".as_bytes();
    vec![
        (
            "6.4.1 above U+10FFFF (f4 90)",
            [kosme, b"\xf4\x90"].concat(),
        ),
        ("6.4.2 surrogate (ed a0)", [kosme, b"\xed\xa0"].concat()),
        ("6.4.3 overlong lead c0", [kosme, b"\xc0"].concat()),
        ("6.4.4 byte 0xff", [kosme, b"\xff"].concat()),
        (
            "6.4.5 overlong 3-byte (e0 80)",
            [kosme, b"\xe0\x80"].concat(),
        ),
        ("6.4.6 lone continuation", [kosme, b"\x80"].concat()),
        ("6.4.7 lead 0xf5", [kosme, b"\xf5"].concat()),
        ("6.4.8 after 60 KiB of valid text", {
            let mut t = utf8_text(60 << 10);
            t.extend_from_slice(b"\xed\xbf");
            t
        }),
    ]
}

// ------------------------------------------------------------------------------------------
// Decoding
// ------------------------------------------------------------------------------------------

/// A frame as received (payload already unmasked).
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload: Vec<u8>,
}

impl std::fmt::Debug for Frame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = &self.payload[..self.payload.len().min(32)];
        write!(
            f,
            "Frame {{ fin: {}, rsv: {:#05b}, opcode: {:#x}, masked: {}, len: {}, payload: {:02x?}{} }}",
            self.fin,
            self.rsv,
            self.opcode,
            self.mask.is_some(),
            self.payload.len(),
            shown,
            if self.payload.len() > 32 { "…" } else { "" }
        )
    }
}

/// Decodes one frame from the start of `buf`: `Ok(None)` if incomplete, `Err` if the header
/// breaks a sender's obligation of §5.2 (top bit of a 64-bit length, non-minimal length).
fn decode_frame(buf: &[u8]) -> Result<Option<(Frame, usize)>, String> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    let (len, mut pos) = match b1 & 0x7f {
        126 => {
            if buf.len() < 4 {
                return Ok(None);
            }
            let len = u64::from(u16::from_be_bytes([buf[2], buf[3]]));
            if len < 126 {
                return Err(format!(
                    "16-bit length form used for {len} (§5.2: minimal form)"
                ));
            }
            (len, 4)
        }
        127 => {
            if buf.len() < 10 {
                return Ok(None);
            }
            let mut b = [0u8; 8];
            b.copy_from_slice(&buf[2..10]);
            let len = u64::from_be_bytes(b);
            if len >> 63 != 0 {
                return Err("64-bit length with its top bit set (§5.2)".into());
            }
            if len <= 0xffff {
                return Err(format!(
                    "64-bit length form used for {len} (§5.2: minimal form)"
                ));
            }
            (len, 10)
        }
        n => (u64::from(n), 2),
    };
    let mask = if b1 & 0x80 != 0 {
        if buf.len() < pos + 4 {
            return Ok(None);
        }
        let key = [buf[pos], buf[pos + 1], buf[pos + 2], buf[pos + 3]];
        pos += 4;
        Some(key)
    } else {
        None
    };
    let len = usize::try_from(len).map_err(|_| format!("length {len} does not fit memory"))?;
    if buf.len() < pos + len {
        return Ok(None);
    }
    let mut payload = buf[pos..pos + len].to_vec();
    if let Some(key) = mask {
        apply_mask(&mut payload, key);
    }
    let frame = Frame {
        fin: b0 & 0x80 != 0,
        rsv: (b0 >> 4) & 7,
        opcode: b0 & 0x0f,
        mask,
        payload,
    };
    Ok(Some((frame, pos + len)))
}

/// How a read ended without a frame.
#[derive(Debug)]
pub enum End {
    /// The peer closed its side of TCP (read returned 0); `pending` bytes of an incomplete
    /// frame were left over.
    Eof { pending: usize },
    /// Nothing (complete) arrived before the deadline.
    Timeout { pending: usize },
    /// The socket failed (e.g. reset).
    Error(io::Error),
    /// The peer sent a header that breaks §5.2.
    Malformed(String),
}

// ------------------------------------------------------------------------------------------
// The peer
// ------------------------------------------------------------------------------------------

/// Which side of the connection the raw peer plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// We are the client: we mask every frame, and every frame we receive must be unmasked.
    Client,
    /// We are the server: we never mask, and every frame we receive must be masked.
    Server,
}

/// What the raw server saw in the client's upgrade request.
#[derive(Debug, Clone)]
pub struct UpgradeRequest {
    pub request_line: String,
    /// Header names lower-cased; repeated headers joined with ", ".
    pub headers: HashMap<String, String>,
}

/// One raw WebSocket connection.
pub struct RawPeer {
    stream: TcpStream,
    side: Side,
    inbox: Vec<u8>,
    pos: usize,
    mask_state: u32,
    /// Masking keys of the frames received (server side: the client's keys).
    pub keys_seen: Vec<[u8; 4]>,
}

impl RawPeer {
    fn new(stream: TcpStream, side: Side, leftover: Vec<u8>) -> RawPeer {
        stream.set_nodelay(true).expect("set_nodelay");
        stream
            .set_write_timeout(Some(WAIT))
            .expect("set_write_timeout");
        RawPeer {
            stream,
            side,
            inbox: leftover,
            pos: 0,
            mask_state: 0x9e37_79b9,
            keys_seen: Vec::new(),
        }
    }

    /// Connects to `addr` as a client and performs the opening handshake with
    /// [`FIXED_KEY`], checking the `101` response of §4.2.2 exactly.
    pub fn connect(addr: SocketAddr, path: &str) -> RawPeer {
        let stream = TcpStream::connect_timeout(&addr, WAIT)
            .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
        let mut peer = RawPeer::new(stream, Side::Client, Vec::new());
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: {FIXED_KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        peer.send_raw(request.as_bytes());
        let head = peer.read_head();
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default();
        assert!(
            status.starts_with("HTTP/1.1 101 "),
            "expected a 101 status line, got {status:?} (response {head:?})"
        );
        let headers = parse_headers(lines);
        assert_header_token(&headers, "upgrade", "websocket", &head);
        assert_header_token(&headers, "connection", "upgrade", &head);
        assert_eq!(
            headers.get("sec-websocket-accept").map(String::as_str),
            Some(FIXED_ACCEPT),
            "Sec-WebSocket-Accept for the RFC's key (response {head:?})"
        );
        // Nothing was offered: nothing may be selected (§4.1, client checks 5 and 6).
        assert!(
            !headers.contains_key("sec-websocket-extensions")
                && !headers.contains_key("sec-websocket-protocol"),
            "extension or subprotocol selected without an offer: {head:?}"
        );
        peer
    }

    /// Accepts one connection on `listener` (within [`WAIT`]) as the server, reads and checks
    /// the upgrade request (§4.1: GET, HTTP/1.1, Host, Upgrade, Connection, a 16-byte base64
    /// key, version 13) and answers `101`.
    pub fn accept(listener: &TcpListener, expected_host: &str) -> (RawPeer, UpgradeRequest) {
        RawPeer::accept_then(listener, expected_host, &[])
    }

    /// [`accept`](Self::accept), with `trailing` bytes (e.g. frames) sent in the same write as
    /// the `101` response.
    pub fn accept_then(
        listener: &TcpListener,
        expected_host: &str,
        trailing: &[u8],
    ) -> (RawPeer, UpgradeRequest) {
        listener
            .set_nonblocking(true)
            .expect("nonblocking listener");
        let deadline = Instant::now() + WAIT;
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no connection within {WAIT:?}");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).expect("blocking stream");
        let mut peer = RawPeer::new(stream, Side::Server, Vec::new());
        let head = peer.read_head();
        let mut lines = head.split("\r\n");
        let request_line = lines.next().unwrap_or_default().to_owned();
        let headers = parse_headers(lines);
        let parts: Vec<&str> = request_line.split(' ').collect();
        assert!(
            parts.len() == 3
                && parts[0] == "GET"
                && parts[1].starts_with('/')
                && parts[2] == "HTTP/1.1",
            "request line {request_line:?}"
        );
        assert_eq!(
            headers.get("host").map(String::as_str),
            Some(expected_host),
            "Host header (request {head:?})"
        );
        assert_header_token(&headers, "upgrade", "websocket", &head);
        assert_header_token(&headers, "connection", "upgrade", &head);
        assert_eq!(
            headers.get("sec-websocket-version").map(String::as_str),
            Some("13"),
            "Sec-WebSocket-Version (request {head:?})"
        );
        let key = headers
            .get("sec-websocket-key")
            .unwrap_or_else(|| panic!("no Sec-WebSocket-Key in {head:?}"))
            .clone();
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(&key)
            .unwrap_or_else(|e| panic!("Sec-WebSocket-Key {key:?} is not base64: {e}"));
        assert_eq!(decoded.len(), 16, "Sec-WebSocket-Key must encode 16 bytes");
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {}\r\n\r\n",
            accept_for(&key)
        );
        let mut wire = response.into_bytes();
        wire.extend_from_slice(trailing);
        peer.send_raw(&wire);
        (
            peer,
            UpgradeRequest {
                request_line,
                headers,
            },
        )
    }

    /// Reads an HTTP head (up to and including the blank line) within [`WAIT`] and 16 KiB;
    /// bytes after it stay in the inbox.
    fn read_head(&mut self) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(end) = self.inbox.windows(4).position(|w| w == b"\r\n\r\n") {
                let head = String::from_utf8(self.inbox[..end].to_vec())
                    .unwrap_or_else(|_| panic!("HTTP head is not UTF-8: {:?}", &self.inbox));
                self.inbox.drain(..end + 4);
                return head;
            }
            assert!(self.inbox.len() < 16 << 10, "HTTP head over 16 KiB");
            if let Err(end) = self.fill(deadline) {
                panic!(
                    "incomplete HTTP head ({end:?}): {:?}",
                    String::from_utf8_lossy(&self.inbox)
                );
            }
        }
    }

    /// The underlying socket (e.g. to shut it down).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Next masking key: the RFC's example key first, then a fixed pseudo-random sequence.
    fn next_key(&mut self) -> [u8; 4] {
        let key = if self.mask_state == 0x9e37_79b9 {
            [0x37, 0xfa, 0x21, 0x3d]
        } else {
            self.mask_state.to_be_bytes()
        };
        let mut x = self.mask_state;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.mask_state = x;
        key
    }

    /// The mask our role calls for: a fresh key as a client, none as a server.
    pub fn role_mask(&mut self) -> Option<[u8; 4]> {
        match self.side {
            Side::Client => Some(self.next_key()),
            Side::Server => None,
        }
    }

    /// A well-formed frame for our role (masked as a client).
    pub fn frame(&mut self, fin: bool, rsv: u8, opcode: u8, payload: &[u8]) -> Vec<u8> {
        let mask = self.role_mask();
        encode_frame(fin, rsv, opcode, mask, payload)
    }

    /// A header alone for our role, declaring `len` bytes that are not part of it.
    pub fn header(&mut self, fin: bool, rsv: u8, opcode: u8, len: u64) -> Vec<u8> {
        let mask = self.role_mask();
        encode_header(fin, rsv, opcode, mask, len)
    }

    /// A frame header for our role declaring `declared` payload bytes, followed by only the
    /// first of them, `prefix` (masked as the header says).
    pub fn partial_frame(
        &mut self,
        fin: bool,
        opcode: u8,
        declared: u64,
        prefix: &[u8],
    ) -> Vec<u8> {
        assert!(prefix.len() as u64 <= declared);
        let mask = self.role_mask();
        let mut wire = encode_header(fin, 0, opcode, mask, declared);
        let start = wire.len();
        wire.extend_from_slice(prefix);
        if let Some(key) = mask {
            apply_mask(&mut wire[start..], key);
        }
        wire
    }

    /// Writes bytes as they are.
    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream
            .write_all(bytes)
            .unwrap_or_else(|e| panic!("write of {} bytes: {e}", bytes.len()));
    }

    /// Writes bytes in separate writes of `chunk` bytes, pausing `pause` between them.
    pub fn send_chopped(&mut self, bytes: &[u8], chunk: usize, pause: Duration) {
        for (i, piece) in bytes.chunks(chunk.max(1)).enumerate() {
            if i > 0 && !pause.is_zero() {
                std::thread::sleep(pause);
            }
            self.send_raw(piece);
        }
    }

    pub fn send_frame(&mut self, fin: bool, rsv: u8, opcode: u8, payload: &[u8]) {
        let bytes = self.frame(fin, rsv, opcode, payload);
        self.send_raw(&bytes);
    }

    pub fn send_text(&mut self, text: &[u8]) {
        self.send_frame(true, 0, op::TEXT, text);
    }

    pub fn send_binary(&mut self, data: &[u8]) {
        self.send_frame(true, 0, op::BINARY, data);
    }

    pub fn send_ping(&mut self, payload: &[u8]) {
        self.send_frame(true, 0, op::PING, payload);
    }

    pub fn send_pong(&mut self, payload: &[u8]) {
        self.send_frame(true, 0, op::PONG, payload);
    }

    pub fn send_close(&mut self, code: u16, reason: &[u8]) {
        self.send_frame(true, 0, op::CLOSE, &close_payload(code, reason));
    }

    /// Sends a message as frames of at most `fragment` payload bytes.
    pub fn send_fragmented(&mut self, opcode: u8, payload: &[u8], fragment: usize) {
        let wire = self.fragmented(opcode, payload, fragment);
        self.send_raw(&wire);
    }

    /// The wire bytes of a message as frames of at most `fragment` payload bytes.
    pub fn fragmented(&mut self, opcode: u8, payload: &[u8], fragment: usize) -> Vec<u8> {
        let mut wire =
            Vec::with_capacity(payload.len() + payload.len() / fragment.max(1) * 14 + 14);
        let chunks: Vec<&[u8]> = if payload.is_empty() {
            vec![&[][..]]
        } else {
            payload.chunks(fragment.max(1)).collect()
        };
        let n = chunks.len();
        for (i, chunk) in chunks.into_iter().enumerate() {
            let opcode = if i == 0 { opcode } else { op::CONT };
            let frame = self.frame(i + 1 == n, 0, opcode, chunk);
            wire.extend_from_slice(&frame);
        }
        wire
    }

    // --------------------------------------------------------------------------------------
    // Reading
    // --------------------------------------------------------------------------------------

    /// One read into the inbox, bounded by `deadline`.
    fn fill(&mut self, deadline: Instant) -> Result<(), End> {
        let pending = self.inbox.len() - self.pos;
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(End::Timeout { pending });
        }
        self.stream
            .set_read_timeout(Some(left))
            .expect("set_read_timeout");
        if self.pos > 0 && self.pos == self.inbox.len() {
            self.inbox.clear();
            self.pos = 0;
        } else if self.pos > (4 << 20) {
            self.inbox.drain(..self.pos);
            self.pos = 0;
        }
        let old = self.inbox.len();
        self.inbox.resize(old + (256 << 10), 0);
        let result = self.stream.read(&mut self.inbox[old..]);
        match result {
            Ok(0) => {
                self.inbox.truncate(old);
                Err(End::Eof { pending })
            }
            Ok(n) => {
                self.inbox.truncate(old + n);
                Ok(())
            }
            Err(e) => {
                self.inbox.truncate(old);
                match e.kind() {
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
                        Err(End::Timeout { pending })
                    }
                    io::ErrorKind::Interrupted => Ok(()),
                    _ => Err(End::Error(e)),
                }
            }
        }
    }

    /// The next frame within `timeout`. Checks the masking rule of §5.1 for the sender's role
    /// (a violation panics: both implementations under test must get it right always).
    pub fn read_frame(&mut self, timeout: Duration) -> Result<Frame, End> {
        let deadline = Instant::now() + timeout;
        loop {
            match decode_frame(&self.inbox[self.pos..]) {
                Ok(Some((frame, used))) => {
                    self.pos += used;
                    match (self.side, frame.mask) {
                        (Side::Client, Some(_)) => {
                            panic!("§5.1: the server sent a masked frame: {frame:?}")
                        }
                        (Side::Server, None) => {
                            panic!("§5.1: the client sent an unmasked frame: {frame:?}")
                        }
                        (_, Some(key)) => self.keys_seen.push(key),
                        (_, None) => {}
                    }
                    return Ok(frame);
                }
                Ok(None) => self.fill(deadline)?,
                Err(e) => return Err(End::Malformed(e)),
            }
        }
    }

    /// The next frame; panics (saying what `what` was waiting for) if none comes in [`WAIT`].
    pub fn next_frame(&mut self, what: &str) -> Frame {
        match self.read_frame(WAIT) {
            Ok(frame) => frame,
            Err(end) => panic!("waiting for {what}: no frame ({end:?})"),
        }
    }

    /// Expects a single-frame control or data frame with exactly this opcode and payload.
    pub fn expect_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> Frame {
        let what = format!(
            "frame opcode {opcode:#x}, fin {fin}, {} bytes",
            payload.len()
        );
        let frame = self.next_frame(&what);
        assert!(
            frame.fin == fin
                && frame.rsv == 0
                && frame.opcode == opcode
                && frame.payload == payload,
            "expected {what} = {payload:02x?}, got {frame:?}"
        );
        frame
    }

    pub fn expect_pong(&mut self, payload: &[u8]) {
        self.expect_frame(true, op::PONG, payload);
    }

    /// Expects a complete message of type `opcode` (possibly fragmented, with no control
    /// frames in between) whose payload is exactly `payload`; returns its frame sizes.
    pub fn expect_message(&mut self, opcode: u8, payload: &[u8]) -> Vec<usize> {
        let what = format!(
            "a message of opcode {opcode:#x} and {} bytes",
            payload.len()
        );
        let mut got = Vec::with_capacity(payload.len());
        let mut sizes = Vec::new();
        loop {
            let frame = self.next_frame(&what);
            let want_op = if sizes.is_empty() { opcode } else { op::CONT };
            assert!(
                frame.opcode == want_op && frame.rsv == 0,
                "waiting for {what}: frame {} should have opcode {want_op:#x} and no RSV bits, \
                 got {frame:?}",
                sizes.len()
            );
            sizes.push(frame.payload.len());
            assert!(
                sizes.len() <= payload.len() + 16,
                "waiting for {what}: {} frames and still no FIN",
                sizes.len()
            );
            got.extend_from_slice(&frame.payload);
            assert!(
                got.len() <= payload.len(),
                "waiting for {what}: already {} bytes after {} frames",
                got.len(),
                sizes.len()
            );
            if frame.fin {
                break;
            }
        }
        if got != payload {
            let at = got.iter().zip(payload).position(|(a, b)| a != b);
            panic!(
                "{what}: echo differs (got {} bytes in {} frames, first difference at {at:?}; \
                 got {:02x?}… want {:02x?}…)",
                got.len(),
                sizes.len(),
                &got[..got.len().min(40)],
                &payload[..payload.len().min(40)]
            );
        }
        sizes
    }

    pub fn expect_text(&mut self, text: &[u8]) -> Vec<usize> {
        self.expect_message(op::TEXT, text)
    }

    pub fn expect_binary(&mut self, data: &[u8]) -> Vec<usize> {
        self.expect_message(op::BINARY, data)
    }

    /// Expects the next frame to be a close frame with `code` and a UTF-8 reason of at most
    /// 123 bytes (§5.5.1), without checking what follows. Returns it.
    pub fn expect_close_frame(&mut self, code: u16) -> Frame {
        let what = format!("a close frame with code {code}");
        let frame = self.next_frame(&what);
        assert!(
            frame.opcode == op::CLOSE && frame.fin && frame.rsv == 0,
            "waiting for {what}, got {frame:?}"
        );
        assert!(
            frame.payload.len() >= 2,
            "waiting for {what}, got a close frame without a code: {frame:?}"
        );
        let got = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
        assert_eq!(got, code, "close code (frame {frame:?})");
        assert!(
            std::str::from_utf8(&frame.payload[2..]).is_ok() && frame.payload.len() <= 125,
            "close reason must be UTF-8 within 123 bytes: {frame:?}"
        );
        frame
    }

    /// Expects a close frame with `code`, then the peer closing TCP (read returns 0) with no
    /// byte after the close frame.
    pub fn expect_close(&mut self, code: u16) -> Frame {
        let frame = self.expect_close_frame(code);
        self.expect_eof();
        frame
    }

    /// For a valid message that shares a read with a later violation or close: its echo must
    /// still go out, before the close frame (what Autobahn calls strict), then the close with
    /// `code` and the end of the connection.
    pub fn expect_echo_then_close(&mut self, opcode: u8, payload: &[u8], code: u16) {
        self.expect_message(opcode, payload);
        self.expect_close(code);
    }

    /// Expects a close frame with exactly this payload (e.g. empty), then EOF.
    pub fn expect_close_payload(&mut self, payload: &[u8]) {
        self.expect_frame(true, op::CLOSE, payload);
        self.expect_eof();
    }

    /// Expects the peer to close TCP (read returns 0) within [`WAIT`], with nothing before.
    pub fn expect_eof(&mut self) {
        match self.read_frame(WAIT) {
            Err(End::Eof { pending: 0 }) => {}
            Ok(frame) => panic!("expected the peer to close TCP, got another frame: {frame:?}"),
            Err(end) => panic!("expected the peer to close TCP, got {end:?}"),
        }
    }

    /// Asserts that neither a byte nor EOF arrives within `window`.
    pub fn expect_no_frame_within(&mut self, window: Duration) {
        match self.read_frame(window) {
            Err(End::Timeout { pending: 0 }) => {}
            Ok(frame) => panic!("expected silence for {window:?}, got {frame:?}"),
            Err(end) => panic!("expected silence for {window:?}, got {end:?}"),
        }
    }

    /// Closes both directions of our socket.
    pub fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

fn parse_headers<'a>(lines: impl Iterator<Item = &'a str>) -> HashMap<String, String> {
    let mut headers: HashMap<String, String> = HashMap::new();
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            panic!("malformed header line {line:?}");
        };
        let name = name.trim().to_ascii_lowercase();
        let value = value.trim().to_owned();
        headers
            .entry(name)
            .and_modify(|v| {
                v.push_str(", ");
                v.push_str(&value);
            })
            .or_insert(value);
    }
    headers
}

fn assert_header_token(headers: &HashMap<String, String>, name: &str, token: &str, head: &str) {
    let ok = headers
        .get(name)
        .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)));
    assert!(
        ok,
        "header {name} must contain the token {token:?}: {head:?}"
    );
}

// ------------------------------------------------------------------------------------------
// Tables of cases
// ------------------------------------------------------------------------------------------

/// Runs every case of a table, each caught on its own, and fails once at the end with the id
/// and message of every case that failed.
pub struct Cases {
    group: String,
    ran: usize,
    failures: Vec<String>,
}

impl Cases {
    pub fn new(group: &str) -> Cases {
        Cases {
            group: group.to_owned(),
            ran: 0,
            failures: Vec::new(),
        }
    }

    pub fn case(&mut self, id: &str, run: impl FnOnce()) {
        self.ran += 1;
        if let Err(e) = catch_unwind(AssertUnwindSafe(run)) {
            let message = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "(non-string panic)".into());
            self.failures.push(format!("case {id}: {message}"));
        }
    }

    pub fn finish(self) {
        eprintln!(
            "{}: {} cases, {} failed",
            self.group,
            self.ran,
            self.failures.len()
        );
        assert!(
            self.failures.is_empty(),
            "{}: {} of {} cases failed:\n{}",
            self.group,
            self.failures.len(),
            self.ran,
            self.failures.join("\n")
        );
        assert!(self.ran > 0, "{}: no case ran", self.group);
    }
}

/// Runs `f`; if it panics, panics again with `what` in front of its message (for loops inside
/// one case).
pub fn within<T>(what: &str, f: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(value) => value,
        Err(e) => {
            let message = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_default();
            panic!("{what}: {message}")
        }
    }
}

// ------------------------------------------------------------------------------------------
// Example processes
// ------------------------------------------------------------------------------------------

static BUILT: Mutex<Vec<(String, PathBuf)>> = Mutex::new(Vec::new());

/// Builds `cargo build --release -p ws-mio --example NAME` (once per test process) and
/// returns the path of the binary.
pub fn example(name: &str) -> PathBuf {
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((_, path)) = built.iter().find(|(n, _)| n == name) {
        return path.clone();
    }
    let path = ws_tests::build_examples("ws-mio", &[name]).join(name);
    built.push((name.to_owned(), path.clone()));
    path
}

/// A child process whose stdout is read line by line on a thread; killed on drop.
pub struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    pub seen: Vec<String>,
}

impl Proc {
    pub fn spawn(program: &Path, args: &[&str]) -> Proc {
        let name = program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", program.display()));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Proc {
            name,
            child,
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The next stdout line within `timeout`, or `None` (timeout or stdout closed).
    pub fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Waits up to `timeout` for the process to exit.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => return None,
            }
        }
    }

    /// Whether the process is still running.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Describes the process's output so far, for failure messages.
    pub fn report(&self) -> String {
        format!(
            "{}: stdout {:?}, stderr {:?}",
            self.name,
            self.seen,
            self.stderr()
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The `echo_server` example on a port of its own (`--port 0`: the OS picks a free one and
/// the server prints it).
pub struct EchoServer {
    pub proc: Proc,
    pub addr: SocketAddr,
}

impl EchoServer {
    pub fn start() -> EchoServer {
        let binary = example("echo_server");
        let mut proc = Proc::spawn(&binary, &["--port", "0"]);
        let line = proc
            .next_line(WAIT)
            .unwrap_or_else(|| panic!("echo_server printed no line: {}", proc.report()));
        // "echo_server listening on ws://0.0.0.0:PORT"
        let port: u16 = line
            .strip_prefix("echo_server listening on ws://")
            .and_then(|a| a.rsplit_once(':'))
            .and_then(|(_, p)| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line {line:?}: {}", proc.report()));
        EchoServer {
            proc,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        }
    }

    /// A new raw client connection, handshake done.
    pub fn connect(&self) -> RawPeer {
        RawPeer::connect(self.addr, "/conformance")
    }
}
