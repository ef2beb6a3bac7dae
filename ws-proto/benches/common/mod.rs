//! A small timing harness shared by the `harness = false` benches.
//!
//! Why not criterion: it takes minutes to build on the 2-core machines, and what these benches
//! need is narrower: *ratios* between contenders measured side by side in the same run on a
//! shared, noisy machine. So every group is measured in interleaved rounds: in each round every
//! case runs one timed sample (order rotated from round to round), so a burst of outside load
//! hits all contenders of the round alike. A case's throughput is the median of its samples; a
//! ratio between two cases is the median of the per-round ratios, which cancels most of the
//! drift a shared machine has.
//!
//! Each group (one payload size) is measured in a process of its own: the bench re-runs itself
//! once per group. What one group leaves in the allocator (heap layout, glibc's dynamic mmap
//! and trim thresholds) was seen to change another group's results, tungstenite's 1 MiB reads
//! most of all (about 2x depending on which sizes ran before).
//!
//! Run with `cargo bench -p ws-proto` (full measurement). Without `--bench` (as under
//! `cargo test --all-targets`) every case runs a few iterations only, as a smoke test.
//! Positional arguments filter groups by substring (`decode/16 B`, `64 KiB`). Environment:
//! `WS_BENCH_ROUNDS` (default 51) and `WS_BENCH_SAMPLE_MS` (target length of one sample,
//! default 2). For instruction counts under `valgrind --tool=callgrind`, which are exact where
//! timings on a shared machine are not: `WS_BENCH_ITERS=n` runs each case exactly `n`
//! iterations, untimed, and with it `WS_BENCH_CASE=text` keeps only the cases whose name
//! contains `text`; the difference between two counts (say `n` = 1 and 3) divided by the extra
//! iterations is the cost of one, free of the setup.

// Each bench binary uses only part of this module.
#![allow(dead_code)]

use std::hint::black_box;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Set in the environment of the per-group child processes.
const CHILD_ENV: &str = "WS_BENCH_CHILD";
/// Prefix of the summary-table rows a child prints for its parent to collect.
const SUMMARY_PREFIX: &str = "summary-row ";

/// One contender: runs its operation `n` times per call.
pub struct Case<'a> {
    pub name: String,
    /// Payload bytes handled by one iteration.
    pub bytes: u64,
    /// Messages handled by one iteration (0 where it means nothing).
    pub msgs: u64,
    run: Box<dyn FnMut(u64) + 'a>,
}

impl<'a> Case<'a> {
    /// `op` is one iteration; the loop around it is monomorphised with it, so the harness adds
    /// no indirect call per iteration.
    pub fn new(
        name: impl Into<String>,
        bytes: u64,
        msgs: u64,
        mut op: impl FnMut() + 'a,
    ) -> Case<'a> {
        Case {
            name: name.into(),
            bytes,
            msgs,
            run: Box::new(move |n| {
                for _ in 0..n {
                    op();
                }
            }),
        }
    }
}

pub struct Options {
    pub full: bool,
    filters: Vec<String>,
    rounds: usize,
    sample: Duration,
    fixed_iters: Option<u64>,
    case_filter: Option<String>,
}

impl Options {
    pub fn from_env() -> Options {
        let mut full = false;
        let mut filters = Vec::new();
        for arg in std::env::args().skip(1) {
            if arg == "--bench" {
                full = true;
            } else if !arg.starts_with('-') {
                filters.push(arg);
            }
        }
        let env = |name: &str, default: u64| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.parse().ok())
                .unwrap_or(default)
        };
        Options {
            full,
            filters,
            rounds: env("WS_BENCH_ROUNDS", 51).max(1) as usize,
            sample: Duration::from_millis(env("WS_BENCH_SAMPLE_MS", 2).max(1)),
            fixed_iters: std::env::var("WS_BENCH_ITERS")
                .ok()
                .and_then(|v| v.parse().ok()),
            case_filter: std::env::var("WS_BENCH_CASE")
                .ok()
                .filter(|v| !v.is_empty()),
        }
    }

    pub fn wants(&self, group: &str) -> bool {
        self.filters.is_empty() || self.filters.iter().any(|f| group.contains(f.as_str()))
    }

    /// This process measures one group for a parent (see [`isolate`]).
    pub fn is_child(&self) -> bool {
        std::env::var_os(CHILD_ENV).is_some()
    }

    /// Prints the machine line, once per run (not in the per-group children).
    pub fn header(&self, extra: &str) {
        if self.full && !self.is_child() {
            print_machine();
            if !extra.is_empty() {
                println!("{extra}");
            }
        }
    }
}

