//! Support for the cross-crate and interoperability tests in `tests/tests/`.
//!
//! The tests talk to real peers: Python `websockets` (in the workspace's `.venv`), Node `ws`
//! (in `tests/node_modules`) and Debian's Chromium driven by `playwright-core`. A missing peer
//! is a test failure whose message says how to install it (`bash .ci/run` installs them all),
//! never a silent skip.
//!
//! [`Peer`] runs one such process with piped stdin/stdout, reads its stdout as lines on a
//! thread of its own, and kills it when dropped, so a failing test never leaves a process behind.
//! Every wait is bounded by a deadline.

pub mod certs;
pub mod redis;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The pinned version of Python `websockets` that `.ci/run` installs.
pub const PYTHON_WEBSOCKETS: &str = "websockets==17.4";

/// How to install every peer at once.
const INSTALL_ALL: &str = "run `bash .ci/run` from the repository root (it installs every peer)";

/// The workspace root (the parent of this package's directory).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests package sits inside the workspace")
        .to_path_buf()
}

/// Builds `examples` of `package` in release mode (a no-op when they are up to date) and
/// returns the directory holding the binaries. The facade's examples are built with its
/// `redis` feature (`chat_server --redis`), always, so that no two callers rebuild them back
/// and forth.
pub fn build_examples(package: &str, examples: &[&str]) -> PathBuf {
    let root = workspace_root();
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut build = Command::new(cargo);
    build.args(["build", "--release", "-p", package]);
    if package == "ws-facade" {
        build.args(["--features", "redis"]);
    }
    for example in examples {
        build.args(["--example", example]);
    }
    let out = build
        .current_dir(&root)
        .stdin(Stdio::null())
        .output()
        .expect("run cargo build");
    assert!(
        out.status.success(),
        "building the {package} examples {examples:?} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .map(|t| if t.is_relative() { root.join(t) } else { t })
        .unwrap_or_else(|| root.join("target"));
    target.join("release/examples")
}

/// A file of this package (e.g. `interop/py_echo_server.py`).
pub fn tests_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The virtualenv's Python with `websockets` importable; panics with install instructions if
/// it is missing.
pub fn python() -> PathBuf {
    let python = workspace_root().join(".venv/bin/python");
    let install = format!(
        "{INSTALL_ALL}, or: python3 -m venv .venv && .venv/bin/pip install '{PYTHON_WEBSOCKETS}'"
    );
    assert!(
        python.exists(),
        "Python peer missing: {} does not exist; {install}",
        python.display()
    );
    let check = Command::new(&python)
        .args([
            "-c",
            "import websockets.sync.server, websockets.sync.client",
        ])
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}; {install}", python.display()));
    assert!(
        check.status.success(),
        "Python `websockets` is not importable from {}: {}; {install}",
        python.display(),
        String::from_utf8_lossy(&check.stderr).trim()
    );
    python
}

/// `node`, with the npm packages of `tests/package.json` installed; panics with install
/// instructions if either is missing. `packages` are the module names the caller needs.
pub fn node(packages: &[&str]) -> PathBuf {
    let install = format!("{INSTALL_ALL}, or: npm ci --prefix tests");
    let version = Command::new("node")
        .arg("--version")
        .stdin(Stdio::null())
        .output();
    match version {
        Ok(out) if out.status.success() => {}
        _ => panic!(
            "Node.js peer missing: `node --version` failed; install Debian's nodejs and npm \
             (apt-get install -y nodejs npm), then {install}"
        ),
    }
    for package in packages {
        let dir = tests_file("node_modules").join(package);
        assert!(
            dir.join("package.json").exists(),
            "Node package `{package}` missing: {} does not exist; {install}",
            dir.display()
        );
    }
    PathBuf::from("node")
}

/// Debian's Chromium; panics with install instructions if it is missing.
pub fn chromium() -> PathBuf {
    let path = PathBuf::from("/usr/bin/chromium");
    assert!(
        path.exists(),
        "Chromium missing: {} does not exist; {INSTALL_ALL}, or: apt-get install -y chromium \
         chromium-driver",
        path.display()
    );
    path
}

