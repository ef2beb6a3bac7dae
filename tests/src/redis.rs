//! A real `redis-server` (Debian's package) on a free loopback port, for the cluster tests
//! and benchmarks: started, stopped and restarted on the same port, killed on drop.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{free_port, Peer, INSTALL_ALL};

/// How long a starting server may take to answer `PING`.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A `redis-server` process: no persistence, bound to 127.0.0.1.
pub struct RedisServer {
    port: u16,
    process: Option<Peer>,
}

impl RedisServer {
    /// Starts a server on a free port (another one if the port was taken meanwhile).
    pub fn start() -> RedisServer {
        let mut failures = Vec::new();
        for _ in 0..5 {
            let port = free_port();
            match spawn(port) {
                Ok(process) => {
                    return RedisServer {
                        port,
                        process: Some(process),
                    }
                }
                Err(why) => failures.push(why),
            }
        }
        panic!("redis-server did not start: {failures:#?}");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The process id (for its CPU time in `/proc`).
    pub fn pid(&self) -> u32 {
        self.process
            .as_ref()
            .expect("redis-server is running")
            .pid()
    }

    /// The port it listens on (kept across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL: as a crash, every client's connection just ends).
    pub fn kill(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = Command::new("kill")
                .args(["-KILL", &process.pid().to_string()])
                .status();
            let _ = process.wait_exit(Duration::from_secs(5));
        }
    }

    /// Stops the server (SIGSTOP): its connections stay open, and nothing is answered.
    pub fn pause(&self) {
        self.signal("-STOP");
    }

    /// Lets a paused server go on (SIGCONT).
    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let process = self.process.as_ref().expect("redis-server is running");
        let status = Command::new("kill")
            .args([signal, &process.pid().to_string()])
            .status()
            .expect("run kill");
        assert!(status.success(), "kill {signal} redis-server");
    }

    /// Starts the server again on the same port (retried while the port is still held).
    pub fn restart(&mut self) {
        self.kill();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            match spawn(self.port) {
                Ok(process) => {
                    self.process = Some(process);
                    return;
                }
                Err(why) if Instant::now() >= deadline => {
                    panic!("redis-server did not restart on port {}: {why}", self.port)
                }
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        }
    }

    /// Sends one command (inline form) and returns the first line of the reply.
    pub fn command(&self, command: &str) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(format!("{command}\r\n").as_bytes())?;
        let mut reply = Vec::new();
        let mut byte = [0u8; 1];
        while !reply.ends_with(b"\r\n") {
            if stream.read(&mut byte)? == 0 {
                break;
            }
            reply.push(byte[0]);
        }
        Ok(String::from_utf8_lossy(&reply).trim_end().to_owned())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `redis-server` from the PATH (Debian's package puts it in /usr/bin).
fn binary() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("redis-server"))
            .find(|path| path.is_file())
    });
    found.unwrap_or_else(|| {
        panic!("redis-server not found: install Debian's redis-server package, or {INSTALL_ALL}")
    })
}

/// Starts `redis-server` on `port` and waits until it answers `PING`.
fn spawn(port: u16) -> Result<Peer, String> {
    let mut command = Command::new(binary());
    command.args([
        "--port",
        &port.to_string(),
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]);
    let mut process = Peer::spawn("redis-server", &mut command).with_grace(Duration::ZERO);
    let server = RedisServer {
        port,
        process: None,
    };
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(reply) = server.command("PING") {
            if reply == "+PONG" {
                return Ok(process);
            }
        }
        if let Some(status) = process.wait_exit(Duration::ZERO) {
            return Err(format!(
                "exited ({status}): {}",
                process.seen().join("\n") + &process.stderr()
            ));
        }
        if Instant::now() >= deadline {
            return Err("no answer to PING".into());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
