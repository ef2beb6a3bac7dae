//! Running out of file descriptors: `accept` fails (EMFILE) while a connection waits in the
//! listener's backlog. Once descriptors are free again the server accepts it by itself, with no
//! new connection arriving to raise another event on the (edge-triggered) listener.
//!
//! A file of its own: the test lowers this process's `RLIMIT_NOFILE`, which no other test may
//! share.
#![cfg(target_os = "linux")]

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;

use common::{Ev, Recording, WAIT};
use ws_mio::{DriverError, Server, ServerConfig};

fn open_descriptors() -> u64 {
    std::fs::read_dir("/proc/self/fd").unwrap().count() as u64
}

#[test]
fn accepting_resumes_after_file_descriptors_run_out() {
    let (factory, probe) = Recording::new(true);
    let mut config = ServerConfig::default();
    config.threads = 1;
    let server = Server::bind("127.0.0.1:0", config, factory).unwrap();
    let addr = server.local_addr();

    // Lower the soft limit to a little above what is open, then take every descriptor left.
    let soft = open_descriptors() + 32;
    let lowered = Command::new("prlimit")
        .arg(format!("--pid={}", std::process::id()))
        .arg(format!("--nofile={soft}:"))
        .status()
        .expect("prlimit (util-linux) runs");
    assert!(lowered.success());
    let mut fillers = Vec::new();
    loop {
        match std::fs::File::open("/dev/null") {
            Ok(file) => fillers.push(file),
            Err(e) if e.raw_os_error() == Some(24) => break, // EMFILE
            Err(e) => panic!("{e}"),
        }
        assert!(fillers.len() <= 64, "the lowered limit did not take");
    }
    // One descriptor for the client: the server has none left to accept with.
    drop(fillers.pop());
    let mut client = TcpStream::connect(addr).unwrap();
    client.set_read_timeout(Some(WAIT)).unwrap();
    client
        .write_all(
            format!(
                "GET / HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
                 Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
            )
            .as_bytes(),
        )
        .unwrap();
    let error = probe.expect("the failed accept", |ev| match ev {
        Ev::Error(None, DriverError::Io(e)) => Some(e),
        _ => None,
    });
    assert_eq!(error.raw_os_error(), Some(24), "{error}");

    // Free the descriptors; nothing else happens on the listener.
    drop(fillers);
    let mut response = Vec::new();
    let mut byte = [0; 1];
    while !response.ends_with(b"\r\n\r\n") {
        match client.read(&mut byte) {
            Ok(1) => response.push(byte[0]),
            Ok(_) => panic!("closed after {:?}", String::from_utf8_lossy(&response)),
            Err(e) if e.kind() == ErrorKind::WouldBlock => panic!("not accepted within {WAIT:?}"),
            Err(e) => panic!("{e}"),
        }
    }
    assert!(response.starts_with(b"HTTP/1.1 101 "));
    probe.opened();
    drop(client);
    server.stop();
}
