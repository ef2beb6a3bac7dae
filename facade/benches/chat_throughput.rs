//! Chat broadcast throughput: the `chat_server` example's server (2 event-loop threads) under
//! a closed-loop load of raw-TCP WebSocket clients.
//!
//! ```text
//! cargo bench -p ws-facade --bench chat_throughput
//! cargo bench -p ws-facade --bench chat_throughput -- --secs 5 --warmup 1 50x1   # filter by name
//! ```
//!
//! Every scenario starts a fresh server on a free port, built with the facade's public API only
//! (`create_server`, the connection / disconnection / receive / error callbacks,
//! `Session::id` / `Session::send`, `start` / `stop`) and broadcasting exactly as
//! `examples/chat_server.rs` does: a shared `BTreeMap` of sessions, and for every message
//! `"<sender id>: <payload>"` sent to each of them. Clients connect to 127.0.0.1 over
//! `std::net::TcpStream`, do the opening handshake by hand, then each keeps `in_flight` masked
//! 16-byte text frames outstanding: a client sends its next message when it reads one of its
//! own back (the payload is a 16-hex-digit sequence number, so echoes are also checked to come
//! back in order). One thread per client reads and parses every frame the server sends.
//!
//! Printed per scenario (after a warm-up, over a fixed window):
//! `scenario=NAME msgs_per_s=M deliveries_per_s=D ...`, where `msgs_per_s` counts the
//! messages the server received and broadcast (each acknowledged once, by its sender reading
//! its own echo) and `deliveries_per_s` the broadcast frames read by all clients (in a full
//! room, clients × msgs). Extra fields: the server threads' CPU per message (all threads of
//! the process except the clients' and the main one: steadier than msgs/s on a shared
//! machine), the load average, and error counts (anything non-zero means the figures are
//! suspect).
//!
//! Run without `--bench` (e.g. `cargo test --benches`) it is a short smoke test.

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use ws_facade::{ProtocolServer, ServerConfig, Session, WebSocketFacade};

/// Event-loop threads of the server.
const SERVER_THREADS: usize = 2;
/// Payload bytes of every client message (a 16-hex-digit sequence number).
const PAYLOAD: usize = 16;
/// Client threads are named `CLIENT_THREAD-N` (their CPU is not counted as the server's).
const CLIENT_THREAD: &str = "chat-client";
/// Largest frame a client accepts from the server (the broadcasts are ~25 bytes).
const MAX_FRAME: usize = 1 << 20;
/// Read timeout of the client sockets: how often a blocked reader looks at the stop flag.
const POLL: Duration = Duration::from_millis(50);

struct Scenario {
    name: &'static str,
    clients: usize,
    in_flight: usize,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "50x1",
        clients: 50,
        in_flight: 1,
    },
    Scenario {
        name: "4x8",
        clients: 4,
        in_flight: 8,
    },
];

struct Options {
    warmup: Duration,
    duration: Duration,
    filters: Vec<String>,
    smoke: bool,
}

impl Options {
    fn from_args() -> Options {
        let mut options = Options {
            warmup: Duration::from_secs(1),
            duration: Duration::from_secs(5),
            filters: Vec::new(),
            smoke: true,
        };
        let mut args = std::env::args().skip(1);
        let secs = |v: Option<String>, flag: &str| -> Duration {
            v.and_then(|v| v.parse::<f64>().ok())
                .filter(|s| s.is_finite() && *s > 0.0 && *s <= 600.0)
                .map(Duration::from_secs_f64)
                .unwrap_or_else(|| usage(&format!("{flag} takes a number of seconds (0–600]")))
        };
        let mut explicit = false;
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--bench" => options.smoke = false,
                "--secs" => {
                    options.duration = secs(args.next(), "--secs");
                    explicit = true;
                }
                "--warmup" => {
                    options.warmup = secs(args.next(), "--warmup");
                    explicit = true;
                }
                "-h" | "--help" => usage(""),
                // Flags cargo's test runner may pass (`cargo test --benches`).
                s if s.starts_with('-') => {}
                s => options.filters.push(s.to_owned()),
            }
        }
        if options.smoke && !explicit {
            options.warmup = Duration::from_millis(200);
            options.duration = Duration::from_millis(500);
        }
        options
    }
}

