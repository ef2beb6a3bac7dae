//! Command-line options and the results table shared by the bench targets.

use std::time::Duration;

/// Options every bench target understands (`cargo bench -p ws-mio --bench NAME -- [OPTIONS]
/// [FILTER...]`). Filters select cases whose name contains one of them.
///
/// Without the `--bench` flag that `cargo bench` passes (as under `cargo test --benches` or
/// `--all-targets`), the defaults shrink to a smoke test of a second or two: 10 connections,
/// one round, 0.1 s warm-up and 0.2 s measured per server and case. Options still apply.
#[derive(Debug, Clone)]
pub struct Options {
    /// Case-name filters (empty: all cases).
    pub filters: Vec<String>,
    /// Measured seconds per run.
    pub duration: Duration,
    /// Load applied before each measurement.
    pub warmup: Duration,
    /// Rounds; each round runs every server once, alternating which goes first.
    pub rounds: usize,
    /// Concurrent connections.
    pub connections: usize,
    /// Messages in flight per connection.
    pub window: usize,
    /// Worker threads of every server.
    pub server_threads: usize,
    /// Load-generator threads.
    pub loadgen_threads: usize,
    /// tokio-tungstenite's read buffer size (`None`: its default).
    pub tt_read_buffer: Option<usize>,
    /// Load an external server at this address instead of the in-process ones (e.g. the
    /// `echo_server` example under a profiler).
    pub target: Option<std::net::SocketAddr>,
    /// Only run this in-process server (`ws-mio` or `tokio-tungstenite`) on `port` until
    /// killed, for a load generator in another process (`--target`).
    pub serve: Option<String>,
    /// Port for `serve` (0: any).
    pub port: u16,
    /// Run without `--bench`: a smoke test, not a measurement.
    pub smoke: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            filters: Vec::new(),
            duration: Duration::from_secs(2),
            warmup: Duration::from_millis(500),
            rounds: 3,
            connections: 100,
            window: 1,
            server_threads: 1,
            loadgen_threads: 1,
            tt_read_buffer: None,
            target: None,
            serve: None,
            port: 0,
            smoke: false,
        }
    }
}

pub const USAGE: &str = "\
options: [--secs S] [--warmup S] [--rounds N] [--conns N] [--window N]
         [--server-threads N] [--loadgen-threads N] [--tt-read-buffer BYTES]
         [--target HOST:PORT] [FILTER...]
         [--serve ws-mio|tokio-tungstenite [--port P]]
--target loads an external echo server only (e.g. the echo_server example under a profiler);
--serve runs one in-process server alone until killed (to be loaded or traced from outside).
FILTER selects the cases whose name contains it (e.g. 16b, 1k, 64k).";

impl Options {
    /// Parses `std::env::args()`; prints usage and exits on a bad option. `--bench` (which
    /// `cargo bench` passes) is ignored.
    pub fn from_args() -> Options {
        match Options::parse(std::env::args().skip(1)) {
            Ok(options) => options,
            Err(message) => {
                eprintln!("error: {message}\n{USAGE}");
                std::process::exit(2);
            }
        }
    }

    fn parse(args: impl Iterator<Item = String>) -> Result<Options, String> {
        let args: Vec<String> = args.collect();
        let mut options = Options::default();
        if !args.iter().any(|a| a == "--bench") {
            options.smoke = true;
            options.connections = 10;
            options.rounds = 1;
            options.warmup = Duration::from_millis(100);
            options.duration = Duration::from_millis(200);
        }
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |name: &str| -> Result<f64, String> {
                let v = args.next().ok_or(format!("{name} needs a value"))?;
                v.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v > 0.0)
                    .ok_or(format!("{name}: bad value {v:?}"))
            };
            match arg.as_str() {
                "--bench" => {}
                "--serve" => options.serve = Some(args.next().ok_or("--serve needs a server")?),
                "--port" => {
                    let v = args.next().ok_or("--port needs a value")?;
                    options.port = v.parse().map_err(|_| format!("--port: bad value {v:?}"))?;
                }
                "--target" => {
                    let v = args.next().ok_or("--target needs HOST:PORT")?;
                    let addr = std::net::ToSocketAddrs::to_socket_addrs(v.as_str())
                        .ok()
                        .and_then(|mut a| a.next())
                        .ok_or(format!("--target: bad address {v:?}"))?;
                    options.target = Some(addr);
                }
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                "--secs" => options.duration = Duration::from_secs_f64(value(&arg)?),
                "--warmup" => options.warmup = Duration::from_secs_f64(value(&arg)?),
                "--rounds" => options.rounds = value(&arg)? as usize,
                "--conns" => options.connections = value(&arg)? as usize,
                "--window" => options.window = value(&arg)? as usize,
                "--server-threads" => options.server_threads = value(&arg)? as usize,
                "--loadgen-threads" => options.loadgen_threads = value(&arg)? as usize,
                "--tt-read-buffer" => options.tt_read_buffer = Some(value(&arg)? as usize),
                flag if flag.starts_with('-') => return Err(format!("unknown option {flag}")),
                filter => options.filters.push(filter.to_owned()),
            }
        }
        if options.rounds == 0
            || options.connections == 0
            || options.window == 0
            || options.server_threads == 0
            || options.loadgen_threads == 0
        {
            return Err("counts must be at least 1".into());
        }
        Ok(options)
    }

    /// Whether the case named `name` is selected.
    pub fn selects(&self, name: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| name.contains(f.as_str()))
    }
}

/// Median of a non-empty list.
pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// A Markdown table, columns padded to line up in a terminal too.
#[derive(Debug, Default)]
pub struct Table {
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header.iter().map(|s| s.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let line = |cells: &[String]| -> String {
            let mut out = String::from("|");
            for (i, width) in widths.iter().enumerate() {
                let cell = cells.get(i).map_or("", String::as_str);
                let pad = width - cell.chars().count();
                // Text left, numbers right.
                if i == 0 {
                    out += &format!(" {cell}{} |", " ".repeat(pad));
                } else {
                    out += &format!(" {}{cell} |", " ".repeat(pad));
                }
            }
            out + "\n"
        };
        let mut out = line(&self.header);
        out += "|";
        for (i, width) in widths.iter().enumerate() {
            let dashes = "-".repeat(*width);
            out += &if i == 0 {
                format!(" {dashes} |")
            } else {
                format!(" {}: |", &dashes[1..])
            };
        }
        out += "\n";
        for row in &self.rows {
            out += &line(row);
        }
        out
    }
}

/// 1234567.8 -> "1,234,568".
pub fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}
