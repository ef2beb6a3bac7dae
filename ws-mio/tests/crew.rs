//! A server's threads take turns of its loops (Unix: `event_loop::crew`): every connection of
//! every loop is served, whichever thread runs it, and a quiet loop's timers fire on time
//! while the other loops are busy.

mod common;

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{pattern, RawClient, Recording, OP_BINARY};
use ws_mio::{Server, ServerConfig};

/// More loops than this machine has cores, so that threads must share the work.
const LOOPS: usize = 8;

fn server(handshake_timeout: Option<Duration>) -> Server {
    let (factory, _probe) = Recording::new(true);
    let mut config = ServerConfig::default();
    config.threads = LOOPS;
    config.protocol.handshake_timeout = handshake_timeout;
    Server::bind("127.0.0.1:0", config, factory).unwrap()
}

#[test]
fn every_connection_of_every_loop_is_echoed() {
    let server = server(None);
    let addr = server.local_addr();
    // 4 × LOOPS connections: accepted round-robin, so every loop owns four.
    let drivers: Vec<_> = (0..4)
        .map(|d| {
            std::thread::spawn(move || {
                let mut clients: Vec<RawClient> = (0..LOOPS)
                    .map(|_| RawClient::connect(addr, "/").unwrap())
                    .collect();
                for round in 0..50 {
                    for (i, client) in clients.iter_mut().enumerate() {
                        let payload = pattern(1 + (d * 31 + i * 7 + round) % 2000, i as u8);
                        client.send_frame(true, OP_BINARY, &payload).unwrap();
                        assert_eq!(client.read_message().unwrap(), (OP_BINARY, payload));
                    }
                }
            })
        })
        .collect();
    for driver in drivers {
        driver.join().unwrap();
    }
    server.stop();
}

/// Opens `count` sockets that never send a byte and checks that the server drops each at
/// its handshake timeout.
fn silent_sockets_are_dropped_on_time(addr: std::net::SocketAddr, count: usize, timeout: Duration) {
    let started = Instant::now();
    let silent: Vec<TcpStream> = (0..count)
        .map(|_| {
            let s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s
        })
        .collect();
    for mut socket in silent {
        // Dropped at the timeout: the read ends (EOF, or a reset) instead of timing out.
        let mut rest = Vec::new();
        let ended = match socket.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => {
                e.kind() != std::io::ErrorKind::WouldBlock
                    && e.kind() != std::io::ErrorKind::TimedOut
            }
        };
        let elapsed = started.elapsed();
        assert!(ended, "a silent socket was never dropped");
        assert!(
            elapsed >= timeout - Duration::from_millis(50) && elapsed < Duration::from_secs(2),
            "dropped after {elapsed:?}, expected about {timeout:?}"
        );
    }
}

#[test]
fn timers_fire_with_no_io_at_all() {
    // The only thing that can end the crew's wait is the loops' deadlines.
    let timeout = Duration::from_millis(300);
    let server = server(Some(timeout));
    silent_sockets_are_dropped_on_time(server.local_addr(), LOOPS, timeout);
    server.stop();
}

#[test]
fn a_quiet_loops_timer_fires_while_the_others_are_busy() {
    let timeout = Duration::from_millis(300);
    let server = server(Some(timeout));
    let addr = server.local_addr();
    // Busy connections on half the loops, echoing for the whole test.
    let busy = std::thread::spawn(move || {
        let mut clients: Vec<RawClient> = (0..LOOPS / 2)
            .map(|_| RawClient::connect(addr, "/").unwrap())
            .collect();
        let until = Instant::now() + Duration::from_millis(1500);
        while Instant::now() < until {
            for client in &mut clients {
                client.send_frame(true, OP_BINARY, b"busy").unwrap();
                assert_eq!(client.read_message().unwrap().1, b"busy");
            }
        }
    });
    // Silent sockets on the other loops: each loop's only event is its handshake timer.
    silent_sockets_are_dropped_on_time(addr, LOOPS / 2, timeout);
    busy.join().unwrap();
    server.stop();
}
