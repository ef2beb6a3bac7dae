//! The examples' command lines, run as a person would: `--help` prints the usage on stdout and
//! exits 0; a bad value, an unknown option, a missing value or an extra argument is named on
//! stderr with the usage line, exit status 2; `chat_client` takes one nickname; the logs follow
//! `RUST_LOG`; and Ctrl-C (SIGINT) stops `chat_server` gracefully: a connected participant gets
//! close 1001, the server says why and exits 0.
//!
//! The examples are built in release mode (as the conformance and browser tests build them, so
//! the builds are shared) and run directly, not through `cargo run`. Every wait is bounded.

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ws_facade::{ClientConfig, WebSocketFacade};
use ws_tests::{build_examples, free_port};

const WAIT: Duration = Duration::from_secs(20);

/// Every example of ws-mio and ws-facade, with the package it belongs to.
const EXAMPLES: [(&str, &str); 5] = [
    ("ws-mio", "echo_server"),
    ("ws-mio", "echo_client"),
    ("ws-facade", "chat_server"),
    ("ws-facade", "chat_client"),
    ("ws-facade", "framing"),
];

/// Builds every example in release mode (once per test process; a no-op when up to date)
/// and returns the path of `name`.
fn example(name: &str) -> PathBuf {
    static BUILT: OnceLock<PathBuf> = OnceLock::new();
    let dir = BUILT.get_or_init(|| {
        let mut dir = None;
        for package in ["ws-mio", "ws-facade"] {
            let names: Vec<&str> = EXAMPLES
                .iter()
                .filter(|(p, _)| *p == package)
                .map(|(_, name)| *name)
                .collect();
            dir = Some(build_examples(package, &names));
        }
        dir.expect("two packages")
    });
    dir.join(name)
}

/// What a finished run printed.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
}

/// Runs an example to its end (killed and failed after `WAIT`), `RUST_LOG` unset unless
/// `env` sets it.
fn run_with(name: &str, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(example(name));
    command
        .args(args)
        .env_remove("RUST_LOG")
        .envs(env.iter().copied());
    let mut proc = Proc::spawn(name, &mut command);
    let status = proc
        .wait_exit(WAIT)
        .unwrap_or_else(|| proc.fail(&format!("{name} {args:?} did not exit within {WAIT:?}")));
    // The readers end at EOF, right after the exit.
    let deadline = Instant::now() + Duration::from_secs(5);
    while proc
        .next_line(deadline.saturating_duration_since(Instant::now()))
        .is_some()
    {}
    while !proc.stderr_done() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let stdout = proc.seen.iter().map(|l| format!("{l}\n")).collect();
    Run {
        status,
        stdout,
        stderr: proc.stderr(),
    }
}

fn run(name: &str, args: &[&str]) -> Run {
    run_with(name, args, &[])
}

impl Run {
    /// Exit status 2 with `needles` on stderr (each), followed by the usage line; nothing on
    /// stdout.
    fn refused(&self, what: &str, needles: &[&str]) {
        let context = format!("{what}: stdout {:?}, stderr {:?}", self.stdout, self.stderr);
        assert_eq!(self.status.code(), Some(2), "{context}");
        for needle in needles {
            assert!(
                self.stderr.contains(needle),
                "{needle:?} missing; {context}"
            );
        }
        assert!(
            self.stderr.contains("\nusage: "),
            "no usage line; {context}"
        );
        assert!(self.stdout.is_empty(), "{context}");
    }
}

#[test]
fn help_prints_the_usage_on_stdout_and_exits_0() {
    for (_, name) in EXAMPLES {
        for flag in ["--help", "-h"] {
            let run = run(name, &[flag]);
            let context = format!(
                "{name} {flag}: stdout {:?}, stderr {:?}",
                run.stdout, run.stderr
            );
            assert!(run.status.success(), "{context}");
            assert!(
                run.stdout.starts_with(&format!("usage: {name} ")),
                "{context}"
            );
            for option in ["--help", "--verbose"] {
                assert!(
                    run.stdout.contains(option),
                    "{option} undocumented; {context}"
                );
            }
            assert_eq!(run.stderr, "", "{context}");
        }
    }
}

