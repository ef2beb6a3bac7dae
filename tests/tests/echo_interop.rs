//! Our clients against echo servers built on other implementations: Python `websockets` and
//! Node `ws` (scripts in `tests/interop/`, started on a free port they print).
//!
//! The facade client does text and binary round trips (a 1 MiB binary among them), answers the
//! server's ping, and closes with a code and reason both ways; `ws_mio::Client` pings the
//! server and gets the pong.

use std::process::Command;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use ws_facade::{ClientConfig, ProtocolClient, WebSocketFacade};
use ws_tests::{node, python, tests_file, Peer};

const WAIT: Duration = Duration::from_secs(15);

/// Which echo server to run.
#[derive(Clone, Copy, Debug)]
enum Impl {
    Python,
    Node,
}

/// Starts the echo server and returns it with the port it printed.
fn start_echo_server(which: Impl) -> (Peer, u16) {
    let (name, mut command) = match which {
        Impl::Python => {
            let mut c = Command::new(python());
            c.arg(tests_file("interop/py_echo_server.py"));
            ("python websockets echo server", c)
        }
        Impl::Node => {
            let mut c = Command::new(node(&["ws"]));
            c.arg(tests_file("interop/node_echo_server.mjs"));
            ("node ws echo server", c)
        }
    };
    let mut peer = Peer::spawn(name, command.args(["--port", "0"]));
    let line = peer.next_line(WAIT);
    let port = line
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| peer.fail(&format!("expected `listening <port>`, got {line:?}")));
    (peer, port)
}

/// What the facade client's callbacks saw.
#[derive(Debug, PartialEq)]
enum Seen {
    Text(String),
    Binary(Vec<u8>),
    /// The plain receive callback (every message, as bytes).
    Received(usize),
    Close(u16, String),
    Disconnected,
}

/// A facade client with every callback recording into a channel.
fn facade_client(client_id: &str, path: &str) -> (Arc<dyn ProtocolClient>, mpsc::Receiver<Seen>) {
    let client = WebSocketFacade::create_client(&{
        let mut config = ClientConfig::default();
        config.client_id = client_id.into();
        config.ping_interval = Duration::from_secs(15);
        config.path = path.into();
        config
    })
    .expect("create_client");
    let (tx, rx) = mpsc::channel();
    let tx = Arc::new(Mutex::new(tx));
    let ws = client
        .as_websocket()
        .expect("the facade client is a WebSocket client");
    let t = Arc::clone(&tx);
    ws.set_text_callback(move |_, text| {
        let _ = t.lock().unwrap().send(Seen::Text(text.to_owned()));
    });
    let t = Arc::clone(&tx);
    ws.set_binary_callback(move |_, data| {
        let _ = t.lock().unwrap().send(Seen::Binary(data.to_vec()));
    });
    let t = Arc::clone(&tx);
    ws.set_close_callback(move |_, code, reason| {
        let _ = t.lock().unwrap().send(Seen::Close(code, reason.to_owned()));
    });
    let t = Arc::clone(&tx);
    client.set_receive_callback(move |data| {
        let _ = t.lock().unwrap().send(Seen::Received(data.len()));
    });
    let t = Arc::clone(&tx);
    client.set_disconnected_callback(move || {
        let _ = t.lock().unwrap().send(Seen::Disconnected);
    });
    (client, rx)
}

fn next(rx: &mpsc::Receiver<Seen>, server: &Peer) -> Seen {
    rx.recv_timeout(WAIT)
        .unwrap_or_else(|_| server.fail(&format!("the facade client got nothing within {WAIT:?}")))
}

/// Expects a message (typed callback first, then the plain receive callback).
fn expect_message(rx: &mpsc::Receiver<Seen>, server: &Peer, expected: Seen) {
    let len = match &expected {
        Seen::Text(t) => t.len(),
        Seen::Binary(b) => b.len(),
        other => panic!("not a message: {other:?}"),
    };
    let got = next(rx, server);
    if got != expected {
        let shown = match &got {
            Seen::Binary(b) if b.len() > 64 => format!("Binary({} bytes)", b.len()),
            other => format!("{other:?}"),
        };
        server.fail(&format!(
            "expected the echo of a {len}-byte message, got {shown}"
        ));
    }
    assert_eq!(next(rx, server), Seen::Received(len));
}

fn round_trips_and_client_close(which: Impl) {
    let (mut server, port) = start_echo_server(which);
    let (client, rx) = facade_client("rusty", "/echo");
    client
        .start("127.0.0.1", port)
        .expect("connect to the echo server");
    assert!(client.is_connected());
    // The peer saw our path and the client id header.
    assert_eq!(server.next_line(WAIT), "open /echo rusty");
    let ws = client.as_websocket().unwrap();

    ws.send_text("hello ✓ from rust".into()).unwrap();
    expect_message(&rx, &server, Seen::Text("hello ✓ from rust".into()));

    // send() is binary by default.
    client.send(vec![0, 1, 2, 0xfe, 0xff]).unwrap();
    expect_message(&rx, &server, Seen::Binary(vec![0, 1, 2, 0xfe, 0xff]));

    ws.send_text(String::new()).unwrap();
    expect_message(&rx, &server, Seen::Text(String::new()));

    // 1 MiB: split into frames by us, reassembled by the peer; the peer's echo (framed its
    // own way) reassembled by us into one message.
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
    client.send(big.clone()).expect("send 1 MiB");
    expect_message(&rx, &server, Seen::Binary(big));

    // The server pings us: our automatic pong reaches it (it answers "pong <payload>").
    ws.send_text("cmd:ping are you there".into()).unwrap();
    expect_message(&rx, &server, Seen::Text("pong are you there".into()));

    // We close with a code and reason: the peer receives them and echoes them back.
    ws.close(4001, "bye from rust").unwrap();
    assert_eq!(
        next(&rx, &server),
        Seen::Close(4001, "bye from rust".into())
    );
    assert_eq!(next(&rx, &server), Seen::Disconnected);
    assert_eq!(server.next_line(WAIT), "closed 4001 bye from rust");
    assert!(!client.is_connected());
    client.stop().unwrap();
}

