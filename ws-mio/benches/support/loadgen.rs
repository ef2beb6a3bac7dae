//! A WebSocket echo load generator on raw TCP.
//!
//! It opens `connections` sockets, does the client opening handshake itself (fixed key), then
//! keeps `window` masked binary messages of `size` bytes in flight on every connection: each
//! echo that comes back lets one more message go. No WebSocket library is involved, so the
//! generator costs the same whatever the server, and as little as possible: every message of a
//! run is the same frame (same mask), so a thread writes straight from one pre-encoded buffer
//! and only parses frame headers on the way back (the first echo of each connection is also
//! compared byte for byte with what was sent).
//!
//! The connections are spread over `threads` mio event loops. Messages are counted from the
//! end of `warmup` for `duration`.

use std::fmt;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use super::cpu;

/// Load-generator threads are named `loadgen-N`.
pub const THREAD_NAME: &str = "loadgen";

/// The handshake key of every connection, and the accept value it must produce (RFC 6455
/// section 1.3's example).
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";
const MASK: [u8; 4] = [0x5a, 0x13, 0xc7, 0x2e];
const READ_BUFFER: usize = 256 << 10;

/// What load to apply.
#[derive(Debug, Clone)]
pub struct LoadConfig {
    /// Concurrent WebSocket connections.
    pub connections: usize,
    /// Payload bytes of each binary message.
    pub size: usize,
    /// Messages in flight per connection.
    pub window: usize,
    /// Event-loop threads of the generator.
    pub threads: usize,
    /// Load applied before counting starts.
    pub warmup: Duration,
    /// Time messages are counted.
    pub duration: Duration,
}

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub struct LoadResult {
    /// Echoes received during the measured window.
    pub messages: u64,
    /// Length of the measured window (wall clock).
    pub elapsed: Duration,
    /// CPU the generator's threads used during the window.
    pub loadgen_cpu: Duration,
    /// CPU the server's threads used during the window.
    pub server_cpu: Duration,
}

impl LoadResult {
    /// Echoes per second.
    pub fn rate(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    /// Server CPU microseconds per echoed message.
    pub fn server_us_per_msg(&self) -> f64 {
        self.server_cpu.as_secs_f64() * 1e6 / self.messages.max(1) as f64
    }

    /// Share of its threads' time the server was on a CPU (in-process servers only).
    pub fn server_busy(&self, threads: usize) -> f64 {
        self.server_cpu.as_secs_f64() / (self.elapsed.as_secs_f64() * threads as f64)
    }

    /// Share of its threads' time the generator was on a CPU (near 1.0: it may be the
    /// bottleneck rather than the server).
    pub fn loadgen_busy(&self, threads: usize) -> f64 {
        self.loadgen_cpu.as_secs_f64() / (self.elapsed.as_secs_f64() * threads as f64)
    }
}

/// A load-generator failure (handshake refused, unexpected frame, connection lost...).
#[derive(Debug)]
pub struct LoadError(String);

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for LoadError {}

impl From<io::Error> for LoadError {
    fn from(e: io::Error) -> Self {
        LoadError(format!("I/O error: {e}"))
    }
}

/// Applies the load to the echo server at `addr`; `server_threads` names (by prefix) the
/// threads whose CPU is the server's, when it runs in this process.
pub fn run(
    addr: SocketAddr,
    config: &LoadConfig,
    server_threads: Option<&str>,
) -> Result<LoadResult, LoadError> {
    assert!(config.connections > 0 && config.window > 0 && config.threads > 0);
    let payload = payload(config.size);
    let frame = Arc::new(masked_frame(&payload));
    let payload = Arc::new(payload);
    let threads = config.threads.min(config.connections);

    let mut groups: Vec<Vec<TcpStream>> = (0..threads).map(|_| Vec::new()).collect();
    for i in 0..config.connections {
        let stream =
            connect(addr).map_err(|e| LoadError(format!("connection {i} to {addr}: {}", e.0)))?;
        groups[i % threads].push(stream);
    }

    let stop = Arc::new(AtomicBool::new(false));
    let mut counters = Vec::with_capacity(threads);
    let mut handles = Vec::with_capacity(threads);
    for (n, streams) in groups.into_iter().enumerate() {
        let counter = Arc::new(AtomicU64::new(0));
        counters.push(Arc::clone(&counter));
        let worker = Worker {
            streams,
            frame: Arc::clone(&frame),
            payload: Arc::clone(&payload),
            window: config.window,
            stop: Arc::clone(&stop),
            counter,
        };
        let handle = thread::Builder::new()
            .name(format!("{THREAD_NAME}-{n}"))
            .spawn(move || worker.run())?;
        handles.push(handle);
    }

    let total = |counters: &[Arc<AtomicU64>]| -> u64 {
        counters.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    };
    thread::sleep(config.warmup);
    let start = (
        Instant::now(),
        total(&counters),
        cpu::threads_cpu(THREAD_NAME),
        server_threads.map_or(Duration::ZERO, cpu::threads_cpu),
    );
    thread::sleep(config.duration);
    let end = (
        Instant::now(),
        total(&counters),
        cpu::threads_cpu(THREAD_NAME),
        server_threads.map_or(Duration::ZERO, cpu::threads_cpu),
    );
    stop.store(true, Ordering::Relaxed);
    for handle in handles {
        match handle.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(LoadError("load-generator thread panicked".into())),
        }
    }
    Ok(LoadResult {
        messages: end.1 - start.1,
        elapsed: end.0 - start.0,
        loadgen_cpu: end.2.saturating_sub(start.2),
        server_cpu: end.3.saturating_sub(start.3),
    })
}

