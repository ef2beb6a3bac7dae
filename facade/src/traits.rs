//! The interfaces of the tutorial, in Rust: [`ProtocolServer`] / [`ProtocolClient`] /
//! [`Session`] (`i_protocol_server`, `i_protocol_client`, `i_session`), and their WebSocket
//! extensions [`WebSocketServer`] / [`WebSocketClient`] / [`WebSocketSession`]
//! (`i_websocket_server`, ...), reached with `as_websocket()` — the Rust form of the
//! tutorial's cast, and one that always works on what the facade returns.
//!
//! Callback setters take closures (`server.set_receive_callback(|id, payload| ...)`); they are
//! inherent methods of the trait objects, backed by the `*_boxed` trait methods that an
//! implementation provides. Callbacks run on event-loop threads: keep them short.

use std::net::SocketAddr;
use std::sync::Arc;

use crate::cluster::{ClusterCallback, ClusterEvent, ClusterStats};
use crate::error::Error;

/// Called with each new session.
pub type ConnectionCallback = Arc<dyn Fn(Arc<dyn Session>) + Send + Sync>;
/// Called with the id of each session that ended.
pub type DisconnectionCallback = Arc<dyn Fn(&str) + Send + Sync>;
/// Called with the sender's session id and each complete message (text as its UTF-8 bytes).
pub type ServerReceiveCallback = Arc<dyn Fn(&str, &[u8]) + Send + Sync>;
/// Called with a session id (empty for server-level errors) and the error.
pub type ServerErrorCallback = Arc<dyn Fn(&str, &Error) + Send + Sync>;
/// Called with each complete message a client receives (text as its UTF-8 bytes).
pub type ReceiveCallback = Arc<dyn Fn(&[u8]) + Send + Sync>;
/// Called without arguments (connected / disconnected).
pub type EventCallback = Arc<dyn Fn() + Send + Sync>;
/// Called with an error.
pub type ErrorCallback = Arc<dyn Fn(&Error) + Send + Sync>;
/// Server: session id and text message. Client: empty id.
pub type TextCallback = Arc<dyn Fn(&str, &str) + Send + Sync>;
/// Server: session id and binary message. Client: empty id.
pub type BinaryCallback = Arc<dyn Fn(&str, &[u8]) + Send + Sync>;
/// Session id (empty on a client), close code and reason.
pub type CloseCallback = Arc<dyn Fn(&str, u16, &str) + Send + Sync>;
/// Answers a plain HTTP GET on the server's port: request path → `(content type, body)`, or
/// `None` for 404.
pub type HttpCallback = Arc<dyn Fn(&str) -> Option<(String, Vec<u8>)> + Send + Sync>;

/// One connection on a server (`i_session`). The connection callback hands each new one over;
/// keep it to send to that participant later, from any thread.
///
/// ```
/// use ws_facade::{ServerConfig, WebSocketFacade};
/// let mut config = ServerConfig::default();
/// config.port = 9001;
/// let server = WebSocketFacade::create_server(&config).unwrap();
/// server.set_connection_callback(|session| {
///     let _ = session.send(format!("welcome, {}", session.id()).into_bytes());
/// });
/// ```
pub trait Session: Send + Sync {
    /// The session id: the client id the peer announced (`X-Client-Id` header or `?id=` query
    /// parameter), else its `ip:port`; made unique with a `#N` suffix if already in use.
    fn id(&self) -> &str;
    /// Whether the connection is open.
    fn is_connected(&self) -> bool;
    /// Sends a binary message. Usable from any thread, including inside callbacks.
    fn send(&self, data: Vec<u8>) -> Result<(), Error>;
    /// Closes the connection normally (1000).
    fn close(&self);
    /// The WebSocket-specific interface.
    fn as_websocket(&self) -> Option<&dyn WebSocketSession>;
}

/// WebSocket features of a server session (`i_websocket_session`).
pub trait WebSocketSession: Session {
    /// Sends a text message.
    fn send_text(&self, text: String) -> Result<(), Error>;
    /// Sends a binary message.
    fn send_binary(&self, data: Vec<u8>) -> Result<(), Error>;
    /// Sends a ping (payload at most 125 bytes).
    fn ping(&self, payload: Vec<u8>) -> Result<(), Error>;
    /// Closes with a code and reason.
    fn close_with(&self, code: u16, reason: &str) -> Result<(), Error>;
    /// The request path the client connected to.
    fn path(&self) -> &str;
    /// The negotiated subprotocol.
    fn subprotocol(&self) -> Option<&str>;
    /// The peer's address.
    fn peer_addr(&self) -> SocketAddr;
}

