//! `wss://` over real sockets with certificates made at test time: echo over TLS, the server
//! name (SNI) seen by the factory, a client refusing a wrong name, an unknown issuer or an
//! expired certificate with an error naming the reason, plain HTTP to a TLS port and TLS to a
//! plain port, garbage instead of a ClientHello, and a TLS handshake that never finishes.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::{pattern, Ev, Recorder, Recording, WAIT};
use rcgen::{date_time_ymd, BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair};
use ws_mio::tls::rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use ws_mio::tls::{self, rustls};
use ws_mio::ws_proto::handshake::UpgradeRequest;
use ws_mio::{
    Client, ClientConfig, ConnectError, Decision, DriverError, Factory, Message, Peer, Server,
    ServerConfig,
};

/// A test CA and a leaf certificate it signed for `names`, valid now (or expired).
struct Certs {
    ca: CertificateDer<'static>,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn certs(names: &[&str], expired: bool) -> Certs {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "ws-mio test CA");
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if expired {
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2021, 1, 1);
    }
    let leaf = params.signed_by(&key, &issuer).unwrap();
    Certs {
        ca: ca.der().clone(),
        chain: vec![leaf.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    }
}

impl Certs {
    fn server(&self) -> Arc<rustls::ServerConfig> {
        tls::server_config(self.chain.clone(), self.key.clone_key()).unwrap()
    }

    /// A client trusting this CA only.
    fn client(&self) -> ClientConfig {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.clone()).unwrap();
        let mut config = ClientConfig::default();
        config.tls = Some(tls::client_config_with_roots(roots));
        config.connect_timeout = WAIT;
        config
    }
}

/// An echo server over TLS that also reports who asked ([`Peer`]) for each request.
struct Seeing {
    recording: Recording,
    peers: Mutex<mpsc::Sender<Peer>>,
}

impl Factory for Seeing {
    type Handler = Recorder;
    fn on_request(&self, request: &UpgradeRequest, peer: &Peer) -> Decision<Recorder> {
        let _ = self.peers.lock().unwrap().send(peer.clone());
        self.recording.on_request(request, peer)
    }
    fn on_error(&self, peer: Option<SocketAddr>, error: &DriverError) {
        self.recording.on_error(peer, error)
    }
}

fn tls_server(
    certs: &Certs,
    handshake_timeout: Duration,
) -> (Server, common::Probe, mpsc::Receiver<Peer>) {
    let (recording, probe) = Recording::new(true);
    let (tx, peers) = mpsc::channel();
    let mut config = ServerConfig::default();
    config.threads = 1;
    config.tls = Some(certs.server());
    config.protocol.handshake_timeout = Some(handshake_timeout);
    let factory = Seeing {
        recording,
        peers: Mutex::new(tx),
    };
    let server = Server::bind("127.0.0.1:0", config, factory).unwrap();
    (server, probe, peers)
}

#[test]
fn echo_over_tls_with_the_server_name_seen_by_the_factory() {
    let certs = certs(&["localhost"], false);
    let (server, _probe, peers) = tls_server(&certs, WAIT);
    let url = format!("wss://localhost:{}/chat", server.local_addr().port());
    let (handler, client_probe) = Recorder::new(false);
    let client = match Client::connect(&url, certs.client(), handler) {
        Ok(client) => client,
        // `localhost` may resolve to ::1 first where nothing listens: the next address is tried.
        Err(e) => panic!("{e}"),
    };
    let peer = peers.recv_timeout(WAIT).unwrap();
    assert!(peer.tls);
    assert_eq!(peer.server_name.as_deref(), Some("localhost"));
    let session = client.session().clone();
    let opened = client_probe.opened();
    for message in [
        Message::Text("hello over TLS".into()),
        Message::Binary(pattern(1 << 20, 7)),
        Message::Text(String::new()),
    ] {
        session.send(message.clone()).unwrap();
        assert_eq!(client_probe.message(opened.id()), message);
    }
    client
        .session()
        .close(ws_mio::CloseCode::NORMAL, "bye")
        .unwrap();
    let closed = client_probe.closed(opened.id());
    assert_eq!(closed.code, ws_mio::CloseCode::NORMAL);
    assert!(closed.error.is_none(), "{:?}", closed.error);
}

/// The client's refusal, as the error the application sees.
fn refusal(certs: &Certs, client: ClientConfig, host: &str) -> String {
    let (server, _probe, _peers) = tls_server(certs, WAIT);
    let url = format!("wss://{host}:{}/", server.local_addr().port());
    let (handler, _probe) = Recorder::new(false);
    match Client::connect(&url, client, handler) {
        Ok(_) => panic!("{url}: connected"),
        Err(ConnectError::Failed {
            error: DriverError::Tls(e),
            ..
        }) => e.to_string(),
        Err(other) => panic!("{url}: not a TLS error: {other}"),
    }
}

