//! TLS: echo throughput over `wss://` and memory per idle TLS connection, ws-mio against
//! tokio-tungstenite on tokio-rustls, side by side in one run.
//!
//! ```text
//! cargo bench -p ws-tests --bench tls                       # echo, then memory
//! cargo bench -p ws-tests --bench tls -- echo --secs 5 --rounds 3 --connections 50
//! cargo bench -p ws-tests --bench tls -- memory --connections 10000
//! ```
//!
//! Both servers run as processes of their own on 127.0.0.1 with the same certificate (made at
//! run time) and rustls with the ring provider: ours is the `echo_server` example with
//! `--tls-cert`/`--tls-key` (two event loops), the other this binary in its `--serve-tokio`
//! mode (tokio-tungstenite's `accept_async` over tokio-rustls' `TlsAcceptor`, a multi-thread
//! runtime with two workers, as its examples do). Echo: `--connections` blocking clients
//! (rustls over a `TcpStream`, our sans-IO core for WebSocket), one message in flight each,
//! each echo checked; per round each server runs in turn, the order alternating; medians of
//! messages/s and of the server's CPU time per echo (user + system, from `/proc`). Memory: the
//! server's resident memory per connection with `--connections` TLS connections open, idle
//! after the handshake and after one 1 KiB message each way.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ws_mio::tls::rustls;
use ws_proto::{ClientRequest, Config, Connection, Event};
use ws_tests::certs::TestCerts;
use ws_tests::{build_examples, process_cpu_seconds, process_rss_kib, Peer};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Server {
    Ours,
    Tokio,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Ours => "ws-mio echo_server (TLS)",
            Server::Tokio => "tokio-tungstenite + tokio-rustls",
        }
    }

    fn start(self, certs: &TestCerts) -> (Peer, u16) {
        let (cert, key) = (certs.cert(), certs.key());
        let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
        let mut peer = match self {
            Server::Ours => {
                let dir = build_examples("ws-mio", &["echo_server"]);
                Peer::spawn(
                    self.name(),
                    Command::new(dir.join("echo_server")).args([
                        "--port",
                        "0",
                        "--threads",
                        "2",
                        "--tls-cert",
                        cert,
                        "--tls-key",
                        key,
                    ]),
                )
            }
            Server::Tokio => Peer::spawn(
                self.name(),
                Command::new(std::env::current_exe().unwrap()).args(["--serve-tokio", cert, key]),
            ),
        }
        .with_grace(Duration::ZERO);
        let line = peer.next_line(Duration::from_secs(60));
        let port = line
            .rsplit([' ', ':'])
            .next()
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| peer.fail(&format!("no port in {line:?}")));
        (peer, port)
    }
}

