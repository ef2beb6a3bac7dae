//! Server keepalive, on by default: a peer that vanished without closing TCP (it neither reads
//! nor answers) is noticed by the server's ping and dropped with 1011, while a peer that
//! answers stays.

mod common;

use std::time::{Duration, Instant};

use common::{RawClient, Recording, OP_PING, OP_PONG};
use ws_mio::ws_proto::{Error, TimeoutKind};
use ws_mio::{CloseCode, DriverError, Server, ServerConfig, SERVER_PING_INTERVAL};

const INTERVAL: Duration = Duration::from_millis(200);
const TIMEOUT: Duration = Duration::from_millis(300);
const CLOSE: Duration = Duration::from_millis(500);

/// A one-loop echo server whose keepalive runs at test speed.
fn server() -> (Server, common::Probe) {
    let (recording, probe) = Recording::new(true);
    let mut config = ServerConfig::default();
    config.threads = 1;
    config.protocol.ping_interval = Some(INTERVAL);
    config.protocol.ping_timeout = TIMEOUT;
    config.protocol.close_timeout = CLOSE;
    let server = Server::bind("127.0.0.1:0", config, recording).unwrap();
    (server, probe)
}

#[test]
fn servers_ping_by_default() {
    let config = ServerConfig::default();
    assert_eq!(config.protocol.ping_interval, Some(SERVER_PING_INTERVAL));
    assert_eq!(SERVER_PING_INTERVAL, Duration::from_secs(20));
    assert_eq!(config.protocol.ping_timeout, Duration::from_secs(20));
}

#[test]
fn a_peer_that_stops_answering_is_dropped_with_1011() {
    let (server, probe) = server();
    let mut peer = RawClient::connect(server.local_addr(), "/").unwrap();
    let session = probe.opened();
    let opened = Instant::now();
    // The peer is gone without a FIN: nothing is read, nothing is answered.
    let disconnect = probe.closed(session.id());
    let waited = opened.elapsed();
    assert_eq!(disconnect.code, CloseCode::INTERNAL_ERROR);
    assert!(
        matches!(
            disconnect.error,
            Some(DriverError::Protocol(Error::Timeout(TimeoutKind::Pong)))
        ),
        "{disconnect:?}"
    );
    // One interval to the ping, one timeout for the pong, then the close timer for the peer's
    // TCP close, which never comes either: bounded by those, never by the OS.
    assert!(waited >= INTERVAL + TIMEOUT, "{waited:?}");
    assert!(
        waited < INTERVAL + TIMEOUT + CLOSE + Duration::from_secs(3),
        "{waited:?}"
    );
    // What the peer would have read: the ping, then the close frame with 1011.
    let ping = peer.read_frame().unwrap();
    assert_eq!(ping.opcode, OP_PING);
    let close = peer.read_frame().unwrap();
    assert_eq!(
        u16::from_be_bytes([close.payload[0], close.payload[1]]),
        1011
    );
}

#[test]
fn a_peer_that_answers_stays() {
    let (server, probe) = server();
    let mut peer = RawClient::connect(server.local_addr(), "/").unwrap();
    let session = probe.opened();
    // Answer three pings: several intervals and timeouts go by.
    for _ in 0..3 {
        let ping = peer.read_frame().unwrap();
        assert_eq!(ping.opcode, OP_PING);
        peer.send_frame(true, OP_PONG, &ping.payload).unwrap();
    }
    assert!(session.is_open());
    assert!(!probe.tally().closes.contains_key(&session.id()));
}
