//! `wss://` against other implementations, both ways, with certificates made at test time
//! (`ws_tests::certs`): Python `websockets` (`ssl`) and Node `ws` (over Node's `https`) as
//! clients of our server and as servers for our client, verifying `localhost` against the test
//! CA, compression on; an old client offering only TLS 1.0/1.1 is refused; a client that
//! sends 8 MiB without reading gets every echo back (the read-pause rule holds over TLS, no
//! reply refused); and the chat server's `--tls-cert`/`--tls-key` with
//! `chat_client --tls --ca`.

use std::process::Command;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use ws_mio::ws_proto::handshake::UpgradeRequest;
use ws_mio::{
    tls, Client, ClientConfig, Decision, DriverError, Factory, Handler, Message, Peer, Server,
    ServerConfig, Session,
};
use ws_proto::extension::deflate::PerMessageDeflate;
use ws_tests::certs::TestCerts;
use ws_tests::{build_examples, free_port, interop_peer, PeerImpl};

const WAIT: Duration = Duration::from_secs(20);

/// An echo server that reports who connected and what failed before a handler existed.
struct Echo {
    peers: Mutex<mpsc::Sender<Result<Peer, DriverError>>>,
}

#[derive(Clone)]
struct EchoHandler;

impl Handler for EchoHandler {
    fn on_message(&mut self, session: &Session, message: Message) {
        let _ = session.send(message);
    }
}

impl Factory for Echo {
    type Handler = EchoHandler;
    fn on_request(&self, _request: &UpgradeRequest, peer: &Peer) -> Decision<EchoHandler> {
        let _ = self.peers.lock().unwrap().send(Ok(peer.clone()));
        Decision::accept(EchoHandler)
    }
    fn on_error(&self, _peer: Option<std::net::SocketAddr>, error: &DriverError) {
        let _ = self.peers.lock().unwrap().send(Err(error.clone()));
    }
}

/// Our TLS echo server (compression on), from the PEM files.
fn our_server(certs: &TestCerts) -> (Server, mpsc::Receiver<Result<Peer, DriverError>>) {
    let mut config = ServerConfig::default();
    config.threads = 1;
    config.protocol.max_message_size = 4 << 20;
    config.tls = Some(tls::server_config_from_pem(certs.cert(), certs.key()).unwrap());
    config
        .protocol
        .extensions
        .push(Arc::new(PerMessageDeflate::default()));
    let (tx, rx) = mpsc::channel();
    let factory = Echo {
        peers: Mutex::new(tx),
    };
    (Server::bind("127.0.0.1:0", config, factory).unwrap(), rx)
}

fn their_client_against_us(which: PeerImpl) {
    let certs = TestCerts::new();
    let (server, peers) = our_server(&certs);
    let url = format!("wss://localhost:{}/", server.local_addr().port());
    let ca = certs.ca();
    let mut client = interop_peer(which, &["client", &url, "--ca", ca.to_str().unwrap()]);
    let who = peers
        .recv_timeout(WAIT)
        .expect("a request")
        .expect("no failure");
    assert!(who.tls);
    assert_eq!(who.server_name.as_deref(), Some("localhost"));
    let negotiated = client.line_where(WAIT, |l| l.starts_with("extensions "));
    assert!(negotiated.contains("permessage-deflate"), "{negotiated}");
    let done = client.line_where(WAIT, |l| l.starts_with("ok ") || l.starts_with("mismatch"));
    assert_eq!(done, "ok 8", "{which:?}");
}

#[test]
fn python_client_over_tls_against_our_server() {
    their_client_against_us(PeerImpl::Python);
}

#[test]
fn node_client_over_tls_against_our_server() {
    their_client_against_us(PeerImpl::Node);
}

/// Forwards messages to the test.
struct Forward(mpsc::Sender<Message>);

impl Handler for Forward {
    fn on_message(&mut self, _session: &Session, message: Message) {
        let _ = self.0.send(message);
    }
}

fn our_client_against(which: PeerImpl) {
    let certs = TestCerts::new();
    let (cert, key) = (certs.cert(), certs.key());
    let mut server = interop_peer(
        which,
        &[
            "server",
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
        ],
    );
    let line = server.next_line(WAIT);
    let port: u16 = line
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| server.fail(&format!("expected `listening <port>`, got {line:?}")));
    let mut config = ClientConfig::default();
    config.tls = Some(tls::client_config_with_ca_pem(certs.ca()).unwrap());
    config
        .protocol
        .extensions
        .push(Arc::new(PerMessageDeflate::default()));
    let (tx, rx) = mpsc::channel();
    let url = format!("wss://localhost:{port}/");
    let client = Client::connect(&url, config, Forward(tx))
        .unwrap_or_else(|e| server.fail(&format!("connect: {e}")));
    assert_eq!(client.session().extensions()[0].name, "permessage-deflate");
    let big: Vec<u8> = (0..1 << 20).map(|i: u32| (i * 31 % 251) as u8).collect();
    for message in [
        Message::Text("hello over TLS ✓".into()),
        Message::Binary(big),
        Message::Text(String::new()),
    ] {
        client.session().send(message.clone()).unwrap();
        let echo = rx.recv_timeout(WAIT).expect("echo");
        assert!(echo == message, "{which:?}: the echo differs");
    }
}

