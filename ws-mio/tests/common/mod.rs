//! Shared helpers of the ws-mio integration tests: a factory and handlers that record every
//! callback, a minimal raw WebSocket client over a blocking `std::net::TcpStream` (for peers
//! that misbehave on purpose), and bounded waiting.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use ws_mio::ws_proto::handshake::UpgradeRequest;
use ws_mio::{Decision, Disconnect, DriverError, Factory, Handler, Message, Session};

/// The longest any single wait in these tests may take before it counts as a failure.
pub const WAIT: Duration = Duration::from_secs(10);

/// One callback, as seen by a test.
#[derive(Debug)]
pub enum Ev {
    Open(Session),
    Message(u64, Message),
    Ping(u64, Vec<u8>),
    Pong(u64, Vec<u8>),
    Drain(u64),
    Close(u64, Disconnect),
    /// `Some(session id)`: the connection's `Handler::on_error`; `None`: the factory's
    /// `on_error`, for a failure before the connection had a handler (a refused handshake, a
    /// failed `accept`).
    Error(Option<u64>, DriverError),
}

/// Per-session bookkeeping kept by [`Recording`] and its [`Recorder`]s.
#[derive(Debug, Default)]
pub struct Tally {
    pub opens: HashMap<u64, usize>,
    pub closes: HashMap<u64, usize>,
    pub peers: HashMap<u64, SocketAddr>,
    pub disconnects: HashMap<u64, Disconnect>,
    pub messages: usize,
    pub errors: Vec<(Option<u64>, String)>,
}

/// What a recording server and all its connections' recorders share.
#[derive(Debug)]
struct Shared {
    echo: bool,
    events: Option<mpsc::Sender<Ev>>,
    tally: Arc<Mutex<Tally>>,
}

impl Shared {
    fn emit(&self, ev: Ev) {
        if let Some(tx) = &self.events {
            let _ = tx.send(ev);
        }
    }

    fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn new(echo: bool, events: Option<mpsc::Sender<Ev>>) -> (Arc<Shared>, Arc<Mutex<Tally>>) {
        let tally = Arc::new(Mutex::new(Tally::default()));
        let shared = Shared {
            echo,
            events,
            tally: Arc::clone(&tally),
        };
        (Arc::new(shared), tally)
    }
}

/// A server's factory that accepts every request with a [`Recorder`], all of them recording
/// into one [`Tally`] (and, optionally, one event channel), and that records the failures
/// before a connection has a handler too (as `Ev::Error(None, _)`).
///
/// A `Recorder` is deliberately not `Clone`, hence not a factory by itself: a server given one
/// directly would silently lose those failures.
#[derive(Debug)]
pub struct Recording {
    shared: Arc<Shared>,
}

/// One connection's handler: counts every callback, optionally echoes messages, and
/// optionally forwards every callback to the test through a channel.
#[derive(Debug)]
pub struct Recorder {
    shared: Arc<Shared>,
}

/// The test's side of a [`Recording`] or [`Recorder`].
pub struct Probe {
    pub events: mpsc::Receiver<Ev>,
    pub tally: Arc<Mutex<Tally>>,
}

impl Recording {
    /// A server factory whose connections forward their events to the returned probe.
    pub fn new(echo: bool) -> (Recording, Probe) {
        let (tx, rx) = mpsc::channel();
        let (shared, tally) = Shared::new(echo, Some(tx));
        (Recording { shared }, Probe { events: rx, tally })
    }

    /// A server factory whose connections only count (for load tests: no per-message channel
    /// traffic).
    pub fn counting(echo: bool) -> (Recording, Arc<Mutex<Tally>>) {
        let (shared, tally) = Shared::new(echo, None);
        (Recording { shared }, tally)
    }