/// In a full run without filters, runs every group in a child process of its own (this same
/// executable, with the group as filter), passing their tables through; returns the summary
/// rows they reported. Returns `None` where the caller should measure in this process: in a
/// child, under filters, in smoke mode.
pub fn isolate(opts: &Options, groups: &[String]) -> Option<Vec<String>> {
    if !opts.full || !opts.filters.is_empty() || opts.is_child() || opts.fixed_iters.is_some() {
        return None;
    }
    let exe = std::env::current_exe().expect("path of the bench executable");
    let mut rows = Vec::new();
    for group in groups {
        let out = Command::new(&exe)
            .arg("--bench")
            .arg(group)
            .env(CHILD_ENV, "1")
            .stderr(Stdio::inherit())
            .output()
            .expect("run a bench group");
        assert!(out.status.success(), "bench group {group} failed");
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            match line.strip_prefix(SUMMARY_PREFIX) {
                Some(row) => rows.push(row.to_string()),
                None => println!("{line}"),
            }
        }
    }
    Some(rows)
}

/// Prints a summary table: its rows go to the parent from a child, or are printed under
/// `header` (the table's title and column lines) otherwise.
pub fn print_summary(opts: &Options, header: &str, rows: &[String]) {
    if rows.is_empty() {
        return;
    }
    if opts.is_child() {
        for row in rows {
            println!("{SUMMARY_PREFIX}{row}");
        }
    } else {
        println!("{header}");
        for row in rows {
            println!("{row}");
        }
    }
}

/// The samples of one case, in ns per iteration, one per round.
pub struct Measured {
    pub name: String,
    pub bytes: u64,
    pub msgs: u64,
    pub ns: Vec<f64>,
}

impl Measured {
    pub fn median_ns(&self) -> f64 {
        median(self.ns.clone())
    }

    pub fn mib_per_s(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / (self.median_ns() * 1e-9)
    }

    pub fn msgs_per_s(&self) -> f64 {
        self.msgs as f64 / (self.median_ns() * 1e-9)
    }

    pub fn min_ns(&self) -> f64 {
        self.ns.iter().copied().fold(f64::INFINITY, f64::min)
    }

    /// Throughput of the fastest sample (the least disturbed by other processes).
    pub fn best_mib_per_s(&self) -> f64 {
        self.bytes as f64 / (1 << 20) as f64 / (self.min_ns() * 1e-9)
    }

    /// Throughput of `self` over `other`, from the fastest sample of each.
    pub fn best_ratio_to(&self, other: &Measured) -> f64 {
        (self.bytes as f64 / self.min_ns()) / (other.bytes as f64 / other.min_ns())
    }

    /// Half the interquartile range of the throughput, relative to the median (a "±" figure).
    pub fn spread(&self) -> f64 {
        let mut v = self.ns.clone();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() - 1) as f64 * p).round() as usize];
        (q(0.75) - q(0.25)) / 2.0 / self.median_ns()
    }

    /// Throughput (bytes per second) of `self` over `other`: the median of the per-round
    /// ratios.
    pub fn ratio_to(&self, other: &Measured) -> f64 {
        let scale = self.bytes as f64 / other.bytes as f64;
        median(
            self.ns
                .iter()
                .zip(&other.ns)
                .map(|(mine, theirs)| theirs / mine * scale)
                .collect(),
        )
    }
}

pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

fn time(run: &mut dyn FnMut(u64), n: u64) -> Duration {
    let start = Instant::now();
    run(black_box(n));
    start.elapsed()
}