/// A server (`i_protocol_server`).
///
/// ```
/// use ws_facade::{ServerConfig, WebSocketFacade};
/// let mut config = ServerConfig::default();
/// config.port = 9001;
/// config.path = "/chat".into();
/// let server = WebSocketFacade::create_server(&config).unwrap();
/// server.set_receive_callback(|id, payload| println!("{id} sent {} bytes", payload.len()));
/// server.start(0).unwrap(); // 0: any free port (the configured one is for `start(config.port)`)
/// assert!(server.is_running());
/// server.stop().unwrap();
/// assert!(!server.is_running());
/// ```
pub trait ProtocolServer: Send + Sync {
    /// Starts listening on `port`, on [`ServerConfig::host`](crate::ServerConfig::host) (all
    /// interfaces, IPv6 and IPv4, by default). Port 0 picks a free port (see
    /// [`local_addr`](Self::local_addr)). Returns once the server accepts connections.
    fn start(&self, port: u16) -> Result<(), Error>;
    /// Closes every connection (1001), waits for them (bounded), stops the threads. Safe from
    /// any thread; from inside a callback it starts the shutdown and returns without waiting.
    fn stop(&self) -> Result<(), Error>;
    /// Whether the server is running.
    fn is_running(&self) -> bool;
    /// Blocks until the server is stopped.
    fn wait_for_stop(&self);
    /// Open connections.
    fn connection_count(&self) -> usize;
    /// The address listened on, while running.
    fn local_addr(&self) -> Option<SocketAddr>;
    /// The server id (configured or generated).
    fn server_id(&self) -> &str;
    /// See [`set_connection_callback`](trait.ProtocolServer.html#method.set_connection_callback).
    fn set_connection_callback_boxed(&self, callback: ConnectionCallback);
    /// See [`set_disconnection_callback`](trait.ProtocolServer.html#method.set_disconnection_callback).
    fn set_disconnection_callback_boxed(&self, callback: DisconnectionCallback);
    /// See [`set_receive_callback`](trait.ProtocolServer.html#method.set_receive_callback).
    fn set_receive_callback_boxed(&self, callback: ServerReceiveCallback);
    /// See [`set_error_callback`](trait.ProtocolServer.html#method.set_error_callback).
    fn set_error_callback_boxed(&self, callback: ServerErrorCallback);
    /// The WebSocket-specific interface.
    fn as_websocket(&self) -> Option<&dyn WebSocketServer>;
}

impl dyn ProtocolServer + '_ {
    /// Called on a loop thread with each new session.
    pub fn set_connection_callback(&self, f: impl Fn(Arc<dyn Session>) + Send + Sync + 'static) {
        self.set_connection_callback_boxed(Arc::new(f));
    }
    /// Called with the id of each session that ended (exactly once per session).
    pub fn set_disconnection_callback(&self, f: impl Fn(&str) + Send + Sync + 'static) {
        self.set_disconnection_callback_boxed(Arc::new(f));
    }
    /// Called with the sender id and every complete message, text or binary.
    pub fn set_receive_callback(&self, f: impl Fn(&str, &[u8]) + Send + Sync + 'static) {
        self.set_receive_callback_boxed(Arc::new(f));
    }
    /// Called with a session id (empty for server-level errors) and each error.
    pub fn set_error_callback(&self, f: impl Fn(&str, &Error) + Send + Sync + 'static) {
        self.set_error_callback_boxed(Arc::new(f));
    }
}