    /// A handler recording into this factory's tally and channel.
    pub fn recorder(&self) -> Recorder {
        Recorder {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl Factory for Recording {
    type Handler = Recorder;

    fn on_request(&self, _request: &UpgradeRequest, _peer: &ws_mio::Peer) -> Decision<Recorder> {
        Decision::accept(self.recorder())
    }

    fn on_error(&self, _peer: Option<SocketAddr>, error: &DriverError) {
        self.shared.tally().errors.push((None, error.to_string()));
        self.shared.emit(Ev::Error(None, error.clone()));
    }
}

impl Recorder {
    /// A handler (a client's) forwarding its events to the returned probe.
    pub fn new(echo: bool) -> (Recorder, Probe) {
        let (recording, probe) = Recording::new(echo);
        (recording.recorder(), probe)
    }
}

impl Handler for Recorder {
    fn on_open(&mut self, session: &Session) {
        {
            let mut tally = self.shared.tally();
            *tally.opens.entry(session.id()).or_default() += 1;
            tally.peers.insert(session.id(), session.peer_addr());
        }
        self.shared.emit(Ev::Open(session.clone()));
    }

    fn on_message(&mut self, session: &Session, message: Message) {
        self.shared.tally().messages += 1;
        if self.shared.echo {
            if let Err(e) = session.send(message.clone()) {
                self.shared
                    .tally()
                    .errors
                    .push((Some(session.id()), format!("echo failed: {e}")));
            }
        }
        if self.shared.events.is_some() {
            self.shared.emit(Ev::Message(session.id(), message));
        }
    }

    fn on_ping(&mut self, session: &Session, payload: &[u8]) {
        self.shared.emit(Ev::Ping(session.id(), payload.to_vec()));
    }

    fn on_pong(&mut self, session: &Session, payload: &[u8]) {
        self.shared.emit(Ev::Pong(session.id(), payload.to_vec()));
    }

    fn on_drain(&mut self, session: &Session) {
        self.shared.emit(Ev::Drain(session.id()));
    }

    fn on_close(&mut self, session: &Session, disconnect: &Disconnect) {
        {
            let mut tally = self.shared.tally();
            *tally.closes.entry(session.id()).or_default() += 1;
            tally.disconnects.insert(session.id(), disconnect.clone());
        }
        self.shared
            .emit(Ev::Close(session.id(), disconnect.clone()));
    }

    fn on_error(&mut self, session: &Session, error: &DriverError) {
        let id = Some(session.id());
        self.shared.tally().errors.push((id, error.to_string()));
        self.shared.emit(Ev::Error(id, error.clone()));
    }
}

impl Probe {
    /// Waits (at most [`WAIT`]) for the first event `pick` accepts, skipping the others.
    pub fn expect<T>(&self, what: &str, mut pick: impl FnMut(Ev) -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(ev) => {
                    if let Some(found) = pick(ev) {
                        return found;
                    }
                }
                Err(_) => panic!("no {what} within {WAIT:?}"),
            }
        }
    }

    /// The next opened session.
    pub fn opened(&self) -> Session {
        self.expect("on_open", |ev| match ev {
            Ev::Open(s) => Some(s),
            _ => None,
        })
    }

    /// The next message of session `id`.
    pub fn message(&self, id: u64) -> Message {
        self.expect("on_message", |ev| match ev {
            Ev::Message(i, m) if i == id => Some(m),
            _ => None,
        })
    }

    /// The disconnect of session `id`.
    pub fn closed(&self, id: u64) -> Disconnect {
        self.expect("on_close", |ev| match ev {
            Ev::Close(i, d) if i == id => Some(d),
            _ => None,
        })
    }

    pub fn tally(&self) -> MutexGuard<'_, Tally> {
        self.tally.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Polls `condition` every few milliseconds until it holds; false if `limit` passes first.
pub fn eventually(limit: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A payload of `len` bytes whose content depends on the position and on `seed`, so that a
/// reordered, truncated or shifted copy never compares equal.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ ((i >> 8) as u8) ^ seed)
        .collect()
}

/// ASCII text of exactly `len` bytes, varying with the position.
pub fn text_pattern(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,";
    (0..len)
        .map(|i| ALPHABET[(i * 7 + i / 64) % ALPHABET.len()] as char)
        .collect()
}

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// One frame as read by [`RawClient::read_frame`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawFrame {
    pub fin: bool,
    pub opcode: u8,
    pub payload: Vec<u8>,
}

/// Encodes a client (masked) frame header and masks `payload` into it.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len() + 14);
    out.push(if fin { 0x80 } else { 0 } | opcode);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xFFFF => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    out
}

/// A deliberately small WebSocket client over a blocking socket: it does exactly what a test
/// tells it and nothing else (no automatic pongs, no automatic close replies). Every read is
/// bounded by [`WAIT`].
pub struct RawClient {
    pub stream: TcpStream,
    buf: Vec<u8>,
    masks: u32,
}

