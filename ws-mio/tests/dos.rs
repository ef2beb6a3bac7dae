//! Denial-of-service limits, each proven over real sockets against an in-process
//! [`ws_mio::Server`] with a small, explicit configuration (see `docs/security.md`):
//!
//! * a frame declaring a huge payload is refused with 1009 before any of it is sent, and the
//!   server's heap does not move;
//! * hostile handshakes (10 000 headers, a 1 MiB header or request line, a request trickled a
//!   byte at a time, a request never finished) are answered or cut as soon as a limit or the
//!   handshake timeout is reached, whatever keeps arriving;
//! * reading a head costs the same number of byte examinations however it is split;
//! * 10 000 concurrent connections, half of them vanishing mid-frame: the server keeps serving,
//!   reports every disconnect once, and its heap returns to where it started;
//! * a ping flood is answered up to `max_pings_per_second` and closed with 1008 beyond it, and
//!   a peer that floods pings without reading the pongs cannot make the server's memory grow.
//!
//! Memory is the live heap of this process, counted by the allocator below (bytes allocated
//! minus bytes freed): exact, and blind to malloc's caching. The tests of this file take turns
//! (see [`serial`]) so that one test's allocations never show in another's measurement.
//!
//! The 10 000 clients run in a child process (this test binary again, running the ignored test
//! [`many_connections_child`]), so that each process needs only about 10 000 file descriptors.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::{
    client_frame, ensure_open_files, eventually, Ending, Ev, Probe, RawClient, Recording,
    OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, OP_TEXT, WAIT,
};
use ws_mio::ws_proto::handshake::{
    parse_request, HandshakeError, HandshakeLimits, HeadReader, UpgradeRequest,
};
use ws_mio::ws_proto::{Error, ProtocolError, TimeoutKind};
use ws_mio::{
    Decision, Disconnect, DriverError, Factory, Handler, Message, Server, ServerConfig, Session,
};

// ---------------------------------------------------------------------------------------------
// The live heap
// ---------------------------------------------------------------------------------------------

/// The system allocator, counting the bytes it has live.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn grew(bytes: usize) {
    let now = LIVE.fetch_add(bytes, Ordering::Relaxed) + bytes;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

fn shrank(bytes: usize) {
    LIVE.fetch_sub(bytes, Ordering::Relaxed);
}

// SAFETY: every call is forwarded unchanged to `System`; only counters are added.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is passed on as is.
        let ptr = unsafe { System.alloc(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as above.
        let ptr = unsafe { System.alloc_zeroed(layout) };
        if !ptr.is_null() {
            grew(layout.size());
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) };
        shrank(layout.size());
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as above.
        let new = unsafe { System.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            if new_size >= layout.size() {
                grew(new_size - layout.size());
            } else {
                shrank(layout.size() - new_size);
            }
        }
        new
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes currently allocated in this process.
fn live_heap() -> usize {
    LIVE.load(Ordering::Relaxed)
}

/// Starts a new high-water mark at the current level, and returns that level.
fn reset_peak() -> usize {
    let now = live_heap();
    PEAK.store(now, Ordering::Relaxed);
    now
}

/// The highest live heap since the last [`reset_peak`].
fn peak_heap() -> usize {
    PEAK.load(Ordering::Relaxed)
}

/// Makes the tests of this file run one at a time: the heap counter is process-wide.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn kib(bytes: usize) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// One loop, and the handshake limits spelled out (they are the defaults).
fn small_config() -> ServerConfig {
    let mut config = ServerConfig::default();
    config.threads = 1;
    config.protocol.handshake_limits.max_line = 8 << 10;
    config.protocol.handshake_limits.max_headers = 128;
    config.protocol.handshake_limits.max_head = 64 << 10;
    config
}

/// A 2xx/4xx response head read from a raw socket (bounded by the socket's read timeout).
fn read_response_head(stream: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(1) => head.push(byte[0]),
            Ok(_) => panic!(
                "connection closed after {:?}, before a complete response",
                String::from_utf8_lossy(&head)
            ),
            Err(e) => panic!(
                "no complete response within {WAIT:?} ({e}); got {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
        assert!(head.len() < 64 << 10, "response head too long");
    }
    String::from_utf8_lossy(&head).into_owned()
}

/// Reads until the server closes the connection and says how: [`Ending::Eof`] for a clean
/// close (a read returned 0), not for a reset; [`Ending::StillOpen`] if it stays open for
/// [`WAIT`] (the socket's read timeout); [`Ending::TooMuchData`] past `max_bytes`.
fn closed_by_server(stream: &mut TcpStream, max_bytes: usize) -> Ending {
    let mut seen = 0;
    let mut buf = [0u8; 16 << 10];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ending::Eof,
            Ok(n) => {
                seen += n;
                if seen > max_bytes {
                    return Ending::TooMuchData(seen);
                }
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Ending::StillOpen
            }
            Err(e) => return Ending::Failed(e.kind()),
        }
    }
}

/// Connects a raw socket with every wait bounded by [`WAIT`].
fn raw_socket(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    stream
}