fn usage(error: &str) -> ! {
    if !error.is_empty() {
        eprintln!("error: {error}");
    }
    eprintln!(
        "usage: chat_throughput [--secs S] [--warmup S] [SCENARIO-FILTER...]\nscenarios: {}",
        SCENARIOS
            .iter()
            .map(|s| s.name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    std::process::exit(2);
}

fn main() {
    let options = Options::from_args();
    let selected: Vec<&Scenario> = SCENARIOS
        .iter()
        .filter(|s| {
            options.filters.is_empty()
                || options.filters.iter().any(|f| s.name.contains(f.as_str()))
        })
        .collect();
    if selected.is_empty() {
        usage(&format!("no scenario matches {:?}", options.filters));
    }
    println!(
        "chat_throughput: server threads {SERVER_THREADS}, payload {PAYLOAD} B, {:.1} s warm-up + \
         {:.1} s measured, {} cores, load average {}{}",
        options.warmup.as_secs_f64(),
        options.duration.as_secs_f64(),
        thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
        if options.smoke {
            " (smoke test: run with --bench for measurements)"
        } else {
            ""
        },
    );
    let mut failed = false;
    for scenario in selected {
        match run(scenario, &options) {
            Ok(result) => {
                println!(
                    "scenario={} msgs_per_s={:.0} deliveries_per_s={:.0} clients={} in_flight={} \
                     secs={:.2} server_cpu_us_per_msg={:.2} load={} errors={}",
                    scenario.name,
                    result.messages as f64 / result.elapsed.as_secs_f64(),
                    result.deliveries as f64 / result.elapsed.as_secs_f64(),
                    scenario.clients,
                    scenario.in_flight,
                    result.elapsed.as_secs_f64(),
                    result.server_cpu.as_secs_f64() * 1e6 / result.messages.max(1) as f64,
                    load_average(),
                    result.errors,
                );
                if result.errors != 0 || result.messages == 0 {
                    failed = true;
                }
            }
            Err(e) => {
                eprintln!("scenario={}: {e}", scenario.name);
                failed = true;
            }
        }
    }
    if failed {
        std::process::exit(1);
    }
}

/// What one scenario measured.
struct RunResult {
    /// Own echoes read by their senders during the window (= messages the server received).
    messages: u64,
    /// Broadcast frames read by all clients during the window.
    deliveries: u64,
    elapsed: Duration,
    server_cpu: Duration,
    /// Server error callbacks, client I/O or protocol errors, out-of-order echoes.
    errors: u64,
}

/// Counters of one client, on a cache line of their own (the main thread sums them).
#[repr(align(128))]
#[derive(Default)]
struct Counters {
    acks: AtomicU64,
    deliveries: AtomicU64,
    errors: AtomicU64,
}

type Sessions = Arc<Mutex<BTreeMap<String, Arc<dyn Session>>>>;

/// A started chat server and what the bench watches of it.
struct ChatServer {
    server: Arc<dyn ProtocolServer>,
    sessions: Sessions,
    /// Error callbacks so far.
    errors: Arc<AtomicU64>,
    port: u16,
}

/// The `chat_server` example's server, minus its printing and HTTP page.
fn start_server() -> io::Result<ChatServer> {
    let mut last_error = None;
    for _ in 0..5 {
        let port = free_port()?;
        let server = WebSocketFacade::create_server(&{
            let mut config = ServerConfig::default();
            config.port = port;
            config.path = "/chat".into();
            config.server_id = "chat-server".into();
            config.threads = SERVER_THREADS;
            config
        })
        .map_err(io::Error::other)?;

        let sessions: Sessions = Arc::default();
        let errors = Arc::new(AtomicU64::new(0));

        let joined = Arc::clone(&sessions);
        server.set_connection_callback(move |session| {
            let id = session.id().to_owned();
            joined.lock().unwrap().insert(id, session);
        });
        let left = Arc::clone(&sessions);
        server.set_disconnection_callback(move |id| {
            left.lock().unwrap().remove(id);
        });
        let members = Arc::clone(&sessions);
        server.set_receive_callback(move |sender_id, payload| {
            let mut broadcast = format!("{sender_id}: ").into_bytes();
            broadcast.extend_from_slice(payload);
            for session in members.lock().unwrap().values() {
                let _ = session.send(broadcast.clone());
            }
        });
        let counted = Arc::clone(&errors);
        server.set_error_callback(move |_id, _error| {
            counted.fetch_add(1, Ordering::Relaxed);
        });

        match server.start(port) {
            Ok(()) => {
                return Ok(ChatServer {
                    server,
                    sessions,
                    errors,
                    port,
                })
            }
            // The port was taken between free_port() and start(): try another.
            Err(e) => last_error = Some(e),
        }
    }
    Err(io::Error::other(format!(
        "cannot start the server: {}",
        last_error.map_or_else(String::new, |e| e.to_string())
    )))
}

/// A port free on 127.0.0.1 a moment ago.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind(("127.0.0.1", 0))?.local_addr()?.port())
}

fn run(scenario: &Scenario, options: &Options) -> io::Result<RunResult> {
    let chat = start_server()?;
    let result = load(scenario, options, &chat.sessions, chat.port);
    // Clients are gone (or failed): stop the server in every case.
    let _ = chat.server.stop();
    let mut result = result?;
    result.errors += chat.errors.load(Ordering::Relaxed);
    Ok(result)
}

fn load(
    scenario: &Scenario,
    options: &Options,
    sessions: &Sessions,
    port: u16,
) -> io::Result<RunResult> {
    let n = scenario.clients;
    let stop = Arc::new(AtomicBool::new(false));
    // Set once every client is connected and registered and every client thread is spawned.
    let go = Arc::new(AtomicBool::new(false));
    // No client loop runs past this, whatever happens.
    let hard_deadline =
        Instant::now() + options.warmup + options.duration + Duration::from_secs(60);
    let counters: Arc<Vec<Counters>> = Arc::new((0..n).map(|_| Counters::default()).collect());

    // Connect and upgrade every client first (on this thread: cheap, and errors are simple).
    let mut streams = Vec::with_capacity(n);
    for i in 0..n {
        let id = format!("c{i:03}");
        streams.push((id.clone(), connect(port, &id)?));
    }
    // Wait (bounded) until the server registered every session, so no early broadcast misses
    // anyone and every client's first message is echoed to itself.
    let deadline = Instant::now() + Duration::from_secs(10);
    while sessions.lock().unwrap().len() < n {
        if Instant::now() > deadline {
            return Err(io::Error::other(format!(
                "only {} of {n} sessions registered after 10 s",
                sessions.lock().unwrap().len()
            )));
        }
        thread::sleep(Duration::from_millis(5));
    }

    let mut threads = Vec::with_capacity(n);
    for (i, (id, (stream, leftover))) in streams.into_iter().enumerate() {
        let (stop2, go2, counters2) = (Arc::clone(&stop), Arc::clone(&go), Arc::clone(&counters));
        let in_flight = scenario.in_flight;
        let spawned = thread::Builder::new()
            .name(format!("{CLIENT_THREAD}-{i}"))
            .stack_size(256 << 10)
            .spawn(move || {
                while !go2.load(Ordering::Acquire) {
                    if stop2.load(Ordering::Relaxed) || Instant::now() > hard_deadline {
                        return;
                    }
                    thread::sleep(Duration::from_millis(1));
                }
                let c = &counters2[i];
                let result = client(
                    (stream, leftover),
                    &id,
                    i as u32,
                    in_flight,
                    (&stop2, hard_deadline),
                    c,
                );
                if let Err(e) = result {
                    eprintln!("client {id}: {e}");
                    c.errors.fetch_add(1, Ordering::Relaxed);
                }
            });
        match spawned {
            Ok(t) => threads.push(t),
            Err(e) => {
                // Release the clients already spawned (they return without sending).
                stop.store(true, Ordering::Relaxed);
                for t in threads {
                    let _ = t.join();
                }
                return Err(e);
            }
        }
    }

    go.store(true, Ordering::Release);
    thread::sleep(options.warmup);
    let sum = |f: fn(&Counters) -> &AtomicU64| -> u64 {
        counters.iter().map(|c| f(c).load(Ordering::Relaxed)).sum()
    };
    let (acks0, deliveries0, cpu0, t0) = (
        sum(|c| &c.acks),
        sum(|c| &c.deliveries),
        server_cpu(),
        Instant::now(),
    );
    thread::sleep(options.duration);
    let (acks1, deliveries1, cpu1, elapsed) = (
        sum(|c| &c.acks),
        sum(|c| &c.deliveries),
        server_cpu(),
        t0.elapsed(),
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        if t.join().is_err() {
            counters[0].errors.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(RunResult {
        messages: acks1 - acks0,
        deliveries: deliveries1 - deliveries0,
        elapsed,
        server_cpu: cpu1.saturating_sub(cpu0),
        errors: sum(|c| &c.errors),
    })
}

/// Opens a connection to `/chat` as `id` and completes the opening handshake. Returns the
/// stream and any bytes read past the 101 response (the start of the frame stream).
fn connect(port: u16, id: &str) -> io::Result<(TcpStream, Vec<u8>)> {
    let mut stream =
        TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(5))?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    let key = base64(&random_bytes(id));
    let request = format!(
        "GET /chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\
         X-Client-Id: {id}\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;

    let mut response = Vec::with_capacity(512);
    let mut chunk = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(10);
    let head_end = loop {
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if Instant::now() > deadline {
            return Err(io::Error::other("handshake response too slow"));
        }
        if response.len() > 16 << 10 {
            return Err(io::Error::other("handshake response too long"));
        }
        match stream.read(&mut chunk) {
            Ok(0) => return Err(io::Error::other("connection closed during the handshake")),
            Ok(k) => response.extend_from_slice(&chunk[..k]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    };
    let head = String::from_utf8_lossy(&response[..head_end]).to_ascii_lowercase();
    if !head.starts_with("http/1.1 101") || !head.contains("sec-websocket-accept:") {
        let status = head.lines().next().unwrap_or("").to_owned();
        return Err(io::Error::other(format!("upgrade refused: {status}")));
    }
    stream.set_read_timeout(Some(POLL))?;
    Ok((stream, response[head_end..].to_vec()))
}

/// One client: keeps `in_flight` messages outstanding until `stop`, reading every frame;
/// then closes (bounded in time).
fn client(
    (mut stream, leftover): (TcpStream, Vec<u8>),
    id: &str,
    seed: u32,
    in_flight: usize,
    (stop, hard_deadline): (&AtomicBool, Instant),
    counters: &Counters,
) -> io::Result<()> {
    let prefix = format!("{id}: ").into_bytes();
    let mut mask = Xorshift(0x9e37_79b9 ^ (seed.wrapping_mul(0x85eb_ca6b) | 1));
    let mut reader = FrameReader::new(leftover);
    let mut out = Vec::with_capacity(64 * in_flight.max(1));
    let (mut next_seq, mut expected_seq) = (0u64, 0u64);
    let mut close_deadline: Option<Instant> = None;
    // Message in progress (only fragmented broadcasts, which 25-byte ones never are).
    let mut fragmented_own: Option<bool> = None;

    for _ in 0..in_flight {
        push_text(&mut out, format!("{next_seq:016x}").as_bytes(), mask.next());
        next_seq += 1;
    }
    stream.write_all(&out)?;
    out.clear();

    loop {
        let now = Instant::now();
        if now > hard_deadline {
            return Err(io::Error::other("hard deadline"));
        }
        match close_deadline {
            None if stop.load(Ordering::Relaxed) => {
                push_frame(&mut out, 0x8, &1000u16.to_be_bytes(), mask.next());
                stream.write_all(&out)?;
                out.clear();
                close_deadline = Some(now + Duration::from_secs(2));
            }
            // The server did not answer the close in time: just drop the connection.
            Some(deadline) if now > deadline => break,
            _ => {}
        }

        match reader.fill(&mut stream) {
            Ok(0) => break, // EOF
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                        | io::ErrorKind::Interrupted
                ) =>
            {
                continue
            }
            Err(e) => {
                // A reset after our close is the server closing its end: not an error.
                if close_deadline.is_some() {
                    break;
                }
                return Err(e);
            }
        }

        let mut closed = false;
        while let Some(frame) = reader.next_frame()? {
            match frame.opcode {
                0x0..=0x2 => {
                    let own = match (frame.opcode, fragmented_own) {
                        (0x0, Some(own)) => own,
                        (0x0, None) => return Err(io::Error::other("unexpected continuation")),
                        _ => frame.payload.starts_with(&prefix),
                    };
                    if !frame.fin {
                        fragmented_own = Some(own);
                        continue;
                    }
                    fragmented_own = None;
                    counters.deliveries.fetch_add(1, Ordering::Relaxed);
                    if own {
                        // Own echoes come back in order: check the sequence number (only
                        // when the message came whole; a fragmented one is just counted).
                        if frame.opcode != 0x0 {
                            let seq = &frame.payload[prefix.len()..];
                            if seq != format!("{expected_seq:016x}").as_bytes() {
                                counters.errors.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        expected_seq += 1;
                        counters.acks.fetch_add(1, Ordering::Relaxed);
                        if close_deadline.is_none() {
                            push_text(&mut out, format!("{next_seq:016x}").as_bytes(), mask.next());
                            next_seq += 1;
                        }
                    }
                }
                0x9 => push_frame(&mut out, 0xA, frame.payload, mask.next()),
                0xA => {}
                0x8 => {
                    if close_deadline.is_none() {
                        // The server closed first (it should not): answer, and report it.
                        push_frame(&mut out, 0x8, &1000u16.to_be_bytes(), mask.next());
                        counters.errors.fetch_add(1, Ordering::Relaxed);
                    }
                    closed = true;
                    break;
                }
                op => return Err(io::Error::other(format!("unexpected opcode {op:#x}"))),
            }
        }
        reader.compact();
        if !out.is_empty() {
            stream.write_all(&out)?;
            out.clear();
        }
        if closed {
            break;
        }
    }
    let _ = stream.shutdown(Shutdown::Both);
    Ok(())
}

/// A masked text frame (payload < 126 bytes).
fn push_text(out: &mut Vec<u8>, payload: &[u8], mask: [u8; 4]) {
    push_frame(out, 0x1, payload, mask);
}

/// A masked final frame of `opcode` (payload < 126 bytes: ours are 16, pongs and closes ≤ 125).
fn push_frame(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    let len = payload.len().min(125);
    out.push(0x80 | opcode);
    out.push(0x80 | len as u8);
    out.extend_from_slice(&mask);
    out.extend(
        payload[..len]
            .iter()
            .enumerate()
            .map(|(i, b)| b ^ mask[i & 3]),
    );
}

struct Frame<'a> {
    fin: bool,
    opcode: u8,
    payload: &'a [u8],
}

/// Buffers what the server sent and cuts it into frames, whatever the read boundaries.
struct FrameReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl FrameReader {
    fn new(leftover: Vec<u8>) -> FrameReader {
        let end = leftover.len();
        let mut buf = leftover;
        buf.resize(end.max(64 << 10), 0);
        FrameReader { buf, start: 0, end }
    }

    /// Reads once into the free space (made if needed); the byte count, 0 at EOF.
    fn fill(&mut self, stream: &mut TcpStream) -> io::Result<usize> {
        if self.end == self.buf.len() {
            self.compact();
            if self.end == self.buf.len() {
                // A frame larger than the buffer (bounded by next_frame's MAX_FRAME check).
                let len = self.buf.len() * 2;
                self.buf.resize(len, 0);
            }
        }
        let n = stream.read(&mut self.buf[self.end..])?;
        self.end += n;
        Ok(n)
    }

    /// Moves the unparsed bytes to the front.
    fn compact(&mut self) {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
    }

    /// The next complete frame, or `None` if more bytes are needed.
    fn next_frame(&mut self) -> io::Result<Option<Frame<'_>>> {
        let data = &self.buf[self.start..self.end];
        if data.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (data[0], data[1]);
        if b1 & 0x80 != 0 {
            return Err(io::Error::other("masked frame from the server"));
        }
        if b0 & 0x70 != 0 {
            return Err(io::Error::other("RSV bit set by the server"));
        }
        let (header, len) = match b1 & 0x7f {
            126 => {
                if data.len() < 4 {
                    return Ok(None);
                }
                (4, u16::from_be_bytes([data[2], data[3]]) as u64)
            }
            127 => {
                if data.len() < 10 {
                    return Ok(None);
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[2..10]);
                (10, u64::from_be_bytes(b))
            }
            n => (2, n as u64),
        };
        if len > MAX_FRAME as u64 {
            return Err(io::Error::other(format!(
                "frame of {len} bytes from the server"
            )));
        }
        let total = header + len as usize;
        if data.len() < total {
            return Ok(None);
        }
        let start = self.start;
        self.start += total;
        Ok(Some(Frame {
            fin: b0 & 0x80 != 0,
            opcode: b0 & 0x0f,
            payload: &self.buf[start + header..start + total],
        }))
    }
}

/// Mask keys (RFC 6455 wants them unpredictable to intermediaries; the server does not care).
struct Xorshift(u32);

impl Xorshift {
    fn next(&mut self) -> [u8; 4] {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x.to_le_bytes()
    }
}

/// 16 bytes for a handshake key, different per client and per run.
fn random_bytes(id: &str) -> [u8; 16] {
    use std::hash::{BuildHasher, Hasher};
    let mut out = [0u8; 16];
    for (i, half) in out.chunks_mut(8).enumerate() {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write(id.as_bytes());
        h.write_usize(i);
        half.copy_from_slice(&h.finish().to_le_bytes());
    }
    out
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i)) as usize & 63] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// On-CPU time of every thread of this process except the clients and the main thread: the
/// server's event loops (and anything else the facade runs), whatever they are named.
/// Linux only (zero elsewhere); reads `/proc/self/task/*/schedstat` (nanoseconds). Threads
/// that exited during the window are not counted.
fn server_cpu() -> Duration {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Duration::ZERO;
    };
    let pid = std::process::id().to_string();
    let mut total = Duration::ZERO;
    for task in tasks.flatten() {
        if task.file_name().to_str() == Some(pid.as_str()) {
            continue; // the main thread
        }
        let dir = task.path();
        let Ok(comm) = std::fs::read_to_string(dir.join("comm")) else {
            continue;
        };
        if comm.starts_with(CLIENT_THREAD) {
            continue;
        }
        if let Some(ns) = std::fs::read_to_string(dir.join("schedstat"))
            .ok()
            .and_then(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        {
            total += Duration::from_nanos(ns);
        }
    }
    total
}

/// The 1-minute load average, or "?".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