fn server_close_reaches_client(which: Impl) {
    let (mut server, port) = start_echo_server(which);
    let (client, rx) = facade_client("closer", "/bye");
    client
        .start("127.0.0.1", port)
        .expect("connect to the echo server");
    assert_eq!(server.next_line(WAIT), "open /bye closer");
    let ws = client.as_websocket().unwrap();
    ws.send_text("cmd:close 4002 server says bye".into())
        .unwrap();
    assert_eq!(
        next(&rx, &server),
        Seen::Close(4002, "server says bye".into())
    );
    assert_eq!(next(&rx, &server), Seen::Disconnected);
    // We answered with a close frame echoing the code (RFC 6455 5.5.1; the reason of an
    // answer is ours to choose: empty or the same).
    assert_echoed_close(&mut server, 4002, "server says bye");
    client.wait_for_stop();
    assert!(!client.is_running());
    assert!(client.send(b"too late".to_vec()).is_err());
    client.stop().unwrap();
}

/// The peer's `closed <code> <reason>` line for the close frame that answered its own.
fn assert_echoed_close(server: &mut Peer, code: u16, reason: &str) {
    let line = server.next_line(WAIT);
    let bare = format!("closed {code} ");
    if line != bare && line != format!("{bare}{reason}") {
        server.fail(&format!(
            "expected {bare:?} (+ optional {reason:?}), got {line:?}"
        ));
    }
}

/// A ws-mio handler that reports pongs and messages (the client's own: no lock needed).
struct PingHandler(mpsc::Sender<(&'static str, Vec<u8>)>);

impl ws_mio::Handler for PingHandler {
    fn on_pong(&mut self, _session: &ws_mio::Session, payload: &[u8]) {
        let _ = self.0.send(("pong", payload.to_vec()));
    }
    fn on_message(&mut self, _session: &ws_mio::Session, message: ws_mio::Message) {
        let _ = self.0.send(("message", message.as_bytes().to_vec()));
    }
}

fn client_ping_gets_pong(which: Impl) {
    let (mut server, port) = start_echo_server(which);
    let (tx, rx) = mpsc::channel();
    let client = ws_mio::Client::connect(
        &format!("ws://127.0.0.1:{port}/ping"),
        ws_mio::ClientConfig::default(),
        PingHandler(tx),
    )
    .expect("ws_mio client connects");
    assert_eq!(server.next_line(WAIT), "open /ping -");
    let session = client.session();
    for payload in [&b"ping one"[..], b"", &[0xab; 125]] {
        session.ping(payload.to_vec()).expect("ping");
        let got = rx
            .recv_timeout(WAIT)
            .unwrap_or_else(|_| server.fail("no pong within the wait"));
        assert_eq!(got, ("pong", payload.to_vec()));
    }
    // A ping payload over 125 bytes is refused locally.
    assert!(session.ping(vec![0; 126]).is_err());
    // The connection is still fine after the pings.
    session.send_text("after pings").unwrap();
    let got = rx
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| server.fail("no echo within the wait"));
    assert_eq!(got, ("message", b"after pings".to_vec()));
    if let Impl::Node = which {
        // The Node peer also reports the pings it received.
        assert_eq!(server.next_line(WAIT), "ping 70696e67206f6e65");
        assert_eq!(server.next_line(WAIT), "ping ");
        assert_eq!(server.next_line(WAIT), format!("ping {}", "ab".repeat(125)));
    }
    client.stop();
    assert_eq!(server.next_line(WAIT), "closed 1000 ");
}

#[test]
fn facade_client_round_trips_with_python_echo_server() {
    round_trips_and_client_close(Impl::Python);
}

#[test]
fn facade_client_round_trips_with_node_echo_server() {
    round_trips_and_client_close(Impl::Node);
}

#[test]
fn python_server_close_code_and_reason_reach_facade_client() {
    server_close_reaches_client(Impl::Python);
}

#[test]
fn node_server_close_code_and_reason_reach_facade_client() {
    server_close_reaches_client(Impl::Node);
}

#[test]
fn ws_mio_client_ping_gets_pong_from_python() {
    client_ping_gets_pong(Impl::Python);
}

#[test]
fn ws_mio_client_ping_gets_pong_from_node() {
    client_ping_gets_pong(Impl::Node);
}

#[test]
fn missing_peer_messages_say_how_to_install() {
    // The peers' lookups fail loudly with an install hint rather than skipping: check the
    // message of one that cannot exist.
    let err = std::panic::catch_unwind(|| node(&["no-such-package-for-ws-tests"]))
        .expect_err("a missing npm package must fail the test");
    let message = err.downcast_ref::<String>().cloned().unwrap_or_default();
    assert!(
        message.contains("bash .ci/run") && message.contains("npm ci --prefix tests"),
        "unhelpful message: {message}"
    );
}
