//! permessage-deflate: echo throughput of a 16 KiB JSON-like text message, compressed both
//! ways, against Node `ws` and Python `websockets` (both with compression on), and the memory
//! an idle compressed connection costs our server.
//!
//! ```text
//! cargo bench -p ws-tests --bench deflate                      # echo, then memory
//! cargo bench -p ws-tests --bench deflate -- echo --secs 5 --rounds 3 --connections 10
//! cargo bench -p ws-tests --bench deflate -- memory --connections 10000
//! ```
//!
//! Echo: each server runs alone on 127.0.0.1 with its defaults (ours: the `echo_server`
//! example with `--deflate`, two event loops; Node: `ws` with `perMessageDeflate`; Python:
//! `websockets`' sync server). `--connections` blocking clients, one message in flight each,
//! offer what browsers offer (`permessage-deflate; client_max_window_bits`), send one of 16
//! different 16 KiB JSON documents in turn and check every echo. Servers run in turn, the
//! order rotating every round; the table gives medians over rounds: messages/s, bytes on the
//! wire per echo (both directions, frames included), and the server's CPU time per echo
//! (user + system, from `/proc`). The clients' own compression runs on the same two cores.
//!
//! Memory: our server's resident memory, per connection, with `--connections` connections
//! open: idle after the handshake; then idle (3.5 s) after one compressed message each way,
//! with context takeover (the compressor and decompressor have hibernated, keeping the last
//! window of each direction) and without it (asked by the client: the state is freed after
//! each message).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ws_proto::extension::deflate::{DeflateConfig, PerMessageDeflate};
use ws_proto::{ClientRequest, Config, Connection, Event};
use ws_tests::{
    build_examples, node, process_cpu_seconds, process_rss_kib, python, tests_file, Peer,
};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Server {
    Ours,
    Node,
    Python,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Ours => "ws-mio echo_server --deflate",
            Server::Node => "Node ws (perMessageDeflate)",
            Server::Python => "Python websockets",
        }
    }

    /// Starts the server; returns it with its port.
    fn start(self) -> (Peer, u16) {
        self.start_with_env(&[])
    }

    /// Starts the server with extra environment variables.
    fn start_with_env(self, env: &[(&str, &str)]) -> (Peer, u16) {
        let mut peer = match self {
            Server::Ours => {
                let dir = build_examples("ws-mio", &["echo_server"]);
                Peer::spawn(
                    self.name(),
                    Command::new(dir.join("echo_server"))
                        .args(["--port", "0", "--deflate"])
                        .envs(env.iter().copied()),
                )
                .with_grace(Duration::ZERO)
            }
            Server::Node => Peer::spawn(
                self.name(),
                Command::new(node(&["ws"]))
                    .arg(tests_file("interop/node_deflate_peer.mjs"))
                    .arg("server"),
            ),
            Server::Python => Peer::spawn(
                self.name(),
                Command::new(python())
                    .arg(tests_file("interop/py_deflate_peer.py"))
                    .args(["server", "--lifetime", "600"]),
            ),
        };
        let line = peer.next_line(Duration::from_secs(30));
        let port = line
            .rsplit([' ', ':'])
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| peer.fail(&format!("no port in {line:?}")));
        (peer, port)
    }
}

/// 16 different JSON documents of 16 KiB.
fn documents() -> Vec<String> {
    (0..16)
        .map(|d| {
            let mut doc = String::from("[");
            let mut i = 0;
            while doc.len() < (16 << 10) - 200 {
                doc.push_str(&format!(
                    r#"{{"id":{},"user":"user-{}","room":"general","text":"message {} of document {}","ts":{}}},"#,
                    d * 1000 + i,
                    (i * 7 + d) % 97,
                    i,
                    d,
                    1_764_800_000 + i * 13
                ));
                i += 1;
            }
            doc.push_str("{}]");
            doc.truncate(16 << 10);
            doc.pop();
            doc.push(']');
            doc
        })
        .collect()
}

/// A blocking client connection speaking through a sans-IO `Connection`.
struct Client {
    stream: TcpStream,
    conn: Connection,
    buf: Vec<u8>,
    wire: u64,
    /// The server's `Sec-WebSocket-Extensions`.
    negotiated: String,
}

