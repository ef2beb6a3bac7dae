//! Lifecycle through the facade: stop from inside a callback, disconnection reporting, client
//! methods called from callbacks during `start`, session ids across a leave and a rejoin, and
//! callbacks that panic.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use ws_facade::{
    ClientConfig, ConfigError, Error, ProtocolClient, ProtocolServer, ServerConfig, WebSocketFacade,
};

fn server() -> Arc<dyn ProtocolServer> {
    server_on_loops(0)
}

/// A started server with one event loop, and its port.
fn started_on_one_loop() -> (Arc<dyn ProtocolServer>, u16) {
    let server = server_on_loops(1);
    server.start(0).unwrap();
    let port = server.local_addr().unwrap().port();
    (server, port)
}

/// A server with `threads` event loops (0: one per core).
fn server_on_loops(threads: usize) -> Arc<dyn ProtocolServer> {
    WebSocketFacade::create_server(&{
        let mut config = ServerConfig::default();
        config.port = 9001;
        config.path = "/chat".into();
        config.threads = threads;
        config
    })
    .unwrap()
}

fn client(id: &str) -> Arc<dyn ws_facade::ProtocolClient> {
    WebSocketFacade::create_client(&{
        let mut config = ClientConfig::default();
        config.client_id = id.into();
        config.path = "/chat".into();
        config
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
    let c = WebSocketFacade::create_client(&{
        let mut config = ClientConfig::default();
        config.path = "/other".into();
        config
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
    let client = WebSocketFacade::create_client(&{
        let mut config = ClientConfig::default();
        config.client_id = "pinger".into();
        config.ping_interval = Duration::from_millis(100);
        config.ping_timeout = Duration::from_millis(300);
        config
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

/// The tutorial's "send a greeting once connected": the connected callback runs while `start`
/// is still waiting for the upgrade's outcome, and can send through the client.
#[test]
fn the_connected_callback_can_send_through_the_client() {
    let server = server();
    let (got_tx, got_rx) = mpsc::channel();
    let got_tx = Mutex::new(got_tx);
    server.set_receive_callback(move |id, payload| {
        let _ = got_tx
            .lock()
            .unwrap()
            .send((id.to_owned(), payload.to_vec()));
    });
    server.start(0).unwrap();
    let port = server.local_addr().unwrap().port();
    let c = client("greeter");
    let this: Arc<OnceLock<Arc<dyn ProtocolClient>>> = Arc::default();
    let in_callback = Arc::clone(&this);
    c.set_connected_callback(move || {
        let c = in_callback.get().unwrap();
        assert!(c.is_connected());
        c.send(b"hello from the connected callback".to_vec())
            .unwrap();
    });
    this.set(Arc::clone(&c)).ok().unwrap();
    c.start("127.0.0.1", port).unwrap();
    let (id, payload) = got_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert_eq!(id, "greeter");
    assert_eq!(payload, b"hello from the connected callback");
    c.stop().unwrap();
    server.stop().unwrap();
}

/// `stop` from the error callback of a failing `start` returns, and so does `start`.
#[test]
fn stop_from_the_error_callback_of_a_failing_start() {
    let c = client("lonely");
    let this: Arc<OnceLock<Arc<dyn ProtocolClient>>> = Arc::default();
    let in_callback = Arc::clone(&this);
    c.set_error_callback(move |_e| in_callback.get().unwrap().stop().unwrap());
    this.set(Arc::clone(&c)).ok().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || tx.send(c.start("127.0.0.1", 1).is_err()).unwrap());
    assert_eq!(rx.recv_timeout(Duration::from_secs(10)), Ok(true));
}

/// `stop` from the connected callback: `start` closes what it opened and says so.
#[test]
fn stop_from_the_connected_callback_during_start() {
    let server = server();
    server.start(0).unwrap();
    let port = server.local_addr().unwrap().port();
    let c = client("quitter");
    let this: Arc<OnceLock<Arc<dyn ProtocolClient>>> = Arc::default();
    let in_callback = Arc::clone(&this);
    c.set_connected_callback(move || in_callback.get().unwrap().stop().unwrap());
    this.set(Arc::clone(&c)).ok().unwrap();
    let result = c.start("127.0.0.1", port);
    assert!(
        matches!(result, Err(Error::StoppedWhileStarting)),
        "{result:?}"
    );
    assert!(!c.is_connected());
    assert!(!c.is_running());
    server.stop().unwrap();
}

/// A session's id stays taken until its disconnection callbacks have run: a client that
/// rejoins under the same name meanwhile gets another id, so a map of sessions by id (the
/// tutorial's chat) never loses the live one. Two loops: "x" goes to loop 0, the first "bob"
/// to loop 1 (whose disconnection callback is held), the second "bob" to loop 0.
#[test]
fn an_id_is_not_reused_before_its_leave_is_reported() {
    let server = server_on_loops(2);
    let events: Arc<Mutex<Vec<String>>> = Arc::default();
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let held = Mutex::new(Some((entered_tx, release_rx)));
    let log = Arc::clone(&events);
    server.set_connection_callback(move |s| log.lock().unwrap().push(format!("join {}", s.id())));
    let log = Arc::clone(&events);
    server.set_disconnection_callback(move |id| {
        if id == "bob" {
            if let Some((entered, release)) = held.lock().unwrap().take() {
                entered.send(()).unwrap();
                let _ = release.recv_timeout(Duration::from_secs(10));
            }
        }
        log.lock().unwrap().push(format!("leave {id}"));
    });
    server.start(0).unwrap();
    let port = server.local_addr().unwrap().port();
    let x = client("x");
    x.start("127.0.0.1", port).unwrap();
    let first_bob = client("bob");
    first_bob.start("127.0.0.1", port).unwrap();
    first_bob.stop().unwrap();
    entered_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let second_bob = client("bob");
    second_bob.start("127.0.0.1", port).unwrap();
    release_tx.send(()).unwrap();
    // Each leave in turn: the two loops would otherwise race to log theirs.
    let logged = |n: usize| {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while events.lock().unwrap().len() < n && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    logged(4);
    second_bob.stop().unwrap();
    logged(5);
    let events = events.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            "join x",
            "join bob",
            "join bob#2",
            "leave bob",
            "leave bob#2"
        ]
    );
    x.stop().unwrap();
    server.stop().unwrap();
}

/// A receive callback that panics costs its own connection (closed with 1011, reported as a
/// disconnection), not the server: the next client is served.
#[test]
fn a_panicking_callback_fails_only_its_connection() {
    let server = server_on_loops(1);
    let (left_tx, left_rx) = mpsc::channel();
    let left_tx = Mutex::new(left_tx);
    server
        .as_websocket()
        .unwrap()
        .set_close_callback(move |id, code, _reason| {
            left_tx.lock().unwrap().send((id.to_owned(), code)).unwrap()
        });
    let (got_tx, got_rx) = mpsc::channel();
    let got_tx = Mutex::new(got_tx);
    server.set_receive_callback(move |id, payload| {
        if payload == b"boom" {
            panic!("a bug in the application's callback");
        }
        got_tx.lock().unwrap().send(id.to_owned()).unwrap();
    });
    server.start(0).unwrap();
    let port = server.local_addr().unwrap().port();
    let a = client("a");
    a.start("127.0.0.1", port).unwrap();
    a.send(b"boom".to_vec()).unwrap();
    assert_eq!(
        left_rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        ("a".to_owned(), 1011)
    );
    let b = client("b");
    b.start("127.0.0.1", port).unwrap();
    b.send(b"fine".to_vec()).unwrap();
    assert_eq!(got_rx.recv_timeout(Duration::from_secs(10)).unwrap(), "b");
    assert!(server.is_running());
    b.stop().unwrap();
    server.stop().unwrap();
}

#[test]
fn a_zero_server_ping_interval_is_refused() {
    let result = WebSocketFacade::create_server(&{
        let mut config = ServerConfig::default();
        config.port = 9001;
        config.ping_interval = Some(Duration::ZERO);
        config
    });
    assert!(
        matches!(result, Err(Error::InvalidConfig(ConfigError::PingInterval))),
        "{:?}",
        result.err()
    );
}

/// A host that does not resolve fails `start` and reaches the error callback, once, like any
/// other failed start.
#[test]
fn an_unresolvable_host_reports_the_error_once() {
    let c = client("lost");
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&errors);
    c.set_error_callback(move |e| seen.lock().unwrap().push(e.to_string()));
    let result = c.start("no-such-host.invalid", 9001);
    let Err(Error::Connect(error)) = &result else {
        panic!("{result:?}");
    };
    assert!(
        matches!(**error, ws_mio::ConnectError::Resolve { .. }),
        "{error}"
    );
    assert_eq!(*errors.lock().unwrap(), [error.to_string()]);
}

/// Polls `condition` every 10 ms for up to 5 s.
fn within_5s(mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    condition()
}

/// A disconnection callback that panics still releases the session's id.
#[test]
fn a_panicking_disconnection_callback_does_not_leak_the_id() {
    let server = server_on_loops(1);
    let joins: Arc<Mutex<Vec<String>>> = Arc::default();
    let log = Arc::clone(&joins);
    server.set_connection_callback(move |s| log.lock().unwrap().push(s.id().to_owned()));
    let left = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&left);
    server.set_disconnection_callback(move |_id| {
        count.fetch_add(1, Ordering::SeqCst);
        panic!("a bug in the disconnection callback");
    });
    server.start(0).unwrap();
    let port = server.local_addr().unwrap().port();
    let bob = client("bob");
    bob.start("127.0.0.1", port).unwrap();
    bob.stop().unwrap();
    assert!(within_5s(|| left.load(Ordering::SeqCst) == 1));
    let bob_again = client("bob");
    bob_again.start("127.0.0.1", port).unwrap();
    assert!(within_5s(|| joins.lock().unwrap().len() == 2));
    assert_eq!(*joins.lock().unwrap(), ["bob", "bob"]);
    bob_again.stop().unwrap();
    server.stop().unwrap();
}

/// A connection stopped from its own callback finishes its closing handshake on its own loop;
/// its end must not clear the state of the connection a later `start` opened meanwhile.
#[test]
fn a_restart_after_a_stop_from_a_callback_keeps_its_session() {
    let (server, port) = started_on_one_loop();
    let c = client("bob");
    let this: Arc<OnceLock<Arc<dyn ProtocolClient>>> = Arc::default();
    let in_cb = Arc::clone(&this);
    let (stopped_tx, stopped_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let hooks = Mutex::new(Some((stopped_tx, release_rx)));
    c.set_receive_callback(move |data| {
        if data == b"quit" {
            if let Some((stopped, release)) = hooks.lock().unwrap().take() {
                in_cb.get().unwrap().stop().unwrap(); // on the client's loop thread
                stopped.send(()).unwrap();
                let _ = release.recv_timeout(Duration::from_secs(10));
            }
        }
    });
    let closes = Arc::new(AtomicUsize::new(0));
    let n = Arc::clone(&closes);
    c.as_websocket()
        .unwrap()
        .set_close_callback(move |_, _, _| {
            n.fetch_add(1, Ordering::SeqCst);
        });
    this.set(Arc::clone(&c)).ok().unwrap();
    c.start("127.0.0.1", port).unwrap();
    let ws = server.as_websocket().unwrap();
    assert!(within_5s(|| ws.session("bob").is_some()));
    ws.session("bob").unwrap().send(b"quit".to_vec()).unwrap();
    stopped_rx.recv_timeout(Duration::from_secs(10)).unwrap();

    c.start("127.0.0.1", port).unwrap();
    assert!(c.is_connected() && c.is_running());
    release_tx.send(()).unwrap(); // the old connection now ends
    assert!(within_5s(|| closes.load(Ordering::SeqCst) == 1));
    std::thread::sleep(Duration::from_millis(100));
    assert!(
        c.is_connected(),
        "the new connection's session was cleared by the old on_close"
    );
    assert!(c.is_running(), "the new connection is running");
    c.stop().unwrap();
    server.stop().unwrap();
}

/// A close callback that panics still ends the client (`is_running` false, so `wait_for_stop`
/// returns).
#[test]
fn a_panicking_close_callback_still_ends_the_client() {
    let (server, port) = started_on_one_loop();
    let c = client("bob");
    c.as_websocket()
        .unwrap()
        .set_close_callback(|_, _, _| panic!("a bug in the close callback"));
    c.start("127.0.0.1", port).unwrap();
    server.stop().unwrap();
    assert!(
        within_5s(|| !c.is_running()),
        "is_running stays true after the connection ended"
    );
}

/// `start` from the error callback of a failing `start` (a reconnect attempt) returns.
#[test]
fn start_from_the_error_callback_of_a_failing_start_returns() {
    let c = client("lonely");
    let this: Arc<OnceLock<Arc<dyn ProtocolClient>>> = Arc::default();
    let in_cb = Arc::clone(&this);
    let once = AtomicBool::new(false);
    c.set_error_callback(move |_e| {
        if !once.swap(true, Ordering::SeqCst) {
            let _ = in_cb.get().unwrap().start("no-such-host.invalid", 9001);
        }
    });
    this.set(Arc::clone(&c)).ok().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        tx.send(c.start("no-such-host.invalid", 9001).is_err())
            .unwrap()
    });
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(10)),
        Ok(true),
        "start never returned"
    );
}
