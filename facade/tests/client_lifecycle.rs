//! The client's lifecycle: `start`, `stop`, `wait_for_stop`, `is_running` and `is_connected`
//! around a connection that ends on its own, a stop from another thread while `start` is
//! connecting, and the callbacks that run during `start`.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use ws_facade::{
    ClientConfig, Error, ProtocolClient, ProtocolServer, ServerConfig, WebSocketFacade,
};

/// A started server with one event loop, and its port.
fn started_server() -> (Arc<dyn ProtocolServer>, u16) {
    let server = WebSocketFacade::create_server(&{
        let mut config = ServerConfig::default();
        config.port = 9001;
        config.path = "/chat".into();
        config.threads = 1;
        config
    })
    .unwrap();
    server.start(0).unwrap();
    let port = server.local_addr().unwrap().port();
    (server, port)
}

fn client(id: &str) -> Arc<dyn ProtocolClient> {
    WebSocketFacade::create_client(&{
        let mut config = ClientConfig::default();
        config.client_id = id.into();
        config.path = "/chat".into();
        config
    })
    .unwrap()
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

/// `wait_for_stop` returns once the connection has ended, its disconnected callback included.
#[test]
fn wait_for_stop_returns_after_the_disconnected_callback() {
    let (server, port) = started_server();
    let c = client("waiter");
    let done = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&done);
    c.set_disconnected_callback(move || {
        std::thread::sleep(Duration::from_millis(100));
        flag.store(true, Ordering::SeqCst);
    });
    c.start("127.0.0.1", port).unwrap();
    assert!(c.is_running() && c.is_connected());
    server.stop().unwrap();
    c.wait_for_stop();
    assert!(
        done.load(Ordering::SeqCst),
        "wait_for_stop returned before the callback ran"
    );
    assert!(!c.is_running() && !c.is_connected());
    assert!(matches!(c.send(b"late".to_vec()), Err(Error::NotConnected)));
}

/// `wait_for_stop` on one thread returns when another stops the client.
#[test]
fn wait_for_stop_returns_on_stop_from_another_thread() {
    let (server, port) = started_server();
    let c = client("waiter");
    c.start("127.0.0.1", port).unwrap();
    let (tx, rx) = mpsc::channel();
    let waiter = Arc::clone(&c);
    std::thread::spawn(move || {
        waiter.wait_for_stop();
        tx.send(()).unwrap();
    });
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        rx.try_recv().is_err(),
        "wait_for_stop returned while running"
    );
    c.stop().unwrap();
    rx.recv_timeout(Duration::from_secs(10))
        .expect("wait_for_stop returns after stop");
    assert!(!c.is_running() && !c.is_connected());
    server.stop().unwrap();
}

/// `stop` from another thread while `start` is still connecting (its connected callback
/// running) returns at once; `start` then closes what it opened and says so, and the client
/// can be started again.
#[test]
fn stop_from_another_thread_while_start_connects() {
    let (server, port) = started_server();
    let c = client("hesitant");
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel::<()>();
    let hooks = Mutex::new(Some((entered_tx, release_rx)));
    c.set_connected_callback(move || {
        if let Some((entered, release)) = hooks.lock().unwrap().take() {
            entered.send(()).unwrap();
            let _ = release.recv_timeout(Duration::from_secs(10));
        }
    });
    let (result_tx, result_rx) = mpsc::channel();
    let starter = Arc::clone(&c);
    std::thread::spawn(move || result_tx.send(starter.start("127.0.0.1", port)).unwrap());
    entered_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        c.is_running() && c.is_connected(),
        "open during the connected callback"
    );
    assert!(matches!(
        c.start("127.0.0.1", port),
        Err(Error::AlreadyRunning)
    ));
    c.stop().unwrap(); // must not wait for `start`
    assert!(!c.is_running());
    c.wait_for_stop(); // nothing runs any more
    release_tx.send(()).unwrap();
    let result = result_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(
        matches!(result, Err(Error::StoppedWhileStarting)),
        "{result:?}"
    );
    assert!(!c.is_running() && !c.is_connected());

    c.start("127.0.0.1", port).unwrap();
    assert!(c.is_running() && c.is_connected());
    c.stop().unwrap();
    assert!(!c.is_running() && !c.is_connected());
    server.stop().unwrap();
}

/// `start` from the connected callback, while the first `start` is still running, is refused
/// (as the tutorial says) and does not disturb it.
#[test]
fn start_from_the_connected_callback_is_already_running() {
    let (server, port) = started_server();
    let c = client("eager");
    let this: Arc<OnceLock<Arc<dyn ProtocolClient>>> = Arc::default();
    let in_cb = Arc::clone(&this);
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    c.set_connected_callback(move || {
        let again = in_cb.get().unwrap().start("127.0.0.1", port);
        tx.lock().unwrap().send(again).unwrap();
    });
    this.set(Arc::clone(&c)).ok().unwrap();
    c.start("127.0.0.1", port).unwrap();
    let again = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    assert!(matches!(again, Err(Error::AlreadyRunning)), "{again:?}");
    assert!(c.is_running() && c.is_connected());
    c.stop().unwrap();
    server.stop().unwrap();
}

/// A connected callback that panics fails `start`; the driver reports it through the
/// connection's error event and as `connect`'s error: the error callback hears of it once.
#[test]
fn a_panicking_connected_callback_fails_start_with_one_error() {
    let (server, port) = started_server();
    let c = client("clumsy");
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&errors);
    c.set_error_callback(move |e| seen.lock().unwrap().push(e.to_string()));
    c.set_connected_callback(|| panic!("a bug in the connected callback"));
    let result = c.start("127.0.0.1", port);
    assert!(matches!(result, Err(Error::Connect(_))), "{result:?}");
    assert_eq!(
        errors.lock().unwrap().len(),
        1,
        "{:?}",
        errors.lock().unwrap()
    );
    assert!(!c.is_running() && !c.is_connected());
    server.stop().unwrap();
}

/// A connection the server closes ends the client on its own (possibly before `start` has
/// returned): `is_running` turns false, the disconnected callback runs once, and the client
/// starts again without `AlreadyRunning`.
#[test]
fn a_client_whose_connection_ended_starts_again() {
    let (server, port) = started_server();
    let first = AtomicBool::new(true);
    server.set_connection_callback(move |s| {
        if first.swap(false, Ordering::SeqCst) {
            s.close();
        }
    });
    let (got_tx, got_rx) = mpsc::channel();
    let got_tx = Mutex::new(got_tx);
    server.set_receive_callback(move |_id, payload| {
        let _ = got_tx.lock().unwrap().send(payload.to_vec());
    });
    let c = client("again");
    let gone = Arc::new(AtomicUsize::new(0));
    let n = Arc::clone(&gone);
    c.set_disconnected_callback(move || {
        n.fetch_add(1, Ordering::SeqCst);
    });
    c.start("127.0.0.1", port).unwrap();
    assert!(within_5s(|| !c.is_running()), "the closed connection ended");
    c.wait_for_stop();
    assert_eq!(gone.load(Ordering::SeqCst), 1);
    assert!(!c.is_connected());

    c.start("127.0.0.1", port).unwrap();
    assert!(c.is_running() && c.is_connected());
    c.send(b"back".to_vec()).unwrap();
    assert_eq!(
        got_rx.recv_timeout(Duration::from_secs(10)).unwrap(),
        b"back"
    );
    c.stop().unwrap();
    assert_eq!(gone.load(Ordering::SeqCst), 2);
    assert!(!c.is_running() && !c.is_connected());
    server.stop().unwrap();
}
