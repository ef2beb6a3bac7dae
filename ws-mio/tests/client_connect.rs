//! How `Client::connect` fails: refused TCP, a handshake refused by the server (404), and a
//! server that accepts TCP but never answers; and the responses of a handler that refuses.

mod common;

use std::io::ErrorKind;
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{Recorder, Recording, WAIT};
use ws_mio::ws_proto::handshake::HandshakeError;
use ws_mio::ws_proto::{Error, TimeoutKind};
use ws_mio::{Client, ClientConfig, ConnectError, DriverError, Server, ServerConfig};

fn client_config(connect_timeout: Duration) -> ClientConfig {
    let mut config = ClientConfig::default();
    config.connect_timeout = connect_timeout;
    config
}

#[test]
fn connecting_to_a_closed_port_fails() {
    // A port that was free a moment ago: bind, note it, release it.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (handler, probe) = Recorder::new(false);
    let started = Instant::now();
    let result = Client::connect(
        &format!("ws://127.0.0.1:{port}/"),
        client_config(Duration::from_secs(5)),
        handler,
    );
    match result {
        Err(ConnectError::Unreachable(failures)) => match failures.as_slice() {
            [(_, DriverError::Io(e))] => assert_eq!(e.kind(), ErrorKind::ConnectionRefused, "{e}"),
            other => panic!("expected one refused address, got {other:?}"),
        },
        other => panic!("expected a refused connection, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "refusal must not wait for the connect timeout"
    );
    assert!(probe.tally().opens.is_empty());
}

#[test]
fn connecting_to_another_path_is_refused_with_404() {
    let (server_factory, server_probe) = Recording::new(true);
    let mut config = ServerConfig::default();
    config.threads = 1;
    config.protocol.path = Some("/chat".into());
    let server = Server::bind("127.0.0.1:0", config, server_factory).unwrap();
    let addr = server.local_addr();

    let (handler, probe) = Recorder::new(false);
    let result = Client::connect(
        &format!("ws://{addr}/other"),
        client_config(Duration::from_secs(5)),
        handler,
    );
    match result {
        Err(ConnectError::Failed {
            error: DriverError::Protocol(Error::Handshake(HandshakeError::UnexpectedStatus(404))),
            ..
        }) => {}
        other => panic!("expected a 404 handshake failure, got {other:?}"),
    }
    assert!(
        probe.tally().opens.is_empty(),
        "no on_open for a failed handshake"
    );
    assert!(
        probe.tally().closes.is_empty(),
        "no on_close for a failed handshake"
    );
    assert!(server_probe.tally().opens.is_empty());

    // The right path works with the same server and settings.
    let (handler, probe) = Recorder::new(false);
    let client = Client::connect(
        &format!("ws://{addr}/chat"),
        client_config(Duration::from_secs(5)),
        handler,
    )
    .expect("connect to /chat");
    client.session().send_text("ping?").unwrap();
    assert_eq!(
        probe.message(client.session().id()),
        ws_mio::Message::Text("ping?".into())
    );
    client.stop();
    assert!(common::eventually(WAIT, || server.connection_count() == 0));
}

#[test]
fn a_server_that_never_answers_fails_the_connect_within_its_timeout() {
    // The kernel completes the TCP handshake for the backlog; nobody ever reads or writes.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let connect_timeout = Duration::from_millis(500);
    let (handler, probe) = Recorder::new(false);
    let started = Instant::now();
    let result = Client::connect(
        &format!("ws://{addr}/"),
        client_config(connect_timeout),
        handler,
    );
    let elapsed = started.elapsed();
    match result {
        // The TCP connect succeeded, so it is the opening handshake that timed out.
        Err(ConnectError::Failed {
            error: DriverError::Protocol(Error::Timeout(TimeoutKind::Handshake)),
            ..
        }) => {}
        other => panic!("expected a connect timeout, got {other:?}"),
    }
    assert!(elapsed >= connect_timeout, "gave up early: {elapsed:?}");
    // Bound, not speed: the timeout plus a generous scheduling margin.
    assert!(
        elapsed < connect_timeout + Duration::from_secs(3),
        "connect took {elapsed:?}"
    );
    assert!(probe.tally().opens.is_empty());
    drop(listener);
}

#[test]
fn invalid_urls_are_refused_before_connecting() {
    for url in [
        "http://127.0.0.1:1/",
        "ws://",
        "ws://127.0.0.1/#frag",
        "wss://",
    ] {
        let (handler, _probe) = Recorder::new(false);
        let result = Client::connect(url, ClientConfig::default(), handler);
        assert!(
            matches!(result, Err(ConnectError::InvalidUrl(_))),
            "{url}: {result:?}"
        );
    }
}

/// A factory that refuses every upgrade with the status named by the request path (`/403`).
struct RejectByPath;

/// The handler of a connection [`RejectByPath`] would accept (it never does).
struct Unused;

impl ws_mio::Handler for Unused {}

impl ws_mio::Factory for RejectByPath {
    type Handler = Unused;

    fn on_request(
        &self,
        request: &ws_mio::ws_proto::handshake::UpgradeRequest,
        _peer: &ws_mio::Peer,
    ) -> ws_mio::Decision<Unused> {
        ws_mio::Decision::reject(request.path[1..].parse().unwrap(), "refused")
    }
}

/// `Decision::Reject` sends its status; one that would not refuse (a 101 or a 200) is answered
/// as 500 instead of leaving the request unanswered until the handshake timeout.
#[test]
fn handler_rejections_answer_with_their_status_or_500() {
    use std::io::{Read, Write};
    let mut config = ServerConfig::default();
    config.threads = 1;
    let server = Server::bind("127.0.0.1:0", config, RejectByPath).unwrap();
    let addr = server.local_addr();
    for (asked, answered) in [
        (403, "403 Forbidden"),
        (101, "500 Internal Server Error"),
        (200, "500 Internal Server Error"),
    ] {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        write!(
            stream,
            "GET /{asked} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        .unwrap();
        // The server closes the connection after the response: read to EOF.
        let mut response = String::new();
        stream.read_to_string(&mut response).unwrap();
        assert!(
            response.starts_with(&format!("HTTP/1.1 {answered}\r\n")),
            "{asked}: {response:?}"
        );
        assert!(
            response.ends_with("\r\n\r\nrefused"),
            "{asked}: {response:?}"
        );
    }
    server.stop();
}
