//! Client addresses: IPv6 literals, the scheme in any case, fragments refused before
//! connecting, `wss://` over TLS (or refused without the feature), every address of a name tried in turn,
//! and errors that name the address.

mod common;

use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::sync::mpsc;
use std::sync::Mutex;
use std::time::Duration;

use common::WAIT;
use ws_mio::ws_proto::handshake::UpgradeRequest;
use ws_mio::{
    Client, ClientConfig, ConnectError, Decision, Factory, Handler, Message, Server, ServerConfig,
    Session, UrlError,
};

/// What the server saw of a request: its `Host` header, its target and its peer.
type Request = (String, String, SocketAddr);

/// Accepts every upgrade with an echoing handler, and reports each request.
struct Seen(Mutex<mpsc::Sender<Request>>);

struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, session: &Session, message: Message) {
        let _ = session.send(message);
    }
}

impl Factory for Seen {
    type Handler = Echo;

    fn on_request(&self, request: &UpgradeRequest, peer: &ws_mio::Peer) -> Decision<Echo> {
        let seen = (request.host.clone(), request.path.clone(), peer.addr);
        let _ = self.0.lock().unwrap().send(seen);
        Decision::accept(Echo)
    }
}

/// A one-loop server on `addr` and the requests it sees; `None` if `addr` cannot be bound.
fn server(addr: &str) -> Option<(Server, mpsc::Receiver<Request>)> {
    let (tx, rx) = mpsc::channel();
    let mut config = ServerConfig::default();
    config.threads = 1;
    Server::bind(addr, config, Seen(Mutex::new(tx)))
        .ok()
        .map(|server| (server, rx))
}

fn config() -> ClientConfig {
    let mut config = ClientConfig::default();
    config.connect_timeout = Duration::from_secs(5);
    config
}

/// A client handler forwarding what it receives.
struct Forward(mpsc::Sender<Message>);

impl Handler for Forward {
    fn on_message(&mut self, _session: &Session, message: Message) {
        let _ = self.0.send(message);
    }
}

/// Connects to `url`, sends "hello" and returns the client with the server's echo.
fn connect_and_echo(url: &str) -> (Client, Message) {
    let (tx, rx) = mpsc::channel();
    let client = Client::connect(url, config(), Forward(tx))
        .unwrap_or_else(|e| panic!("connect {url}: {e}"));
    client.session().send_text("hello").unwrap();
    let echoed = rx.recv_timeout(WAIT).expect("no echo");
    (client, echoed)
}

#[test]
fn an_ipv6_literal_connects_with_a_bracketed_host_header() {
    let Some((server, seen)) = server("[::1]:0") else {
        eprintln!("skipped: this machine has no IPv6 loopback (binding [::1]:0 failed)");
        return;
    };
    let port = server.local_addr().port();
    let (client, echoed) = connect_and_echo(&format!("ws://[::1]:{port}/chat?room=1"));
    assert_eq!(echoed, Message::Text("hello".into()));
    let (host, path, peer) = seen.recv_timeout(WAIT).unwrap();
    assert_eq!(host, format!("[::1]:{port}"));
    assert_eq!(path, "/chat?room=1");
    assert!(peer.is_ipv6(), "{peer}");
    assert_eq!(client.session().peer_addr(), server.local_addr());
    client.stop();
    server.stop();
}

#[test]
fn the_scheme_may_be_in_any_case() {
    let (server, seen) = server("127.0.0.1:0").expect("bind 127.0.0.1");
    let port = server.local_addr().port();
    for scheme in ["Ws", "WS"] {
        let (client, echoed) = connect_and_echo(&format!("{scheme}://127.0.0.1:{port}/"));
        assert_eq!(echoed, Message::Text("hello".into()));
        let (host, path, _) = seen.recv_timeout(WAIT).unwrap();
        assert_eq!((host, path), (format!("127.0.0.1:{port}"), "/".to_owned()));
        client.stop();
    }
    server.stop();
}