/// WebSocket features of a server (`i_websocket_server`), reached with `as_websocket()`.
///
/// ```
/// use ws_facade::{ServerConfig, WebSocketFacade};
/// let mut config = ServerConfig::default();
/// config.port = 9001;
/// let server = WebSocketFacade::create_server(&config).unwrap();
/// let ws = server.as_websocket().unwrap();
/// ws.set_text_callback(|id, text| println!("{id}: {text}"));
/// server.start(0).unwrap();
/// // One frame, encoded once, for every participant (none here yet).
/// ws.broadcast_text("server restarting in 5 minutes").unwrap();
/// server.stop().unwrap();
/// ```
pub trait WebSocketServer: ProtocolServer {
    /// Sends a text message to every open session (encoded once, shared). Sessions over their
    /// buffer limit miss it; an event loop already holding a buffer's worth of broadcasts it
    /// has not applied yet (kept busy by a long callback) refuses it for all of its sessions,
    /// and the call returns [`Error::Send`] with `BufferFull`.
    fn broadcast_text(&self, text: &str) -> Result<(), Error>;
    /// Sends a binary message to every open session (encoded once, shared), as
    /// [`broadcast_text`](Self::broadcast_text).
    fn broadcast_binary(&self, data: &[u8]) -> Result<(), Error>;
    /// The open session with this id.
    fn session(&self, id: &str) -> Option<Arc<dyn Session>>;
    /// See [`set_text_callback`](trait.WebSocketServer.html#method.set_text_callback).
    fn set_text_callback_boxed(&self, callback: TextCallback);
    /// See [`set_binary_callback`](trait.WebSocketServer.html#method.set_binary_callback).
    fn set_binary_callback_boxed(&self, callback: BinaryCallback);
    /// See [`set_close_callback`](trait.WebSocketServer.html#method.set_close_callback).
    fn set_close_callback_boxed(&self, callback: CloseCallback);
    /// See [`set_http_callback`](trait.WebSocketServer.html#method.set_http_callback).
    fn set_http_callback_boxed(&self, callback: HttpCallback);
    /// Sessions in the room: this server's open sessions, plus, in a
    /// [cluster](crate::cluster), those of the other nodes heard from and not gone.
    fn online_count(&self) -> usize;
    /// The cluster node's counters, while running in a [cluster](crate::cluster).
    fn cluster_stats(&self) -> Option<ClusterStats>;
    /// See [`set_cluster_callback`](trait.WebSocketServer.html#method.set_cluster_callback).
    fn set_cluster_callback_boxed(&self, callback: ClusterCallback);
}

impl dyn WebSocketServer + '_ {
    /// Called with the session id and each text message.
    pub fn set_text_callback(&self, f: impl Fn(&str, &str) + Send + Sync + 'static) {
        self.set_text_callback_boxed(Arc::new(f));
    }
    /// Called with the session id and each binary message.
    pub fn set_binary_callback(&self, f: impl Fn(&str, &[u8]) + Send + Sync + 'static) {
        self.set_binary_callback_boxed(Arc::new(f));
    }
    /// Called once per ended session with its id, the close code and the reason.
    pub fn set_close_callback(&self, f: impl Fn(&str, u16, &str) + Send + Sync + 'static) {
        self.set_close_callback_boxed(Arc::new(f));
    }
    /// Answers plain HTTP GET requests on the server's port (e.g. a page that opens the
    /// WebSocket): path → `Some((content type, body))`, or `None` for 404.
    pub fn set_http_callback(
        &self,
        f: impl Fn(&str) -> Option<(String, Vec<u8>)> + Send + Sync + 'static,
    ) {
        self.set_http_callback_boxed(Arc::new(f));
    }
    /// In a [cluster](crate::cluster): called on the node's bus thread with each
    /// [`ClusterEvent`] (other nodes' sessions joining and leaving, this node's link to the
    /// bus going and coming back).
    pub fn set_cluster_callback(&self, f: impl Fn(&ClusterEvent) + Send + Sync + 'static) {
        self.set_cluster_callback_boxed(Arc::new(f));
    }
}

