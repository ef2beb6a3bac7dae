//! What the driver logs through the `log` facade: a connection's open and close (with the
//! peer, the path, the close code and who closed), refused and rejected upgrades (with the
//! peer), and nothing about a message's content, nor anything per message above `trace`.
//!
//! The tests of this file share one process-wide logger: each picks its own records by the
//! peer address of its client (a port no other test uses at the same time).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log, Metadata, Record};
use tungstenite::protocol::frame::coding::CloseCode as TCloseCode;
use tungstenite::protocol::frame::CloseFrame;
use tungstenite::{Message as TMessage, WebSocket};
use ws_mio::ws_proto::handshake::UpgradeRequest;
use ws_mio::{CloseCode, Decision, Factory, Handler, Message, Server, ServerConfig, Session};

const WAIT: Duration = Duration::from_secs(10);

/// One log record, formatted.
#[derive(Debug, Clone)]
struct Logged {
    level: Level,
    target: String,
    text: String,
}

/// Every record of the driver in this process, in order.
static RECORDS: Mutex<Vec<Logged>> = Mutex::new(Vec::new());

/// Keeps every record of the driver (not those of tungstenite or mio, which log frames at
/// trace), and prints it to stderr (shown with `--nocapture`).
struct TestLogger;

impl Log for TestLogger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        metadata.target().starts_with("ws_mio")
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let logged = Logged {
            level: record.level(),
            target: record.target().to_owned(),
            text: record.args().to_string(),
        };
        eprintln!("{:<5} {}: {}", logged.level, logged.target, logged.text);
        RECORDS
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(logged);
    }

    fn flush(&self) {}
}

static LOGGER: TestLogger = TestLogger;

/// Installs the logger, once for the whole process, at every level.
fn install() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        log::set_logger(&LOGGER).expect("no other logger in this test binary");
        log::set_max_level(LevelFilter::Trace);
    });
}

/// The records so far that mention `marker`.
fn records_with(marker: &str) -> Vec<Logged> {
    RECORDS
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|r| r.text.contains(marker))
        .cloned()
        .collect()
}

/// Waits for a record mentioning every one of `parts`; panics with what was logged if none
/// comes.
fn wait_for(parts: &[&str]) -> Logged {
    let deadline = Instant::now() + WAIT;
    loop {
        let found = records_with(parts[0])
            .into_iter()
            .find(|r| parts.iter().all(|p| r.text.contains(p)));
        if let Some(found) = found {
            return found;
        }
        if Instant::now() > deadline {
            panic!(
                "no record with {parts:?}; records for {}: {:#?}",
                parts[0],
                records_with(parts[0])
            );
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Echoes, and closes with 1000 "done" when asked to.
#[derive(Clone)]
struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, session: &Session, message: Message) {
        if message.as_bytes() == b"close, please" {
            let _ = session.close(CloseCode::NORMAL, "done");
        } else {
            let _ = session.send(message);
        }
    }
}

fn server(path: &str, factory: impl Factory) -> Server {
    let mut config = ServerConfig::default();
    config.threads = 1;
    config.protocol.path = Some(path.to_owned());
    Server::bind("127.0.0.1:0", config, factory).expect("bind")
}

/// A tungstenite client on `path`, and the address the server sees it from.
fn client(server: &Server, path: &str) -> (WebSocket<TcpStream>, SocketAddr) {
    let addr = server.local_addr();
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let local = stream.local_addr().unwrap();
    let (ws, response) =
        tungstenite::client(format!("ws://{addr}{path}"), stream).expect("handshake");
    assert_eq!(response.status(), 101);
    (ws, local)
}

/// Reads until the server closes TCP (answering the closing handshake on the way), then
/// drops the socket: the server waits for our FIN before the connection ends.
fn read_to_end(mut ws: WebSocket<TcpStream>) {
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => return,
            Err(e) => panic!("expected a clean close, got {e}"),
        }
    }
}

/// Sends a raw upgrade request for `path` and returns the status line of the answer, with
/// the address the server sees the client from.
fn raw_upgrade(server: &Server, path: &str) -> (String, SocketAddr) {
    let mut stream = TcpStream::connect(server.local_addr()).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let local = stream.local_addr().unwrap();
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    let status = response.lines().next().unwrap_or_default().to_owned();
    (status, local)
}