/// The handshake error reported to `on_error` (a handshake failure has no session).
fn handshake_error(probe: &Probe) -> DriverError {
    probe.expect("on_error for the handshake", |ev| match ev {
        Ev::Error(None, e) => Some(e),
        _ => None,
    })
}

/// The start of an upgrade request that is valid so far (its head is not finished).
const REQUEST_START: &str = "GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n\
    Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Sec-WebSocket-Version: 13\r\n";

// ---------------------------------------------------------------------------------------------
// Oversized declared frame length
// ---------------------------------------------------------------------------------------------

/// Sends only the header of a binary frame declaring `declared` payload bytes, and checks that
/// the server answers with a 1009 close and closes TCP, without a heap jump.
fn oversized_frame_is_refused_before_its_payload(config: ServerConfig, declared: u64) {
    let (factory, probe) = Recording::new(false);
    let server = Server::bind("127.0.0.1:0", config, factory).unwrap();
    let mut client = RawClient::connect(server.local_addr(), "/").unwrap();
    let session = probe.opened();

    let start = reset_peak();
    let mut header = vec![0x80 | OP_BINARY, 0x80 | 127];
    header.extend_from_slice(&declared.to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]); // masking key; no payload byte follows
    client.stream.write_all(&header).unwrap();

    let close = client
        .read_frame()
        .unwrap_or_else(|e| panic!("no close frame for a {declared}-byte frame header: {e}"));
    assert_eq!(close.opcode, OP_CLOSE, "{close:?}");
    assert_eq!(close.payload[..2], 1009u16.to_be_bytes(), "{close:?}");
    assert_eq!(
        client.read_to_end(0),
        Ending::Eof,
        "the server must close TCP (cleanly) after 1009"
    );
    drop(client);
    let disconnect = probe.closed(session.id());
    let jump = peak_heap().saturating_sub(start);
    assert_eq!(disconnect.code, 1009);
    assert!(
        matches!(
            disconnect.error,
            Some(DriverError::Protocol(Error::Protocol(ProtocolError::FrameTooLarge { size, .. })))
                if size == declared
        ),
        "{disconnect:?}"
    );
    // The connection would reserve up to 1 MiB for a frame it accepted: nothing near that.
    assert!(
        jump < 256 << 10,
        "the heap rose by {} for a refused frame header",
        kib(jump)
    );
    println!("declared {declared} bytes: 1009, heap peak +{}", kib(jump));
    assert!(eventually(WAIT, || server.connection_count() == 0));
}

#[test]
fn a_frame_declaring_2_pow_40_bytes_is_refused_with_1009_before_any_payload() {
    let _serial = serial();
    let mut config = small_config();
    config.protocol.max_frame_size = 1 << 20;
    config.protocol.max_message_size = 4 << 20;
    oversized_frame_is_refused_before_its_payload(config, 1 << 40);
}

#[test]
fn a_frame_one_byte_over_max_frame_size_is_refused_with_1009_before_any_payload() {
    let _serial = serial();
    let mut config = small_config();
    config.protocol.max_frame_size = 1 << 20;
    // The message limit is far above: only the frame limit stands in the way.
    config.protocol.max_message_size = 64 << 20;
    oversized_frame_is_refused_before_its_payload(config, (1 << 20) + 1);
}

// ---------------------------------------------------------------------------------------------
// Handshakes
// ---------------------------------------------------------------------------------------------

/// Sends `request[..crossing]` (past a limit, but not a complete head), waits for the server's
/// response, and only then sends the rest: the response must come before the rest was sent,
/// so the server answered as soon as the limit was crossed. Returns the response's status
/// line, how far the live heap rose meanwhile, and the error reported to `on_error`.
fn refused_as_soon_as_the_limit_is_crossed(
    request: &[u8],
    crossing: usize,
) -> (String, usize, DriverError) {
    let mut config = small_config();
    // Far beyond the waits below: the answer cannot come from the handshake timer.
    config.protocol.handshake_timeout = Some(Duration::from_secs(60));
    let (factory, probe) = Recording::new(false);
    let server = Server::bind("127.0.0.1:0", config, factory).unwrap();

    let head = request[..crossing].to_vec();
    let rest = request[crossing..].to_vec();
    let (answered_tx, answered_rx) = mpsc::channel::<()>();
    let start = reset_peak();
    let mut stream = raw_socket(server.local_addr());
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        writer
            .write_all(&head)
            .expect("the first part of the request");
        // Nothing more until the server has answered (or the wait is over).
        let answered_first = answered_rx.recv_timeout(WAIT).is_ok();
        // The server may have closed by now: what happens to the rest does not matter.
        let _ = writer.write_all(&rest);
        answered_first
    });
    let response = read_response_head(&mut stream);
    let _ = answered_tx.send(()); // the sender may have stopped waiting: checked next
    assert!(
        sender.join().unwrap(),
        "the response came only after the whole request was sent"
    );
    assert_eq!(
        closed_by_server(&mut stream, 4 << 10),
        Ending::Eof,
        "the server must close after refusing the handshake"
    );
    let error = handshake_error(&probe);
    let jump = peak_heap().saturating_sub(start);
    drop(stream);
    assert!(eventually(WAIT, || server.connection_count() == 0));
    let status = response.lines().next().unwrap_or_default().to_owned();
    (status, jump, error)
}

