//! Peers that write without reading, over real sockets on 127.0.0.1.
//!
//! * 2 000 binary messages of 64 KiB written to an echo server without reading a byte: the
//!   server stops reading once its output is at the high-water mark, so the writer is held
//!   back by TCP flow control; once the peer reads, every message is echoed exactly once, in
//!   order, and the server never buffered more than `max_buffered_output` for it.
//! * The same with 2 000 pings: exactly 2 000 pongs, same payloads, in order.
//! * A handler sending from another thread until `BufferFull`: `on_drain` comes once the peer
//!   reads, and sending goes on.
//!
//! The tests of this file take turns (see [`serial`]): the peak RSS they print is the
//! process's.

mod common;

use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{client_frame, Ending, RawClient, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG, WAIT};
use ws_mio::{CloseCode, Disconnect, Handler, Message, SendError, Server, ServerConfig, Session};

/// Messages (or pings) each peer writes without reading.
const COUNT: usize = 2_000;
/// Payload of each data message.
const MESSAGE: usize = 64 << 10;
/// Payload of each ping (the most a control frame may carry).
const PING: usize = 125;
/// The default `max_buffered_output`, which these tests keep.
const LIMIT: usize = 1 << 20;
/// The writer counts as stalled (held back by TCP flow control) once it has made no progress
/// for this long.
const STALL: Duration = Duration::from_millis(500);

/// Makes the tests of this file run one at a time: the RSS they report is process-wide.
fn serial() -> MutexGuard<'static, ()> {
    static SERIAL: Mutex<()> = Mutex::new(());
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

// ---------------------------------------------------------------------------------------------
// Payloads
// ---------------------------------------------------------------------------------------------

/// `len` bytes: `seq` (big-endian) in the first 8, then bytes drawn from a generator seeded
/// with `seq`, so that any two payloads differ all along, not only in their first bytes.
fn payload(seq: u64, len: usize) -> Vec<u8> {
    let mut data = Vec::with_capacity(len);
    data.extend_from_slice(&seq.to_be_bytes()[..len.min(8)]);
    let mut state = seq ^ 0x5851_F42D_4C95_7F2D;
    while data.len() < len {
        // splitmix64
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^= z >> 31;
        let take = (len - data.len()).min(8);
        data.extend_from_slice(&z.to_le_bytes()[..take]);
    }
    data
}

/// Checks that `data` is payload number `expected` of `len` bytes.
fn check_payload(what: &str, data: &[u8], expected: u64, len: usize) {
    assert_eq!(data.len(), len, "{what} {expected}: length");
    let seq = u64::from_be_bytes(data[..8].try_into().unwrap());
    assert_eq!(
        seq, expected,
        "{what} {expected}: sequence number (lost or reordered)"
    );
    assert!(
        data == payload(expected, len),
        "{what} {expected}: the payload differs after its sequence number"
    );
}

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

