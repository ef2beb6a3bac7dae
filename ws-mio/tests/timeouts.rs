//! Timers seen from outside: a handshake that never completes (slowloris), a peer that stops
//! answering pings, and `Server::stop` with connections still open (also after a stop from a
//! callback).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::{Arc, OnceLock, Weak};
use std::time::{Duration, Instant};

use common::{eventually, Ending, Ev, RawClient, Recorder, Recording, OP_CLOSE, OP_PING, WAIT};
use ws_mio::ws_proto::handshake::UpgradeRequest;
use ws_mio::ws_proto::{Error, TimeoutKind};
use ws_mio::{
    Decision, Disconnect, DriverError, Factory, Handler, Message, Server, ServerConfig, Session,
};

#[test]
fn an_incomplete_handshake_is_cut_at_the_handshake_timeout() {
    let (factory, probe) = Recording::new(true);
    let mut config = ServerConfig::default();
    config.threads = 1;
    // Long enough for the good client's handshake on a loaded machine: it runs the same timer.
    let timeout = Duration::from_secs(1);
    config.protocol.handshake_timeout = Some(timeout);
    let server = Server::bind("127.0.0.1:0", config, factory).unwrap();

    let started = Instant::now();
    let mut slow = TcpStream::connect(server.local_addr()).unwrap();
    slow.write_all(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n")
        .unwrap();
    slow.set_read_timeout(Some(WAIT)).unwrap();

    // Meanwhile the server serves others.
    let mut good = RawClient::connect(server.local_addr(), "/").unwrap();
    good.send_frame(true, common::OP_TEXT, b"still here")
        .unwrap();
    assert_eq!(
        good.read_message().unwrap(),
        (common::OP_TEXT, b"still here".to_vec())
    );

    let mut buf = [0u8; 256];
    match slow.read(&mut buf) {
        Ok(0) => {}
        other => panic!("expected the server to close the socket cleanly, got {other:?}"),
    }
    let elapsed = started.elapsed();
    assert!(elapsed >= timeout, "closed before the timeout: {elapsed:?}");
    let error = probe.expect("on_error", |ev| match ev {
        Ev::Error(None, e) => Some(e),
        _ => None,
    });
    assert!(
        matches!(
            error,
            DriverError::Protocol(Error::Timeout(TimeoutKind::Handshake))
        ),
        "{error:?}"
    );
    assert_eq!(probe.tally().opens.len(), 1, "only the good client opened");
    drop(good);
    assert!(eventually(WAIT, || server.connection_count() == 0));
}

#[test]
fn a_dead_peer_is_detected_by_the_pong_timeout() {
    let (factory, probe) = Recording::new(false);
    let mut config = ServerConfig::default();
    config.threads = 1;
    config.protocol.ping_interval = Some(Duration::from_millis(100));
    config.protocol.ping_timeout = Duration::from_millis(300);
    config.protocol.close_timeout = Duration::from_millis(500);
    let server = Server::bind("127.0.0.1:0", config, factory).unwrap();

    // Completes the handshake, then never reads or answers anything.
    let started = Instant::now();
    let mut dead = RawClient::connect(server.local_addr(), "/").unwrap();
    let session = probe.opened();
    let disconnect = probe.closed(session.id());
    assert!(
        started.elapsed() >= Duration::from_millis(400),
        "failed before interval + timeout"
    );
    assert_eq!(disconnect.code, 1011);
    assert!(
        matches!(
            disconnect.error,
            Some(DriverError::Protocol(Error::Timeout(TimeoutKind::Pong)))
        ),
        "{:?}",
        disconnect.error
    );
    // What reached the peer: the unanswered ping, then a close frame with 1011, then EOF.
    let ping = dead.read_frame().unwrap();
    assert_eq!(ping.opcode, OP_PING);
    let close = dead.read_frame().unwrap();
    assert_eq!(close.opcode, OP_CLOSE);
    assert_eq!(close.payload[..2], 1011u16.to_be_bytes());
    assert_eq!(dead.read_to_end(0), Ending::Eof);
    assert_eq!(probe.tally().closes.get(&session.id()), Some(&1));
    assert!(eventually(WAIT, || server.connection_count() == 0));
}

#[test]
fn a_peer_that_answers_pings_stays_connected() {
    let (factory, probe) = Recording::new(false);
    let mut config = ServerConfig::default();
    config.threads = 1;
    config.protocol.ping_interval = Some(Duration::from_millis(50));
    config.protocol.ping_timeout = Duration::from_secs(5);
    let server = Server::bind("127.0.0.1:0", config, factory).unwrap();
    let mut client = RawClient::connect(server.local_addr(), "/").unwrap();
    let session = probe.opened();
    for _ in 0..5 {
        let ping = client.read_frame().unwrap();
        assert_eq!(ping.opcode, OP_PING);
        client
            .send_frame(true, common::OP_PONG, &ping.payload)
            .unwrap();
        let pong = probe.expect("on_pong", |ev| match ev {
            Ev::Pong(id, p) if id == session.id() => Some(p),
            _ => None,
        });
        assert_eq!(
            pong, ping.payload,
            "keepalive pings carry a payload we echo"
        );
    }
    assert!(session.is_open());
    assert!(probe.tally().closes.is_empty());
}

#[test]
fn stop_closes_every_open_connection_exactly_once_within_its_timeout() {
    let (factory, probe) = Recording::new(false);
    // Room for the responsive peers' threads to answer on a loaded machine.
    let stop_timeout = Duration::from_secs(3);
    let mut config = ServerConfig::default();
    config.threads = 2;
    config.stop_timeout = stop_timeout;
    let server = Server::bind("127.0.0.1:0", config, factory).unwrap();
    let addr = server.local_addr();

    // Responsive peers: answer the server's close and read until it closes TCP.
    let responsive: Vec<_> = (0..4)
        .map(|_| {
            let mut client = RawClient::connect(addr, "/").unwrap();
            std::thread::spawn(move || {
                let (opcode, payload) = client.read_message().expect("the server's close");
                assert_eq!(opcode, OP_CLOSE);
                client
                    .send_close(u16::from_be_bytes([payload[0], payload[1]]), "")
                    .unwrap();
                assert_eq!(
                    client.read_to_end(0),
                    Ending::Eof,
                    "no clean EOF after the closing handshake"
                );
                u16::from_be_bytes([payload[0], payload[1]])
            })
        })
        .collect();
    // Dead peers: never read, never answer.
    let dead: Vec<RawClient> = (0..4)
        .map(|_| RawClient::connect(addr, "/").unwrap())
        .collect();
    let mut sessions = Vec::new();
    for _ in 0..8 {
        sessions.push(probe.opened());
    }
    let dead_peers: Vec<_> = dead
        .iter()
        .map(|c| c.stream.local_addr().unwrap())
        .collect();

    let started = Instant::now();
    server.stop();
    let elapsed = started.elapsed();
    // A bound, not a speed claim: the timeout plus a generous margin.
    assert!(
        elapsed < stop_timeout + Duration::from_secs(4),
        "stop took {elapsed:?}"
    );
    for thread in responsive {
        assert_eq!(thread.join().expect("responsive peer"), 1001);
    }
    assert_eq!(server.connection_count(), 0);
    let tally = probe.tally();
    for session in &sessions {
        let id = session.id();
        assert_eq!(tally.opens.get(&id), Some(&1));
        assert_eq!(tally.closes.get(&id), Some(&1), "session {id}");
        let disconnect = &tally.disconnects[&id];
        if dead_peers.contains(&session.peer_addr()) {
            assert!(
                matches!(disconnect.error, Some(DriverError::Shutdown)),
                "dead peer: {disconnect:?}"
            );
        } else {
            assert_eq!(disconnect.code, 1001, "{disconnect:?}");
            assert!(disconnect.error.is_none(), "{disconnect:?}");
        }
        assert!(!session.is_open());
    }
    drop(dead);
}

/// A factory whose connections are recorded and stop their server on the message "stop".
/// It knows the server once it is bound (weakly: the server owns its factory).
struct StopOnMessage {
    server: Arc<OnceLock<Weak<Server>>>,
    recording: Recording,
}

/// A connection of a [`StopOnMessage`] server.
struct Stopper {
    server: Weak<Server>,
    recorder: Recorder,
}

impl Factory for StopOnMessage {
    type Handler = Stopper;

    fn on_request(&self, _request: &UpgradeRequest, _peer: &ws_mio::Peer) -> Decision<Stopper> {
        Decision::accept(Stopper {
            server: self.server.get().cloned().unwrap_or_default(),
            recorder: self.recording.recorder(),
        })
    }
}

impl Handler for Stopper {
    fn on_open(&mut self, session: &Session) {
        self.recorder.on_open(session);
    }
    fn on_message(&mut self, _session: &Session, message: Message) {
        if message.as_bytes() == b"stop" {
            let server = self.server.upgrade().expect("the server");
            server.stop(); // on a loop thread: starts the shutdown, returns
        }
    }
    fn on_close(&mut self, session: &Session, disconnect: &Disconnect) {
        self.recorder.on_close(session, disconnect);
    }
}

/// `stop` from a callback returns at once; a later `stop` from another thread waits for the
/// shutdown it started: when it returns, every connection has had its `on_close` and the
/// port is free again.
#[test]
fn stop_after_a_stop_from_a_callback_waits_for_the_loops() {
    let (recording, probe) = Recording::new(false);
    let mut config = ServerConfig::default();
    config.threads = 2;
    config.stop_timeout = Duration::from_millis(500);
    let server_slot = Arc::new(OnceLock::new());
    let factory = StopOnMessage {
        server: Arc::clone(&server_slot),
        recording,
    };
    let server = Arc::new(Server::bind("127.0.0.1:0", config, factory).unwrap());
    server_slot.set(Arc::downgrade(&server)).unwrap();
    let addr = server.local_addr();
    let mut stopper = RawClient::connect(addr, "/").unwrap();
    let _dead = RawClient::connect(addr, "/").unwrap(); // never answers the close: 500 ms
    probe.opened();
    probe.opened();
    stopper.send_frame(true, common::OP_TEXT, b"stop").unwrap();
    // The stop from the callback has begun once the server's close frame arrives.
    assert_eq!(stopper.read_message().unwrap().0, OP_CLOSE);
    server.stop();
    assert_eq!(server.connection_count(), 0);
    assert_eq!(probe.tally().closes.len(), 2);
    drop(std::net::TcpListener::bind(addr).expect("the port is free once stop returns"));
}