/// The tokio-tungstenite echo server over tokio-rustls (`--serve-tokio CERT KEY`).
fn serve_tokio(cert: &str, key: &str) {
    use futures_util::{SinkExt, StreamExt};
    let config = ws_mio::tls::server_config_from_pem(cert, key).expect("certificate");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        println!("listening {}", listener.local_addr().unwrap().port());
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(stream).await else {
                    return;
                };
                let Ok(mut ws) = tokio_tungstenite::accept_async(tls).await else {
                    return;
                };
                while let Some(Ok(message)) = ws.next().await {
                    if (message.is_text() || message.is_binary()) && ws.send(message).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
}

/// A blocking wss:// client: rustls over a `TcpStream`, WebSocket through a sans-IO
/// `Connection`.
struct Client {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    conn: Connection,
    buf: Vec<u8>,
}

impl Client {
    fn connect(port: u16, roots: &Arc<rustls::ClientConfig>) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_nodelay(true).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let session = rustls::ClientConnection::new(Arc::clone(roots), name).unwrap();
        let conn = Connection::client(
            Config::default(),
            ClientRequest::new("localhost", "/"),
            Instant::now(),
        );
        let mut client = Client {
            tls: rustls::StreamOwned::new(session, stream),
            conn,
            buf: vec![0; 16 << 10],
        };
        client.flush();
        match client.next_event() {
            Event::Open(_) => {}
            other => panic!("handshake: {other:?}"),
        }
        client
    }

    fn flush(&mut self) {
        while !self.conn.pending_output().is_empty() {
            let n = self.tls.write(self.conn.pending_output()).expect("write");
            self.conn.advance_output(n);
        }
        self.tls.flush().expect("flush");
    }

    fn next_event(&mut self) -> Event {
        loop {
            if let Some(event) = self.conn.poll_event() {
                return event;
            }
            let n = self.tls.read(&mut self.buf).expect("read");
            assert!(n > 0, "server closed");
            self.conn.receive(&self.buf[..n], Instant::now());
            self.flush();
        }
    }

    fn echo(&mut self, payload: &[u8]) {
        self.conn.send_binary(payload.to_vec()).expect("send");
        self.flush();
        loop {
            match self.next_event() {
                Event::Binary(echo) => {
                    assert_eq!(echo, payload, "echo differs");
                    return;
                }
                Event::Ping(_) | Event::Pong(_) => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

struct Sample {
    rate: f64,
    cpu_us: f64,
}

fn run_echo(
    server: Server,
    certs: &TestCerts,
    size: usize,
    connections: usize,
    secs: u64,
) -> Sample {
    let (peer, port) = server.start(certs);
    let roots = ws_mio::tls::client_config_with_ca_pem(certs.ca()).unwrap();
    let pid = peer.pid();
    let start = Instant::now() + Duration::from_millis(500);
    let end = start + Duration::from_secs(secs);
    let cpu_at_start = Arc::new(std::sync::Mutex::new(None::<f64>));
    let threads: Vec<_> = (0..connections)
        .map(|i| {
            let roots = Arc::clone(&roots);
            let cpu_at_start = Arc::clone(&cpu_at_start);
            std::thread::spawn(move || {
                let mut client = Client::connect(port, &roots);
                let payload: Vec<u8> = (0..size).map(|b| (b * 7 + i) as u8).collect();
                let mut count = 0u64;
                let mut counting = false;
                while Instant::now() < end {
                    if !counting && Instant::now() >= start {
                        counting = true;
                        count = 0;
                        cpu_at_start
                            .lock()
                            .unwrap()
                            .get_or_insert_with(|| process_cpu_seconds(pid));
                    }
                    client.echo(&payload);
                    count += 1;
                }
                count
            })
        })
        .collect();
    let count: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let cpu = process_cpu_seconds(pid) - cpu_at_start.lock().unwrap().unwrap_or(0.0);
    drop(peer);
    Sample {
        rate: count as f64 / secs as f64,
        cpu_us: cpu * 1e6 / count as f64,
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn echo(certs: &TestCerts, connections: usize, secs: u64, rounds: usize) {
    println!(
        "echo over TLS: {connections} connections, 1 in flight, {secs} s per run, {rounds} rounds"
    );
    println!("| payload | ws-mio msg/s | tokio-tungstenite msg/s | ratio | ws-mio CPU/echo | tokio-tungstenite CPU/echo |");
    println!("|---|---:|---:|---:|---:|---:|");
    for size in [64usize, 16 << 10] {
        let (mut ratios, mut ours, mut theirs, mut ours_cpu, mut theirs_cpu) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for round in 0..rounds {
            let order = if round % 2 == 0 {
                [Server::Ours, Server::Tokio]
            } else {
                [Server::Tokio, Server::Ours]
            };
            let mut got = [None, None];
            for server in order {
                let s = run_echo(server, certs, size, connections, secs);
                eprintln!(
                    "  {size} B round {round}: {:<34} {:>8.0} msg/s {:>6.1} µs CPU/echo",
                    server.name(),
                    s.rate,
                    s.cpu_us
                );
                got[usize::from(server == Server::Tokio)] = Some(s);
            }
            let [Some(a), Some(b)] = got else {
                unreachable!()
            };
            ratios.push(a.rate / b.rate);
            ours.push(a.rate);
            theirs.push(b.rate);
            ours_cpu.push(a.cpu_us);
            theirs_cpu.push(b.cpu_us);
        }
        println!(
            "| {size} B | {:.0} | {:.0} | {:.2} | {:.1} µs | {:.1} µs |",
            median(ours),
            median(theirs),
            median(ratios),
            median(ours_cpu),
            median(theirs_cpu)
        );
    }
}

fn memory(certs: &TestCerts, connections: usize) {
    println!("memory per idle TLS connection, {connections} connections");
    let roots = ws_mio::tls::client_config_with_ca_pem(certs.ca()).unwrap();
    for server in [Server::Ours, Server::Tokio] {
        let (peer, port) = server.start(certs);
        std::thread::sleep(Duration::from_millis(300));
        let base = process_rss_kib(peer.pid());
        let mut clients: Vec<Client> = (0..connections)
            .map(|_| Client::connect(port, &roots))
            .collect();
        std::thread::sleep(Duration::from_millis(500));
        let idle = process_rss_kib(peer.pid());
        let payload = vec![7u8; 1024];
        for c in &mut clients {
            c.echo(&payload);
        }
        std::thread::sleep(Duration::from_millis(500));
        let used = process_rss_kib(peer.pid());
        let per = |kib: u64| kib.saturating_sub(base) as f64 / connections as f64;
        println!(
            "  {:<34} idle after the handshake {:.2} KiB, after one 1 KiB message each way {:.2} KiB",
            server.name(),
            per(idle),
            per(used)
        );
        drop(clients);
        drop(peer);
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Some(i) = args.iter().position(|a| a == "--serve-tokio") {
        return serve_tokio(&args[i + 1], &args[i + 2]);
    }
    if !args.iter().any(|a| a == "--bench") {
        // `cargo test --benches` runs bench targets without `--bench`: nothing to check here.
        println!("TLS benchmark: run it with `cargo bench -p ws-tests --bench tls`");
        return;
    }
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
    let certs = TestCerts::new();
    if only("echo") {
        echo(
            &certs,
            value("--connections", 50) as usize,
            value("--secs", 5),
            value("--rounds", 3) as usize,
        );
    }
    if only("memory") {
        memory(&certs, value("--connections", 10_000) as usize);
    }
}