impl Client {
    fn connect(port: u16, deflate: DeflateConfig) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut config = Config::default();
        config.max_message_size = 1 << 20;
        config
            .extensions
            .push(Arc::new(PerMessageDeflate::new(deflate)));
        let conn = Connection::client(config, ClientRequest::new("127.0.0.1", "/"), Instant::now());
        let mut client = Client {
            stream,
            conn,
            buf: vec![0; 64 << 10],
            wire: 0,
            negotiated: String::new(),
        };
        client.flush();
        match client.next_event() {
            Event::Open(negotiated) => {
                let deflate = negotiated
                    .extensions
                    .first()
                    .expect("compression negotiated");
                assert_eq!(deflate.name, "permessage-deflate");
                client.negotiated = deflate.to_string();
            }
            other => panic!("handshake: {other:?}"),
        }
        client.wire = 0;
        client
    }

    fn flush(&mut self) {
        while !self.conn.pending_output().is_empty() {
            let n = self
                .stream
                .write(self.conn.pending_output())
                .expect("write");
            self.wire += n as u64;
            self.conn.advance_output(n);
        }
    }

    fn next_event(&mut self) -> Event {
        loop {
            if let Some(event) = self.conn.poll_event() {
                return event;
            }
            let n = self.stream.read(&mut self.buf).expect("read");
            assert!(n > 0, "server closed");
            self.wire += n as u64;
            self.conn.receive(&self.buf[..n], Instant::now());
            self.flush(); // pongs
        }
    }

    fn echo(&mut self, text: &str) {
        self.conn.send_text(text).expect("send");
        self.flush();
        loop {
            match self.next_event() {
                Event::Text(t) => {
                    assert_eq!(t, text, "echo differs");
                    return;
                }
                Event::Ping(_) | Event::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// What browsers offer: `permessage-deflate; client_max_window_bits`.
fn browser_offer() -> DeflateConfig {
    let mut d = DeflateConfig::default();
    d.server_max_window_bits = 15;
    d.client_max_window_bits = 15;
    d.min_size = 0;
    d
}

struct Sample {
    rate: f64,
    wire_per_echo: f64,
    cpu_us_per_echo: f64,
}

fn run_echo(server: Server, connections: usize, warmup: Duration, secs: Duration) -> Sample {
    let (peer, port) = server.start();
    let docs = Arc::new(documents());
    let start = Instant::now() + warmup;
    let end = start + secs;
    let cpu_at_start = Arc::new(std::sync::Mutex::new(None::<f64>));
    let pid = peer.pid();
    let threads: Vec<_> = (0..connections)
        .map(|c| {
            let docs = Arc::clone(&docs);
            let cpu_at_start = Arc::clone(&cpu_at_start);
            std::thread::spawn(move || {
                let mut client = Client::connect(port, browser_offer());
                if c == 0 {
                    eprintln!("  negotiated: {}", client.negotiated);
                }
                let (mut count, mut wire_at_start, mut i) = (0u64, None, c);
                loop {
                    let now = Instant::now();
                    if now >= end {
                        break;
                    }
                    if now >= start && wire_at_start.is_none() {
                        wire_at_start = Some(client.wire);
                        cpu_at_start
                            .lock()
                            .unwrap()
                            .get_or_insert_with(|| process_cpu_seconds(pid));
                        count = 0;
                    }
                    client.echo(&docs[i % docs.len()]);
                    i += 1;
                    count += 1;
                }
                (count, client.wire - wire_at_start.unwrap_or(0))
            })
        })
        .collect();
    let results: Vec<(u64, u64)> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let cpu = process_cpu_seconds(pid) - cpu_at_start.lock().unwrap().unwrap_or(0.0);
    let count: u64 = results.iter().map(|r| r.0).sum();
    let wire: u64 = results.iter().map(|r| r.1).sum();
    drop(peer);
    Sample {
        rate: count as f64 / secs.as_secs_f64(),
        wire_per_echo: wire as f64 / count as f64,
        cpu_us_per_echo: cpu * 1e6 / count as f64,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn echo(connections: usize, secs: u64, rounds: usize) {
    let servers = [Server::Ours, Server::Node, Server::Python];
    println!(
        "echo of a 16 KiB JSON text, compressed: {connections} connections, 1 in flight, \
         {secs} s per run, {rounds} rounds"
    );
    let mut samples: Vec<Vec<Sample>> = servers.iter().map(|_| Vec::new()).collect();
    for round in 0..rounds {
        for k in 0..servers.len() {
            let i = (k + round) % servers.len();
            let s = run_echo(
                servers[i],
                connections,
                Duration::from_secs(1),
                Duration::from_secs(secs),
            );
            eprintln!(
                "  round {round}: {:<30} {:>8.0} msg/s {:>7.0} B/echo {:>7.1} µs CPU/echo",
                servers[i].name(),
                s.rate,
                s.wire_per_echo,
                s.cpu_us_per_echo
            );
            samples[i].push(s);
        }
    }
    let ours = median(samples[0].iter().map(|s| s.rate).collect());
    println!("| server | msg/s | ours ÷ it | bytes on the wire per echo | server CPU per echo |");
    println!("|---|---:|---:|---:|---:|");
    for (server, s) in servers.iter().zip(&samples) {
        let rate = median(s.iter().map(|x| x.rate).collect());
        println!(
            "| {} | {:.0} | {:.2} | {:.0} | {:.0} µs |",
            server.name(),
            rate,
            ours / rate,
            median(s.iter().map(|x| x.wire_per_echo).collect()),
            median(s.iter().map(|x| x.cpu_us_per_echo).collect()),
        );
    }
    println!("(plain: {} bytes per echo)", 2 * (8 + (16 << 10)) + 6);
}

fn memory(connections: usize) {
    println!("our server's memory per connection, {connections} connections");
    let text = documents().swap_remove(0);
    // glibc keeps freed blocks resident (and, once a large block is freed, serves blocks of
    // that size from the heap): resident memory then shows the peak, not what is held. With
    // a fixed mmap threshold, blocks of 64 KiB and more go back to the system when freed.
    for (allocator, env) in [
        ("glibc malloc, defaults", &[][..]),
        (
            "glibc malloc, MALLOC_MMAP_THRESHOLD_=65536",
            &[("MALLOC_MMAP_THRESHOLD_", "65536")][..],
        ),
    ] {
        println!(" {allocator}:");
        for (label, reset) in [("context takeover", false), ("no context takeover", true)] {
            let (peer, port) = Server::Ours.start_with_env(env);
            std::thread::sleep(Duration::from_millis(200));
            let base = process_rss_kib(peer.pid());
            let mut offer = browser_offer();
            offer.server_no_context_takeover = reset;
            offer.client_no_context_takeover = reset;
            let mut clients: Vec<Client> = (0..connections)
                .map(|_| Client::connect(port, offer.clone()))
                .collect();
            std::thread::sleep(Duration::from_millis(500));
            let idle = process_rss_kib(peer.pid());
            for c in &mut clients {
                c.echo(&text);
            }
            // Past twice `hibernate_after` (1 s): the state kept for context takeover is freed.
            std::thread::sleep(Duration::from_millis(3500));
            let used = process_rss_kib(peer.pid());
            let per = |kib: u64| (kib.saturating_sub(base)) as f64 / connections as f64;
            if !reset {
                println!(
                    "  idle after the handshake: {:.2} KiB per connection",
                    per(idle)
                );
            }
            println!(
                "  idle after one 16 KiB message each way, {label}: {:.2} KiB per connection",
                per(used)
            );
            drop(clients);
            drop(peer);
        }
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        // `cargo test --benches` runs bench targets without `--bench`: nothing to check here.
        println!("deflate benchmark: run it with `cargo bench -p ws-tests --bench deflate`");
        return;
    }
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let value = |flag: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .map(|v| v.parse().expect("a number"))
            .unwrap_or(default)
    };
    let only = |name: &str| {
        !args.iter().any(|a| a == "echo" || a == "memory") || args.iter().any(|a| a == name)
    };
    if only("echo") {
        echo(
            value("--connections", 10) as usize,
            value("--secs", 5),
            value("--rounds", 3) as usize,
        );
    }
    if only("memory") {
        memory(value("--connections", 10_000) as usize);
    }
}