#[test]
fn our_client_over_tls_against_python() {
    our_client_against(PeerImpl::Python);
}

#[test]
fn our_client_over_tls_against_node() {
    our_client_against(PeerImpl::Node);
}

#[test]
fn a_client_offering_only_tls_1_0_and_1_1_is_refused() {
    let certs = TestCerts::new();
    let (server, errors) = our_server(&certs);
    let url = format!("wss://localhost:{}/", server.local_addr().port());
    let ca = certs.ca();
    let mut old = interop_peer(
        PeerImpl::Python,
        &["old-tls", &url, "--ca", ca.to_str().unwrap()],
    );
    let answer = old.next_line(WAIT);
    assert!(answer.starts_with("refused"), "{answer}");
    // Refused by us (our alert reached it), not by the client's own OpenSSL policy.
    assert!(answer.contains("ALERT"), "{answer}");
    match errors.recv_timeout(WAIT).expect("the server's report") {
        Err(DriverError::Tls(e)) => {
            assert!(e.to_string().contains("peer is incompatible"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn chat_server_with_tls_flags_and_chat_client_with_tls_and_ca() {
    let examples = build_examples("ws-facade", &["chat_server", "chat_client"]);
    let certs = TestCerts::new();
    let port = free_port();
    let mut server = ws_tests::Peer::spawn(
        "chat_server --tls-cert --tls-key",
        Command::new(examples.join("chat_server")).args([
            "--port",
            &port.to_string(),
            "--tls-cert",
            certs.cert().to_str().unwrap(),
            "--tls-key",
            certs.key().to_str().unwrap(),
        ]),
    )
    .with_grace(Duration::ZERO);
    assert_eq!(
        server.next_line(WAIT),
        format!("[chat] wss://localhost:{port}/chat")
    );
    assert_eq!(
        server.next_line(WAIT),
        format!("[chat] open https://localhost:{port}/ in a browser to join")
    );
    let mut client = ws_tests::Peer::spawn(
        "chat_client --tls --ca",
        Command::new(examples.join("chat_client")).args([
            "tina",
            "--host",
            "localhost",
            "--port",
            &port.to_string(),
            "--tls",
            "--ca",
            certs.ca().to_str().unwrap(),
            "--expect",
            "3",
        ]),
    );
    for line in ["hello chat", "anyone here?", "goodbye"] {
        assert_eq!(client.next_line(WAIT), format!("[tina] tina: {line}"));
    }
    assert!(client.finish(WAIT).success(), "{}", client.stderr());
    // Without the CA, the same client refuses the server, saying why.
    let mut refused = ws_tests::Peer::spawn(
        "chat_client --tls",
        Command::new(examples.join("chat_client")).args([
            "rex",
            "--host",
            "localhost",
            "--port",
            &port.to_string(),
            "--tls",
        ]),
    );
    let status = refused.finish(WAIT);
    assert!(!status.success());
    let stderr = refused.stderr();
    assert!(stderr.contains("UnknownIssuer"), "{stderr}");
}

/// Counts sends the server refused (there must be none).
#[derive(Clone)]
struct CountingEcho(Arc<std::sync::atomic::AtomicUsize>);

impl Handler for CountingEcho {
    fn on_message(&mut self, session: &Session, message: Message) {
        if session.send(message).is_err() {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[test]
fn a_client_that_does_not_read_gets_every_reply_over_tls() {
    let certs = TestCerts::new();
    let refused = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut config = ServerConfig::default();
    config.threads = 1;
    config.tls = Some(tls::server_config_from_pem(certs.cert(), certs.key()).unwrap());
    let server = Server::bind("127.0.0.1:0", config, CountingEcho(Arc::clone(&refused))).unwrap();
    let url = format!("wss://localhost:{}/", server.local_addr().port());
    let ca = certs.ca();
    // 512 messages of 16 KiB: 8 MiB, 8 times the output limit, while the client reads nothing
    // for 2 s. Uncompressed, so that the bytes are as many on the wire.
    let mut flood = interop_peer(
        PeerImpl::Python,
        &[
            "flood",
            &url,
            "--ca",
            ca.to_str().unwrap(),
            "--count",
            "512",
            "--no-compression",
        ],
    );
    assert_eq!(flood.next_line(Duration::from_secs(60)), "flood ok 512");
    assert_eq!(
        refused.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "replies refused"
    );
}