#[test]
fn the_options_other_tools_pass_are_still_documented() {
    // The flags other tools pass: they must stay, and stay documented.
    let options: [(&str, &[&str]); 4] = [
        ("echo_server", &["--port", "--threads"]),
        ("echo_client", &["--reflect", "URL", "MESSAGE"]),
        ("chat_server", &["--port", "--redis", "--node-id"]),
        ("chat_client", &["NICK", "--host", "--port", "--expect"]),
    ];
    for (name, expected) in options {
        let usage = run(name, &["--help"]).stdout;
        for option in expected {
            assert!(usage.contains(option), "{name}: {option} missing:\n{usage}");
        }
    }
}

#[test]
fn a_bad_port_is_named_with_the_flag_and_exits_2() {
    for name in ["echo_server", "chat_server", "chat_client"] {
        run(name, &["--port", "abc"]).refused(
            &format!("{name} --port abc"),
            &[&format!("{name}: invalid value 'abc' for --port")],
        );
        run(name, &["--port=70000"]).refused(
            &format!("{name} --port=70000"),
            &["invalid value '70000' for --port"],
        );
    }
    run("echo_server", &["--threads", "many"]).refused(
        "echo_server --threads many",
        &["invalid value 'many' for --threads"],
    );
    run("chat_client", &["bob", "--expect", "five"]).refused(
        "chat_client --expect five",
        &["invalid value 'five' for --expect"],
    );
}

#[test]
fn unknown_options_and_missing_values_are_named() {
    for (_, name) in EXAMPLES {
        run(name, &["--bogus"]).refused(&format!("{name} --bogus"), &["'--bogus'"]);
    }
    for name in ["echo_server", "chat_server", "chat_client"] {
        run(name, &["--port"]).refused(&format!("{name} --port"), &["missing", "'--port'"]);
    }
    run("chat_client", &["bob", "--host"]).refused("chat_client --host", &["'--host'"]);
    // `-p` is not a nickname (it used to be taken for one).
    run("chat_client", &["-p", "19001"]).refused("chat_client -p 19001", &["'-p'"]);
    run("chat_server", &["9001"]).refused("chat_server 9001", &["\"9001\""]);
    run("framing", &["extra"]).refused("framing extra", &["\"extra\""]);
}

#[test]
fn chat_server_checks_its_cluster_options_before_listening() {
    run("chat_server", &["--node-id", "a"]).refused("chat_server --node-id a", &["needs --redis"]);
    let port = free_port().to_string();
    let bad = run(
        "chat_server",
        &["--port", &port, "--redis", "http://127.0.0.1:6379"],
    );
    assert_eq!(bad.status.code(), Some(1), "{}", bad.stderr);
    assert!(
        bad.stderr.contains("redis://HOST:PORT"),
        "the error names the form expected: {}",
        bad.stderr
    );
}

#[test]
fn chat_client_takes_one_nickname() {
    // Refused before connecting: nothing needs to listen on the port.
    let port = free_port().to_string();
    run("chat_client", &["bob", "carol", "--port", &port])
        .refused("chat_client bob carol", &["\"carol\"", "one NICK"]);
}

#[test]
fn echo_client_wants_a_url_and_a_message_or_reflect() {
    run("echo_client", &[]).refused("echo_client", &["missing URL"]);
    run("echo_client", &["ws://127.0.0.1:9/"]).refused("echo_client URL", &["MESSAGE"]);
    run("echo_client", &["--reflect"]).refused("echo_client --reflect", &["missing URL"]);
    run("echo_client", &["--reflect", "ws://127.0.0.1:9/", "hi"])
        .refused("echo_client --reflect URL hi", &["\"hi\""]);
    run("echo_client", &["ws://127.0.0.1:9/", "a", "b"]).refused("echo_client URL a b", &["\"b\""]);
}

#[test]
fn logs_are_warnings_only_unless_verbose_or_rust_log() {
    let last = "client got  1 message of 65536 bytes, identical: true\n";
    let quiet = run("framing", &[]);
    assert!(quiet.status.success(), "{}", quiet.stderr);
    assert!(quiet.stdout.ends_with(last), "{}", quiet.stdout);
    for level in ["TRACE", "DEBUG", "INFO"] {
        assert!(!quiet.stderr.contains(level), "{}", quiet.stderr);
    }
    let verbose = run("framing", &["--verbose"]);
    assert!(verbose.status.success(), "{}", verbose.stderr);
    assert!(verbose.stdout.ends_with(last), "{}", verbose.stdout);
    assert!(!verbose.stderr.contains("TRACE"), "{}", verbose.stderr);
    // RUST_LOG overrides the default (mio logs its registrations at trace level).
    let traced = run_with("framing", &[], &[("RUST_LOG", "mio=trace")]);
    assert!(traced.status.success(), "{}", traced.stderr);
    assert!(
        traced.stderr.contains("TRACE mio::"),
        "RUST_LOG=mio=trace showed no mio trace: {:?}",
        traced.stderr
    );
}