impl RawClient {
    /// Connects and completes the opening handshake on `path`.
    pub fn connect(addr: SocketAddr, path: &str) -> io::Result<RawClient> {
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(WAIT))?;
        stream.set_write_timeout(Some(WAIT))?;
        stream.set_nodelay(true)?;
        let mut client = RawClient {
            stream,
            buf: Vec::new(),
            masks: 0,
        };
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        );
        client.stream.write_all(request.as_bytes())?;
        let head = client.read_head()?;
        let expected = "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
        if !head.starts_with("HTTP/1.1 101 ") || !head.contains(expected) {
            return Err(io::Error::other(format!("handshake refused: {head:?}")));
        }
        Ok(client)
    }

    /// Reads an HTTP head (up to the blank line); what follows stays buffered.
    fn read_head(&mut self) -> io::Result<String> {
        loop {
            if let Some(end) = self.buf.windows(4).position(|w| w == b"\r\n\r\n") {
                let head: Vec<u8> = self.buf.drain(..end + 4).collect();
                return Ok(String::from_utf8_lossy(&head).into_owned());
            }
            if self.buf.len() > 64 << 10 {
                return Err(io::Error::other("response head too large"));
            }
            self.fill()?;
        }
    }

    /// Reads more bytes into the buffer; EOF is an `UnexpectedEof` error.
    fn fill(&mut self) -> io::Result<()> {
        let mut chunk = [0u8; 16 << 10];
        let n = self.stream.read(&mut chunk)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        self.buf.extend_from_slice(&chunk[..n]);
        Ok(())
    }

    fn take(&mut self, n: usize) -> io::Result<Vec<u8>> {
        while self.buf.len() < n {
            self.fill()?;
        }
        Ok(self.buf.drain(..n).collect())
    }

    fn next_mask(&mut self) -> [u8; 4] {
        self.masks = self.masks.wrapping_add(0x9E37_79B9);
        self.masks.to_be_bytes()
    }

    /// Sends one masked frame.
    pub fn send_frame(&mut self, fin: bool, opcode: u8, payload: &[u8]) -> io::Result<()> {
        let mask = self.next_mask();
        self.stream
            .write_all(&client_frame(fin, opcode, payload, mask))
    }

    /// Sends a close frame with `code`.
    pub fn send_close(&mut self, code: u16, reason: &str) -> io::Result<()> {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        self.send_frame(true, OP_CLOSE, &payload)
    }

    /// Reads one server frame (which must not be masked).
    pub fn read_frame(&mut self) -> io::Result<RawFrame> {
        let head = self.take(2)?;
        if head[1] & 0x80 != 0 {
            return Err(io::Error::other("masked frame from the server"));
        }
        let len = match head[1] & 0x7F {
            126 => u16::from_be_bytes(self.take(2)?.try_into().unwrap()) as usize,
            127 => {
                let len = u64::from_be_bytes(self.take(8)?.try_into().unwrap());
                usize::try_from(len).map_err(io::Error::other)?
            }
            n => n as usize,
        };
        if len > 64 << 20 {
            return Err(io::Error::other(format!("frame of {len} bytes")));
        }
        Ok(RawFrame {
            fin: head[0] & 0x80 != 0,
            opcode: head[0] & 0x0F,
            payload: self.take(len)?,
        })
    }

    /// Reads the next complete data message (reassembling fragments) or control frame.
    pub fn read_message(&mut self) -> io::Result<(u8, Vec<u8>)> {
        let mut message: Option<(u8, Vec<u8>)> = None;
        loop {
            let frame = self.read_frame()?;
            if frame.opcode >= OP_CLOSE {
                return Ok((frame.opcode, frame.payload));
            }
            match (&mut message, frame.opcode) {
                (None, OP_TEXT | OP_BINARY) => message = Some((frame.opcode, frame.payload)),
                (Some((_, data)), OP_CONT) => data.extend_from_slice(&frame.payload),
                _ => return Err(io::Error::other(format!("bad opcode {}", frame.opcode))),
            }
            if frame.fin {
                return Ok(message.take().unwrap());
            }
        }
    }

    /// Reads until the peer closes TCP, skipping at most `max_bytes` of remaining data, and
    /// says how the stream ended: only [`Ending::Eof`] is a clean close (RFC 6455 §7.1.1: the
    /// server closes TCP first, and a read then returns 0); a reset is an abort.
    pub fn read_to_end(&mut self, max_bytes: usize) -> Ending {
        let mut skipped = self.buf.len();
        self.buf.clear();
        let mut chunk = [0u8; 64 << 10];
        while skipped <= max_bytes {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Ending::Eof,
                Ok(n) => skipped += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ending::StillOpen
                }
                Err(e) => return Ending::Failed(e.kind()),
            }
        }
        Ending::TooMuchData(skipped)
    }

    /// Whether the peer closes TCP cleanly ([`Ending::Eof`]: not a reset) after at most
    /// `max_bytes` of remaining data.
    pub fn reaches_eof(&mut self, max_bytes: usize) -> bool {
        self.read_to_end(max_bytes) == Ending::Eof
    }
}

/// How [`RawClient::read_to_end`] found the stream ending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// A read returned 0: the peer closed its side cleanly (FIN).
    Eof,
    /// A read failed: `ConnectionReset` (RST) is an abort, not a close.
    Failed(io::ErrorKind),
    /// Nothing more arrived within the read timeout ([`WAIT`]).
    StillOpen,
    /// More data than allowed arrived before the end (bytes seen so far).
    TooMuchData(usize),
}

/// The soft `RLIMIT_NOFILE` of this process, from `/proc/self/limits` (None elsewhere).
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    if soft == "unlimited" {
        return Some(u64::MAX);
    }
    soft.parse().ok()
}

/// Makes sure this process may open `needed` files: raises the soft `RLIMIT_NOFILE` with
/// `prlimit` (util-linux) if it is lower and the hard limit allows, else fails saying so.
pub fn ensure_open_files(needed: u64) {
    let Some(limit) = open_files_limit() else {
        return; // not Linux: nothing to check
    };
    if limit >= needed {
        return;
    }
    let raised = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={needed}:"))
        .status()
        .is_ok_and(|s| s.success());
    let now = open_files_limit().unwrap_or(0);
    assert!(
        now >= needed,
        "this test needs {needed} open files per process but RLIMIT_NOFILE is {limit} \
         (raising it with prlimit {}): run it under `ulimit -n {needed}` or more",
        if raised { "did not help" } else { "failed" }
    );
}