/// A deterministic, non-constant payload (xorshift), so a server that mangled bytes would
/// be caught by the first-echo check.
fn payload(size: usize) -> Vec<u8> {
    let mut state: u32 = 0x9e37_79b9;
    (0..size)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 17;
            state ^= state << 5;
            state as u8
        })
        .collect()
}

/// One client frame: FIN + binary, masked with [`MASK`].
fn masked_frame(payload: &[u8]) -> Vec<u8> {
    let mut frame = Vec::with_capacity(payload.len() + 14);
    frame.push(0x80 | 0x2);
    match payload.len() {
        n if n < 126 => frame.push(0x80 | n as u8),
        n if n <= 0xffff => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            frame.push(0x80 | 127);
            frame.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    frame.extend_from_slice(&MASK);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
    frame
}

/// Connects and does the opening handshake (blocking, 5 s limit), then returns the socket in
/// non-blocking mode.
fn connect(addr: SocketAddr) -> Result<TcpStream, LoadError> {
    let timeout = Some(Duration::from_secs(5));
    let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(timeout)?;
    stream.set_write_timeout(timeout)?;
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut response = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    // Byte by byte so nothing after the header block is consumed (the server sends nothing
    // before our first message anyway); a hundred connections make this negligible.
    while !response.ends_with(b"\r\n\r\n") {
        if response.len() > 8192 {
            return Err(LoadError("handshake response too long".into()));
        }
        match stream.read(&mut byte)? {
            0 => return Err(LoadError("connection closed during the handshake".into())),
            _ => response.push(byte[0]),
        }
    }
    let text = String::from_utf8_lossy(&response);
    let mut lines = text.split("\r\n");
    let status = lines.next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(LoadError(format!("handshake refused: {status}")));
    }
    let accepted = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == ACCEPT
        })
    });
    if !accepted {
        return Err(LoadError("missing or wrong Sec-WebSocket-Accept".into()));
    }
    stream.set_nonblocking(true)?;
    Ok(TcpStream::from_std(stream))
}

struct Worker {
    streams: Vec<TcpStream>,
    frame: Arc<Vec<u8>>,
    payload: Arc<Vec<u8>>,
    window: usize,
    stop: Arc<AtomicBool>,
    counter: Arc<AtomicU64>,
}

/// One connection's state in a worker.
struct Conn {
    stream: TcpStream,
    /// Bytes of frames due to be written (at most `window` frames' worth).
    owed: usize,
    /// Position of the next byte to write within the (repeating) frame.
    phase: usize,
    parser: Parser,
}

impl Worker {
    fn run(self) -> Result<(), LoadError> {
        let frame_len = self.frame.len();
        // `window + 1` copies: whatever the phase, the bytes owed are one contiguous slice.
        let burst: Vec<u8> = self.frame.repeat(self.window + 1);
        let mut poll = Poll::new()?;
        let mut conns = Vec::with_capacity(self.streams.len());
        for (i, mut stream) in self.streams.into_iter().enumerate() {
            poll.registry().register(
                &mut stream,
                Token(i),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            conns.push(Conn {
                stream,
                owed: frame_len * self.window,
                phase: 0,
                parser: Parser::new(self.payload.len()),
            });
        }
        for conn in &mut conns {
            conn.flush(&burst, frame_len)?;
        }
        let mut buf = vec![0u8; READ_BUFFER];
        let mut events = Events::with_capacity(1024);
        let mut received = 0u64;
        while !self.stop.load(Ordering::Relaxed) {
            match poll.poll(&mut events, Some(Duration::from_millis(20))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e.into()),
            }
            for event in events.iter() {
                let conn = &mut conns[event.token().0];
                // A short read leaves the socket empty, and any data arriving later raises a new
                // (edge-triggered) event: skip the read that would only say WouldBlock, unless
                // the event also reports an end or error that must be read to be seen.
                let drain = event.is_read_closed() || event.is_error();
                if event.is_readable() || drain {
                    loop {
                        match conn.stream.read(&mut buf) {
                            Ok(0) => {
                                return Err(LoadError("the server closed a connection".into()))
                            }
                            Ok(n) => {
                                let echoes = conn.parser.feed(&buf[..n], &self.payload)?;
                                conn.owed += echoes as usize * frame_len;
                                received += echoes;
                                if n < buf.len() && !drain {
                                    break;
                                }
                            }
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                            Err(e) => return Err(e.into()),
                        }
                    }
                }
                conn.flush(&burst, frame_len)?;
            }
            self.counter.store(received, Ordering::Relaxed);
        }
        Ok(())
    }
}

