//! A callback on one event loop (a client's) sending through a session owned by another loop
//! (a server's) must reach that session's connection, not a connection of the calling loop.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ws_mio::{Client, ClientConfig, Handler, Message, Server, ServerConfig, Session};

/// The server's handler; its clones (one per connection) share what they record.
#[derive(Clone, Default)]
struct ServerSide {
    sessions: Arc<Mutex<Vec<Session>>>,
    received: Arc<Mutex<Vec<String>>>,
}

impl Handler for ServerSide {
    fn on_open(&mut self, session: &Session) {
        self.sessions.lock().unwrap().push(session.clone());
    }
    fn on_message(&mut self, _session: &Session, message: Message) {
        if let Message::Text(text) = message {
            self.received.lock().unwrap().push(text);
        }
    }
}

struct ClientSide {
    server: ServerSide,
    tx: mpsc::Sender<String>,
}

impl Handler for ClientSide {
    fn on_message(&mut self, _session: &Session, message: Message) {
        let Message::Text(text) = message else { return };
        if text == "trigger" {
            // Runs on the client's loop thread, sends through the server's session.
            let server_session = self.server.sessions.lock().unwrap()[0].clone();
            server_session.send_text("from the server loop").unwrap();
        }
        self.tx.send(text).unwrap();
    }
}

#[test]
fn callback_sends_through_a_session_of_another_loop() {
    let server_side = ServerSide::default();
    let mut config = ServerConfig::default();
    config.threads = 1;
    let server = Server::bind("127.0.0.1:0", config, server_side.clone()).unwrap();
    let (tx, rx) = mpsc::channel();
    let url = format!("ws://{}/", server.local_addr());
    let handler = ClientSide {
        server: server_side.clone(),
        tx,
    };
    let client = Client::connect(&url, ClientConfig::default(), handler).unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while server_side.sessions.lock().unwrap().is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "server never saw the connection"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let server_session = server_side.sessions.lock().unwrap()[0].clone();
    server_session.send_text("trigger").unwrap();
    assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), "trigger");
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        "from the server loop"
    );
    assert!(
        server_side.received.lock().unwrap().is_empty(),
        "the message went the wrong way"
    );
    client.stop();
    server.stop();
}
