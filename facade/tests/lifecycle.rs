//! Lifecycle through the facade: stop from inside a callback, disconnection reporting.

use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::Duration;

use facade::{ClientConfig, Error, ProtocolServer, ServerConfig, WebSocketFacade};

fn server() -> Arc<dyn ProtocolServer> {
    WebSocketFacade::create_server(&ServerConfig {
        port: 9001,
        path: "/chat".into(),
        ..Default::default()
    })
    .unwrap()
}

fn client(id: &str) -> Arc<dyn facade::ProtocolClient> {
    WebSocketFacade::create_client(&ClientConfig {
        client_id: id.into(),
        path: "/chat".into(),
        ..Default::default()
    })
    .unwrap()
}

#[test]
fn stop_from_a_receive_callback_closes_everyone_and_reports_each_disconnection() {
    let server = server();
    let (left_tx, left_rx) = mpsc::channel();
    let left_tx = Mutex::new(left_tx);
    server
        .set_disconnection_callback(move |id| left_tx.lock().unwrap().send(id.to_owned()).unwrap());
    let weak: Weak<dyn ProtocolServer> = Arc::downgrade(&server);
    server.set_receive_callback(move |_id, payload| {
        if payload == b"stop" {
            if let Some(server) = weak.upgrade() {
                server.stop().unwrap();
            }
        }
    });
    server.start(0).unwrap();
    let port = server.local_addr().unwrap().port();
    let (a, b) = (client("a"), client("b"));
    a.start("127.0.0.1", port).unwrap();
    b.start("127.0.0.1", port).unwrap();
    a.send(b"stop".to_vec()).unwrap();
    let mut left: Vec<String> = (0..2)
        .map(|_| left_rx.recv_timeout(Duration::from_secs(10)).unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["a", "b"]);
    a.wait_for_stop();
    b.wait_for_stop();
    assert!(!a.is_connected() && !b.is_connected());
    assert!(!server.is_running());
}

#[test]
fn failed_start_reports_the_error_once() {
    let c = client("lonely");
    let errors = Arc::new(Mutex::new(0));
    let seen = Arc::clone(&errors);
    c.set_error_callback(move |_e| *seen.lock().unwrap() += 1);
    // Port 1 on loopback: nothing listens there.
    let result = c.start("127.0.0.1", 1);
    assert!(matches!(result, Err(Error::Connect(_))), "{result:?}");
    assert_eq!(*errors.lock().unwrap(), 1);
}

#[test]
fn wrong_path_is_rejected_during_the_upgrade() {
    let server = server();
    server.start(0).unwrap();
    let port = server.local_addr().unwrap().port();
    let c = WebSocketFacade::create_client(&ClientConfig {
        path: "/other".into(),
        ..Default::default()
    })
    .unwrap();
    let error = c.start("127.0.0.1", port).unwrap_err();
    assert!(error.to_string().contains("404"), "{error}");
    server.stop().unwrap();
}

/// A server that completes the upgrade and then never answers: the client's keepalive ping
/// goes unanswered and the error callback hears about it, then the disconnection.
#[test]
fn a_dead_server_is_reported_through_the_error_callback() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let silent = std::thread::spawn(move || {
        let (mut socket, _) = listener.accept().unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            socket.read_exact(&mut byte).unwrap();
            head.push(byte[0]);
        }
        let head = String::from_utf8(head).unwrap();
        let key = head
            .lines()
            .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
            .unwrap()
            .trim()
            .to_owned();
        let accept = ws_proto::handshake::accept_key(key.as_bytes());
        write!(
            socket,
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Accept: {accept}\r\n\r\n"
        )
        .unwrap();
        // Read (and ignore) whatever comes until the client gives up on us.
        let mut sink = [0u8; 1024];
        while matches!(socket.read(&mut sink), Ok(n) if n > 0) {}
    });
    let client = WebSocketFacade::create_client(&ClientConfig {
        client_id: "pinger".into(),
        ping_interval: Duration::from_millis(100),
        ping_timeout: Duration::from_millis(300),
        ..Default::default()
    })
    .unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    client.set_error_callback(move |e| tx.lock().unwrap().send(e.to_string()).unwrap());
    let (gone_tx, gone_rx) = mpsc::channel();
    let gone_tx = Mutex::new(gone_tx);
    client.set_disconnected_callback(move || gone_tx.lock().unwrap().send(()).unwrap());
    client.start("127.0.0.1", port).unwrap();
    let error = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("the dead server is reported");
    assert!(error.contains("keepalive ping timed out"), "{error}");
    gone_rx
        .recv_timeout(Duration::from_secs(15))
        .expect("then the disconnection");
    assert!(!client.is_connected());
    client.stop().unwrap();
    silent.join().unwrap();
}
