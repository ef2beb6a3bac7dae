//! The facade server: a [`ws_mio::Server`] whose events become the tutorial's callbacks.

use std::collections::{HashMap, HashSet};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, OnceLock, RwLock};

use log::{debug, info, warn};

use ws_mio::ws_proto::handshake::{resource_path, resource_query, Request, UpgradeRequest};
use ws_mio::{
    CloseCode, Decision, Disconnect, DriverError, Factory, Handler, HttpResponse, Message,
    PreparedMessage,
};

use crate::callbacks::{CallbackTable, CallbackView};
use crate::cluster::envelope::Body;
use crate::cluster::node::{ClusterNode, Hooks, Outbox};
use crate::cluster::{ClusterCallback, ClusterStats};
use crate::config::ServerConfig;
use crate::error::Error;
use crate::traits::*;

#[derive(Default, Clone)]
struct Callbacks {
    connection: Option<ConnectionCallback>,
    disconnection: Option<DisconnectionCallback>,
    receive: Option<ServerReceiveCallback>,
    error: Option<ServerErrorCallback>,
    text: Option<TextCallback>,
    binary: Option<BinaryCallback>,
    close: Option<CloseCallback>,
    http: Option<HttpCallback>,
    cluster: Option<ClusterCallback>,
}

/// The open sessions by driver id, and the ids in use. Taken when a session opens or ends,
/// and by [`WebSocketServer::session`]; never per message.
#[derive(Default)]
struct Registry {
    sessions: HashMap<u64, Arc<FacadeSession>>,
    ids: HashSet<String>,
}

pub(crate) struct Inner {
    config: ServerConfig,
    server_id: String,
    callbacks: CallbackTable<Callbacks>,
    registry: Mutex<Registry>,
    /// Where joins, leaves and broadcasts go for the other nodes, while in a cluster.
    outbox: RwLock<Option<Outbox>>,
}

