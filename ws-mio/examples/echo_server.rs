//! Echo server: sends every text and binary message back on any path, answers pings and
//! closes properly. Used for conformance tests and benchmarks.
//!
//! ```text
//! cargo run --release -p ws-mio --example echo_server -- --port 9002 [--threads N]
//! ```
//! Prints the bound address, then runs until Ctrl-C.

use ws_mio::{Handler, Message, Server, ServerConfig, Session};

/// One per connection (a cloneable handler is its own factory).
#[derive(Clone)]
struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, session: &Session, message: Message) {
        // A reply never meets the output limit (the loop stops reading a peer that does not
        // read its replies): this fails only once the connection is closing, when there is
        // no one left to echo to.
        let _ = session.send(message);
    }
}

fn main() {
    let mut port = 9002u16;
    let mut config = ServerConfig::default();
    // Echoing a 16 MiB message must fit in the output buffer alongside what is in flight.
    config.protocol.max_buffered_output = 32 << 20;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next();
        match (arg.as_str(), value.as_deref().map(str::parse::<u32>)) {
            ("--port", Some(Ok(p))) if p <= u32::from(u16::MAX) => port = p as u16,
            ("--threads", Some(Ok(n))) => config.threads = n as usize,
            _ => {
                eprintln!("usage: echo_server [--port PORT] [--threads N]");
                std::process::exit(2);
            }
        }
    }
    let server = match Server::bind(("0.0.0.0", port), config, Echo) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("echo_server: cannot listen on port {port}: {e}");
            std::process::exit(1);
        }
    };
    println!("echo_server listening on ws://{}", server.local_addr());
    server.wait();
}