/// A field of `/proc/self/status` in KiB (e.g. `VmHWM`, the peak RSS); None elsewhere.
fn status_kib(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The peak RSS at the start of a measurement: reset to the current RSS where Linux allows
/// (`/proc/self/clear_refs`, 5), so that the growth is this test's, not an earlier one's.
fn start_peak_rss() -> (Option<u64>, bool) {
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    (status_kib("VmHWM:"), reset)
}

/// "VmHWM 12345 → 23456 KiB (+11111 KiB)", for the report.
fn peak_rss_report((before, reset): (Option<u64>, bool)) -> String {
    match (before, status_kib("VmHWM:")) {
        (Some(before), Some(after)) => format!(
            "VmHWM {before} KiB → {after} KiB (+{} KiB{})",
            after.saturating_sub(before),
            if reset {
                ", peak reset at the start"
            } else {
                ", peak not resettable: includes earlier tests"
            }
        ),
        _ => "VmHWM not available".into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The server
// ---------------------------------------------------------------------------------------------

/// What the echo handlers of one server record, across all their clones.
#[derive(Default)]
struct Measures {
    /// The most bytes a session had buffered, seen right after each send in `on_message`
    /// (and in `on_ping`, where the pong is queued by the connection itself).
    peak_buffered: AtomicUsize,
    messages: AtomicUsize,
    pings: AtomicUsize,
    failed_sends: AtomicUsize,
}

/// Echoes every message with `session.send`; one clone per connection, sharing [`Measures`]
/// and the channel of disconnects.
#[derive(Clone)]
struct MeasuredEcho {
    measures: Arc<Measures>,
    closed: mpsc::Sender<Disconnect>,
}

impl Handler for MeasuredEcho {
    fn on_message(&mut self, session: &Session, message: Message) {
        self.measures.messages.fetch_add(1, Ordering::Relaxed);
        if session.send(message).is_err() {
            self.measures.failed_sends.fetch_add(1, Ordering::Relaxed);
        }
        self.measures
            .peak_buffered
            .fetch_max(session.buffered_amount(), Ordering::Relaxed);
    }

    fn on_ping(&mut self, session: &Session, _payload: &[u8]) {
        self.measures.pings.fetch_add(1, Ordering::Relaxed);
        self.measures
            .peak_buffered
            .fetch_max(session.buffered_amount(), Ordering::Relaxed);
    }

    fn on_close(&mut self, _session: &Session, disconnect: &Disconnect) {
        let _ = self.closed.send(disconnect.clone());
    }
}

/// An echo server with two loops and the default limits (`max_pings_per_second` aside).
fn echo_server(max_pings_per_second: u32) -> (Server, Arc<Measures>, mpsc::Receiver<Disconnect>) {
    let mut config = ServerConfig::default();
    config.threads = 2;
    assert_eq!(config.protocol.max_buffered_output, LIMIT);
    config.protocol.max_pings_per_second = max_pings_per_second;
    let measures = Arc::new(Measures::default());
    let (closed_tx, closed) = mpsc::channel();
    let handler = MeasuredEcho {
        measures: Arc::clone(&measures),
        closed: closed_tx,
    };
    let server = Server::bind("127.0.0.1:0", config, handler).unwrap();
    (server, measures, closed)
}

// ---------------------------------------------------------------------------------------------
// The writing peer
// ---------------------------------------------------------------------------------------------

/// Writes `COUNT` masked frames of `opcode` (payload `seq` of `len` bytes each) on its own
/// thread, never reading; `written` counts the frames written in full. A write blocks while
/// TCP flow control holds it back (the socket's write timeout is [`WAIT`]).
fn spawn_writer(
    stream: &TcpStream,
    opcode: u8,
    len: usize,
    written: Arc<AtomicUsize>,
) -> JoinHandle<Result<(), String>> {
    let mut stream = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        for seq in 0..COUNT as u64 {
            let mask = ((seq as u32) ^ 0xA5C3_1E77).to_be_bytes();
            let frame = client_frame(true, opcode, &payload(seq, len), mask);
            stream
                .write_all(&frame)
                .map_err(|e| format!("writing frame {seq}: {e}"))?;
            written.store(seq as usize + 1, Ordering::Release);
        }
        Ok(())
    })
}

/// Waits until the writer has written everything or made no progress for [`STALL`]; returns
/// how many frames it had written then.
fn wait_for_writer(written: &AtomicUsize) -> usize {
    let deadline = Instant::now() + 2 * WAIT;
    let mut last = (written.load(Ordering::Acquire), Instant::now());
    loop {
        std::thread::sleep(Duration::from_millis(20));
        let now = written.load(Ordering::Acquire);
        if now == COUNT {
            return now;
        }
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() >= STALL {
            return now;
        }
        assert!(
            Instant::now() < deadline,
            "the writer neither finished nor stalled"
        );
    }
}

/// The closing handshake from the client, ending with the server closing TCP first, cleanly
/// (§7.1.1), and the client closing its side after; then the server's view of it.
fn close_cleanly(mut client: RawClient, closed: &mpsc::Receiver<Disconnect>) {
    client.send_close(1000, "done").unwrap();
    let (opcode, payload) = client.read_message().unwrap();
    assert_eq!(
        opcode, OP_CLOSE,
        "the close echo must come next, nothing else"
    );
    assert_eq!(payload[..2], 1000u16.to_be_bytes());
    assert_eq!(
        client.read_to_end(0),
        Ending::Eof,
        "the server closes TCP cleanly"
    );
    // The server ends the connection on our EOF.
    drop(client);
    let disconnect = closed.recv_timeout(WAIT).expect("on_close");
    assert_eq!(disconnect.code, 1000, "{disconnect:?}");
    assert!(disconnect.error.is_none(), "{disconnect:?}");
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[test]
fn two_thousand_64_kib_messages_written_without_reading_are_all_echoed_in_order() {
    let _serial = serial();
    let (server, measures, closed) =
        echo_server(ws_mio::ws_proto::Config::default().max_pings_per_second);
    let peak = start_peak_rss();
    let started = Instant::now();
    let mut client = RawClient::connect(server.local_addr(), "/").unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let writer = spawn_writer(&client.stream, OP_BINARY, MESSAGE, Arc::clone(&written));

    // Nobody reads: the server must stop reading too, and TCP then holds the writer back.
    let stalled_at = wait_for_writer(&written);
    assert!(
        stalled_at < COUNT,
        "all {COUNT} messages ({} MiB) were taken by a server whose peer reads nothing: \
         it buffered them instead of leaving them to TCP flow control",
        (COUNT * MESSAGE) >> 20
    );
    assert!(stalled_at > 0, "not one message written");
    let peak_while_stalled = measures.peak_buffered.load(Ordering::Relaxed);

    // Now the peer reads: every message echoed exactly once, in order.
    for seq in 0..COUNT as u64 {
        let (opcode, data) = client
            .read_message()
            .unwrap_or_else(|e| panic!("echo {seq} of {COUNT}: {e}"));
        assert_eq!(opcode, OP_BINARY, "echo {seq}");
        check_payload("echo", &data, seq, MESSAGE);
    }
    writer.join().unwrap().unwrap();
    let elapsed = started.elapsed();
    // Exactly once: the close echo comes next, not a duplicate.
    close_cleanly(client, &closed);

    let peak_buffered = measures.peak_buffered.load(Ordering::Relaxed);
    eprintln!(
        "slow reader, {COUNT} × 64 KiB: writer stalled after {stalled_at} messages \
         ({:.1} MiB in flight), {COUNT} echoed in order in {elapsed:.2?}; server peak buffered \
         {} KiB ({} KiB while stalled; limit {} KiB); {}",
        (stalled_at * (MESSAGE + 14)) as f64 / (1 << 20) as f64,
        peak_buffered >> 10,
        peak_while_stalled >> 10,
        LIMIT >> 10,
        peak_rss_report(peak)
    );
    assert_eq!(measures.messages.load(Ordering::Relaxed), COUNT);
    assert_eq!(
        measures.failed_sends.load(Ordering::Relaxed),
        0,
        "an echo was refused"
    );
    assert!(
        peak_buffered <= LIMIT,
        "{peak_buffered} bytes buffered for one peer (max_buffered_output {LIMIT})"
    );
    server.stop();
}

#[test]
fn two_thousand_pings_written_without_reading_get_two_thousand_pongs_in_order() {
    let _serial = serial();
    let (server, measures, closed) = echo_server(1_000_000);
    let peak = start_peak_rss();
    let mut client = RawClient::connect(server.local_addr(), "/").unwrap();
    let written = Arc::new(AtomicUsize::new(0));
    let writer = spawn_writer(&client.stream, OP_PING, PING, Arc::clone(&written));
    // 2 000 pings are 262 KB on the wire and their pongs 254 KB: loopback socket buffers
    // usually take them all, so this is about count and order under a burst. A flood far
    // beyond the output limit is `dos.rs`' `a_peer_flooding_pings_without_reading_…`.
    let before_reading = wait_for_writer(&written);

    for seq in 0..COUNT as u64 {
        let frame = client
            .read_frame()
            .unwrap_or_else(|e| panic!("pong {seq} of {COUNT}: {e}"));
        assert!(frame.fin);
        assert_eq!(frame.opcode, OP_PONG, "pong {seq}");
        check_payload("pong", &frame.payload, seq, PING);
    }
    writer.join().unwrap().unwrap();
    // Exactly 2 000: the close echo comes next, not another pong.
    close_cleanly(client, &closed);

    let peak_buffered = measures.peak_buffered.load(Ordering::Relaxed);
    eprintln!(
        "slow reader, {COUNT} pings of {PING} bytes: {before_reading} written before reading, \
         {COUNT} pongs in order; server peak buffered {} KiB (limit {} KiB); {}",
        peak_buffered >> 10,
        LIMIT >> 10,
        peak_rss_report(peak)
    );
    assert_eq!(measures.pings.load(Ordering::Relaxed), COUNT);
    assert!(
        peak_buffered <= LIMIT,
        "{peak_buffered} bytes buffered for one peer (max_buffered_output {LIMIT})"
    );
    server.stop();
}

/// Reports each connection's session, and each `on_drain` with the round whose reading the
/// peer had begun by then (0: none).
#[derive(Clone)]
struct Draining {
    opened: mpsc::Sender<Session>,
    drains: mpsc::Sender<usize>,
    closed: mpsc::Sender<Disconnect>,
    reading: Arc<AtomicUsize>,
}

impl Handler for Draining {
    fn on_open(&mut self, session: &Session) {
        let _ = self.opened.send(session.clone());
    }

    fn on_drain(&mut self, _session: &Session) {
        let _ = self.drains.send(self.reading.load(Ordering::SeqCst));
    }

    fn on_close(&mut self, _session: &Session, disconnect: &Disconnect) {
        let _ = self.closed.send(disconnect.clone());
    }
}

/// Reads, when told how many, that many binary messages (numbered on from the last), and
/// says when done; hands the client back when the commands end.
fn spawn_gated_reader(
    mut client: RawClient,
    commands: mpsc::Receiver<u64>,
    done: mpsc::Sender<u64>,
) -> JoinHandle<RawClient> {
    std::thread::spawn(move || {
        let mut next = 0u64;
        for count in commands {
            for _ in 0..count {
                let (opcode, data) = client
                    .read_message()
                    .unwrap_or_else(|e| panic!("message {next}: {e}"));
                assert_eq!(opcode, OP_BINARY, "message {next}");
                check_payload("message", &data, next, MESSAGE);
                next += 1;
            }
            done.send(next).unwrap();
        }
        client
    })
}

#[test]
fn on_drain_comes_once_the_peer_reads_and_sending_goes_on() {
    const ROUNDS: usize = 3;
    let _serial = serial();
    let mut config = ServerConfig::default();
    config.threads = 2;
    let (opened_tx, opened) = mpsc::channel();
    let (drains_tx, drains) = mpsc::channel();
    let (closed_tx, closed) = mpsc::channel();
    let reading = Arc::new(AtomicUsize::new(0));
    let handler = Draining {
        opened: opened_tx,
        drains: drains_tx,
        closed: closed_tx,
        reading: Arc::clone(&reading),
    };
    let server = Server::bind("127.0.0.1:0", config, handler).unwrap();
    let client = RawClient::connect(server.local_addr(), "/").unwrap();
    let session = opened.recv_timeout(WAIT).expect("on_open");
    let (commands, commands_rx) = mpsc::channel();
    let (done_tx, done) = mpsc::channel();
    let reader = spawn_gated_reader(client, commands_rx, done_tx);

    let mut sent = 0u64; // messages accepted so far
    let mut read = 0u64; // messages the reader was told to read
    let mut figures = Vec::new();
    for round in 1..=ROUNDS {
        // This thread sends (not a loop thread) until the output is full.
        let first = sent;
        let deadline = Instant::now() + 2 * WAIT;
        loop {
            assert!(Instant::now() < deadline, "round {round}: never BufferFull");
            assert!(sent - first < 20_000, "round {round}: never BufferFull");
            match session.send_binary(payload(sent, MESSAGE)) {
                Ok(()) => sent += 1,
                Err(SendError::BufferFull { limit, .. }) => {
                    assert_eq!(limit, LIMIT);
                    break;
                }
                Err(e) => panic!("round {round}: {e}"),
            }
        }
        // The peer starts reading (the handler sees which round's reading has begun).
        reading.store(round, Ordering::SeqCst);
        let reading_started = Instant::now();
        commands.send(sent - read).unwrap();
        read = sent;
        let seen = drains
            .recv_timeout(Duration::from_secs(5))
            .unwrap_or_else(|_| panic!("round {round}: no on_drain within 5 s of reading"));
        let drain_after = reading_started.elapsed();
        assert_eq!(
            seen, round,
            "round {round}: on_drain came before the peer started reading"
        );
        // Sending goes on at once, while the reader is still at it: the output is at or
        // below the low-water mark, so a message fits.
        session
            .send_binary(payload(sent, MESSAGE))
            .unwrap_or_else(|e| panic!("round {round}: send after on_drain: {e}"));
        sent += 1;
        assert_eq!(done.recv_timeout(WAIT).expect("the reader"), read);
        figures.push(format!(
            "round {round}: {} sent before BufferFull, on_drain {drain_after:.2?} after reading began",
            read - first
        ));
    }
    commands.send(sent - read).unwrap();
    assert_eq!(done.recv_timeout(WAIT).expect("the reader"), sent);
    drop(commands);
    let mut client = reader.join().expect("the reader");

    // The server closes: close frame, the peer's reply, then the server's clean EOF.
    session.close(CloseCode::NORMAL, "done").unwrap();
    let (opcode, close) = client.read_message().unwrap();
    assert_eq!(opcode, OP_CLOSE);
    assert_eq!(close[..2], 1000u16.to_be_bytes());
    client.send_close(1000, "").unwrap();
    assert_eq!(client.read_to_end(0), Ending::Eof);
    drop(client); // the server ends the connection on our EOF
    let disconnect = closed.recv_timeout(WAIT).expect("on_close");
    assert_eq!(disconnect.code, 1000, "{disconnect:?}");
    assert!(disconnect.error.is_none(), "{disconnect:?}");
    // Once stopped, no callback runs any more: one on_drain per refusal, no more.
    server.stop();
    let extra: Vec<usize> = drains.try_iter().collect();
    assert!(
        extra.is_empty(),
        "more on_drain calls than refusals: {extra:?}"
    );
    eprintln!("on_drain: {}", figures.join("; "));
}
