//! Addresses through the facade: a server on every interface (the default) is reachable over
//! IPv4 and IPv6, one on `::1` or `127.0.0.1` only there; clients take IPv6 hosts with or
//! without brackets; a failed start names the address, once.

use std::net::{SocketAddr, TcpListener};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use ws_facade::{
    ClientConfig, ConfigError, Error, ProtocolClient, ProtocolServer, ServerConfig, WebSocketFacade,
};

const WAIT: Duration = Duration::from_secs(10);

/// Whether this machine has an IPv6 loopback (tests of IPv6 are skipped, saying so, if not).
fn has_ipv6_loopback() -> bool {
    match TcpListener::bind("[::1]:0") {
        Ok(_) => true,
        Err(e) => {
            eprintln!("skipped the IPv6 part: this machine has no IPv6 loopback ({e})");
            false
        }
    }
}

/// A started chat server on `host` (`None`: the default, every interface), its port, and the
/// peer address of each session that joins.
fn server(host: Option<&str>) -> (Arc<dyn ProtocolServer>, u16, mpsc::Receiver<SocketAddr>) {
    let mut config = ServerConfig::default();
    config.port = 9001;
    config.path = "/chat".into();
    config.threads = 1;
    config.host = host.map(str::to_owned);
    let server = WebSocketFacade::create_server(&config).unwrap();
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    server.set_connection_callback(move |session| {
        let peer = session.as_websocket().unwrap().peer_addr();
        let _ = tx.lock().unwrap().send(peer);
    });
    server.start(0).unwrap();
    let port = server.local_addr().unwrap().port();
    (server, port, rx)
}

fn client(id: &str) -> Arc<dyn ProtocolClient> {
    let mut config = ClientConfig::default();
    config.client_id = id.into();
    config.path = "/chat".into();
    config.connect_timeout = Duration::from_secs(5);
    WebSocketFacade::create_client(&config).unwrap()
}

/// Joins the server at `host:port` and returns the peer address the server saw.
fn join(host: &str, port: u16, joined: &mpsc::Receiver<SocketAddr>) -> SocketAddr {
    let c = client("probe");
    c.start(host, port)
        .unwrap_or_else(|e| panic!("start({host:?}, {port}): {e}"));
    let peer = joined.recv_timeout(WAIT).expect("no connection callback");
    c.stop().unwrap();
    peer
}

#[test]
fn the_default_server_is_reachable_over_ipv4_and_ipv6() {
    let (server, port, joined) = server(None);
    // An IPv4 peer of the dual-stack listener is shown as the IPv4 address it is.
    let peer = join("127.0.0.1", port, &joined);
    assert_eq!(peer.ip().to_string(), "127.0.0.1", "{peer}");
    if has_ipv6_loopback() {
        for host in ["::1", "[::1]"] {
            let peer = join(host, port, &joined);
            assert_eq!(peer.ip().to_string(), "::1", "{host}: {peer}");
        }
    }
    server.stop().unwrap();
}

#[test]
fn a_server_on_the_ipv6_loopback_takes_ipv6_only() {
    if !has_ipv6_loopback() {
        return;
    }
    let (v6, port, joined) = server(Some("::1"));
    assert_eq!(v6.local_addr().unwrap().ip().to_string(), "::1");
    assert_eq!(join("::1", port, &joined).ip().to_string(), "::1");
    let refused = client("v4").start("127.0.0.1", port);
    assert!(matches!(refused, Err(Error::Connect(_))), "{refused:?}");
    v6.stop().unwrap();
    // Brackets are accepted in the host, as in a URL.
    let (v6, port, joined) = server(Some("[::1]"));
    assert_eq!(join("::1", port, &joined).ip().to_string(), "::1");
    v6.stop().unwrap();
}

#[test]
fn a_server_on_the_ipv4_loopback_takes_ipv4_only() {
    let (server, port, joined) = server(Some("127.0.0.1"));
    assert_eq!(
        join("127.0.0.1", port, &joined).ip().to_string(),
        "127.0.0.1"
    );
    if has_ipv6_loopback() {
        let refused = client("v6").start("::1", port);
        assert!(matches!(refused, Err(Error::Connect(_))), "{refused:?}");
    }
    server.stop().unwrap();
}

#[test]
fn an_anonymous_ipv4_peer_of_the_default_server_is_named_by_its_ipv4_address() {
    let (server, port, _joined) = server(None);
    let ids = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&ids);
    server
        .set_connection_callback(move |session| seen.lock().unwrap().push(session.id().to_owned()));
    // A driver client announces no name: the session is named after its address.
    let anonymous = ws_mio::Client::connect(
        &format!("ws://127.0.0.1:{port}/chat"),
        ws_mio::ClientConfig::default(),
        NoHandler,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    while ids.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let ids = ids.lock().unwrap().clone();
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert!(ids[0].starts_with("127.0.0.1:"), "{ids:?}");
    anonymous.stop();
    server.stop().unwrap();
}

struct NoHandler;
impl ws_mio::Handler for NoHandler {}

#[test]
fn a_failed_start_names_the_address_once() {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let c = client("bob");
    let errors = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&errors);
    c.set_error_callback(move |e| seen.lock().unwrap().push(e.to_string()));
    let Err(error) = c.start("127.0.0.1", port) else {
        panic!("connected to a closed port");
    };
    let message = error.to_string();
    assert!(
        message.starts_with(&format!("connection failed: 127.0.0.1:{port}: ")),
        "{message}"
    );
    assert_eq!(*errors.lock().unwrap(), [message]);
}

#[test]
fn an_invalid_client_host_or_an_empty_server_host_is_refused() {
    let c = client("bob");
    for host in ["a b", "example.com/x", ""] {
        let result = c.start(host, 9001);
        assert!(
            matches!(result, Err(Error::Connect(_))),
            "{host:?}: {result:?}"
        );
    }
    let mut config = ServerConfig::default();
    config.port = 9001;
    config.host = Some(String::new());
    assert!(matches!(
        WebSocketFacade::create_server(&config),
        Err(Error::InvalidConfig(ConfigError::Host))
    ));
}
