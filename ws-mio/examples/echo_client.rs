//! Echo client.
//!
//! ```text
//! cargo run --release -p ws-mio --example echo_client -- ws://127.0.0.1:9002/ "hello"
//! cargo run --release -p ws-mio --example echo_client -- --reflect ws://127.0.0.1:9002/path
//! ```
//! The first form sends the message, prints the echo and closes. The second sends every
//! message it receives back unchanged (text as text, binary as binary) until the server
//! closes, then prints the close code (the usual way a conformance server tests a client).

use std::sync::mpsc;
use std::time::Duration;

use ws_mio::{Client, ClientConfig, Disconnect, Handler, Message, Session};

/// The connection's handler: passes what arrives to `main`, and with `--reflect` sends every
/// message back.
struct Reflect {
    reflect: bool,
    events: mpsc::Sender<Result<Message, Disconnect>>,
}

impl Handler for Reflect {
    fn on_message(&mut self, session: &Session, message: Message) {
        if self.reflect {
            // Fails only once the connection is closing: nothing left to reflect to.
            let _ = session.send(message.clone());
        }
        // `main` may have stopped listening (it is returning).
        let _ = self.events.send(Ok(message));
    }

    fn on_close(&mut self, _session: &Session, disconnect: &Disconnect) {
        let _ = self.events.send(Err(disconnect.clone()));
    }
}

fn usage() -> ! {
    eprintln!("usage: echo_client URL MESSAGE | echo_client --reflect URL");
    std::process::exit(2);
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (reflect, url, message) = match args.as_slice() {
        [flag, url] if flag == "--reflect" => (true, url.clone(), None),
        [url, message] => (false, url.clone(), Some(message.clone())),
        _ => usage(),
    };
    let (tx, rx) = mpsc::channel();
    let mut config = ClientConfig::default();
    config.protocol.max_buffered_output = 32 << 20;
    let handler = Reflect {
        reflect,
        events: tx,
    };
    let client = match Client::connect(&url, config, handler) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("echo_client: {e}");
            std::process::exit(1);
        }
    };
    if let Some(message) = message {
        if let Err(e) = client.session().send_text(message) {
            eprintln!("echo_client: send failed: {e}");
            std::process::exit(1);
        }
        match rx.recv_timeout(Duration::from_secs(10)) {
            Ok(Ok(Message::Text(text))) => println!("{text}"),
            Ok(Ok(Message::Binary(data))) => println!("<{} binary bytes>", data.len()),
            Ok(Ok(other)) => println!("<{} bytes>", other.as_bytes().len()),
            Ok(Err(d)) => {
                eprintln!("echo_client: closed before the echo ({})", d.code);
                std::process::exit(1);
            }
            Err(_) => {
                eprintln!("echo_client: no echo within 10 s");
                std::process::exit(1);
            }
        }
        client.stop();
        return;
    }
    loop {
        match rx.recv() {
            Ok(Ok(_)) => {}
            Ok(Err(disconnect)) => {
                println!("closed: {} {}", disconnect.code, disconnect.reason);
                return;
            }
            Err(_) => return,
        }
    }
}