#[test]
fn ctrl_c_stops_the_chat_server_and_closes_every_participant_with_1001() {
    let (mut server, port) = start_chat_server();

    let mut config = ClientConfig::default();
    config.client_id = "carol".into();
    config.path = "/chat".into();
    let client = WebSocketFacade::create_client(&config).expect("client config");
    let (closed_tx, closed) = mpsc::channel();
    let closed_tx = Mutex::new(closed_tx);
    client
        .as_websocket()
        .expect("websocket client")
        .set_close_callback(move |_, code, reason| {
            let _ = closed_tx.lock().unwrap().send((code, reason.to_owned()));
        });
    if let Err(e) = client.start("127.0.0.1", port) {
        server.fail(&format!("connect: {e}"));
    }
    server.expect_line("[chat] join carol (1 online)");

    let kill = Command::new("kill")
        .args(["-INT", &server.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success(), "kill -INT failed: {kill:?}");

    match closed.recv_timeout(WAIT) {
        Ok((code, _)) => assert_eq!(code, 1001, "close code"),
        Err(_) => server.fail("the client got no close within the wait"),
    }
    server.expect_line("[chat] interrupted: stopping (1 online)");
    server.expect_line("[chat] leave carol");
    let Some(status) = server.wait_exit(WAIT) else {
        server.fail("did not exit after SIGINT")
    };
    assert!(status.success(), "exit {status:?}: {}", server.report());
    let _ = client.stop();
}

/// Starts `chat_server --port <free port>`, retrying on another port if the one picked was
/// taken in between (at most 3 tries); returns once it listens.
fn start_chat_server() -> (Proc, u16) {
    let mut failures = Vec::new();
    for _ in 0..3 {
        let port = free_port();
        let mut command = Command::new(example("chat_server"));
        command
            .args(["--port", &port.to_string()])
            .env_remove("RUST_LOG");
        let mut server = Proc::spawn("chat_server", &mut command);
        match server.next_line(WAIT) {
            Some(line) if line == format!("[chat] ws://localhost:{port}/chat") => {
                server.expect_line(&format!(
                    "[chat] open http://localhost:{port}/ in a browser to join"
                ));
                return (server, port);
            }
            other => failures.push(format!("port {port}: {other:?}, {}", server.report())),
        }
    }
    panic!("chat_server did not start: {failures:#?}");
}

/// An example process: stdout read line by line, stderr collected, each on a thread; killed
/// on drop. (`ws_tests::Peer` does not expose the process id, which SIGINT needs.)
struct Proc {
    name: String,
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stderr_done: Receiver<()>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(name: &str, command: &mut Command) -> Proc {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({command:?}): {e}"));
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut pipe = child.stderr.take().expect("piped stderr");
        let stderr = Arc::new(Mutex::new(String::new()));
        let sink = Arc::clone(&stderr);
        let (done, stderr_done) = mpsc::channel();
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    break;
                }
                sink.lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
            let _ = done.send(());
        });
        Proc {
            name: name.to_owned(),
            child,
            lines,
            stderr,
            stderr_done,
            seen: Vec::new(),
        }
    }

    fn stderr(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Whether stderr reached its end.
    fn stderr_done(&self) -> bool {
        !matches!(self.stderr_done.try_recv(), Err(mpsc::TryRecvError::Empty))
    }

    fn report(&self) -> String {
        format!(
            "{}: stdout {:?}, stderr {:?}",
            self.name,
            self.seen,
            self.stderr()
        )
    }

    fn fail(&self, what: &str) -> ! {
        panic!("{what}; {}", self.report())
    }

    /// The next stdout line within `timeout`, or `None` (timeout or stdout closed).
    fn next_line(&mut self, timeout: Duration) -> Option<String> {
        let line = self.lines.recv_timeout(timeout).ok()?;
        self.seen.push(line.clone());
        Some(line)
    }

    /// Fails unless the next stdout line, within `WAIT`, is `expected`.
    fn expect_line(&mut self, expected: &str) {
        match self.next_line(WAIT) {
            Some(line) if line == expected => {}
            other => self.fail(&format!("expected {expected:?}, got {other:?}")),
        }
    }

    fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(10))
                }
                _ => return None,
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