#[test]
fn a_url_with_a_fragment_is_refused_before_connecting() {
    // A bare listener: any connection attempt would show as a pending accept.
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    for url in [format!("ws://{addr}/a#frag"), format!("ws://{addr}/#")] {
        let result = Client::connect(&url, config(), Forward(mpsc::channel().0));
        match result {
            Err(ConnectError::InvalidUrl(UrlError::Fragment)) => {}
            other => panic!("{url}: expected a refused fragment, got {other:?}"),
        }
    }
    std::thread::sleep(Duration::from_millis(50));
    assert!(
        listener.accept().is_err(),
        "a URL with a fragment reached the server"
    );
    let message = ConnectError::InvalidUrl(UrlError::Fragment).to_string();
    assert!(message.contains("fragment"), "{message}");
}

#[test]
fn wss_urls_go_over_tls_or_say_the_feature_is_off() {
    let result = Client::connect("wss://127.0.0.1:1/", config(), Forward(mpsc::channel().0));
    match result {
        // With TLS built in, the URL is fine: the connect to port 1 is what fails.
        Err(ConnectError::Unreachable(failures)) if cfg!(feature = "tls") => {
            assert_eq!(failures[0].0.port(), 1)
        }
        Err(e @ ConnectError::InvalidUrl(UrlError::TlsNotSupported)) if !cfg!(feature = "tls") => {
            assert!(e.to_string().contains("`tls` feature"), "{e}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_refused_connection_names_the_address() {
    let addr = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let result = Client::connect(
        &format!("ws://{addr}/"),
        config(),
        Forward(mpsc::channel().0),
    );
    let Err(error) = result else {
        panic!("connected to a closed port");
    };
    assert!(
        matches!(&error, ConnectError::Unreachable(failures) if failures.len() == 1 && failures[0].0 == addr),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("connection failed: {addr}: ")),
        "{message}"
    );
}

#[test]
fn a_host_that_does_not_resolve_is_named() {
    let result = Client::connect(
        "ws://no-such-host.invalid:9001/",
        config(),
        Forward(mpsc::channel().0),
    );
    match result {
        Err(e @ ConnectError::Resolve { .. }) => assert!(
            e.to_string()
                .starts_with("cannot resolve host no-such-host.invalid: "),
            "{e}"
        ),
        other => panic!("expected a resolve error, got {other:?}"),
    }
}

/// `localhost` resolving to both loopbacks, with the server on the one that comes second:
/// the client gets there after the first is refused. Where `localhost` has one address only
/// (as on many CI machines), the unit tests of `client.rs` cover the loop with a list of
/// addresses instead.
#[test]
fn every_address_of_a_name_is_tried_in_turn() {
    let addrs: Vec<SocketAddr> = match ("localhost", 0).to_socket_addrs() {
        Ok(addrs) => addrs.collect(),
        Err(e) => {
            eprintln!("skipped: localhost does not resolve here ({e})");
            return;
        }
    };
    let first = addrs[0];
    let Some(second) = addrs.iter().find(|a| a.is_ipv4() != first.is_ipv4()) else {
        eprintln!("skipped: localhost resolves to one address family only here ({addrs:?})");
        return;
    };
    let Some((server, seen)) = server(&second.to_string()) else {
        eprintln!("skipped: cannot bind {second}");
        return;
    };
    let port = server.local_addr().port();
    // Nothing may listen on the first address with that port, or the test proves nothing.
    let mut first = first;
    first.set_port(port);
    if TcpListener::bind(first).is_err() {
        eprintln!("skipped: {first} is in use");
        return;
    }
    let (client, echoed) = connect_and_echo(&format!("ws://localhost:{port}/"));
    assert_eq!(echoed, Message::Text("hello".into()));
    assert_eq!(client.session().peer_addr(), server.local_addr());
    let (host, _, _) = seen.recv_timeout(WAIT).unwrap();
    assert_eq!(host, format!("localhost:{port}"));
    client.stop();
    server.stop();
}
