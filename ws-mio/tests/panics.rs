//! A handler callback that panics: its connection is failed with 1011 and reported once, the
//! loop and its other connections go on.

mod common;

use common::{RawClient, OP_CLOSE, OP_TEXT, WAIT};
use std::sync::{mpsc, Mutex};
use ws_mio::{Disconnect, DriverError, Handler, Message, Server, ServerConfig, Session};

/// Echoes, except that it panics on "boom"; reports every `on_close`.
struct Fragile(Mutex<mpsc::Sender<Disconnect>>);

impl Handler for Fragile {
    fn on_message(&self, session: &Session, message: Message) {
        if message.as_bytes() == b"boom" {
            panic!("a bug in the application's callback");
        }
        session.send_binary(message.as_bytes().to_vec()).unwrap();
    }

    fn on_close(&self, _session: &Session, disconnect: &Disconnect) {
        self.0.lock().unwrap().send(disconnect.clone()).unwrap();
    }
}

#[test]
fn a_panicking_callback_fails_only_its_connection() {
    let (tx, closed) = mpsc::channel();
    let config = ServerConfig {
        threads: 1,
        ..ServerConfig::default()
    };
    let server = Server::bind("127.0.0.1:0", config, Fragile(Mutex::new(tx))).unwrap();
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
    server.stop();
}
