//! Echo client.
//!
//! ```text
//! cargo run --release -p ws-mio --example echo_client -- ws://127.0.0.1:9002/ "hello"
//! cargo run --release -p ws-mio --example echo_client -- --reflect ws://127.0.0.1:9002/path
//! ```
//! The first form sends the message, prints the echo and closes. The second sends every
//! message it receives back unchanged (text as text, binary as binary) until the server
//! closes, then prints the close code (the usual way a conformance server tests a client).
//! `--help` lists the options.

use std::sync::mpsc;
use std::time::Duration;

use ws_mio::{Client, ClientConfig, Disconnect, Handler, Message, Session};

const USAGE: &str = "\
usage: echo_client [--verbose] URL MESSAGE
       echo_client [--verbose] --reflect URL

The first form sends MESSAGE as text to URL (ws://HOST:PORT/PATH), prints the echo and
closes. The second sends every message it receives back unchanged until the server closes,
then prints `closed: CODE REASON`.

options:
  --reflect      send every message received back, until the server closes
  -v, --verbose  debug logs on stderr (default: warnings only; RUST_LOG overrides both)
  -h, --help     print this help and exit

A MESSAGE that starts with `-` goes after `--`: echo_client URL -- -1";

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

/// The command line.
struct Args {
    url: String,
    /// `None` with `--reflect`.
    message: Option<String>,
    verbose: bool,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::Arg::{Long, Short, Value};
    let mut reflect = false;
    let mut verbose = false;
    let mut positional = Vec::new();
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("reflect") => reflect = true,
            Short('v') | Long("verbose") => verbose = true,
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            Value(value) => positional.push(value.into_string()?),
            other => return Err(other.unexpected()),
        }
    }
    let wanted = if reflect { 1 } else { 2 };
    if let Some(extra) = positional.get(wanted) {
        return Err(format!("unexpected argument {extra:?}").into());
    }
    let mut positional = positional.into_iter();
    let Some(url) = positional.next() else {
        return Err("missing URL".to_owned().into());
    };
    let message = match (reflect, positional.next()) {
        (true, _) => None,
        (false, Some(message)) => Some(message),
        (false, None) => return Err("missing MESSAGE (or --reflect)".to_owned().into()),
    };
    Ok(Args {
        url,
        message,
        verbose,
    })
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        let usage = USAGE.lines().take(2).collect::<Vec<_>>().join("\n");
        eprintln!("echo_client: {e}\n{usage}\n(echo_client --help for more)");
        std::process::exit(2);
    });
    let level = if args.verbose { "debug" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();

    let (tx, rx) = mpsc::channel();
    let mut config = ClientConfig::default();
    config.protocol.max_buffered_output = 32 << 20;
    let handler = Reflect {
        reflect: args.message.is_none(),
        events: tx,
    };
    let client = match Client::connect(&args.url, config, handler) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("echo_client: {e}");
            std::process::exit(1);
        }
    };
    if let Some(message) = args.message {
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