impl Conn {
    /// Writes what is owed until done or the socket is full (edge-triggered: a writable event
    /// follows when there is room again).
    fn flush(&mut self, burst: &[u8], frame_len: usize) -> Result<(), LoadError> {
        while self.owed > 0 {
            match self
                .stream
                .write(&burst[self.phase..self.phase + self.owed])
            {
                Ok(0) => return Err(LoadError("write returned 0".into())),
                Ok(n) => {
                    self.owed -= n;
                    self.phase = (self.phase + n) % frame_len;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }
}

/// Incremental parser of server frames that counts complete data messages of the expected
/// size, skipping payloads without copying them.
struct Parser {
    expected: usize,
    header: [u8; 10],
    header_len: usize,
    /// Payload bytes of the current frame still to come.
    payload_left: u64,
    /// Opcode and FIN bit of the current frame.
    opcode: u8,
    fin: bool,
    /// Payload bytes of the current message so far, or `None` between messages.
    message_len: Option<u64>,
    /// Compare the payload with what was sent (first message only).
    verify: bool,
}

impl Parser {
    fn new(expected: usize) -> Parser {
        Parser {
            expected,
            header: [0; 10],
            header_len: 0,
            payload_left: 0,
            opcode: 0,
            fin: false,
            message_len: None,
            verify: true,
        }
    }

    /// Consumes `data`; returns the number of messages it completed.
    fn feed(&mut self, mut data: &[u8], sent: &[u8]) -> Result<u64, LoadError> {
        let mut messages = 0;
        loop {
            if self.payload_left > 0 {
                let n = self.payload_left.min(data.len() as u64) as usize;
                if let (false, Some(len)) = (self.is_control(), &mut self.message_len) {
                    if self.verify {
                        let offset = *len as usize;
                        if sent.get(offset..offset + n) != Some(&data[..n]) {
                            return Err(LoadError(
                                "echoed payload differs from what was sent".into(),
                            ));
                        }
                    }
                    *len += n as u64;
                }
                self.payload_left -= n as u64;
                data = &data[n..];
                if self.payload_left > 0 {
                    return Ok(messages);
                }
                messages += self.frame_done()?;
                continue;
            }
            if data.is_empty() {
                return Ok(messages);
            }
            // Header: 2 bytes, then 0, 2 or 8 bytes of extended length (no mask from a server).
            let need = if self.header_len < 2 {
                2
            } else {
                match self.header[1] & 0x7f {
                    126 => 4,
                    127 => 10,
                    _ => 2,
                }
            };
            let n = (need - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + n].copy_from_slice(&data[..n]);
            self.header_len += n;
            data = &data[n..];
            if self.header_len < need || (need == 2 && self.header[1] & 0x7f >= 126) {
                continue;
            }
            messages += self.start_frame()?;
        }
    }

    fn is_control(&self) -> bool {
        self.opcode & 0x8 != 0
    }

    /// Decodes the complete header; returns 1 when it was a payload-less frame ending a message.
    fn start_frame(&mut self) -> Result<u64, LoadError> {
        let (b0, b1) = (self.header[0], self.header[1]);
        self.header_len = 0;
        if b1 & 0x80 != 0 {
            return Err(LoadError("masked frame from the server".into()));
        }
        self.fin = b0 & 0x80 != 0;
        self.opcode = b0 & 0x0f;
        self.payload_left = match b1 & 0x7f {
            126 => u64::from(u16::from_be_bytes([self.header[2], self.header[3]])),
            127 => u64::from_be_bytes(self.header[2..10].try_into().unwrap()),
            n => u64::from(n),
        };
        match (self.opcode, self.message_len) {
            (0x1 | 0x2, None) => self.message_len = Some(0),
            (0x0, Some(_)) | (0x9 | 0xa, _) => {}
            (0x8, _) => return Err(LoadError("the server sent a close frame".into())),
            (op, _) => return Err(LoadError(format!("unexpected frame (opcode {op:#x})"))),
        }
        if self.payload_left == 0 {
            return self.frame_done();
        }
        Ok(0)
    }

    /// The current frame's payload is complete; returns 1 when it ended a message.
    fn frame_done(&mut self) -> Result<u64, LoadError> {
        if self.is_control() || !self.fin {
            return Ok(0);
        }
        let len = self.message_len.take().unwrap_or(0);
        if len != self.expected as u64 {
            return Err(LoadError(format!(
                "echo of {len} bytes, expected {}",
                self.expected
            )));
        }
        self.verify = false;
        Ok(1)
    }
}