#[test]
fn ten_thousand_headers_get_431_before_the_head_ends() {
    let _serial = serial();
    let mut request = REQUEST_START.as_bytes().to_vec();
    let mut crossing = 0;
    for i in 0..10_000 {
        if i == 200 {
            crossing = request.len(); // 200 headers sent: well past the limit of 128
        }
        request.extend_from_slice(format!("X-{i}: {i}\r\n").as_bytes());
    }
    request.extend_from_slice(b"\r\n");
    let (status, jump, error) = refused_as_soon_as_the_limit_is_crossed(&request, crossing);
    assert!(status.starts_with("HTTP/1.1 431 "), "{status}");
    assert!(
        matches!(
            error,
            DriverError::Protocol(Error::Handshake(HandshakeError::TooManyHeaders))
        ),
        "{error:?}"
    );
    println!(
        "10 000 headers ({} bytes): {status}, heap peak +{}",
        request.len(),
        kib(jump)
    );
}

#[test]
fn a_1_mib_header_line_gets_431_as_soon_as_it_is_too_long() {
    let _serial = serial();
    let mut request = REQUEST_START.as_bytes().to_vec();
    request.extend_from_slice(b"X-Long: ");
    let crossing = request.len() + (9 << 10); // past the 8 KiB line limit
    request.resize(request.len() + (1 << 20), b'a');
    request.extend_from_slice(b"\r\n\r\n");
    let (status, jump, error) = refused_as_soon_as_the_limit_is_crossed(&request, crossing);
    assert!(status.starts_with("HTTP/1.1 431 "), "{status}");
    assert!(
        matches!(
            error,
            DriverError::Protocol(Error::Handshake(HandshakeError::HeaderLineTooLong))
        ),
        "{error:?}"
    );
    // The line was never buffered: the head buffer stops at the line limit.
    assert!(jump < 256 << 10, "heap rose by {}", kib(jump));
    println!("1 MiB header line: {status}, heap peak +{}", kib(jump));
}

#[test]
fn a_1_mib_request_line_gets_414_as_soon_as_it_is_too_long() {
    let _serial = serial();
    let mut request = b"GET /".to_vec();
    let crossing = 9 << 10;
    request.resize(1 << 20, b'a');
    request.extend_from_slice(b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let (status, jump, error) = refused_as_soon_as_the_limit_is_crossed(&request, crossing);
    assert!(status.starts_with("HTTP/1.1 414 "), "{status}");
    assert!(
        matches!(
            error,
            DriverError::Protocol(Error::Handshake(HandshakeError::RequestLineTooLong))
        ),
        "{error:?}"
    );
    assert!(jump < 256 << 10, "heap rose by {}", kib(jump));
    println!("1 MiB request line: {status}, heap peak +{}", kib(jump));
}

/// A server whose handshake timeout is `timeout`, and a connection to it.
fn handshake_timeout_server(timeout: Duration) -> (Server, Probe) {
    let mut config = small_config();
    config.protocol.handshake_timeout = Some(timeout);
    let (factory, probe) = Recording::new(false);
    (Server::bind("127.0.0.1:0", config, factory).unwrap(), probe)
}

/// Checks that the server closed `stream` at the handshake timeout: not before, and not
/// later than a generous margin after.
fn cut_at_the_handshake_timeout(
    stream: &mut TcpStream,
    started: Instant,
    timeout: Duration,
) -> Duration {
    assert_eq!(
        closed_by_server(stream, 0),
        Ending::Eof,
        "the connection must be closed, cleanly, at the handshake timeout {timeout:?}"
    );
    let elapsed = started.elapsed();
    assert!(elapsed >= timeout, "closed before the timeout: {elapsed:?}");
    assert!(
        elapsed < timeout + Duration::from_secs(3),
        "closed long after the timeout: {elapsed:?}"
    );
    elapsed
}

#[test]
fn a_request_trickled_a_byte_every_100_ms_is_cut_at_the_handshake_timeout() {
    let _serial = serial();
    let timeout = Duration::from_secs(1);
    let (server, probe) = handshake_timeout_server(timeout);
    // Before the connect: the server's timer starts when it accepts, which may be before this
    // thread runs again.
    let started = Instant::now();
    let mut stream = raw_socket(server.local_addr());
    let mut writer = stream.try_clone().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            // A request that looks legitimate so far and never ends (a header value that would
            // take 800 s to reach the line limit at this pace).
            let mut sent = Vec::new();
            for byte in REQUEST_START.bytes().chain(b"X-Slow: ".iter().copied()) {
                sent.push(byte);
            }
            let mut count = 0usize;
            let bytes = sent.into_iter().chain(std::iter::repeat(b'a'));
            for byte in bytes {
                if stop.load(Ordering::Relaxed) || writer.write_all(&[byte]).is_err() {
                    break;
                }
                count += 1;
                std::thread::sleep(Duration::from_millis(100));
                if count > 400 {
                    break; // 40 s: the bound of this thread whatever happens
                }
            }
            count
        })
    };
    let elapsed = cut_at_the_handshake_timeout(&mut stream, started, timeout);
    stop.store(true, Ordering::Relaxed);
    let trickled = trickler.join().unwrap();
    // Bytes kept coming up to the cut: a timer reset by each byte would never have fired.
    assert!(
        trickled >= 5,
        "only {trickled} bytes trickled before the cut"
    );
    let error = handshake_error(&probe);
    assert!(
        matches!(
            error,
            DriverError::Protocol(Error::Timeout(TimeoutKind::Handshake))
        ),
        "{error:?}"
    );
    println!("slowloris: {trickled} bytes trickled, cut after {elapsed:?}");
    drop(stream);
    assert!(eventually(WAIT, || server.connection_count() == 0));
}

