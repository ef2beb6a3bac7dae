//! permessage-deflate (RFC 7692) against other implementations, both ways: Python `websockets`
//! and Node `ws` (scripts `tests/interop/*_deflate_peer.*`) as servers for our client and as
//! clients of our server, with and without context takeover. Each side sends small, large,
//! repeated, empty, binary and incompressible messages and checks every echo; the negotiated
//! `Sec-WebSocket-Extensions` is checked on both sides.

use std::sync::{mpsc, Arc};
use std::time::Duration;

use ws_mio::{Client, ClientConfig, Handler, Message, Server, ServerConfig, Session};
use ws_proto::extension::deflate::{DeflateConfig, PerMessageDeflate};
use ws_proto::handshake::ExtensionOffer;
use ws_tests::{interop_peer, Peer, PeerImpl};

const WAIT: Duration = Duration::from_secs(20);

/// Our settings: the defaults, or no context takeover asked of both sides.
fn our_deflate(takeover: bool) -> DeflateConfig {
    let mut config = DeflateConfig::default();
    config.server_no_context_takeover = !takeover;
    config.client_no_context_takeover = !takeover;
    config
}

fn peer(which: PeerImpl, args: &[&str], takeover: bool) -> Peer {
    let mut args = args.to_vec();
    if !takeover {
        args.push("--no-context-takeover");
    }
    interop_peer(which, &args)
}

/// The messages we send: the same kinds as the peers' own `exchange()`.
fn exchange() -> Vec<Message> {
    let record = r#"{"user":"participant","text":"the same chat message, again and again","n":0}"#;
    let big: String = record.repeat(300)[..16 << 10].into();
    let mut seed = 7u32;
    let random: Vec<u8> = (0..64 << 10)
        .map(|_| {
            seed = seed.wrapping_mul(1_103_515_245).wrapping_add(12345);
            (seed >> 24) as u8
        })
        .collect();
    vec![
        Message::Text("hello".into()),
        Message::Text(big.clone()),
        Message::Text(big),
        Message::Text(String::new()),
        Message::Binary(Vec::new()),
        Message::Text("żółć ünïcödé ✓ ".repeat(100)),
        Message::Binary(vec![0; 1 << 20]),
        Message::Binary(random),
    ]
}

/// Forwards what the connection sees to the test.
#[derive(Clone)]
struct Recorder(mpsc::Sender<Seen>);

#[derive(Debug, PartialEq)]
enum Seen {
    Open(Vec<ExtensionOffer>),
    Message(Message),
}

impl Handler for Recorder {
    fn on_open(&mut self, session: &Session) {
        let _ = self.0.send(Seen::Open(session.extensions().to_vec()));
    }
    fn on_message(&mut self, _session: &Session, message: Message) {
        let _ = self.0.send(Seen::Message(message));
    }
}

/// An echo handler that also reports each session's extensions.
#[derive(Clone)]
struct Echo(mpsc::Sender<Vec<ExtensionOffer>>);

impl Handler for Echo {
    fn on_open(&mut self, session: &Session) {
        let _ = self.0.send(session.extensions().to_vec());
    }
    fn on_message(&mut self, session: &Session, message: Message) {
        let _ = session.send(message);
    }
}

fn describe(m: &Message) -> String {
    match m {
        Message::Text(t) if t.len() > 40 => format!("Text({} bytes)", t.len()),
        Message::Binary(b) if b.len() > 40 => format!("Binary({} bytes)", b.len()),
        other => format!("{other:?}"),
    }
}