/// A port that was free on 127.0.0.1 a moment ago (for programs that only take a fixed port:
/// callers retry if it was taken in between).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A peer implementation for the compression and TLS interop tests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeerImpl {
    /// Python `websockets` (`tests/interop/py_deflate_peer.py`).
    Python,
    /// Node `ws` (`tests/interop/node_deflate_peer.mjs`).
    Node,
}

/// Starts the peer script of `which` with `args` (its modes and options are documented at the
/// top of each script: `server`, `client URL`, `--cert`/`--key`/`--ca`, ...).
pub fn interop_peer(which: PeerImpl, args: &[&str]) -> Peer {
    let (name, mut command) = match which {
        PeerImpl::Python => {
            let mut c = Command::new(python());
            c.arg(tests_file("interop/py_deflate_peer.py"));
            ("python websockets peer", c)
        }
        PeerImpl::Node => {
            let mut c = Command::new(node(&["ws"]));
            c.arg(tests_file("interop/node_deflate_peer.mjs"));
            ("node ws peer", c)
        }
    };
    command.args(args);
    Peer::spawn(name, &mut command)
}

/// CPU seconds (user + system) the process `pid` has used, from `/proc/PID/stat` (benches).
pub fn process_cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("read /proc stat");
    // The fields after the command name (which may hold spaces and parentheses): from the 3rd.
    let rest = &stat[stat.rfind(')').expect("stat format") + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    let ticks = |i: usize| fields[i].parse::<f64>().expect("a tick count");
    // utime and stime, in clock ticks (100 per second on Linux).
    (ticks(11) + ticks(12)) / 100.0
}

/// Resident memory of the process `pid` in KiB, from `/proc/PID/status` (benches).
pub fn process_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// Hex of some bytes (the peers print binary payloads in hex).
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A running peer process: stdin to send it commands, stdout read line by line on a thread,
/// stderr kept for failure messages. Killed (and reaped) on drop.
pub struct Peer {
    name: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    /// Every stdout line read so far, for failure messages.
    seen: Vec<String>,
    /// How long drop waits for the process to exit by itself once stdin is closed.
    grace: Duration,
}

impl Peer {
    /// Starts `command` with piped stdio. `name` appears in failure messages.
    pub fn spawn(name: &str, command: &mut Command) -> Peer {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let mut stderr_pipe = child.stderr.take().expect("piped stderr");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = stderr_pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Peer {
            name: name.to_owned(),
            stdin: child.stdin.take(),
            child,
            lines,
            stderr,
            seen: Vec::new(),
            grace: Duration::from_secs(5),
        }
    }

    /// Sets how long drop waits, after closing stdin, before it terminates the process
    /// (default 5 s; zero for a program that does not read stdin).
    pub fn with_grace(mut self, grace: Duration) -> Peer {
        self.grace = grace;
        self
    }

    /// The process id (for signals, and for reading its CPU time and memory in `/proc`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the process wrote on stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Every stdout line read so far.
    pub fn seen(&self) -> &[String] {
        &self.seen
    }

    /// Panics with `what`, the lines read so far and the process's stderr.
    pub fn fail(&self, what: &str) -> ! {
        panic!(
            "{}: {what}\n--- stdout lines read so far:\n{}\n--- stderr:\n{}",
            self.name,
            self.seen.join("\n"),
            self.stderr()
        )
    }

