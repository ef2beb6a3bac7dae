//! The benchmark suite: ours against fastwebsockets, tokio-tungstenite and tokio-websockets,
//! side by side in one run.
//!
//! ```text
//! cargo run --release -p ws-bench -- all --write-docs   # the whole suite; rewrites docs/benchmarks*
//! cargo run --release -p ws-bench -- echo broadcast     # some parts, printed only
//! cargo run --release -p ws-bench -- all --quick        # a smoke run (CI): every part, briefly
//! ```
//! Parts: `echo`, `broadcast`, `memory`, `codec`, `alloc`, `cluster` (see
//! `docs/benchmarks.md`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use ws_bench::count_alloc::{self, Counting};
use ws_bench::echo_load::{self, EchoCell, EchoSample};
use ws_bench::report::{human, median, size_label, BarChart, Table};
use ws_bench::{broadcast_load, codec, codec_peers, LoadError};
use ws_tests::{build_examples, process_cpu_seconds, process_rss_kib, workspace_root, Peer};

#[global_allocator]
static ALLOCATOR: Counting = Counting;

const USAGE: &str = "\
usage: ws-bench [all|echo|broadcast|memory|codec|alloc|cluster]... [--quick] [--rounds N]
                [--write-docs]

  --quick        every part briefly, for a smoke check (CI)
  --rounds N     rounds of each comparison (default 3; the order of servers rotates per round)
  --write-docs   write the tables and charts into docs/benchmarks.md and docs/benchmarks/";

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Server {
    Ours,
    Fastwebsockets,
    TokioTungstenite,
    TokioWebsockets,
}

impl Server {
    fn name(self) -> &'static str {
        match self {
            Server::Ours => "ours (ws-mio)",
            Server::Fastwebsockets => "fastwebsockets",
            Server::TokioTungstenite => "tokio-tungstenite",
            Server::TokioWebsockets => "tokio-websockets",
        }
    }

    fn peer_impl(self) -> &'static str {
        match self {
            Server::Ours => unreachable!("ours is an example, not a bench_peer"),
            Server::Fastwebsockets => "fastwebsockets",
            Server::TokioTungstenite => "tokio-tungstenite",
            Server::TokioWebsockets => "tokio-websockets",
        }
    }
}

const ECHO_SERVERS: [Server; 4] = [
    Server::Ours,
    Server::Fastwebsockets,
    Server::TokioTungstenite,
    Server::TokioWebsockets,
];
const CHAT_SERVERS: [Server; 3] = [
    Server::Ours,
    Server::Fastwebsockets,
    Server::TokioTungstenite,
];

struct Options {
    parts: Vec<String>,
    quick: bool,
    rounds: usize,
    write_docs: bool,
}

fn parse_args() -> Result<Options, String> {
    let mut options = Options {
        parts: Vec::new(),
        quick: false,
        rounds: 3,
        write_docs: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => options.quick = true,
            "--write-docs" => options.write_docs = true,
            "--rounds" => {
                let value = args.next().ok_or("--rounds needs a value")?;
                options.rounds = value
                    .parse()
                    .map_err(|e| format!("invalid --rounds {value}: {e}"))?;
            }
            "-h" | "--help" => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            "all" => options.parts.extend(
                ["echo", "broadcast", "memory", "codec", "alloc", "cluster"].map(String::from),
            ),
            "echo" | "broadcast" | "memory" | "codec" | "alloc" | "cluster" => {
                options.parts.push(arg)
            }
            // `cargo bench` passes `--bench`.
            "--bench" => {}
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if options.parts.is_empty() {
        options
            .parts
            .extend(["echo", "broadcast", "memory", "codec", "alloc", "cluster"].map(String::from));
    }
    if options.quick {
        options.rounds = 1;
    }
    Ok(options)
}

/// The built programs the suite starts.
struct Programs {
    echo_server: PathBuf,
    chat_server: PathBuf,
    bench_peer: PathBuf,
}

impl Programs {
    fn build() -> Programs {
        let examples = build_examples("ws-mio", &["echo_server"]);
        let chat = build_examples("ws-facade", &["chat_server"]);
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "-p",
                "ws-bench",
                "--bin",
                "bench_peer",
            ])
            .current_dir(workspace_root())
            .status()
            .expect("run cargo build");
        assert!(status.success(), "building bench_peer failed");
        Programs {
            echo_server: examples.join("echo_server"),
            chat_server: chat.join("chat_server"),
            bench_peer: examples.join("../bench_peer"),
        }
    }

    /// Starts `server` as an echo server (or a chat server); returns it with its address and
    /// the path to connect to.
    fn start(&self, server: Server, chat: bool) -> (Peer, SocketAddr, &'static str) {
        let wait = Duration::from_secs(20);
        match (server, chat) {
            (Server::Ours, false) => {
                let mut peer = Peer::spawn(
                    server.name(),
                    Command::new(&self.echo_server).args(["--port", "0"]),
                )
                .with_grace(Duration::ZERO);
                let line = peer.line_where(wait, |l| l.contains("listening on"));
                (peer, loopback(port_of(&line)), "/")
            }
            (Server::Ours, true) => {
                let port = ws_tests::free_port();
                let mut peer = Peer::spawn(
                    "chat_server",
                    Command::new(&self.chat_server).args([
                        "--host",
                        "127.0.0.1",
                        "--port",
                        &port.to_string(),
                    ]),
                )
                .with_grace(Duration::ZERO);
                peer.line_where(wait, |l| l.contains("/chat"));
                (peer, loopback(port), "/chat")
            }
            (peer_server, chat) => {
                let mode = if chat { "chat" } else { "echo" };
                let mut peer = Peer::spawn(
                    peer_server.name(),
                    Command::new(&self.bench_peer).args([
                        "--impl",
                        peer_server.peer_impl(),
                        "--mode",
                        mode,
                        "--port",
                        "0",
                    ]),
                )
                .with_grace(Duration::ZERO);
                let line = peer.line_where(wait, |l| l.contains("listening on"));
                (peer, loopback(port_of(&line)), "/")
            }
        }
    }
}