#[test]
fn a_request_never_finished_is_cut_at_the_handshake_timeout() {
    let _serial = serial();
    let timeout = Duration::from_secs(1);
    let (server, probe) = handshake_timeout_server(timeout);
    let started = Instant::now(); // before the connect, as above
    let mut stream = raw_socket(server.local_addr());
    stream.write_all(REQUEST_START.as_bytes()).unwrap();
    let elapsed = cut_at_the_handshake_timeout(&mut stream, started, timeout);
    let error = handshake_error(&probe);
    assert!(
        matches!(
            error,
            DriverError::Protocol(Error::Timeout(TimeoutKind::Handshake))
        ),
        "{error:?}"
    );
    println!("unfinished request: cut after {elapsed:?}");
    assert!(eventually(WAIT, || server.connection_count() == 0));
}

/// A valid upgrade request of exactly 64 KiB: the usual headers, then filler headers.
fn request_of_64_kib() -> Vec<u8> {
    const SIZE: usize = 64 << 10;
    let mut head = REQUEST_START.as_bytes().to_vec();
    let fillers = 100;
    // Every filler line is `X-Pad-NNN: vvv…\r\n`; the last one takes what is left.
    let room = SIZE - head.len() - 2;
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
    assert_eq!(head.len(), SIZE);
    head
}

#[test]
fn reading_a_64_kib_head_examines_each_byte_once_however_it_is_split() {
    let _serial = serial();
    let limits = HandshakeLimits::default();
    let head = request_of_64_kib();

    let mut whole = HeadReader::new(limits);
    assert_eq!(whole.feed(&head), Ok(Some(head.len())));
    assert_eq!(whole.bytes_examined(), head.len());

    // One byte per read: 65 536 calls, and still each byte examined once (a reader that
    // re-scanned its buffer on every read, as tungstenite did before CVE-2023-43669, would
    // examine about 2^31 bytes here).
    let mut bytewise = HeadReader::new(limits);
    for (i, byte) in head.iter().enumerate() {
        let done = bytewise.feed(std::slice::from_ref(byte)).unwrap();
        assert_eq!(done.is_some(), i + 1 == head.len(), "byte {i}");
        assert_eq!(bytewise.bytes_examined(), i + 1, "byte {i}");
    }
    assert_eq!(bytewise.head(), whole.head());

    // Reads of every size from 2 to 4 KiB: the same.
    for chunk in [2, 3, 7, 100, 1460, 4096] {
        let mut reader = HeadReader::new(limits);
        for piece in head.chunks(chunk) {
            reader.feed(piece).unwrap();
        }
        assert!(reader.is_complete(), "chunk {chunk}");
        assert_eq!(reader.bytes_examined(), head.len(), "chunk {chunk}");
    }

    // And the head is a valid request within the limits (parsed once, at the end).
    let request = parse_request(bytewise.head(), &limits).unwrap();
    assert_eq!(request.headers.len(), 105);
}

// ---------------------------------------------------------------------------------------------
// Many connections
// ---------------------------------------------------------------------------------------------

const CONNECTIONS: usize = 10_000;
/// Message indexes of the connections the parent makes itself.
const WARM_UP: u32 = CONNECTIONS as u32;
const FRESH: u32 = CONNECTIONS as u32 + 1;

const CHILD_ADDR: &str = "WS_DOS_CHILD_ADDR";
const CHILD_CONNECTIONS: &str = "WS_DOS_CHILD_CONNECTIONS";

/// Per-session bookkeeping of [`Census`], in statics so that it never touches the heap being
/// measured. Sessions are filed by id modulo [`SLOTS`]: ids are consecutive within the test,
/// so they never share a slot (checked).
struct Slot {
    id: AtomicU64,
    /// The client's message index + 1 (0: no message yet).
    index: AtomicU32,
    opens: AtomicU32,
    closes: AtomicU32,
    code: AtomicU16,
    error: AtomicBool,
}

impl Slot {
    const fn new() -> Slot {
        Slot {
            id: AtomicU64::new(0),
            index: AtomicU32::new(0),
            opens: AtomicU32::new(0),
            closes: AtomicU32::new(0),
            code: AtomicU16::new(0),
            error: AtomicBool::new(false),
        }
    }

    fn clear(&self) {
        self.id.store(0, Ordering::Relaxed);
        self.index.store(0, Ordering::Relaxed);
        self.opens.store(0, Ordering::Relaxed);
        self.closes.store(0, Ordering::Relaxed);
        self.code.store(0, Ordering::Relaxed);
        self.error.store(false, Ordering::Relaxed);
    }
}

