//! A handler callback that panics: its connection is failed with 1011 and reported once, the
//! loop and its other connections go on.

mod common;

use common::{client_frame, RawClient, Recording, OP_CLOSE, OP_TEXT, WAIT};
use std::io::Write;
use std::sync::mpsc;
use ws_mio::{Disconnect, DriverError, Factory, Handler, Message, Server, ServerConfig, Session};

/// Echoes, except that it panics on "boom"; reports every `on_close` (its clones, one per
/// connection, report to the same channel).
#[derive(Clone)]
struct Fragile(mpsc::Sender<Disconnect>);

impl Handler for Fragile {
    fn on_message(&mut self, session: &Session, message: Message) {
        if message.as_bytes() == b"boom" {
            panic!("a bug in the application's callback");
        }
        session.send_binary(message.as_bytes().to_vec()).unwrap();
    }

    fn on_close(&mut self, _session: &Session, disconnect: &Disconnect) {
        self.0.send(disconnect.clone()).unwrap();
    }
}

/// A server with one event loop (so that a panic there would take everyone down with it).
fn one_loop_server(factory: impl Factory) -> Server {
    let mut config = ServerConfig::default();
    config.threads = 1;
    Server::bind("127.0.0.1:0", config, factory).unwrap()
}

#[test]
fn a_panicking_callback_fails_only_its_connection() {
    let (tx, closed) = mpsc::channel();
    let server = one_loop_server(Fragile(tx));
    let mut bystander = RawClient::connect(server.local_addr(), "/").unwrap();
    let mut victim = RawClient::connect(server.local_addr(), "/").unwrap();

    victim.send_frame(true, OP_TEXT, b"boom").unwrap();
    let close = victim.read_frame().unwrap();
    assert_eq!(close.opcode, OP_CLOSE);
    assert_eq!(close.payload, 1011u16.to_be_bytes());
    drop(victim);
    let disconnect = closed.recv_timeout(WAIT).unwrap();
    assert_eq!(disconnect.code, 1011);
    assert!(matches!(
        disconnect.error,
        Some(DriverError::HandlerPanicked)
    ));

    // The loop lives on: the other connection is served, and new ones are accepted.
    bystander.send_frame(true, OP_TEXT, b"still here").unwrap();
    assert_eq!(bystander.read_frame().unwrap().payload, b"still here");
    let mut newcomer = RawClient::connect(server.local_addr(), "/").unwrap();
    newcomer.send_frame(true, OP_TEXT, b"hello").unwrap();
    assert_eq!(newcomer.read_frame().unwrap().payload, b"hello");
    assert!(
        closed.try_recv().is_err(),
        "exactly one disconnection so far"
    );
    drop((bystander, newcomer));
    // Once stop returns no callback runs any more: the bystander's and the newcomer's ends
    // are all that came after the victim's, and neither is a panic's.
    server.stop();
    let rest: Vec<Disconnect> = closed.try_iter().collect();
    assert_eq!(rest.len(), 2, "{rest:?}");
    for disconnect in rest {
        assert_ne!(disconnect.code, 1011, "{disconnect:?}");
        assert!(
            !matches!(disconnect.error, Some(DriverError::HandlerPanicked)),
            "{disconnect:?}"
        );
    }
}

/// Logs every callback of interest as a line; panics on the message "boom".
#[derive(Clone)]
struct Logging(mpsc::Sender<String>);

impl Handler for Logging {
    fn on_message(&mut self, _session: &Session, message: Message) {
        let text = String::from_utf8_lossy(message.as_bytes()).into_owned();
        self.0.send(format!("message {text}")).unwrap();
        if text == "boom" {
            panic!("a bug in the application's callback");
        }
    }
    fn on_error(&mut self, _session: &Session, error: &DriverError) {
        self.0.send(format!("error {error}")).unwrap();
    }
    fn on_close(&mut self, _session: &Session, disconnect: &Disconnect) {
        let line = format!("close {} {:?}", disconnect.code, disconnect.error);
        self.0.send(line).unwrap();
    }
}

/// "boom" and `next` in one write, so that `next` is queued behind the message that panics:
/// returns the close code on the wire and the callbacks seen.
fn panic_with_next_in_the_same_read(next: &[u8]) -> (u16, Vec<String>) {
    let (tx, rx) = mpsc::channel();
    let server = one_loop_server(Logging(tx));
    let mut victim = RawClient::connect(server.local_addr(), "/").unwrap();
    let mut bytes = client_frame(true, OP_TEXT, b"boom", [1, 2, 3, 4]);
    bytes.extend_from_slice(next);
    victim.stream.write_all(&bytes).unwrap();
    let close = victim.read_frame().unwrap();
    assert_eq!(close.opcode, OP_CLOSE);
    drop(victim);
    let mut log = Vec::new();
    while let Ok(line) = rx.recv_timeout(WAIT) {
        let done = line.starts_with("close");
        log.push(line);
        if done {
            break;
        }
    }
    server.stop();
    (
        u16::from_be_bytes([close.payload[0], close.payload[1]]),
        log,
    )
}

/// The failure with 1011 supersedes what came behind the message (the peer's close, a
/// violation, more messages): 1011 on the wire and in `on_close`, nothing more delivered.
#[test]
fn a_panic_supersedes_what_was_queued_behind_its_message() {
    let peer_close = client_frame(true, OP_CLOSE, b"\x03\xe8bye", [5, 6, 7, 8]);
    let unmasked = [0x81, 0x02, b'h', b'i'];
    let message = client_frame(true, OP_TEXT, b"after", [5, 6, 7, 8]);
    for next in [&peer_close[..], &unmasked, &message] {
        let (wire, log) = panic_with_next_in_the_same_read(next);
        assert_eq!(wire, 1011, "{log:?}");
        assert_eq!(
            log,
            [
                "message boom",
                "error a handler callback panicked",
                "close 1011 Some(HandlerPanicked)"
            ]
        );
    }
}

/// A client handler whose `on_open` panics.
struct PanicsOnOpen;

impl Handler for PanicsOnOpen {
    fn on_open(&mut self, _session: &Session) {
        panic!("a bug in the application's on_open");
    }
}

/// `Client::connect` does not report success for a connection its `on_open` just failed.
#[test]
fn a_client_whose_on_open_panics_fails_to_connect() {
    let (factory, probe) = Recording::new(false);
    let server = one_loop_server(factory);
    let url = format!("ws://{}/", server.local_addr());
    let result = ws_mio::Client::connect(&url, ws_mio::ClientConfig::default(), PanicsOnOpen);
    assert!(
        matches!(
            result,
            Err(ws_mio::ConnectError::Failed {
                error: DriverError::HandlerPanicked,
                ..
            })
        ),
        "{result:?}"
    );
    // The server sees the client's 1011.
    let session = probe.opened();
    assert_eq!(probe.closed(session.id()).code, 1011);
    server.stop();
}