impl Programs {
    /// Starts the chat servers of `layout`, one after the other, each waited for until it
    /// listens (and, with Redis, has subscribed).
    fn start_cluster(
        &self,
        layout: Layout,
        redis: &ws_tests::redis::RedisServer,
    ) -> (Vec<Peer>, Vec<SocketAddr>) {
        let count = if layout == Layout::ThreeNodes { 3 } else { 1 };
        let mut nodes = Vec::new();
        let mut addrs = Vec::new();
        for n in 0..count {
            let port = ws_tests::free_port();
            let mut command = Command::new(&self.chat_server);
            command.args(["--host", "127.0.0.1", "--port", &port.to_string()]);
            if let Ok(threads) = std::env::var("WS_BENCH_NODE_THREADS") {
                command.args(["--threads", &threads]);
            }
            if layout != Layout::OneNode {
                command.args(["--redis", &redis.url(), "--node-id", &format!("n{n}")]);
            }
            let mut peer = Peer::spawn("chat_server", &mut command).with_grace(Duration::ZERO);
            let wait = Duration::from_secs(20);
            // Listening, and subscribed (printed from another thread: in either order).
            let ready = |l: &str| l.contains("/chat") || l.contains(" connected to ");
            let first = peer.line_where(wait, ready);
            if layout != Layout::OneNode {
                let other = |l: &str| ready(l) && l.contains("/chat") != first.contains("/chat");
                peer.line_where(wait, other);
            }
            nodes.push(peer);
            addrs.push(loopback(port));
        }
        (nodes, addrs)
    }
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The port at the end of a "listening on ...:PORT" line.
fn port_of(line: &str) -> u16 {
    line.trim()
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"))
}

/// What the suite found, in Markdown sections, and the charts to write.
#[derive(Default)]
struct Results {
    sections: Vec<String>,
    charts: Vec<(String, BarChart)>,
    /// The cluster part, written to docs/scaling-out.md's own block.
    cluster: Option<String>,
}

/// `ws-bench load ADDR CONNECTIONS PAYLOAD IN_FLIGHT SECONDS [PID]`: the echo load generator
/// alone, against any server already running (PID: its CPU time per message is shown too).
fn load_only(args: &[String]) -> Result<(), String> {
    let [addr, connections, payload, in_flight, secs, rest @ ..] = args else {
        return Err("usage: ws-bench load ADDR CONNECTIONS PAYLOAD IN_FLIGHT SECONDS [PID]".into());
    };
    let number = |s: &str| s.parse::<usize>().map_err(|e| format!("{s:?}: {e}"));
    let addr: SocketAddr = addr.parse().map_err(|e| format!("{addr:?}: {e}"))?;
    let cell = EchoCell {
        connections: number(connections)?,
        payload: number(payload)?,
        in_flight: number(in_flight)?,
    };
    let pid = rest.first().map(|p| number(p)).transpose()?;
    let mut probe = || pid.map_or(0.0, |pid| process_cpu_seconds(pid as u32));
    let measure = Duration::from_secs_f64(secs.parse().map_err(|e| format!("{secs:?}: {e}"))?);
    let sample = echo_load::run(addr, cell, Duration::from_millis(500), measure, &mut probe)
        .map_err(|e| e.to_string())?;
    println!(
        "{:.0} msg/s, p50 {:.1} µs, p99 {:.1} µs, server CPU {:.2} µs/msg",
        sample.messages_per_sec(),
        sample.round_trip_us(0.5),
        sample.round_trip_us(0.99),
        sample.probe / sample.messages.max(1) as f64 * 1e6
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("load") {
        if let Err(e) = load_only(&args[1..]) {
            eprintln!("ws-bench load: {e}");
            std::process::exit(2);
        }
        return;
    }
    let options = parse_args().unwrap_or_else(|e| {
        eprintln!("ws-bench: {e}\n{USAGE}");
        std::process::exit(2);
    });
    let started = Instant::now();
    let programs = Programs::build();
    let mut results = Results::default();
    for part in &options.parts {
        eprintln!("== {part}");
        let outcome = match part.as_str() {
            "echo" => echo(&programs, &options, &mut results),
            "broadcast" => broadcast(&programs, &options, &mut results),
            "memory" => memory(&programs, &options, &mut results),
            "codec" => {
                codec(&options, &mut results);
                Ok(())
            }
            "alloc" => allocations(&options, &mut results),
            "cluster" => cluster(&programs, &options, &mut results),
            _ => unreachable!(),
        };
        if let Err(e) = outcome {
            eprintln!("ws-bench: {part}: {e}");
            std::process::exit(1);
        }
    }
    let text = results.sections.join("\n");
    println!("{text}");
    if let Some(cluster) = &results.cluster {
        println!("{cluster}");
    }
    eprintln!("suite done in {:.0} s", started.elapsed().as_secs_f64());
    if options.write_docs {
        if !results.sections.is_empty() {
            write_docs(SUITE_MARKERS, &text, &results.charts);
        }
        if let Some(cluster) = &results.cluster {
            write_docs(CLUSTER_MARKERS, cluster, &[]);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Echo
// ---------------------------------------------------------------------------------------------

fn echo_grid(quick: bool) -> Vec<EchoCell> {
    let shapes: &[(usize, usize)] = if quick {
        &[(100, 20), (10, 16 << 10)]
    } else {
        &[
            (100, 20),
            (10, 1 << 10),
            (10, 16 << 10),
            (200, 16 << 10),
            (500, 16 << 10),
            (100, 512),
            (1, 1 << 20),
        ]
    };
    let mut grid = Vec::new();
    for in_flight in [1, 16] {
        for &(connections, payload) in shapes {
            grid.push(EchoCell {
                connections,
                payload,
                in_flight,
            });
        }
    }
    grid
}

/// One server's run of one cell: the load sample and its CPU seconds per message.
struct EchoRun {
    sample: EchoSample,
    cpu_per_message: f64,
}

fn echo(programs: &Programs, options: &Options, results: &mut Results) -> Result<(), LoadError> {
    let (warmup, measure) = if options.quick {
        (Duration::from_millis(200), Duration::from_millis(300))
    } else {
        (Duration::from_millis(500), Duration::from_secs(2))
    };
    let servers: Vec<_> = ECHO_SERVERS
        .iter()
        .map(|&s| (s, programs.start(s, false)))
        .collect();
    let grid = echo_grid(options.quick);
    let mut runs: BTreeMap<(usize, Server), Vec<EchoRun>> = BTreeMap::new();
    for round in 0..options.rounds {
        for (c, cell) in grid.iter().enumerate() {
            for k in 0..servers.len() {
                let (server, (peer, addr, _)) = &servers[(k + round + c) % servers.len()];
                let pid = peer.pid();
                let mut cpu = || process_cpu_seconds(pid);
                let sample = echo_load::run(*addr, *cell, warmup, measure, &mut cpu)?;
                eprintln!(
                    "round {round} {} in flight {}: {:>18} {:>9.0} msg/s p50 {:>7.1} µs",
                    cell.label(),
                    cell.in_flight,
                    server.name(),
                    sample.messages_per_sec(),
                    sample.round_trip_us(0.5)
                );
                let cpu_per_message = sample.probe / sample.messages.max(1) as f64;
                runs.entry((c, *server)).or_default().push(EchoRun {
                    sample,
                    cpu_per_message,
                });
            }
        }
    }
    drop(servers);

    let per_round = |c: usize, s: Server, f: &dyn Fn(&EchoRun) -> f64| -> Vec<f64> {
        runs.get(&(c, s))
            .map(|v| v.iter().map(f).collect())
            .unwrap_or_default()
    };
    // The median over rounds of ours ÷ theirs, each round's pair measured side by side.
    let ratio = |c: usize, theirs: Server, f: &dyn Fn(&EchoRun) -> f64| -> f64 {
        let ours = per_round(c, Server::Ours, f);
        let other = per_round(c, theirs, f);
        median(
            &ours
                .iter()
                .zip(&other)
                .map(|(a, b)| a / b)
                .collect::<Vec<_>>(),
        )
    };
    let rate = |r: &EchoRun| r.sample.messages_per_sec();
    let cpu = |r: &EchoRun| r.cpu_per_message * 1e6;
    let p50 = |r: &EchoRun| r.sample.round_trip_us(0.5);
    let p99 = |r: &EchoRun| r.sample.round_trip_us(0.99);

    let mut md = String::from("### Echo\n\n");
    let mut charts = Vec::new();
    for in_flight in [1, 16] {
        let cells: Vec<(usize, &EchoCell)> = grid
            .iter()
            .enumerate()
            .filter(|(_, c)| c.in_flight == in_flight)
            .collect();
        let mut throughput = Table::new(&[
            "connections × payload",
            "ours msg/s",
            "ours MB/s",
            "fastwebsockets",
            "tokio-tungstenite",
            "tokio-websockets",
            "ours ÷ fastwebsockets",
            "ours ÷ tokio-tungstenite",
            "ours ÷ tokio-websockets",
        ]);
        let mut latency = Table::new(&[
            "connections × payload",
            "ours p50 / p99 µs",
            "fastwebsockets",
            "tokio-tungstenite",
            "tokio-websockets",
        ]);
        let mut cpu_table = Table::new(&[
            "connections × payload",
            "ours µs/msg",
            "fastwebsockets",
            "tokio-tungstenite",
            "tokio-websockets",
            "ours ÷ fastwebsockets",
        ]);
        let mut chart = BarChart {
            title: format!("Echo, {in_flight} in flight: messages/s relative to fastwebsockets"),
            unit: "× fastwebsockets (higher is better; dashed: 1.0)".into(),
            series: ECHO_SERVERS.iter().map(|s| s.name().to_owned()).collect(),
            groups: Vec::new(),
            reference: Some(1.0),
        };
        for (c, cell) in cells {
            let ours_rate = median(&per_round(c, Server::Ours, &rate));
            let mb = ours_rate * cell.payload as f64 / 1e6;
            throughput.row(vec![
                cell.label(),
                human(ours_rate, 0),
                format!("{mb:.1}"),
                human(median(&per_round(c, Server::Fastwebsockets, &rate)), 0),
                human(median(&per_round(c, Server::TokioTungstenite, &rate)), 0),
                human(median(&per_round(c, Server::TokioWebsockets, &rate)), 0),
                format!("**{:.2}**", ratio(c, Server::Fastwebsockets, &rate)),
                format!("{:.2}", ratio(c, Server::TokioTungstenite, &rate)),
                format!("{:.2}", ratio(c, Server::TokioWebsockets, &rate)),
            ]);
            let lat = |s: Server| {
                format!(
                    "{:.0} / {:.0}",
                    median(&per_round(c, s, &p50)),
                    median(&per_round(c, s, &p99))
                )
            };
            latency.row(
                std::iter::once(cell.label())
                    .chain(ECHO_SERVERS.iter().map(|&s| lat(s)))
                    .collect(),
            );
            cpu_table.row(
                std::iter::once(cell.label())
                    .chain(
                        ECHO_SERVERS
                            .iter()
                            .map(|&s| format!("{:.2}", median(&per_round(c, s, &cpu)))),
                    )
                    .chain(std::iter::once(format!(
                        "**{:.2}**",
                        ratio(c, Server::Fastwebsockets, &cpu)
                    )))
                    .collect(),
            );
            chart.groups.push((
                cell.label(),
                ECHO_SERVERS
                    .iter()
                    .map(|&s| {
                        if s == Server::Fastwebsockets {
                            1.0
                        } else {
                            median(
                                &per_round(c, s, &rate)
                                    .iter()
                                    .zip(per_round(c, Server::Fastwebsockets, &rate))
                                    .map(|(a, b)| a / b)
                                    .collect::<Vec<_>>(),
                            )
                        }
                    })
                    .collect(),
            ));
        }
        md.push_str(&format!(
            "#### {in_flight} message{} in flight per connection\n\n\
             ![echo, {in_flight} in flight](benchmarks/echo-{in_flight}.svg)\n\n\
             Throughput (medians over rounds; ratios are medians of per-round ratios):\n\n{}\n\
             Round trip, p50 / p99 in µs:\n\n{}\n\
             Server CPU time (user + system) per echoed message, µs:\n\n{}\n",
            if in_flight == 1 { "" } else { "s" },
            throughput.to_markdown(),
            latency.to_markdown(),
            cpu_table.to_markdown()
        ));
        charts.push((format!("echo-{in_flight}.svg"), chart));
    }
    results.sections.push(md);
    results.charts.extend(charts);
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Broadcast
// ---------------------------------------------------------------------------------------------

fn broadcast(
    programs: &Programs,
    options: &Options,
    results: &mut Results,
) -> Result<(), LoadError> {
    let (clients, warmup, rounds) = if options.quick {
        (100, 2, 5)
    } else {
        (1000, 10, 100)
    };
    let mut md = format!(
        "### Broadcast\n\n![broadcast](benchmarks/broadcast.svg)\n\n\
         {clients} clients in one chat room; in each round the given number of them post a \
         message at once. Time from a post until the last client has it, in ms \
         ({rounds} rounds × {} outer rounds, servers in rotating order):\n\n",
        options.rounds
    );
    let mut table = Table::new(&[
        "senders at once",
        "ours p50 / p99",
        "fastwebsockets",
        "tokio-tungstenite",
        "ours ÷ fastwebsockets (p50)",
        "ours ÷ tokio-tungstenite (p50)",
    ]);
    let mut chart = BarChart {
        title: format!("Broadcast to {clients} clients: time until the last has it (p50)"),
        unit: "milliseconds (lower is better)".into(),
        series: CHAT_SERVERS.iter().map(|s| s.name().to_owned()).collect(),
        groups: Vec::new(),
        reference: None,
    };
    for senders in [1, 10] {
        let mut p50: BTreeMap<Server, Vec<f64>> = BTreeMap::new();
        let mut p99: BTreeMap<Server, Vec<f64>> = BTreeMap::new();
        for round in 0..options.rounds {
            for k in 0..CHAT_SERVERS.len() {
                let server = CHAT_SERVERS[(k + round) % CHAT_SERVERS.len()];
                let (peer, addr, path) = programs.start(server, true);
                let sample = broadcast_load::run(&[addr], path, clients, senders, warmup, rounds)?;
                drop(peer);
                eprintln!(
                    "round {round} {senders} senders {:>18}: p50 {:.2} ms p99 {:.2} ms",
                    server.name(),
                    sample.until_last_ms(0.5),
                    sample.until_last_ms(0.99)
                );
                p50.entry(server)
                    .or_default()
                    .push(sample.until_last_ms(0.5));
                p99.entry(server)
                    .or_default()
                    .push(sample.until_last_ms(0.99));
            }
        }
        let ratio = |theirs: Server| {
            median(
                &p50[&Server::Ours]
                    .iter()
                    .zip(&p50[&theirs])
                    .map(|(a, b)| a / b)
                    .collect::<Vec<_>>(),
            )
        };
        let cell = |s: Server| format!("{:.2} / {:.2}", median(&p50[&s]), median(&p99[&s]));
        table.row(vec![
            senders.to_string(),
            cell(Server::Ours),
            cell(Server::Fastwebsockets),
            cell(Server::TokioTungstenite),
            format!("**{:.2}**", ratio(Server::Fastwebsockets)),
            format!("{:.2}", ratio(Server::TokioTungstenite)),
        ]);
        chart.groups.push((
            format!("{senders} sender{}", if senders == 1 { "" } else { "s" }),
            CHAT_SERVERS.iter().map(|s| median(&p50[s])).collect(),
        ));
    }
    md.push_str(&table.to_markdown());
    results.sections.push(md);
    results.charts.push(("broadcast.svg".into(), chart));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Cluster
// ---------------------------------------------------------------------------------------------

/// A way to serve the broadcast benchmark's clients.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Layout {
    /// One chat_server, no Redis.
    OneNode,
    /// One chat_server publishing to Redis (nobody else subscribed).
    OneNodeRedis,
    /// Three chat_servers sharing the room through Redis, the clients spread over them.
    ThreeNodes,
}

impl Layout {
    fn name(self) -> &'static str {
        match self {
            Layout::OneNode => "1 node",
            Layout::OneNodeRedis => "1 node + Redis",
            Layout::ThreeNodes => "3 nodes + Redis",
        }
    }
}

const LAYOUTS: [Layout; 3] = [Layout::OneNode, Layout::OneNodeRedis, Layout::ThreeNodes];

/// The broadcast benchmark with the room on one node and spread over three through Redis:
/// what crossing Redis adds to the time until the last client has a message.
fn cluster(programs: &Programs, options: &Options, results: &mut Results) -> Result<(), LoadError> {
    let (clients, warmup, rounds) = if options.quick {
        (90, 2, 5)
    } else {
        (1000, 10, 100)
    };
    let redis = ws_tests::redis::RedisServer::start();
    let mut md = format!(
        "{clients} clients in one chat room, on one `chat_server` or spread evenly over three \
         `chat_server --redis` nodes and a `redis-server` (Debian's {}), all on this machine; \
         in each round the given number of clients (spread over the nodes too) post a message \
         at once. Time from a post until the last client has it, in ms ({rounds} rounds × {} \
         outer rounds, layouts in rotating order; medians). The CPU column is the CPU time \
         of the servers (nodes, and Redis when used) per message delivered to a client, the \
         clients' joins included:\n\n",
        redis_version(),
        options.rounds
    );
    let mut table = Table::new(&[
        "senders at once",
        "1 node p50 / p99",
        "1 node + Redis",
        "3 nodes + Redis",
        "3 nodes − 1 node (p99)",
        "server CPU per delivery, µs: 1 node / + Redis / 3 nodes",
    ]);
    for senders in [1, 10] {
        let mut p50: BTreeMap<Layout, Vec<f64>> = BTreeMap::new();
        let mut p99: BTreeMap<Layout, Vec<f64>> = BTreeMap::new();
        let mut cpu: BTreeMap<Layout, Vec<f64>> = BTreeMap::new();
        for round in 0..options.rounds {
            for k in 0..LAYOUTS.len() {
                let layout = LAYOUTS[(k + round) % LAYOUTS.len()];
                let (nodes, addrs) = programs.start_cluster(layout, &redis);
                // The CPU time of the servers: the nodes, and Redis when used.
                let mut pids: Vec<u32> = nodes.iter().map(Peer::pid).collect();
                if layout != Layout::OneNode {
                    pids.push(redis.pid());
                }
                let cpu_seconds = || pids.iter().map(|&p| process_cpu_seconds(p)).sum::<f64>();
                let before = cpu_seconds();
                let sample =
                    broadcast_load::run(&addrs, "/chat", clients, senders, warmup, rounds)?;
                let used = cpu_seconds() - before;
                drop(nodes);
                // Per message delivered to a client (the clients' joins included).
                let deliveries = ((warmup + rounds) * senders * clients) as f64;
                cpu.entry(layout).or_default().push(used * 1e6 / deliveries);
                eprintln!(
                    "round {round} {senders} senders {:>16}: p50 {:.2} ms p99 {:.2} ms",
                    layout.name(),
                    sample.until_last_ms(0.5),
                    sample.until_last_ms(0.99)
                );
                p50.entry(layout)
                    .or_default()
                    .push(sample.until_last_ms(0.5));
                p99.entry(layout)
                    .or_default()
                    .push(sample.until_last_ms(0.99));
            }
        }
        let cell = |l: Layout| format!("{:.2} / {:.2}", median(&p50[&l]), median(&p99[&l]));
        // Per outer round, side by side, then the median.
        let extra: Vec<f64> = p99[&Layout::ThreeNodes]
            .iter()
            .zip(&p99[&Layout::OneNode])
            .map(|(three, one)| three - one)
            .collect();
        table.row(vec![
            senders.to_string(),
            cell(Layout::OneNode),
            cell(Layout::OneNodeRedis),
            cell(Layout::ThreeNodes),
            format!("**{:+.2} ms**", median(&extra)),
            LAYOUTS
                .iter()
                .map(|l| format!("{:.2}", median(&cpu[l])))
                .collect::<Vec<_>>()
                .join(" / "),
        ]);
    }
    md.push_str(&table.to_markdown());
    results.cluster = Some(md);
    Ok(())
}

/// `redis-server --version`'s version, for the record.
fn redis_version() -> String {
    Command::new("redis-server")
        .arg("--version")
        .output()
        .ok()
        .and_then(|o| {
            let out = String::from_utf8_lossy(&o.stdout).into_owned();
            out.split_whitespace()
                .find_map(|w| w.strip_prefix("v=").map(|v| format!("Redis {v}")))
        })
        .unwrap_or_else(|| "Redis".into())
}

// ---------------------------------------------------------------------------------------------
// Idle memory
// ---------------------------------------------------------------------------------------------

fn memory(programs: &Programs, options: &Options, results: &mut Results) -> Result<(), LoadError> {
    let connections = if options.quick { 200 } else { 10_000 };
    let mut table = Table::new(&["server", "KiB per idle connection", "× ours"]);
    let mut per_conn = BTreeMap::new();
    for &server in &ECHO_SERVERS {
        let (peer, addr, path) = programs.start(server, false);
        std::thread::sleep(Duration::from_millis(300));
        let before = process_rss_kib(peer.pid());
        let mut open = Vec::with_capacity(connections);
        for _ in 0..connections {
            open.push(ws_bench::wire::connect(addr, path, Duration::from_secs(5))?);
        }
        std::thread::sleep(Duration::from_secs(1));
        let after = process_rss_kib(peer.pid());
        let kib = after.saturating_sub(before) as f64 / connections as f64;
        eprintln!("{:>18}: {kib:.2} KiB per idle connection", server.name());
        per_conn.insert(server, kib);
        drop(open);
        drop(peer);
    }
    for &server in &ECHO_SERVERS {
        table.row(vec![
            server.name().to_owned(),
            format!("{:.2}", per_conn[&server]),
            format!("{:.1}", per_conn[&server] / per_conn[&Server::Ours]),
        ]);
    }
    results.sections.push(format!(
        "### Idle memory\n\n![idle memory](benchmarks/memory.svg)\n\n\
         Resident memory of the server process per open, idle connection (after the \
         handshake), with {connections} connections: (RSS with them − RSS before) ÷ \
         {connections}.\n\n{}",
        table.to_markdown()
    ));
    results.charts.push((
        "memory.svg".into(),
        BarChart {
            title: format!("Server memory per idle connection ({connections} connections)"),
            unit: "KiB of RSS per connection (lower is better)".into(),
            series: vec!["KiB per connection".into()],
            groups: ECHO_SERVERS
                .iter()
                .map(|s| (s.name().to_owned(), vec![per_conn[s]]))
                .collect(),
            reference: None,
        },
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Codec in memory
// ---------------------------------------------------------------------------------------------

fn codec(options: &Options, results: &mut Results) {
    let (messages, rounds) = if options.quick {
        (2_000, 1)
    } else {
        (100_000, 5.max(options.rounds))
    };
    let payload = b"14 bytes here!";
    type Workload = fn(usize, &[u8]) -> Duration;
    let contenders: [(&str, Workload); 3] = [
        ("ours (ws-proto)", codec::ws_proto_round_trips),
        ("fastwebsockets", codec_peers::fastwebsockets_round_trips),
        ("tungstenite", codec_peers::tungstenite_round_trips),
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); contenders.len()];
    let mut allocs: Vec<f64> = vec![0.0; contenders.len()];
    for round in 0..rounds {
        for k in 0..contenders.len() {
            let i = (k + round) % contenders.len();
            let before = count_alloc::allocations();
            let elapsed = (contenders[i].1)(messages, payload);
            allocs[i] = (count_alloc::allocations() - before) as f64 / messages as f64;
            times[i].push(elapsed.as_secs_f64() * 1e3);
        }
    }
    let mut table = Table::new(&[
        "codec",
        "ms for the run",
        "ours ÷ it (speed)",
        "allocations per round trip",
    ]);
    for (i, (name, _)) in contenders.iter().enumerate() {
        let speed = median(
            &times[i]
                .iter()
                .zip(&times[0])
                .map(|(theirs, ours)| theirs / ours)
                .collect::<Vec<_>>(),
        );
        table.row(vec![
            name.to_string(),
            format!("{:.1}", median(&times[i])),
            format!("**{speed:.2}**"),
            format!("{:.2}", allocs[i]),
        ]);
    }
    results.sections.push(format!(
        "### Codec in memory\n\n{messages} round trips of a {} binary message: the client \
         sends it (masked), the server receives it and sends it back, the client receives the \
         echo; a client and a server of each library in one thread, joined by in-memory \
         buffers. Medians of {rounds} runs in rotating order:\n\n{}",
        size_label(payload.len()),
        table.to_markdown()
    ));
}

// ---------------------------------------------------------------------------------------------
// Allocations
// ---------------------------------------------------------------------------------------------

fn allocations(options: &Options, results: &mut Results) -> Result<(), LoadError> {
    use ws_mio::{Handler, Message, Server as WsServer, ServerConfig, Session};
    #[derive(Clone)]
    struct Echo;
    impl Handler for Echo {
        fn on_message(&mut self, session: &Session, message: Message) {
            let _ = session.send(message);
        }
    }
    let server = WsServer::bind("127.0.0.1:0", ServerConfig::default(), Echo)?;
    let addr = server.local_addr();
    let (warmup, measure) = if options.quick {
        (Duration::from_millis(200), Duration::from_millis(300))
    } else {
        (Duration::from_secs(1), Duration::from_secs(2))
    };
    let mut table = Table::new(&["connections × payload", "allocations per echoed message"]);
    // The load generator runs on its own thread, not counted; the server's loops are.
    for cell in [
        EchoCell {
            connections: 100,
            payload: 20,
            in_flight: 1,
        },
        EchoCell {
            connections: 10,
            payload: 16 << 10,
            in_flight: 1,
        },
        EchoCell {
            connections: 100,
            payload: 512,
            in_flight: 16,
        },
    ] {
        let sample = std::thread::spawn(move || {
            count_alloc::exclude_this_thread();
            let mut probe = || count_alloc::allocations() as f64;
            echo_load::run(addr, cell, warmup, measure, &mut probe)
        })
        .join()
        .expect("load thread")?;
        let per_message = sample.probe / sample.messages.max(1) as f64;
        eprintln!(
            "{} in flight {}: {per_message:.4} allocations per echo",
            cell.label(),
            cell.in_flight
        );
        table.row(vec![
            format!("{}, {} in flight", cell.label(), cell.in_flight),
            format!("{per_message:.3}"),
        ]);
    }
    server.stop();
    results.sections.push(format!(
        "### Allocations\n\nA `ws_mio::Server` echoing in the benchmark's own process, with a \
         counting global allocator; allocations by its event-loop threads during the measuring \
         window, divided by the messages echoed in it (steady state: the connections and \
         their buffers exist already):\n\n{}",
        table.to_markdown()
    ));
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The docs
// ---------------------------------------------------------------------------------------------

/// A page of docs/ and the markers around the block the suite writes in it.
struct Markers {
    page: &'static str,
    begin: &'static str,
    end: &'static str,
}

const SUITE_MARKERS: Markers = Markers {
    page: "benchmarks.md",
    begin:
        "<!-- suite:begin (written by `cargo run --release -p ws-bench -- all --write-docs`) -->",
    end: "<!-- suite:end -->",
};

const CLUSTER_MARKERS: Markers = Markers {
    page: "scaling-out.md",
    begin: "<!-- cluster:begin (written by `cargo run --release -p ws-bench -- cluster --write-docs`) -->",
    end: "<!-- cluster:end -->",
};

/// Puts the results between the markers of their page in docs/ and writes the charts.
fn write_docs(markers: Markers, text: &str, charts: &[(String, BarChart)]) {
    let Markers { page, begin, end } = markers;
    let docs = workspace_root().join("docs");
    let dir = docs.join("benchmarks");
    std::fs::create_dir_all(&dir).expect("create docs/benchmarks");
    for (name, chart) in charts {
        std::fs::write(dir.join(name), chart.to_svg()).expect("write a chart");
    }
    let page = docs.join(page);
    let current = std::fs::read_to_string(&page).expect("read the page in docs/");
    let machine = machine_line();
    let block = format!("{begin}\n\n{machine}\n\n{text}\n{end}");
    let updated = match (current.find(begin), current.find(end)) {
        (Some(b), Some(e)) if b < e => {
            format!("{}{block}{}", &current[..b], &current[e + end.len()..])
        }
        _ => format!("{current}\n{block}\n"),
    };
    std::fs::write(&page, updated).expect("write the page in docs/");
    eprintln!("wrote {} and {} charts", page.display(), charts.len());
}

/// When and on what the figures were measured.
fn machine_line() -> String {
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|m| m.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let date = Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    format!(
        "Measured {date} on {cpus} CPUs ({model}), everything on the same machine over \
         127.0.0.1, by `{}`.",
        program_name()
    )
}

fn program_name() -> String {
    let args: Vec<String> = std::env::args().skip(1).collect();
    format!(
        "cargo run --release -p ws-bench -- {}",
        args.join(" ")
            .replace(" --write-docs", "")
            .replace("--write-docs", "")
    )
    .trim_end()
    .to_owned()
}