const SLOTS: usize = 1 << 14;
static SLOT_TABLE: [Slot; SLOTS] = [const { Slot::new() }; SLOTS];
static OPENS: AtomicUsize = AtomicUsize::new(0);
static CLOSES: AtomicUsize = AtomicUsize::new(0);
static MESSAGES: AtomicUsize = AtomicUsize::new(0);
static ERRORS: AtomicUsize = AtomicUsize::new(0);
static CLASHES: AtomicUsize = AtomicUsize::new(0);

/// The factory of an echo server that records opens, closes and messages per session without
/// allocating (the Recorder's maps would grow with the 10 000 sessions and blur the heap
/// measurement): it accepts with a [`Counted`] handler (zero-sized) and counts its own
/// failures (before a connection has a handler) as errors. Clients send `client <index>`,
/// which files the session under its client index.
struct Census;

/// The handler of each connection of a [`Census`] server.
struct Counted;

impl Census {
    fn reset() {
        SLOT_TABLE.iter().for_each(Slot::clear);
        for counter in [&OPENS, &CLOSES, &MESSAGES, &ERRORS, &CLASHES] {
            counter.store(0, Ordering::Relaxed);
        }
    }

    fn slot(session: &Session) -> &'static Slot {
        &SLOT_TABLE[session.id() as usize % SLOTS]
    }
}

impl Factory for Census {
    type Handler = Counted;

    fn on_request(&self, _request: &UpgradeRequest, _peer: &ws_mio::Peer) -> Decision<Counted> {
        Decision::accept(Counted)
    }

    fn on_error(&self, _peer: Option<SocketAddr>, _error: &DriverError) {
        ERRORS.fetch_add(1, Ordering::Relaxed);
    }
}

impl Handler for Counted {
    fn on_open(&mut self, session: &Session) {
        let slot = Census::slot(session);
        if slot.id.swap(session.id(), Ordering::Relaxed) != 0 {
            CLASHES.fetch_add(1, Ordering::Relaxed);
        }
        slot.opens.fetch_add(1, Ordering::Relaxed);
        OPENS.fetch_add(1, Ordering::Relaxed);
    }