#[test]
fn a_client_refuses_a_wrong_name_an_unknown_issuer_and_an_expired_certificate() {
    let good = certs(&["localhost"], false);
    // Connected by IP address, the certificate names only `localhost`.
    let wrong_name = refusal(&good, good.client(), "127.0.0.1");
    assert!(
        wrong_name.contains("certificate not valid for name"),
        "{wrong_name}"
    );
    // Mozilla's roots (the default) do not know the test CA.
    let mut default_roots = ClientConfig::default();
    default_roots.connect_timeout = WAIT;
    let unknown = refusal(&good, default_roots, "localhost");
    assert!(unknown.contains("UnknownIssuer"), "{unknown}");
    let expired = certs(&["localhost"], true);
    let expired_error = refusal(&expired, expired.client(), "localhost");
    assert!(
        expired_error.contains("certificate expired"),
        "{expired_error}"
    );
}

/// A raw TCP peer: writes `bytes`, then reads until EOF or `WAIT`; returns what came back
/// and whether the server closed the connection.
fn raw_exchange(addr: SocketAddr, bytes: &[u8]) -> (Vec<u8>, bool) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.write_all(bytes).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, true),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            // A reset after the alert is a close too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (got, true),
            Err(_) => return (got, false),
        }
    }
}

fn tls_error(probe: &common::Probe) -> String {
    probe.expect("the factory's TLS error", |ev| match ev {
        Ev::Error(None, DriverError::Tls(e)) => Some(e.to_string()),
        _ => None,
    })
}

#[test]
fn plain_http_or_garbage_to_a_tls_port_is_closed_and_reported() {
    let certs = certs(&["localhost"], false);
    let (server, probe, _peers) = tls_server(&certs, WAIT);
    let addr = server.local_addr();
    let (answer, closed) = raw_exchange(addr, b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    assert!(closed, "the server closes");
    // A TLS alert record (content type 21), not an HTTP answer.
    assert_eq!(answer.first(), Some(&0x15), "{answer:?}");
    let error = tls_error(&probe);
    assert!(
        error.contains("invalid") || error.contains("corrupt"),
        "{error}"
    );
    let (_, closed) = raw_exchange(addr, &[0x16, 0x03, 0x01, 0xff, 0xff, 1, 2, 3, 4, 5]);
    assert!(closed);
    let (_, closed) = raw_exchange(addr, &[0u8; 64]);
    assert!(closed);
    tls_error(&probe);
    // The server still serves a real client.
    let url = format!("wss://localhost:{}/", addr.port());
    let (handler, _client_probe) = Recorder::new(false);
    let _client =
        Client::connect(&url, certs.client(), handler).expect("a TLS client after the garbage");
}

#[test]
fn tls_to_a_plain_port_is_refused_cleanly() {
    let (recording, _probe) = Recording::new(true);
    let server = Server::bind("127.0.0.1:0", ServerConfig::default(), recording).unwrap();
    let certs = certs(&["localhost"], false);
    let url = format!("wss://localhost:{}/", server.local_addr().port());
    let (handler, _client_probe) = Recorder::new(false);
    let started = Instant::now();
    match Client::connect(&url, certs.client(), handler) {
        // The plain server answers the ClientHello with an HTTP 400, which is no TLS record.
        Err(ConnectError::Failed {
            error: DriverError::Tls(e),
            ..
        }) => assert!(e.to_string().contains("corrupt message"), "{e}"),
        Err(other) => panic!("{other}"),
        Ok(_) => panic!("connected"),
    }
    assert!(started.elapsed() < WAIT);
}

#[test]
fn a_tls_handshake_that_never_finishes_times_out() {
    let certs = certs(&["localhost"], false);
    let (server, probe, _peers) = tls_server(&certs, Duration::from_millis(300));
    let started = Instant::now();
    // TCP connects, then nothing: no ClientHello.
    let (_, closed) = raw_exchange(server.local_addr(), b"");
    assert!(closed, "dropped like an HTTP slowloris");
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_millis(300) && elapsed < WAIT,
        "{elapsed:?}"
    );
    drop(probe);
}

#[test]
fn one_server_listens_plain_and_tls_at_once() {
    let certs = certs(&["localhost"], false);
    let (recording, _probe) = Recording::new(true);
    let mut config = ServerConfig::default();
    config.threads = 2;
    let server = Server::bind("127.0.0.1:0", config, recording).unwrap();
    let secure = server.listen_tls("127.0.0.1:0", certs.server()).unwrap();
    for url in [
        format!("ws://127.0.0.1:{}/", server.local_addr().port()),
        format!("wss://localhost:{}/", secure.port()),
    ] {
        let (handler, probe) = Recorder::new(false);
        let client =
            Client::connect(&url, certs.client(), handler).unwrap_or_else(|e| panic!("{url}: {e}"));
        let opened = probe.opened();
        client.session().send_text(format!("via {url}")).unwrap();
        assert_eq!(
            probe.message(opened.id()),
            Message::Text(format!("via {url}"))
        );
    }
}