/// Our client against the peer's compressing echo server.
fn our_client_against(which: PeerImpl, takeover: bool) {
    let mut server = peer(which, &["server"], takeover);
    let line = server.next_line(WAIT);
    let port: u16 = line
        .strip_prefix("listening ")
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| server.fail(&format!("expected `listening <port>`, got {line:?}")));
    let mut config = ClientConfig::default();
    config.protocol.max_message_size = 4 << 20;
    config
        .protocol
        .extensions
        .push(Arc::new(PerMessageDeflate::new(our_deflate(takeover))));
    let (tx, rx) = mpsc::channel();
    let client = Client::connect(&format!("ws://127.0.0.1:{port}/"), config, Recorder(tx))
        .unwrap_or_else(|e| server.fail(&format!("connect: {e}")));
    let Ok(Seen::Open(extensions)) = rx.recv_timeout(WAIT) else {
        server.fail("no open event")
    };
    // The peer's response, as it printed it and as we parsed it.
    let printed = server.line_where(WAIT, |l| l.starts_with("extensions "));
    assert_eq!(extensions.len(), 1, "{which:?}: {extensions:?} ({printed})");
    assert_eq!(extensions[0].to_string(), printed["extensions ".len()..]);
    assert_eq!(extensions[0].name, "permessage-deflate");
    for flag in ["server_no_context_takeover", "client_no_context_takeover"] {
        assert_eq!(
            extensions[0].param(flag).is_some(),
            !takeover,
            "{which:?}: {flag} in {printed}"
        );
    }
    for message in exchange() {
        client.session().send(message.clone()).expect("send");
        match rx.recv_timeout(WAIT) {
            Ok(Seen::Message(echo)) if echo == message => {}
            other => server.fail(&format!(
                "{which:?}: expected the echo of {}, got {:?}",
                describe(&message),
                other.map(|s| match s {
                    Seen::Message(m) => describe(&m),
                    other => format!("{other:?}"),
                })
            )),
        }
    }
    drop(client);
}

/// The peer's compressing client against our echo server.
fn peer_client_against_us(which: PeerImpl, takeover: bool) {
    let mut config = ServerConfig::default();
    config.threads = 1;
    config.protocol.max_message_size = 4 << 20;
    config
        .protocol
        .extensions
        .push(Arc::new(PerMessageDeflate::new(our_deflate(takeover))));
    let (tx, rx) = mpsc::channel();
    let server = Server::bind("127.0.0.1:0", config, Echo(tx)).expect("bind");
    let url = format!("ws://{}/", server.local_addr());
    let mut client = peer(which, &["client", &url], takeover);
    let printed = client.line_where(WAIT, |l| l.starts_with("extensions "));
    let expected = if takeover {
        "extensions permessage-deflate; server_max_window_bits=12; client_max_window_bits=12"
    } else {
        "extensions permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
         server_max_window_bits=12; client_max_window_bits=12"
    };
    assert_eq!(printed, expected, "{which:?}");
    let ours = rx.recv_timeout(WAIT).expect("our on_open");
    assert_eq!(format!("extensions {}", ours[0]), expected);
    let done = client.line_where(WAIT, |l| l.starts_with("ok ") || l.starts_with("mismatch"));
    assert_eq!(done, format!("ok {}", 8), "{which:?}");
    drop(server);
}

#[test]
fn our_client_against_python_with_context_takeover() {
    our_client_against(PeerImpl::Python, true);
}

#[test]
fn our_client_against_python_without_context_takeover() {
    our_client_against(PeerImpl::Python, false);
}

#[test]
fn our_client_against_node_with_context_takeover() {
    our_client_against(PeerImpl::Node, true);
}

#[test]
fn our_client_against_node_without_context_takeover() {
    our_client_against(PeerImpl::Node, false);
}

#[test]
fn python_client_against_our_server_with_context_takeover() {
    peer_client_against_us(PeerImpl::Python, true);
}

#[test]
fn python_client_against_our_server_without_context_takeover() {
    peer_client_against_us(PeerImpl::Python, false);
}

#[test]
fn node_client_against_our_server_with_context_takeover() {
    peer_client_against_us(PeerImpl::Node, true);
}

#[test]
fn node_client_against_our_server_without_context_takeover() {
    peer_client_against_us(PeerImpl::Node, false);
}