    fn on_message(&mut self, session: &Session, message: Message) {
        MESSAGES.fetch_add(1, Ordering::Relaxed);
        if let Message::Text(text) = &message {
            if let Some(index) = text
                .strip_prefix("client ")
                .and_then(|i| i.parse::<u32>().ok())
            {
                Census::slot(session)
                    .index
                    .store(index + 1, Ordering::Relaxed);
            }
        }
        if session.send(message).is_err() {
            ERRORS.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn on_close(&mut self, session: &Session, disconnect: &Disconnect) {
        let slot = Census::slot(session);
        slot.code.store(disconnect.code.as_u16(), Ordering::Relaxed);
        slot.error
            .store(disconnect.error.is_some(), Ordering::Relaxed);
        slot.closes.fetch_add(1, Ordering::Relaxed);
        CLOSES.fetch_add(1, Ordering::Relaxed);
    }

    fn on_error(&mut self, _session: &Session, _error: &DriverError) {
        ERRORS.fetch_add(1, Ordering::Relaxed);
    }
}

/// The child process running the clients. Killed on drop if still running, so a failing test
/// never leaves it behind.
struct ChildClients {
    child: Child,
    stdin: ChildStdin,
    lines: mpsc::Receiver<String>,
}

impl ChildClients {
    fn spawn(addr: SocketAddr, connections: usize) -> ChildClients {
        let exe = std::env::current_exe().unwrap();
        let mut child = Command::new(exe)
            .args([
                "--exact",
                "many_connections_child",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(CHILD_ADDR, addr.to_string())
            .env(CHILD_CONNECTIONS, connections.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the child process");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                // The test harness prints its own text too, on the same lines at times;
                // ours follows "DOS ".
                if let Some((_, ours)) = line.split_once("DOS ") {
                    if tx.send(ours.to_owned()).is_err() {
                        break;
                    }
                }
            }
        });
        ChildClients {
            child,
            stdin,
            lines,
        }
    }

    fn tell(&mut self, command: &str) {
        writeln!(self.stdin, "{command}").expect("the child process is gone");
    }

    fn expect(&self, line: &str, within: Duration) {
        match self.lines.recv_timeout(within) {
            Ok(got) if got == line => {}
            Ok(got) => panic!("child said {got:?}, expected {line:?}"),
            Err(_) => panic!("child did not say {line:?} within {within:?} (see its output)"),
        }
    }

    fn wait(mut self) {
        let deadline = Instant::now() + 2 * WAIT;
        loop {
            match self.child.try_wait().unwrap() {
                Some(status) => {
                    assert!(status.success(), "child process failed: {status}");
                    return;
                }
                None if Instant::now() >= deadline => panic!("child process did not exit"),
                None => std::thread::sleep(Duration::from_millis(10)),
            }
        }
    }
}

impl Drop for ChildClients {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Clients of the parent's own, connected together (so that every loop gets one): each sends
/// `client <index>` and gets it back, then closes cleanly.
fn echo_and_close(addr: SocketAddr, indexes: &[u32]) {
    let clients: Vec<_> = indexes
        .iter()
        .map(|&index| (index, RawClient::connect(addr, "/").unwrap()))
        .collect();
    for (index, client) in clients {
        echo_and_close_one(client, index);
    }
}

fn echo_and_close_one(mut client: RawClient, index: u32) {
    let text = format!("client {index}");
    client.send_frame(true, OP_TEXT, text.as_bytes()).unwrap();
    assert_eq!(client.read_message().unwrap(), (OP_TEXT, text.into_bytes()));
    client.send_close(1000, "").unwrap();
    let (opcode, payload) = client.read_message().unwrap();
    assert_eq!(
        (opcode, &payload[..2]),
        (OP_CLOSE, &1000u16.to_be_bytes()[..])
    );
    assert_eq!(client.read_to_end(0), Ending::Eof);
}

#[test]
fn ten_thousand_connections_half_vanishing_leave_the_server_serving_and_its_heap_as_it_was() {
    let _serial = serial();
    // Server sockets, the listener, the loops' epoll and waker fds, the child's pipes.
    ensure_open_files(CONNECTIONS as u64 + 256);
    Census::reset();
    let mut config = small_config();
    config.threads = 2;
    config.max_connections = CONNECTIONS + 100;
    config.protocol.handshake_timeout = Some(Duration::from_secs(5));
    config.protocol.close_timeout = Duration::from_secs(2);
    let server = Server::bind("127.0.0.1:0", config, Census).unwrap();
    let addr = server.local_addr();

    // Warm up: a connection on each loop through every code path, then the starting level.
    echo_and_close(addr, &[WARM_UP, WARM_UP + 2]);
    assert!(eventually(WAIT, || CLOSES.load(Ordering::Relaxed) == 2
        && server.connection_count() == 0));
    Census::reset();
    let mut child = ChildClients::spawn(addr, CONNECTIONS);
    child.expect("started", 3 * WAIT);
    let start = reset_peak();

    // All connect: 10 000 open at once.
    let connecting = Instant::now();
    child.tell("connect");
    child.expect("connected", 12 * WAIT);
    let connect_time = connecting.elapsed();
    assert_eq!(server.connection_count(), CONNECTIONS);
    assert!(eventually(WAIT, || OPENS.load(Ordering::Relaxed) == CONNECTIONS));
    let with_all = live_heap();

    // Each sends one message and gets it back; every odd one then vanishes mid-frame.
    child.tell("echo");
    child.expect("echoed", 12 * WAIT);
    assert_eq!(MESSAGES.load(Ordering::Relaxed), CONNECTIONS);
    assert!(
        eventually(2 * WAIT, || CLOSES.load(Ordering::Relaxed)
            == CONNECTIONS / 2),
        "{} of {} vanished peers reported",
        CLOSES.load(Ordering::Relaxed),
        CONNECTIONS / 2
    );
    assert!(eventually(WAIT, || server.connection_count() == CONNECTIONS / 2));

    // The server still serves newcomers while the other half are connected.
    echo_and_close(addr, &[FRESH]);

    // The other half close cleanly.
    child.tell("close");
    child.expect("closed", 12 * WAIT);
    child.wait();
    assert!(
        eventually(2 * WAIT, || server.connection_count() == 0
            && CLOSES.load(Ordering::Relaxed) == CONNECTIONS + 1),
        "connections left: {}, disconnects reported: {}",
        server.connection_count(),
        CLOSES.load(Ordering::Relaxed)
    );

    // Every session: opened once, closed once, with the right code.
    let (mut vanished, mut clean, mut fresh) = (0, 0, 0);
    for slot in &SLOT_TABLE {
        let opens = slot.opens.load(Ordering::Relaxed);
        if opens == 0 {
            assert_eq!(slot.closes.load(Ordering::Relaxed), 0);
            continue;
        }
        let id = slot.id.load(Ordering::Relaxed);
        assert_eq!(opens, 1, "session {id} opened {opens} times");
        let closes = slot.closes.load(Ordering::Relaxed);
        assert_eq!(closes, 1, "session {id} reported {closes} disconnects");
        let index = slot.index.load(Ordering::Relaxed);
        assert!(index > 0, "session {id} sent no message");
        let (index, code) = (index - 1, slot.code.load(Ordering::Relaxed));
        let error = slot.error.load(Ordering::Relaxed);
        if index == FRESH {
            fresh += 1;
            assert_eq!((code, error), (1000, false), "the fresh client");
        } else if index % 2 == 1 {
            vanished += 1;
            assert_eq!((code, error), (1006, true), "vanished client {index}");
        } else {
            clean += 1;
            assert_eq!((code, error), (1000, false), "client {index}");
        }
    }
    assert_eq!(
        (vanished, clean, fresh),
        (CONNECTIONS / 2, CONNECTIONS / 2, 1)
    );
    assert_eq!(CLASHES.load(Ordering::Relaxed), 0);
    assert_eq!(
        ERRORS.load(Ordering::Relaxed),
        0,
        "on_error or echo failures"
    );

    // And the heap is back where it started.
    let bound = start + start / 10;
    let returned = eventually(4 * WAIT, || live_heap() <= bound);
    let end = live_heap();
    println!(
        "{CONNECTIONS} connections in {connect_time:?}: live heap {} at start, {} with all \
         open, peak {}, {} at the end (bound {})",
        kib(start),
        kib(with_all),
        kib(peak_heap()),
        kib(end),
        kib(bound)
    );
    assert!(
        returned,
        "live heap {} after all connections closed, {} at the start (+{:.1} %)",
        kib(end),
        kib(start),
        (end as f64 / start as f64 - 1.0) * 100.0
    );
    server.stop();
}

/// The clients of the test above, in a process of their own. Only runs when that test starts
/// it (with the server's address in its environment); otherwise it returns at once.
#[test]
#[ignore = "the client side of ten_thousand_connections_…; started by that test in a child process"]
fn many_connections_child() {
    let Ok(addr) = std::env::var(CHILD_ADDR) else {
        return;
    };
    let addr: SocketAddr = addr.parse().unwrap();
    let count: usize = std::env::var(CHILD_CONNECTIONS).unwrap().parse().unwrap();
    ensure_open_files(count as u64 + 64);
    let say = |line: &str| {
        let mut out = std::io::stdout().lock();
        writeln!(out, "DOS {line}").unwrap();
        out.flush().unwrap();
    };
    let mut commands = std::io::stdin().lock().lines();
    let mut next = |expected: &str| {
        let line = commands.next().expect("the parent hung up").unwrap();
        assert_eq!(line, expected);
    };
    say("started");

    next("connect");
    let clients: Vec<RawClient> = (0..count)
        .map(|i| {
            RawClient::connect(addr, "/").unwrap_or_else(|e| panic!("client {i}: connect: {e}"))
        })
        .collect();
    say("connected");

    next("echo");
    let mut survivors = Vec::new();
    for (index, mut client) in clients.into_iter().enumerate() {
        let text = format!("client {index}");
        client.send_frame(true, OP_TEXT, text.as_bytes()).unwrap();
        let echo = client
            .read_message()
            .unwrap_or_else(|e| panic!("client {index}: {e}"));
        assert_eq!(echo, (OP_TEXT, text.into_bytes()), "client {index}");
        if index % 2 == 1 {
            // A header announcing 1 000 bytes, 10 of them, and the socket is gone.
            let frame = client_frame(true, OP_BINARY, &[7; 1000], [1, 2, 3, 4]);
            client.stream.write_all(&frame[..8 + 10]).unwrap();
            drop(client);
        } else {
            survivors.push((index, client));
        }
    }
    say("echoed");

    next("close");
    for (index, client) in &mut survivors {
        client.send_close(1000, "").unwrap();
        let (opcode, payload) = client
            .read_message()
            .unwrap_or_else(|e| panic!("client {index}: {e}"));
        assert_eq!(opcode, OP_CLOSE, "client {index}");
        assert_eq!(payload[..2], 1000u16.to_be_bytes(), "client {index}");
        assert_eq!(client.read_to_end(0), Ending::Eof, "client {index}");
    }
    say("closed");
}

// ---------------------------------------------------------------------------------------------
// Ping floods
// ---------------------------------------------------------------------------------------------

/// `count` masked pings carrying `tag` and their number.
fn pings(count: usize, tag: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let mut wire = Vec::new();
    let mut payloads = Vec::new();
    for i in 0..count {
        let payload = format!("{tag} {i}").into_bytes();
        wire.extend_from_slice(&client_frame(true, OP_PING, &payload, [9, 8, 7, 6]));
        payloads.push(payload);
    }
    (wire, payloads)
}

#[test]
fn pings_are_answered_up_to_max_pings_per_second_and_one_more_closes_with_1008() {
    let _serial = serial();
    let mut config = small_config();
    config.protocol.max_pings_per_second = 50;
    let (factory, probe) = Recording::new(true);
    let server = Server::bind("127.0.0.1:0", config, factory).unwrap();
    let mut client = RawClient::connect(server.local_addr(), "/").unwrap();
    let session = probe.opened();

    // 50 at once: every one answered, in order, and the connection stays open.
    let (wire, payloads) = pings(50, "first");
    client.stream.write_all(&wire).unwrap();
    for payload in &payloads {
        let pong = client.read_frame().unwrap();
        assert_eq!((pong.opcode, &pong.payload), (OP_PONG, payload));
    }
    client.send_frame(true, OP_TEXT, b"still open").unwrap();
    assert_eq!(
        client.read_message().unwrap(),
        (OP_TEXT, b"still open".to_vec())
    );

    // A second later the count starts again: 51 at once are 50 answered and a 1008.
    std::thread::sleep(Duration::from_millis(1100));
    let (wire, payloads) = pings(51, "second");
    client.stream.write_all(&wire).unwrap();
    for payload in &payloads[..50] {
        let pong = client.read_frame().unwrap();
        assert_eq!(
            (pong.opcode, &pong.payload),
            (OP_PONG, payload),
            "a ping within the limit must be answered"
        );
    }
    let close = client.read_frame().unwrap();
    assert_eq!(close.opcode, OP_CLOSE, "{close:?}");
    assert_eq!(close.payload[..2], 1008u16.to_be_bytes());
    assert_eq!(client.read_to_end(0), Ending::Eof);
    drop(client);
    let disconnect = probe.closed(session.id());
    assert_eq!(disconnect.code, 1008);
    assert!(
        matches!(
            disconnect.error,
            Some(DriverError::Protocol(Error::Protocol(
                ProtocolError::PingFlood
            )))
        ),
        "{disconnect:?}"
    );
    assert!(eventually(WAIT, || server.connection_count() == 0));
}

/// Echoes messages, counts pings, and keeps the last session opened; its clones (one per
/// connection) share both.
#[derive(Clone, Default)]
struct PingCounter {
    session: Arc<Mutex<Option<Session>>>,
    pings: Arc<AtomicUsize>,
}

impl Handler for PingCounter {
    fn on_open(&mut self, session: &Session) {
        *self.session.lock().unwrap() = Some(session.clone());
    }

    fn on_message(&mut self, session: &Session, message: Message) {
        let _ = session.send(message);
    }

    fn on_ping(&mut self, _session: &Session, _payload: &[u8]) {
        self.pings.fetch_add(1, Ordering::Relaxed);
    }
}

#[test]
fn a_peer_flooding_pings_without_reading_the_pongs_cannot_grow_the_server_heap() {
    let _serial = serial();
    const LIMIT: usize = 256 << 10;
    const FLOOD: usize = 50 << 20;
    const PING: usize = 2 + 4 + 125;
    const PONG: usize = 2 + 125;
    let mut config = small_config();
    config.protocol.max_pings_per_second = u32::MAX;
    config.protocol.max_buffered_output = LIMIT;
    let handler = PingCounter::default();
    let server = Server::bind("127.0.0.1:0", config, handler.clone()).unwrap();
    let mut client = RawClient::connect(server.local_addr(), "/").unwrap();
    assert!(eventually(WAIT, || handler
        .session
        .lock()
        .unwrap()
        .is_some()));
    let session = handler.session.lock().unwrap().clone().unwrap();

    // 500 pings of 125 bytes per write, never reading, until 50 MB are written or the server
    // stops reading (TCP then stalls the writes for a second).
    let burst: Vec<u8> = (0..500)
        .flat_map(|_| client_frame(true, OP_PING, &[b'p'; 125], [1, 2, 3, 4]))
        .collect();
    let mut writer = client.stream.try_clone().unwrap();
    writer
        .set_write_timeout(Some(Duration::from_secs(1)))
        .unwrap();
    let start = reset_peak();
    let mut written = 0usize;
    let stalled = loop {
        if written >= FLOOD {
            break false;
        }
        let offset = written % burst.len();
        match writer.write(&burst[offset..]) {
            Ok(n) => written += n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                break true
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => panic!("the server dropped the flooding peer: {e}"),
        }
    };
    let jump = peak_heap().saturating_sub(start);
    let buffered = session.buffered_amount();
    println!(
        "ping flood: {:.1} MB written ({}), server output {} (limit {}), heap peak +{}",
        written as f64 / 1e6,
        if stalled {
            "then TCP stalled: the server stopped reading"
        } else {
            "all of it"
        },
        kib(buffered),
        kib(LIMIT),
        kib(jump)
    );
    assert!(
        written > 8 * LIMIT,
        "the flood ({written} bytes) should dwarf the limit"
    );
    // A pong is queued only while the output is at or under the limit.
    assert!(
        buffered <= LIMIT + PONG,
        "{buffered} bytes of pongs buffered (limit {LIMIT})"
    );
    assert!(
        jump < 4 * LIMIT,
        "the heap rose by {} during the flood",
        kib(jump)
    );

    // Now the peer reads: it gets pongs, then the echo of a message sent after the flood.
    let pings_sent = written.div_ceil(PING);
    let reader = std::thread::spawn(move || {
        let mut pongs = 0usize;
        loop {
            let frame = client.read_frame().expect("pongs, then the echo");
            match frame.opcode {
                OP_PONG => pongs += 1,
                OP_TEXT => {
                    assert_eq!(frame.payload, b"after the flood");
                    return pongs;
                }
                other => panic!("unexpected opcode {other}"),
            }
        }
    });
    writer.set_write_timeout(Some(WAIT)).unwrap();
    let partial = written % PING;
    if partial > 0 {
        let offset = written % burst.len();
        writer
            .write_all(&burst[offset..offset + PING - partial])
            .unwrap();
    }
    writer
        .write_all(&client_frame(
            true,
            OP_TEXT,
            b"after the flood",
            [5, 6, 7, 8],
        ))
        .unwrap();
    let pongs = reader.join().expect("the reader");
    assert!(pongs <= pings_sent);
    assert_eq!(handler.pings.load(Ordering::Relaxed), pings_sent);
    println!("{pings_sent} pings, {pongs} pongs");
    assert!(session.is_open());
    drop(writer);
    assert!(eventually(WAIT, || server.connection_count() == 0));
}