#[test]
fn over_capacity_a_tls_client_gets_the_503() {
    let certs = certs(&["localhost"], false);
    let (recording, _probe) = Recording::new(true);
    let mut config = ServerConfig::default();
    config.threads = 1;
    config.max_connections = 1;
    config.tls = Some(certs.server());
    let server = Server::bind("127.0.0.1:0", config, recording).unwrap();
    let url = format!("wss://localhost:{}/", server.local_addr().port());
    let (handler, _first_probe) = Recorder::new(false);
    let _first = Client::connect(&url, certs.client(), handler).expect("the first fits");
    let (handler, _second_probe) = Recorder::new(false);
    match Client::connect(&url, certs.client(), handler) {
        // The refusal is answered over TLS once its handshake is done, then closed.
        Err(ConnectError::Failed {
            error: DriverError::Protocol(e),
            ..
        }) => assert!(e.to_string().contains("503"), "{e}"),
        other => panic!("{other:?}"),
    }
}

/// A blocking `wss://` client at the TLS level: rustls over a `TcpStream`, WebSocket through a
/// sans-IO `Connection`, so that the test sees what the server does with TLS itself.
struct RawTlsClient {
    tls: rustls::StreamOwned<rustls::ClientConnection, TcpStream>,
    conn: ws_mio::ws_proto::Connection,
}

impl RawTlsClient {
    fn connect(addr: SocketAddr, certs: &Certs) -> RawTlsClient {
        let stream = TcpStream::connect(addr).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certs.ca.clone()).unwrap();
        let config = tls::client_config_with_roots(roots);
        let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
        let session = rustls::ClientConnection::new(config, name).unwrap();
        let conn = ws_mio::ws_proto::Connection::client(
            ws_mio::ws_proto::Config::default(),
            ws_mio::ws_proto::ClientRequest::new("localhost", "/"),
            Instant::now(),
        );
        let mut client = RawTlsClient {
            tls: rustls::StreamOwned::new(session, stream),
            conn,
        };
        client.flush();
        assert!(matches!(
            client.next_event(),
            Some(ws_mio::ws_proto::Event::Open(_))
        ));
        client
    }

    fn flush(&mut self) {
        while !self.conn.pending_output().is_empty() {
            let n = self.tls.write(self.conn.pending_output()).unwrap();
            self.conn.advance_output(n);
        }
        self.tls.flush().unwrap();
    }

    /// The next event, or `None` at the end of the TLS stream (its close_notify).
    fn next_event(&mut self) -> Option<ws_mio::ws_proto::Event> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(event) = self.conn.poll_event() {
                return Some(event);
            }
            let n = self
                .tls
                .read(&mut buf)
                .expect("TLS data or a close_notify, not a bare TCP close");
            if n == 0 {
                return None;
            }
            self.conn.receive(&buf[..n], Instant::now());
            self.flush();
        }
    }
}

#[test]
fn close_notify_is_sent_after_the_closing_handshake_and_honoured() {
    let certs = certs(&["localhost"], false);
    let (server, probe, _peers) = tls_server(&certs, WAIT);
    // We close: the server echoes the close frame, then ends TLS with close_notify (rustls'
    // reader returns 0 for it; a TCP close without it would be an UnexpectedEof error).
    let mut client = RawTlsClient::connect(server.local_addr(), &certs);
    let opened = probe.opened();
    client
        .conn
        .close(ws_mio::CloseCode::NORMAL, "bye", Instant::now())
        .unwrap();
    client.flush();
    assert!(matches!(
        client.next_event(),
        Some(ws_mio::ws_proto::Event::Close(c)) if c.code == ws_mio::CloseCode::NORMAL
    ));
    assert!(
        client.next_event().is_none(),
        "close_notify ends the stream"
    );
    drop(client); // our TCP close, which the server waits for after its own
    assert_eq!(probe.closed(opened.id()).code, ws_mio::CloseCode::NORMAL);

    // The peer ends TLS with close_notify without a closing handshake: the server takes it as
    // the end of the stream (1006) and closes too, with its own close_notify first.
    let mut client = RawTlsClient::connect(server.local_addr(), &certs);
    let opened = probe.opened();
    client.tls.conn.send_close_notify();
    client.tls.flush().unwrap();
    let closed = probe.closed(opened.id());
    assert_eq!(closed.code, ws_mio::CloseCode::ABNORMAL);
    assert!(client.next_event().is_none(), "the server's close_notify");
}