/// Measures the cases of one group side by side (see the module docs). Returns `None` in smoke
/// mode, after running each case a couple of times.
pub fn run_group(opts: &Options, group: &str, cases: Vec<Case<'_>>) -> Option<Vec<Measured>> {
    let mut cases = cases;
    if let Some(n) = opts.fixed_iters {
        if let Some(filter) = &opts.case_filter {
            cases.retain(|c| c.name.contains(filter.as_str()));
        }
        for case in &mut cases {
            (case.run)(n);
            println!("{group}: {} ran {n} iterations", case.name);
        }
        return None;
    }
    if !opts.full {
        for case in &mut cases {
            (case.run)(2);
        }
        println!("{group}: smoke run of {} cases ok", cases.len());
        return None;
    }
    // Calibrate: iterations per sample so one sample lasts about `opts.sample` (this also warms
    // caches, the allocator and the branch predictors up).
    let mut iters = Vec::with_capacity(cases.len());
    for case in &mut cases {
        let mut n = 1u64;
        loop {
            let t = time(&mut case.run, n);
            if t >= opts.sample / 4 || n >= 1 << 40 {
                let per = t.as_secs_f64() / n as f64;
                iters.push(((opts.sample.as_secs_f64() / per) as u64).max(1));
                break;
            }
            n *= 2;
        }
    }
    let mut ns = vec![Vec::with_capacity(opts.rounds); cases.len()];
    for round in 0..opts.rounds {
        for k in 0..cases.len() {
            let i = (k + round) % cases.len();
            let t = time(&mut cases[i].run, iters[i]);
            ns[i].push(t.as_nanos() as f64 / iters[i] as f64);
        }
    }
    Some(
        cases
            .into_iter()
            .zip(ns)
            .map(|(case, ns)| Measured {
                name: case.name,
                bytes: case.bytes,
                msgs: case.msgs,
                ns,
            })
            .collect(),
    )
}

/// Human size: `16 B`, `1 KiB`, `64 KiB`, `1 MiB`.
pub fn size_name(size: usize) -> String {
    match size {
        s if s >= 1 << 20 && s % (1 << 20) == 0 => format!("{} MiB", s >> 20),
        s if s >= 1 << 10 && s % (1 << 10) == 0 => format!("{} KiB", s >> 10),
        s => format!("{s} B"),
    }
}

/// A deterministic pseudo-random byte stream (xorshift), so runs see the same data.
pub fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 24) as u8
        })
        .collect()
}

/// Distance (mod 4096) kept between a copy's source and its destination; see [`window_for`].
pub const COPY_DISTANCE: usize = 2048;

/// The `size`-byte window of `pool` (at least `size + 4095` bytes long) that sits
/// [`COPY_DISTANCE`] bytes below `dst` modulo 4 KiB, plus `skew` bytes: with `skew` 0 at the
/// same alignment as `dst`, and always far from 4 KiB aliasing with it.
///
/// Why: on this machine's CPU (AMD Zen 3, FSRM) glibc's `memcpy` uses `rep movsb` for sizes
/// between a few KiB and the non-temporal threshold, and `rep movsb` runs about 20 times slower
/// when `(dst - src) mod 4096` falls in `1..=31`. Which case a benchmark hits would otherwise
/// depend on where the allocator put its buffers, making runs disagree. Copies measured with
/// this placement are glibc's best case: a fair ceiling.
pub fn window_for(pool: &[u8], size: usize, dst: *const u8, skew: usize) -> &[u8] {
    assert!(pool.len() >= size + 4095, "pool too small");
    let want = (dst as usize)
        .wrapping_sub(COPY_DISTANCE)
        .wrapping_add(skew)
        % 4096;
    let start = (want + 4096 - pool.as_ptr() as usize % 4096) % 4096;
    &pool[start..start + size]
}

/// Prints the machine line every table starts with.
pub fn print_machine() {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|m| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!("machine: {cpu}, {cores} logical cores available");
}