impl Inner {
    fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` with the outbox, while in a cluster (borrowed: nothing cloned per message).
    fn with_outbox<R>(&self, f: impl FnOnce(&Outbox) -> R) -> Option<R> {
        self.outbox
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(f)
    }

    fn set_outbox(&self, outbox: Option<Outbox>) {
        *self.outbox.write().unwrap_or_else(|e| e.into_inner()) = outbox;
    }

    fn set(&self, f: impl FnOnce(&mut Callbacks)) {
        self.callbacks.set(f);
    }
}

/// The server returned by [`create_server`](crate::WebSocketFacade::create_server).
pub struct WsServer {
    inner: Arc<Inner>,
    server: Mutex<Option<Running>>,
    running: Mutex<bool>,
    stopped: Condvar,
}

impl WsServer {
    pub(crate) fn new(config: ServerConfig, server_id: String) -> WsServer {
        WsServer {
            inner: Arc::new(Inner {
                config,
                server_id,
                callbacks: CallbackTable::default(),
                registry: Mutex::default(),
                outbox: RwLock::default(),
            }),
            server: Mutex::new(None),
            running: Mutex::new(false),
            stopped: Condvar::new(),
        }
    }
}

/// A started server: its driver, and its cluster node when in a cluster.
struct Running {
    driver: Arc<ws_mio::Server>,
    cluster: Option<ClusterNode>,
}

impl Drop for WsServer {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// A session as the application sees it.
pub(crate) struct FacadeSession {
    id: String,
    path: String,
    session: ws_mio::Session,
}

impl Session for FacadeSession {
    fn id(&self) -> &str {
        &self.id
    }
    fn is_connected(&self) -> bool {
        self.session.is_open()
    }
    fn send(&self, data: Vec<u8>) -> Result<(), Error> {
        Ok(self.session.send_binary(data)?)
    }
    fn close(&self) {
        let _ = self.session.close(CloseCode::NORMAL, "");
    }
    fn as_websocket(&self) -> Option<&dyn WebSocketSession> {
        Some(self)
    }
}

impl WebSocketSession for FacadeSession {
    fn send_text(&self, text: String) -> Result<(), Error> {
        Ok(self.session.send_text(text)?)
    }
    fn send_binary(&self, data: Vec<u8>) -> Result<(), Error> {
        Ok(self.session.send_binary(data)?)
    }
    fn ping(&self, payload: Vec<u8>) -> Result<(), Error> {
        Ok(self.session.ping(payload)?)
    }
    fn close_with(&self, code: u16, reason: &str) -> Result<(), Error> {
        Ok(self.session.close(close_code(code)?, reason)?)
    }
    fn path(&self) -> &str {
        &self.path
    }
    fn subprotocol(&self) -> Option<&str> {
        self.session.subprotocol()
    }
    fn peer_addr(&self) -> SocketAddr {
        canonical(self.session.peer_addr())
    }
}

/// The name a client announced: the `X-Client-Id` header, else an `id` query parameter.
/// Only a safe character set is kept so ids print cleanly.
fn announced_name(request: &UpgradeRequest) -> Option<String> {
    let from_header = request
        .headers
        .get("x-client-id")
        .map(|v| String::from_utf8_lossy(v).into_owned());
    let from_query = resource_query(&request.path).and_then(|query| {
        query
            .split('&')
            .find_map(|pair| pair.strip_prefix("id="))
            .map(percent_decode)
    });
    let name: String = from_header
        .or(from_query)?
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '@'))
        .take(32)
        .collect();
    (!name.is_empty()).then_some(name)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push((h * 16 + l) as u8);
                    i += 3;
                    continue;
                }
                _ => out.push(b'%'),
            },
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The address of a peer as the application sees it. An IPv4 peer of a dual-stack `[::]`
/// listener arrives as an IPv4-mapped IPv6 address (`[::ffff:127.0.0.1]:40000`): it is shown
/// as the IPv4 address it is (`127.0.0.1:40000`), as with an IPv4 listener.
fn canonical(peer: SocketAddr) -> SocketAddr {
    match peer {
        SocketAddr::V6(v6) => match v6.ip().to_ipv4_mapped() {
            Some(v4) => SocketAddr::from((v4, v6.port())),
            None => peer,
        },
        v4 => v4,
    }
}

/// Binds the server: on `host` when one is configured (its first address that binds), else
/// on every interface, IPv6 and IPv4, with one listener:
///
/// * `[::]`, which also takes IPv4 connections (as IPv4-mapped addresses) where the system's
///   default for `IPV6_V6ONLY` is off: Linux and macOS, among others. Binding `0.0.0.0` on the
///   same port then fails with "address in use", which is how this is checked (std does not
///   expose the option itself);
/// * `0.0.0.0` (IPv4 only, with a warning) where `[::]` would be IPv6-only (Windows and the
///   BSDs by default): serving IPv4 matters more there, and is what the server did before it
///   knew IPv6;
/// * `0.0.0.0` where the machine has no IPv6 at all.
fn bind(
    host: Option<&str>,
    port: u16,
    config: ws_mio::ServerConfig,
    bridge: impl Fn() -> Bridge,
) -> io::Result<ws_mio::Server> {
    if let Some(host) = host {
        // An IPv6 address may come in brackets, as in a URL.
        let host = host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(host);
        return ws_mio::Server::bind((host, port), config, bridge());
    }
    let server = match ws_mio::Server::bind(
        (std::net::Ipv6Addr::UNSPECIFIED, port),
        config.clone(),
        bridge(),
    ) {
        Ok(server) => server,
        // Also what IPv4 would say.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::AddrInUse | io::ErrorKind::PermissionDenied
            ) =>
        {
            return Err(e)
        }
        Err(e) => {
            info!("no IPv6 here ({e}): listening on IPv4 only");
            return ws_mio::Server::bind((std::net::Ipv4Addr::UNSPECIFIED, port), config, bridge());
        }
    };
    let port = server.local_addr().port();
    match std::net::TcpListener::bind((std::net::Ipv4Addr::UNSPECIFIED, port)) {
        Err(e) if e.kind() == io::ErrorKind::AddrInUse => Ok(server),
        Err(e) => {
            // Not a sign either way: keep the IPv6 listener.
            debug!("checking that [::]:{port} takes IPv4 too: binding 0.0.0.0:{port}: {e}");
            Ok(server)
        }
        Ok(probe) => {
            drop(probe);
            server.stop();
            warn!(
                "[::]:{port} would take IPv6 connections only on this system: listening on \
                 0.0.0.0 (IPv4) only; set ServerConfig::host to \"::\" to serve IPv6"
            );
            ws_mio::Server::bind((std::net::Ipv4Addr::UNSPECIFIED, port), config, bridge())
        }
    }
}

/// Decides on upgrade requests: every one is accepted with a [`Member`] that carries the name
/// the client announced and the path it asked for.
struct Bridge(Arc<Inner>);

impl Factory for Bridge {
    type Handler = Member;

    fn on_request(&self, request: &UpgradeRequest, peer: &ws_mio::Peer) -> Decision<Member> {
        let peer = peer.addr;
        Decision::accept(Member {
            inner: Arc::clone(&self.0),
            name: announced_name(request).unwrap_or_else(|| canonical(peer).to_string()),
            path: resource_path(&request.path).to_owned(),
            session: None,
            callbacks: self.0.callbacks.view(),
        })
    }

    fn on_http_request(&self, request: &Request, _peer: &ws_mio::Peer) -> HttpResponse {
        let path = resource_path(&request.path);
        match self.0.callbacks.get().http.as_ref().and_then(|cb| cb(path)) {
            Some((content_type, body)) => HttpResponse::new(200, content_type, body),
            None => HttpResponse::not_found(),
        }
    }

    fn on_error(&self, peer: Option<SocketAddr>, error: &DriverError) {
        if let Some(cb) = &self.0.callbacks.get().error {
            // No session yet, hence no id: the peer says who it was. (The request path is not
            // known here: the protocol layer refuses a wrong path without handing it on.)
            let error = match peer {
                Some(peer) => Error::Incoming {
                    peer: canonical(peer),
                    error: error.clone(),
                },
                None => Error::Connection(error.clone()),
            };
            cb("", &error);
        }
    }
}

/// One participant: its announced name and path until it opens, then its session. Its
/// callbacks run on the connection's event loop (one thread at a time) and take no lock per
/// message.
struct Member {
    inner: Arc<Inner>,
    name: String,
    path: String,
    session: Option<Arc<FacadeSession>>,
    callbacks: CallbackView<Callbacks>,
}

impl Member {
    fn id(&self) -> &str {
        self.session.as_ref().map_or("", |s| s.id.as_str())
    }
}

impl Handler for Member {
    fn on_open(&mut self, session: &ws_mio::Session) {
        let facade_session = {
            let mut registry = self.inner.registry();
            let mut id = self.name.clone();
            let mut n = 2;
            while registry.ids.contains(&id) {
                id = format!("{}#{n}", self.name);
                n += 1;
            }
            registry.ids.insert(id.clone());
            let facade_session = Arc::new(FacadeSession {
                id,
                path: std::mem::take(&mut self.path),
                session: session.clone(),
            });
            registry
                .sessions
                .insert(session.id(), Arc::clone(&facade_session));
            facade_session
        };
        self.inner.with_outbox(|o| o.joined(&facade_session.id));
        debug!(
            "session {:?} joined: peer={} path={:?}",
            facade_session.id,
            canonical(session.peer_addr()),
            facade_session.path
        );
        self.session = Some(Arc::clone(&facade_session));
        if let Some(cb) = &self.callbacks.get(&self.inner.callbacks).connection {
            cb(facade_session);
        }
    }

    fn on_message(&mut self, _session: &ws_mio::Session, message: Message) {
        let Some(session) = &self.session else {
            return;
        };
        let id = session.id.as_str();
        let callbacks = self.callbacks.get(&self.inner.callbacks);
        match &message {
            Message::Text(text) => {
                if let Some(cb) = &callbacks.text {
                    cb(id, text);
                }
            }
            Message::Binary(data) => {
                if let Some(cb) = &callbacks.binary {
                    cb(id, data);
                }
            }
            _ => {}
        }
        if let Some(cb) = &callbacks.receive {
            cb(id, message.as_bytes());
        }
    }

    fn on_close(&mut self, session: &ws_mio::Session, disconnect: &Disconnect) {
        let Some(removed) = self.inner.registry().sessions.remove(&session.id()) else {
            return;
        };
        // Released after the callbacks, even when one of them panics.
        struct Release<'a>(&'a Inner, &'a str);
        impl Drop for Release<'_> {
            fn drop(&mut self) {
                self.0.registry().ids.remove(self.1);
            }
        }
        let _release = Release(&self.inner, &removed.id);
        self.inner.with_outbox(|o| o.left(&removed.id));
        debug!(
            "session {:?} left: peer={} code={} reason={:?}",
            removed.id,
            canonical(session.peer_addr()),
            disconnect.code,
            disconnect.reason
        );
        let callbacks = self.callbacks.get(&self.inner.callbacks);
        if let Some(cb) = &callbacks.disconnection {
            cb(&removed.id);
        }
        if let Some(cb) = &callbacks.close {
            cb(&removed.id, disconnect.code.as_u16(), &disconnect.reason);
        }
    }

    fn on_error(&mut self, _session: &ws_mio::Session, error: &DriverError) {
        let callbacks = self.callbacks.get(&self.inner.callbacks).clone();
        if let Some(cb) = &callbacks.error {
            cb(self.id(), &Error::Connection(error.clone()));
        }
    }
}

/// The tutorial's `close_with` takes a number: made a close code here, refused if it may not
/// be sent.
pub(crate) fn close_code(code: u16) -> Result<CloseCode, Error> {
    CloseCode::new(code).ok_or(Error::Send(ws_mio::SendError::InvalidCloseCode(code)))
}

impl ProtocolServer for WsServer {
    fn start(&self, port: u16) -> Result<(), Error> {
        let mut slot = self.server.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_some() {
            return Err(Error::AlreadyRunning);
        }
        let config = &self.inner.config;
        let mut driver_config = ws_mio::ServerConfig::default();
        driver_config.protocol = config.protocol();
        driver_config.threads = config.threads;
        driver_config.max_connections = config.max_connections;
        #[cfg(feature = "tls")]
        {
            driver_config.tls = config.tls.clone();
        }
        // The cluster node first, so that the first session's join is announced; it hands
        // other nodes' messages to the driver once there is one.
        let driver_slot: Arc<OnceLock<Arc<ws_mio::Server>>> = Arc::default();
        let cluster = match &config.cluster {
            Some(cluster) => Some(
                self.join_cluster(cluster, Arc::clone(&driver_slot))
                    .map_err(|e| Error::ClusterStart(Arc::new(e)))?,
            ),
            None => None,
        };
        let inner = &self.inner;
        let bound = bind(config.host.as_deref(), port, driver_config, || {
            Bridge(Arc::clone(inner))
        });
        let server = match bound {
            Ok(server) => server,
            Err(e) => {
                if let Some(node) = cluster {
                    node.stop();
                    self.inner.set_outbox(None);
                }
                return Err(Error::Bind {
                    port,
                    source: Arc::new(e),
                });
            }
        };
        info!(
            "server {:?} listening on {}, path {:?}",
            self.inner.server_id,
            server.local_addr(),
            config.path
        );
        let driver = Arc::new(server);
        let _ = driver_slot.set(Arc::clone(&driver));
        *slot = Some(Running { driver, cluster });
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = true;
        Ok(())
    }

    fn stop(&self) -> Result<(), Error> {
        let running = self.server.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(running) = running {
            // Every open session gets its on_close (which unregisters it, and tells the
            // cluster) during the stop; then the cluster node says goodbye.
            running.driver.stop();
            if let Some(node) = running.cluster {
                node.stop();
                self.inner.set_outbox(None);
            }
            info!("server {:?} stopped", self.inner.server_id);
        }
        *self.running.lock().unwrap_or_else(|e| e.into_inner()) = false;
        self.stopped.notify_all();
        Ok(())
    }

    fn is_running(&self) -> bool {
        *self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn wait_for_stop(&self) {
        let mut running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        while *running {
            running = self
                .stopped
                .wait(running)
                .unwrap_or_else(|e| e.into_inner());
        }
    }

    fn connection_count(&self) -> usize {
        self.server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |s| s.driver.connection_count())
    }

    fn local_addr(&self) -> Option<SocketAddr> {
        self.server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|s| s.driver.local_addr())
    }

    fn server_id(&self) -> &str {
        &self.inner.server_id
    }

    fn set_connection_callback_boxed(&self, callback: ConnectionCallback) {
        self.inner.set(|c| c.connection = Some(callback));
    }
    fn set_disconnection_callback_boxed(&self, callback: DisconnectionCallback) {
        self.inner.set(|c| c.disconnection = Some(callback));
    }
    fn set_receive_callback_boxed(&self, callback: ServerReceiveCallback) {
        self.inner.set(|c| c.receive = Some(callback));
    }
    fn set_error_callback_boxed(&self, callback: ServerErrorCallback) {
        self.inner.set(|c| c.error = Some(callback));
    }
    fn as_websocket(&self) -> Option<&dyn WebSocketServer> {
        Some(self)
    }
}

impl WebSocketServer for WsServer {
    fn broadcast_text(&self, text: &str) -> Result<(), Error> {
        self.broadcast(PreparedMessage::text(text), || Body::Text(text.to_owned()))
    }
    fn broadcast_binary(&self, data: &[u8]) -> Result<(), Error> {
        self.broadcast(PreparedMessage::binary(data), || {
            Body::Binary(data.to_vec())
        })
    }
    fn session(&self, id: &str) -> Option<Arc<dyn Session>> {
        let registry = self.inner.registry();
        let found = registry.sessions.values().find(|s| s.id == id)?;
        Some(Arc::clone(found) as Arc<dyn Session>)
    }
    fn set_text_callback_boxed(&self, callback: TextCallback) {
        self.inner.set(|c| c.text = Some(callback));
    }
    fn set_binary_callback_boxed(&self, callback: BinaryCallback) {
        self.inner.set(|c| c.binary = Some(callback));
    }
    fn set_close_callback_boxed(&self, callback: CloseCallback) {
        self.inner.set(|c| c.close = Some(callback));
    }
    fn set_http_callback_boxed(&self, callback: HttpCallback) {
        self.inner.set(|c| c.http = Some(callback));
    }
    fn online_count(&self) -> usize {
        let local = self.inner.registry().sessions.len();
        local + self.inner.with_outbox(Outbox::remote_sessions).unwrap_or(0)
    }
    fn cluster_stats(&self) -> Option<ClusterStats> {
        self.inner.with_outbox(Outbox::stats)
    }
    fn set_cluster_callback_boxed(&self, callback: ClusterCallback) {
        self.inner.set(|c| c.cluster = Some(callback));
    }
}

impl WsServer {
    /// Broadcasts through the running driver (with none there is nobody to send to), and
    /// through the cluster when in one.
    fn broadcast(
        &self,
        message: PreparedMessage,
        body: impl FnOnce() -> Body,
    ) -> Result<(), Error> {
        let local = match self
            .server
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            Some(running) => running.driver.broadcast(&message),
            None => Ok(()),
        };
        self.inner.with_outbox(|o| o.broadcast(body()));
        Ok(local?)
    }

    /// Starts this server's cluster node: other nodes' broadcasts go to the sessions of the
    /// driver in `driver` (dropped while it is empty: no driver, no session), events to the
    /// cluster callback.
    fn join_cluster(
        &self,
        cluster: &crate::cluster::ClusterConfig,
        driver: Arc<OnceLock<Arc<ws_mio::Server>>>,
    ) -> io::Result<ClusterNode> {
        let bus = crate::cluster::bus_for(&cluster.url)
            .expect("the cluster URL was checked by create_server");
        let name = match cluster.node_id.as_str() {
            "" => format!("node-{:08x}", crate::cluster::node::random_u64() as u32),
            name => name.to_owned(),
        };
        let to_sessions = driver;
        let reporter = Arc::clone(&self.inner);
        let registry = Arc::clone(&self.inner);
        let hooks = Hooks {
            deliver: Box::new(move |body| {
                let message = match body {
                    Body::Text(text) => PreparedMessage::text(text),
                    Body::Binary(data) => PreparedMessage::binary(data),
                    _ => return,
                };
                let Some(driver) = to_sessions.get() else {
                    return;
                };
                if let Err(e) = driver.broadcast(&message) {
                    debug!("cluster: a broadcast from another node missed some sessions: {e}");
                }
            }),
            report: Box::new(move |event| {
                if let Some(cb) = &reporter.callbacks.get().cluster {
                    cb(event);
                }
            }),
            sessions: Box::new(move || {
                let registry = registry.registry();
                registry.sessions.values().map(|s| s.id.clone()).collect()
            }),
        };
        let node = ClusterNode::start(bus, cluster, name, &self.inner.config.path, hooks)?;
        self.inner.set_outbox(Some(node.outbox()));
        Ok(node)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A refused upgrade reaches the error callback with the peer (no session id yet).
    #[test]
    fn a_refused_upgrade_names_the_peer_in_the_error_callback() {
        use std::io::{Read, Write};
        use std::sync::mpsc;
        use std::time::Duration;

        // A port is required by the config; `start(0)` picks a free one.
        let config = ServerConfig {
            port: 9001,
            path: "/chat".into(),
            ..ServerConfig::default()
        };
        let server = crate::WebSocketFacade::create_server(&config).unwrap();
        let (tx, rx) = mpsc::channel();
        let tx = Mutex::new(tx);
        server.set_error_callback(move |id, error| {
            let _ = tx.lock().unwrap().send((id.to_owned(), error.to_string()));
        });
        server.start(0).unwrap();
        let port = server.local_addr().unwrap().port();
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let peer = stream.local_addr().unwrap();
        stream
            .write_all(
                b"GET /elsewhere HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
                  Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
                  Sec-WebSocket-Version: 13\r\n\r\n",
            )
            .unwrap();
        let mut response = Vec::new();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let _ = stream.read_to_end(&mut response);
        assert!(response.starts_with(b"HTTP/1.1 404"));
        drop(stream);
        let (id, message) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
        assert_eq!(id, "");
        assert_eq!(
            message,
            format!("handshake failed: path not found (peer {peer})")
        );
        server.stop().unwrap();
    }

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("bob%20smith"), "bob smith");
        assert_eq!(percent_decode("a+b"), "a b");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
    }
}