    /// The next stdout line, or `None` if none came within `timeout` or stdout closed.
    pub fn try_next_line(&mut self, timeout: Duration) -> Option<String> {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                self.seen.push(line.clone());
                Some(line)
            }
            Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => None,
        }
    }

    /// The next stdout line; fails the test if none comes within `timeout`.
    pub fn next_line(&mut self, timeout: Duration) -> String {
        match self.lines.recv_timeout(timeout) {
            Ok(line) => {
                self.seen.push(line.clone());
                line
            }
            Err(RecvTimeoutError::Timeout) => {
                self.fail(&format!("no output line within {timeout:?}"))
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.wait_exit(Duration::from_secs(2));
                self.fail(&format!("stdout closed (process ended: {status:?})"))
            }
        }
    }

    /// Reads lines until one satisfies `matches` (returned), failing the test if none does
    /// within `timeout`. Lines skipped on the way are kept in [`seen`](Self::seen).
    pub fn line_where(&mut self, timeout: Duration, matches: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.try_next_line(left) {
                Some(line) if matches(&line) => return line,
                Some(_) => {}
                None => {
                    let status = self.wait_exit(Duration::ZERO);
                    self.fail(&format!(
                        "no matching line within {timeout:?} (process ended: {status:?})"
                    ))
                }
            }
        }
    }

    /// Sends one line to the process's stdin.
    pub fn send_line(&mut self, line: &str) {
        let result = match self.stdin.as_mut() {
            Some(stdin) => writeln!(stdin, "{line}").and_then(|_| stdin.flush()),
            None => self.fail("stdin already closed"),
        };
        if let Err(e) = result {
            self.fail(&format!("cannot write {line:?} to stdin: {e}"));
        }
    }

    /// Closes the process's stdin (the peers take it as "the test is over").
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits up to `timeout` for the process to exit; `None` if it is still running.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                _ => return None,
            }
        }
    }

    /// Waits for the process to exit, then collects the rest of its stdout lines (bounded by
    /// `timeout` in all); fails the test if it does not exit in time.
    pub fn finish(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let Some(status) = self.wait_exit(timeout) else {
            self.fail(&format!("did not exit within {timeout:?}"))
        };
        // The reader thread ends at EOF, which follows the exit: drain what it still has.
        while let Some(_line) =
            self.try_next_line(deadline.saturating_duration_since(Instant::now()))
        {}
        status
    }
}

impl Drop for Peer {
    /// Closes stdin (every peer script exits on its own then: the browser driver closes
    /// Chromium first), waits a little, then asks with SIGTERM (Playwright closes the browser
    /// it launched on SIGTERM) and finally kills.
    fn drop(&mut self) {
        self.stdin = None;
        if self.wait_exit(self.grace).is_some() {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if self.wait_exit(Duration::from_secs(3)).is_some() {
            return;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_is_lowercase_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xab, 0xff]), "000fabff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn peer_writes_stdin_and_reads_stdout_lines() {
        let mut peer = Peer::spawn("cat", &mut Command::new("cat"));
        peer.send_line("first");
        peer.send_line("second line");
        assert_eq!(peer.next_line(Duration::from_secs(5)), "first");
        assert_eq!(
            peer.line_where(Duration::from_secs(5), |l| l.starts_with("second")),
            "second line"
        );
        assert_eq!(peer.try_next_line(Duration::from_millis(50)), None);
        peer.close_stdin();
        assert!(peer.finish(Duration::from_secs(5)).success());
        assert_eq!(peer.seen(), ["first", "second line"]);
    }

    #[test]
    fn dropping_a_peer_ends_a_process_that_ignores_stdin() {
        let peer = Peer::spawn("sleep", Command::new("sleep").arg("30"))
            .with_grace(Duration::from_millis(100));
        let proc_dir = PathBuf::from(format!("/proc/{}", peer.child.id()));
        assert!(proc_dir.exists());
        let started = Instant::now();
        drop(peer);
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(!proc_dir.exists(), "the process is still there after drop");
    }

    #[test]
    fn a_missing_line_fails_with_the_output_so_far() {
        let result = std::panic::catch_unwind(|| {
            let mut peer = Peer::spawn(
                "quiet",
                Command::new("sh").args(["-c", "echo only; echo oops >&2; sleep 5"]),
            )
            .with_grace(Duration::ZERO);
            // Both outputs first (bounded waits), so that only "never" can be missing.
            peer.line_where(Duration::from_secs(10), |l| l == "only");
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !peer.stderr().contains("oops") && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
            peer.line_where(Duration::from_millis(300), |l| l == "never")
        });
        let message = result.expect_err("must fail");
        let message = message.downcast_ref::<String>().expect("a formatted panic");
        assert!(message.contains("quiet: no matching line"), "{message}");
        assert!(
            message.contains("only") && message.contains("oops"),
            "{message}"
        );
    }
}
