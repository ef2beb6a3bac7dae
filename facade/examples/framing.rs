//! Tutorial 3: message framing. A 64 KiB blob is sent as one message; the facade splits it
//! into frames on the wire and the receiver gets it back as one message.
//!
//! ```text
//! cargo run --release --example framing
//! ```
//! An echo server and a client run in this process, with a small TCP relay between them that
//! decodes the frame headers passing through, to show how many frames each message took.
//! `--help` lists the options.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use ws_facade::{ClientConfig, ServerConfig, WebSocketFacade};
use ws_proto::frame::FrameHeader;

const FRAGMENT_SIZE: usize = 16 * 1024;

const USAGE: &str = "\
usage: framing [--verbose]

Sends one 64 KiB message through an echo server, with a relay between them that counts the
frames on the wire, and prints what each side sent and received.

options:
  -v, --verbose  debug logs on stderr (default: warnings only; RUST_LOG overrides both)
  -h, --help     print this help and exit";

/// Counts the data frames (not pings, pongs or closes) in one direction of a relayed connection.
struct FrameCounter {
    head_done: bool,
    head: Vec<u8>,
    pending: Vec<u8>,
    /// Payload bytes of the current frame still to skip.
    skip: u64,
    frames: Arc<AtomicUsize>,
}

impl FrameCounter {
    fn new(frames: Arc<AtomicUsize>) -> Self {
        FrameCounter {
            head_done: false,
            head: Vec::new(),
            pending: Vec::new(),
            skip: 0,
            frames,
        }
    }

    fn feed(&mut self, mut data: &[u8]) {
        if !self.head_done {
            // Skip the HTTP upgrade head.
            self.head.extend_from_slice(data);
            let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else {
                return;
            };
            self.head_done = true;
            let rest = self.head.split_off(end + 4);
            return self.feed(&rest);
        }
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len() as u64) as usize;
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            self.pending.extend_from_slice(data);
            data = &[];
            while let Ok(Some((header, len))) = FrameHeader::decode(&self.pending) {
                if !header.opcode.is_control() {
                    self.frames.fetch_add(1, Ordering::Relaxed);
                }
                self.pending.drain(..len);
                let available = (self.pending.len() as u64).min(header.payload_len);
                self.pending.drain(..available as usize);
                self.skip = header.payload_len - available;
                if self.skip > 0 {
                    break;
                }
            }
        }
    }
}

/// Relays one connection from `listener` to `target`, counting frames both ways.
fn relay(listener: TcpListener, target: u16, up: Arc<AtomicUsize>, down: Arc<AtomicUsize>) {
    let (client, _) = listener.accept().expect("accept");
    let server = TcpStream::connect(("127.0.0.1", target)).expect("connect to server");
    let pipe = |mut from: TcpStream, mut to: TcpStream, frames: Arc<AtomicUsize>| {
        thread::spawn(move || {
            let mut counter = FrameCounter::new(frames);
            let mut buf = vec![0u8; 64 * 1024];
            while let Ok(n) = from.read(&mut buf) {
                if n == 0 || to.write_all(&buf[..n]).is_err() {
                    break;
                }
                counter.feed(&buf[..n]);
            }
            let _ = to.shutdown(std::net::Shutdown::Write);
        })
    };
    let a = pipe(client.try_clone().unwrap(), server.try_clone().unwrap(), up);
    let b = pipe(server, client, down);
    let _ = (a.join(), b.join());
}

/// The command line: whether `--verbose` was given.
fn parse_args() -> Result<bool, lexopt::Error> {
    use lexopt::Arg::{Long, Short};
    let mut verbose = false;
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Short('v') | Long("verbose") => verbose = true,
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(other.unexpected()),
        }
    }
    Ok(verbose)
}

fn main() {
    let verbose = parse_args().unwrap_or_else(|e| {
        let usage = USAGE.lines().next().unwrap_or_default();
        eprintln!("framing: {e}\n{usage}\n(framing --help for more)");
        std::process::exit(2);
    });
    let level = if verbose { "debug" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();

    // The echo server: every message comes back whole.
    let mut config = ServerConfig::default();
    config.port = 9003;
    config.path = "/framing".into();
    config.fragment_size = FRAGMENT_SIZE;
    let server = WebSocketFacade::create_server(&config).expect("server config");
    let sizes = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&sizes);
    // A Weak: the server holding a callback that holds the server would be a cycle.
    let echo = Arc::downgrade(&server);
    server.set_receive_callback(move |id, payload| {
        seen.lock().unwrap().push(payload.len());
        let server = echo.upgrade();
        if let Some(session) = server.and_then(|s| s.as_websocket()?.session(id)) {
            let _ = session.send(payload.to_vec());
        }
    });
    server.start(0).expect("start");
    let server_port = server.local_addr().expect("running").port();

    let listener = TcpListener::bind("127.0.0.1:0").expect("relay");
    let relay_port = listener.local_addr().unwrap().port();
    let (up, down) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (u, d) = (Arc::clone(&up), Arc::clone(&down));
    let relay_thread = thread::spawn(move || relay(listener, server_port, u, d));

    let mut config = ClientConfig::default();
    config.client_id = "framer".into();
    config.path = "/framing".into();
    config.fragment_size = FRAGMENT_SIZE;
    let client = WebSocketFacade::create_client(&config).expect("client config");
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    client.set_receive_callback(move |data| {
        let _ = tx.lock().unwrap().send(data.to_vec());
    });
    client.start("127.0.0.1", relay_port).expect("connect");

    let blob = vec![0xABu8; 64 * 1024];
    if let Err(e) = client.send(blob.clone()) {
        eprintln!("send failed: {e}");
        std::process::exit(1);
    }
    let echoed = rx.recv_timeout(Duration::from_secs(10)).expect("echo");
    let _ = client.stop();
    let _ = server.stop();
    let _ = relay_thread.join();

    println!("sent        1 message of {} bytes", blob.len());
    println!(
        "on the wire {} data frames client -> server (fragment size {FRAGMENT_SIZE} bytes)",
        up.load(Ordering::Relaxed)
    );
    println!(
        "server got  {:?} message(s), sizes in bytes",
        sizes.lock().unwrap()
    );
    println!(
        "on the wire {} data frames server -> client",
        down.load(Ordering::Relaxed)
    );
    println!(
        "client got  1 message of {} bytes, identical: {}",
        echoed.len(),
        echoed == blob
    );
}