/// A client (`i_protocol_client`).
///
/// ```
/// use ws_facade::{ClientConfig, Error, WebSocketFacade};
/// let mut config = ClientConfig::default();
/// config.client_id = "bob".into();
/// config.path = "/chat".into();
/// let client = WebSocketFacade::create_client(&config).unwrap();
/// client.set_connected_callback(|| println!("connected"));
/// client.set_receive_callback(|data| println!("{}", String::from_utf8_lossy(data)));
/// // Nothing listens on port 1: the start fails, and says why.
/// assert!(matches!(client.start("127.0.0.1", 1), Err(Error::Connect(_))));
/// assert!(!client.is_running());
/// ```
pub trait ProtocolClient: Send + Sync {
    /// Connects to `host:port` on the configured path and completes the upgrade; returns once
    /// it succeeded or failed (within the connect timeout), so sending right after is safe.
    fn start(&self, host: &str, port: u16) -> Result<(), Error>;
    /// Closes normally (1000), waits for the closing handshake (bounded), stops the thread.
    /// Safe from any thread; from inside a callback it starts the close and returns. Called
    /// while a `start` is connecting, it returns at once: that `start` closes what it opened
    /// and returns [`Error::StoppedWhileStarting`].
    fn stop(&self) -> Result<(), Error>;
    /// Sends a binary message.
    fn send(&self, data: Vec<u8>) -> Result<(), Error>;
    /// Whether the connection is open.
    fn is_connected(&self) -> bool;
    /// Whether the client was started and has not ended yet.
    fn is_running(&self) -> bool;
    /// Blocks until the connection has ended.
    fn wait_for_stop(&self);
    /// The client id (configured or generated).
    fn client_id(&self) -> &str;
    /// See [`set_receive_callback`](trait.ProtocolClient.html#method.set_receive_callback).
    fn set_receive_callback_boxed(&self, callback: ReceiveCallback);
    /// See [`set_connected_callback`](trait.ProtocolClient.html#method.set_connected_callback).
    fn set_connected_callback_boxed(&self, callback: EventCallback);
    /// See [`set_disconnected_callback`](trait.ProtocolClient.html#method.set_disconnected_callback).
    fn set_disconnected_callback_boxed(&self, callback: EventCallback);
    /// See [`set_error_callback`](trait.ProtocolClient.html#method.set_error_callback).
    fn set_error_callback_boxed(&self, callback: ErrorCallback);
    /// The WebSocket-specific interface.
    fn as_websocket(&self) -> Option<&dyn WebSocketClient>;
}

impl dyn ProtocolClient + '_ {
    /// Called with every complete message, text or binary.
    pub fn set_receive_callback(&self, f: impl Fn(&[u8]) + Send + Sync + 'static) {
        self.set_receive_callback_boxed(Arc::new(f));
    }
    /// Called when the connection opens.
    pub fn set_connected_callback(&self, f: impl Fn() + Send + Sync + 'static) {
        self.set_connected_callback_boxed(Arc::new(f));
    }
    /// Called once when the connection ends.
    pub fn set_disconnected_callback(&self, f: impl Fn() + Send + Sync + 'static) {
        self.set_disconnected_callback_boxed(Arc::new(f));
    }
    /// Called with each error, including a server found dead by the keepalive ping.
    pub fn set_error_callback(&self, f: impl Fn(&Error) + Send + Sync + 'static) {
        self.set_error_callback_boxed(Arc::new(f));
    }
}

/// WebSocket features of a client (`i_websocket_client`).
pub trait WebSocketClient: ProtocolClient {
    /// Sends a text message.
    fn send_text(&self, text: String) -> Result<(), Error>;
    /// Sends a binary message.
    fn send_binary(&self, data: Vec<u8>) -> Result<(), Error>;
    /// Sends a ping (payload at most 125 bytes).
    fn ping(&self, payload: Vec<u8>) -> Result<(), Error>;
    /// Starts the closing handshake with a code and reason.
    fn close(&self, code: u16, reason: &str) -> Result<(), Error>;
    /// The negotiated subprotocol.
    fn subprotocol(&self) -> Option<String>;
    /// See [`set_text_callback`](trait.WebSocketClient.html#method.set_text_callback).
    fn set_text_callback_boxed(&self, callback: TextCallback);
    /// See [`set_binary_callback`](trait.WebSocketClient.html#method.set_binary_callback).
    fn set_binary_callback_boxed(&self, callback: BinaryCallback);
    /// See [`set_close_callback`](trait.WebSocketClient.html#method.set_close_callback).
    fn set_close_callback_boxed(&self, callback: CloseCallback);
}

impl dyn WebSocketClient + '_ {
    /// Called with each text message (the id argument is empty on a client).
    pub fn set_text_callback(&self, f: impl Fn(&str, &str) + Send + Sync + 'static) {
        self.set_text_callback_boxed(Arc::new(f));
    }
    /// Called with each binary message (the id argument is empty on a client).
    pub fn set_binary_callback(&self, f: impl Fn(&str, &[u8]) + Send + Sync + 'static) {
        self.set_binary_callback_boxed(Arc::new(f));
    }
    /// Called once when the connection ends, with the close code and reason.
    pub fn set_close_callback(&self, f: impl Fn(&str, u16, &str) + Send + Sync + 'static) {
        self.set_close_callback_boxed(Arc::new(f));
    }
}
