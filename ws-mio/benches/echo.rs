//! Echo throughput: ws-mio's server against tokio-tungstenite's, same load, same run.
//!
//! ```text
//! cargo bench -p ws-mio --bench echo                 # every case
//! cargo bench -p ws-mio --bench echo -- 1k           # cases whose name contains "1k"
//! cargo bench -p ws-mio --bench echo -- --secs 5 --rounds 5 --window 4 64k
//! cargo bench -p ws-mio --bench echo -- --help
//! ```
//!
//! Each case (100 connections × one message size) runs both servers in turn, A B A B...,
//! for `--rounds` rounds; every run starts a fresh server on 127.0.0.1, connects the raw-TCP
//! load generator ([`support::loadgen`]), warms up, then counts echoes. The ratio reported is
//! the median of the per-round ratios (each measured side by side), with their range: on a
//! shared machine only such ratios mean something. Server CPU per message (the server
//! threads' on-CPU time over the echoes) is shown too: it does not count time stolen by other
//! processes, so it is steadier than msgs/s on a busy machine.
//!
//! Both servers get `--server-threads` threads (default 1) and the generator
//! `--loadgen-threads` (default 1): on a 2-core machine that leaves one core to each side.
//!
//! For profiling, `--serve ws-mio|tokio-tungstenite --port P` runs one server alone and
//! `--target HOST:PORT` loads an external server (e.g. the `echo_server` example under
//! valgrind) with the same generator.

mod support;

use std::time::Duration;

use support::loadgen::{self, LoadConfig, LoadResult};
use support::report::{median, thousands, Options, Table};
use support::servers::{Kind, Settings};

const CASES: &[(&str, usize)] = &[("16b", 16), ("1k", 1 << 10), ("64k", 64 << 10)];
/// A then B in every round.
const SERVERS: [Kind; 2] = [Kind::WsMio, Kind::TokioTungstenite];

fn main() {
    let options = Options::from_args();
    if let Some(name) = &options.serve {
        serve(name, &options);
    }
    let cases: Vec<(&str, usize)> = CASES
        .iter()
        .copied()
        .filter(|(name, _)| options.selects(name))
        .collect();
    if cases.is_empty() {
        eprintln!("no case matches {:?}", options.filters);
        std::process::exit(2);
    }
    println!(
        "echo throughput: {} connections, window {}, server threads {}, load-generator threads \
         {}, {:.1} s warm-up + {:.1} s measured, {} rounds",
        options.connections,
        options.window,
        options.server_threads,
        options.loadgen_threads,
        options.warmup.as_secs_f64(),
        options.duration.as_secs_f64(),
        options.rounds,
    );
    println!(
        "machine: {} cores, load average {}; tokio-tungstenite read_buffer_size: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        load_average(),
        options
            .tt_read_buffer
            .map_or("default (128 KiB)".to_string(), |n| n.to_string()),
    );
    if options.smoke {
        println!("smoke test (run without --bench): the numbers below are not measurements");
    }
    match options.target {
        Some(addr) => load_external(addr, &cases, &options),
        None => compare(&cases, &options),
    }
}

/// Runs both servers on every case and prints the comparison table.
fn compare(cases: &[(&str, usize)], options: &Options) {
    let mut table = Table::new(&[
        "case",
        "ws-mio msgs/s",
        "tokio-tungstenite msgs/s",
        "ratio",
        "ratio range",
        "ws-mio µs CPU/msg",
        "t-t µs CPU/msg",
        "CPU ratio",
    ]);
    for &(name, size) in cases {
        let load = load_config(options, size);
        // results[server][round]
        let mut results: [Vec<LoadResult>; 2] = [Vec::new(), Vec::new()];
        for round in 1..=options.rounds {
            for (i, kind) in SERVERS.into_iter().enumerate() {
                let result = run_once(kind, options, &load);
                println!(
                    "{name:>4} round {round}: {kind:<17} {:>9} msgs/s  {:6.2} µs server CPU/msg  \
                     busy: server {:3.0}%, load generator {:3.0}%",
                    thousands(result.rate()),
                    result.server_us_per_msg(),
                    100.0 * result.server_busy(options.server_threads),
                    100.0 * result.loadgen_busy(options.loadgen_threads),
                );
                results[i].push(result);
            }
        }
        let column = |i: usize, f: fn(&LoadResult) -> f64| -> Vec<f64> {
            results[i].iter().map(f).collect()
        };
        let (ours, theirs) = (column(0, LoadResult::rate), column(1, LoadResult::rate));
        let ratios: Vec<f64> = ours.iter().zip(&theirs).map(|(a, b)| a / b).collect();
        let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = ratios.iter().copied().fold(0.0, f64::max);
        let (our_cpu, their_cpu) = (
            median(&column(0, LoadResult::server_us_per_msg)),
            median(&column(1, LoadResult::server_us_per_msg)),
        );
        table.row(vec![
            format!("{name} × {}", options.connections),
            thousands(median(&ours)),
            thousands(median(&theirs)),
            format!("{:.2}×", median(&ratios)),
            format!("{lo:.2}–{hi:.2}"),
            format!("{our_cpu:.2}"),
            format!("{their_cpu:.2}"),
            format!("{:.2}×", their_cpu / our_cpu),
        ]);
    }
    println!(
        "\nmedians over rounds; ratio = median of the per-round ws-mio / tokio-tungstenite \
         msgs/s; CPU ratio = tokio-tungstenite / ws-mio server CPU per message"
    );
    print!("{}", table.render());
}

/// One measurement: a fresh server, the load, then the server stopped.
fn run_once(kind: Kind, options: &Options, load: &LoadConfig) -> LoadResult {
    let server = kind
        .start(&server_settings(options))
        .unwrap_or_else(|e| panic!("cannot start {kind}: {e}"));
    let result = loadgen::run(server.addr(), load, Some(kind.thread_prefix()))
        .unwrap_or_else(|e| panic!("{kind}, {} B: {e}", load.size));
    server.stop();
    result
}

/// `--target`: the load alone, against a server in another process.
fn load_external(addr: std::net::SocketAddr, cases: &[(&str, usize)], options: &Options) {
    for &(name, size) in cases {
        let load = load_config(options, size);
        for round in 1..=options.rounds {
            let result =
                loadgen::run(addr, &load, None).unwrap_or_else(|e| panic!("{addr}, {size} B: {e}"));
            println!(
                "{name:>4} round {round}: {addr} {:>9} msgs/s  busy: load generator {:3.0}%",
                thousands(result.rate()),
                100.0 * result.loadgen_busy(options.loadgen_threads),
            );
        }
    }
}

/// `--serve`: one server alone until the process is killed.
fn serve(name: &str, options: &Options) -> ! {
    let kind = SERVERS
        .into_iter()
        .find(|k| k.to_string() == name)
        .unwrap_or_else(|| panic!("--serve: unknown server {name:?}"));
    let server = kind
        .start_on(options.port, &server_settings(options))
        .unwrap_or_else(|e| panic!("cannot start {kind}: {e}"));
    println!("{kind} echo server on ws://{}", server.addr());
    loop {
        std::thread::sleep(Duration::from_secs(3600));
    }
}

fn server_settings(options: &Options) -> Settings {
    Settings {
        threads: options.server_threads,
        tt_read_buffer: options.tt_read_buffer,
    }
}

fn load_config(options: &Options, size: usize) -> LoadConfig {
    LoadConfig {
        connections: options.connections,
        size,
        window: options.window,
        threads: options.loadgen_threads,
        warmup: options.warmup,
        duration: options.duration,
    }
}

/// The 1-minute load average (how busy the shared machine was), or "?".
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}