#[test]
fn one_session_logs_its_open_and_its_close_and_nothing_of_its_message() {
    install();
    let server = server("/logged", Echo);
    let (mut ws, local) = client(&server, "/logged?room=1");
    let peer = format!("peer={local}");
    let payload = format!("payload-{}-not-for-logs", local.port());
    ws.send(TMessage::Text(payload.clone().into())).unwrap();
    assert_eq!(ws.read().unwrap(), TMessage::Text(payload.clone().into()));
    ws.close(Some(CloseFrame {
        code: TCloseCode::Normal,
        reason: "bye".into(),
    }))
    .unwrap();
    read_to_end(ws);

    let open = wait_for(&["server connection open:", &peer]);
    assert_eq!(open.level, Level::Debug);
    assert!(open.text.contains(r#"path="/logged?room=1""#), "{open:?}");
    assert!(open.text.contains("subprotocol=-"), "{open:?}");
    let close = wait_for(&["server connection closed:", &peer]);
    assert_eq!(close.level, Level::Debug);
    for part in ["code=1000", r#"reason="bye""#, "by=peer"] {
        assert!(close.text.contains(part), "{part} not in {close:?}");
    }
    assert!(!close.text.contains("error="), "{close:?}");
    assert!(close.target.starts_with("ws_mio"), "{close:?}");

    // The message: sizes at trace, its content nowhere.
    let message = wait_for(&["text message:", &peer]);
    assert_eq!(message.level, Level::Trace);
    assert!(
        message.text.contains(&format!("bytes={}", payload.len())),
        "{message:?}"
    );
    let mentions = records_with(&payload);
    assert!(
        mentions.iter().all(|r| r.level == Level::Trace),
        "above trace: {mentions:?}"
    );
    assert!(mentions.is_empty(), "payload logged: {mentions:?}");
    // Per message, nothing above trace at all.
    let above_trace: Vec<_> = records_with(&peer)
        .into_iter()
        .filter(|r| r.level < Level::Trace)
        .collect();
    assert_eq!(above_trace.len(), 2, "{above_trace:#?}");
    server.stop();
}

#[test]
fn a_close_started_by_the_server_is_logged_as_ours() {
    install();
    let server = server("/ours", Echo);
    let (mut ws, local) = client(&server, "/ours");
    ws.send(TMessage::Text("close, please".into())).unwrap();
    read_to_end(ws);
    let close = wait_for(&["server connection closed:", &format!("peer={local}")]);
    for part in ["code=1000", r#"reason="done""#] {
        assert!(close.text.contains(part), "{part} not in {close:?}");
    }
    assert!(close.text.ends_with(" by=us"), "{close:?}");
    server.stop();
}

#[test]
fn a_peer_that_vanishes_is_logged_as_abnormal() {
    install();
    let server = server("/gone", Echo);
    let (ws, local) = client(&server, "/gone");
    wait_for(&["server connection open:", &format!("peer={local}")]);
    drop(ws);
    let close = wait_for(&["server connection closed:", &format!("peer={local}")]);
    for part in ["code=1006", "by=abnormal", "error="] {
        assert!(close.text.contains(part), "{part} not in {close:?}");
    }
    server.stop();
}

#[test]
fn a_refused_upgrade_is_logged_with_the_peer() {
    install();
    let server = server("/only", Echo);
    let (status, local) = raw_upgrade(&server, "/wrong");
    assert!(status.starts_with("HTTP/1.1 404"), "{status}");
    let refused = wait_for(&["upgrade refused:", &format!("peer={local}")]);
    assert_eq!(refused.level, Level::Debug);
    for part in ["status=404", r#"error="path not found""#] {
        assert!(refused.text.contains(part), "{part} not in {refused:?}");
    }
    // It never opened, so it has no open or close line.
    assert!(records_with(&format!("peer={local}"))
        .iter()
        .all(|r| !r.text.contains("connection open")));
    server.stop();
}

/// Rejects every request with 403.
struct Doorman;

impl Factory for Doorman {
    type Handler = Echo;

    fn on_request(&self, _request: &UpgradeRequest, _peer: &ws_mio::Peer) -> Decision<Echo> {
        Decision::reject(403, "members only\n")
    }
}

#[test]
fn a_rejection_by_the_factory_is_logged_with_the_peer_and_the_path() {
    install();
    let server = server("/club", Doorman);
    let (status, local) = raw_upgrade(&server, "/club?guest=1");
    assert!(status.starts_with("HTTP/1.1 403"), "{status}");
    let rejected = wait_for(&["upgrade rejected by the factory:", &format!("peer={local}")]);
    for part in [
        r#"path="/club?guest=1""#,
        "status=403",
        r#"reason="members only""#,
    ] {
        assert!(rejected.text.contains(part), "{part} not in {rejected:?}");
    }
    server.stop();
}

/// Panics on every message.
#[derive(Clone)]
struct Fragile;

impl Handler for Fragile {
    fn on_message(&mut self, _session: &Session, _message: Message) {
        panic!("fragile handler, as the test wants");
    }
}

#[test]
fn a_panicking_callback_is_logged_with_its_name_and_the_peer() {
    install();
    let server = server("/fragile", Fragile);
    let (mut ws, local) = client(&server, "/fragile");
    ws.send(TMessage::Text("boom".into())).unwrap();
    read_to_end(ws);
    let peer = format!("peer={local}");
    let panicked = wait_for(&["Handler::on_message panicked:", &peer]);
    assert_eq!(panicked.level, Level::Error);
    assert!(panicked.text.contains(r#"path="/fragile""#), "{panicked:?}");
    let close = wait_for(&["server connection closed:", &peer]);
    for part in [
        "code=1011",
        "by=us-failing",
        r#"error="a handler callback panicked""#,
    ] {
        assert!(close.text.contains(part), "{part} not in {close:?}");
    }
    server.stop();
}

/// Hands its session to the test when it opens.
#[derive(Clone)]
struct Handing(std::sync::mpsc::SyncSender<Session>);

impl Handler for Handing {
    fn on_open(&mut self, session: &Session) {
        let _ = self.0.send(session.clone());
    }
}

#[test]
fn a_slow_consumer_closed_by_the_policy_is_logged() {
    install();
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let mut config = ServerConfig::default();
    config.threads = 1;
    config.backpressure = ws_mio::BackpressurePolicy::Close(CloseCode::POLICY_VIOLATION);
    config.protocol.max_buffered_output = 256 << 10;
    // The close frame waits behind data the peer never reads: the connection ends at this.
    config.protocol.close_timeout = Duration::from_millis(200);
    let server = Server::bind("127.0.0.1:0", config, Handing(tx)).expect("bind");
    let (ws, local) = client(&server, "/");
    let session = rx.recv_timeout(WAIT).expect("opened");
    // The peer reads nothing: sends are refused once the socket buffers and the output are full.
    let deadline = Instant::now() + WAIT;
    while session.send_binary(vec![0u8; 64 << 10]).is_ok() {
        assert!(Instant::now() < deadline, "no send refused");
    }
    let peer = format!("peer={local}");
    let slow = wait_for(&["slow consumer closed:", &peer]);
    assert_eq!(slow.level, Level::Info);
    assert!(slow.text.contains("code=1008"), "{slow:?}");
    let close = wait_for(&["server connection closed:", &peer]);
    for part in [
        "code=1008",
        "by=us-failing",
        r#"error="closed as a slow consumer""#,
    ] {
        assert!(close.text.contains(part), "{part} not in {close:?}");
    }
    drop(ws);
    server.stop();
}

#[test]
fn a_refusal_at_capacity_is_logged_with_the_peer() {
    install();
    let mut config = ServerConfig::default();
    config.threads = 1;
    config.max_connections = 1;
    let server = Server::bind("127.0.0.1:0", config, Echo).expect("bind");
    let (ws, _) = client(&server, "/");
    let (status, local) = raw_upgrade(&server, "/");
    assert!(status.starts_with("HTTP/1.1 503"), "{status}");
    let refused = wait_for(&["at capacity", &format!("peer={local}")]);
    assert_eq!(refused.level, Level::Warn);
    assert!(refused.text.contains("503"), "{refused:?}");
    drop(ws);
    server.stop();
}
