//! What the application implements: a [`Factory`] that decides on upgrade requests and makes
//! one [`Handler`] per connection, whose callbacks follow that connection's life.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use ws_proto::handshake::{Request, UpgradeRequest};
use ws_proto::{Accept, CloseCode};

use crate::session::Session;

/// A complete message: one received from a peer, or one to send ([`Session::send`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Message {
    /// A text message (already validated as UTF-8).
    Text(String),
    /// A binary message.
    Binary(Vec<u8>),
}

impl Message {
    /// The payload bytes, whatever the type.
    ///
    /// ```
    /// use ws_mio::Message;
    /// assert_eq!(Message::Text("hi".into()).as_bytes(), b"hi");
    /// ```
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            Message::Text(text) => text.as_bytes(),
            Message::Binary(data) => data,
        }
    }
}

/// The server's answer to an upgrade request; see [`Factory::on_request`]. Accepting hands
/// over the handler of the new connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Decision<H> {
    /// Complete the handshake; `H` handles the connection from then on.
    Accept(Accept, H),
    /// Refuse with an HTTP status (e.g. 403) and a plain-text body.
    Reject {
        /// HTTP status code, 300–599; any other status is answered as 500 (it would not
        /// refuse the request).
        status: u16,
        /// Response body.
        body: String,
    },
}

impl<H> Decision<H> {
    /// Accepts with the default [`Accept`] (the first configured subprotocol the client
    /// offered, no extra headers), handing the connection to `handler`.
    pub fn accept(handler: H) -> Self {
        Decision::Accept(Accept::default(), handler)
    }

    /// Refuses with `status` and `body`.
    ///
    /// ```
    /// let refused = ws_mio::Decision::<()>::reject(403, "origin not allowed");
    /// assert!(matches!(refused, ws_mio::Decision::Reject { status: 403, .. }));
    /// ```
    pub fn reject(status: u16, body: impl Into<String>) -> Self {
        Decision::Reject {
            status,
            body: body.into(),
        }
    }
}

/// The answer to a plain HTTP request; see [`Factory::on_http_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header value.
    pub content_type: String,
    /// Response body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A response with `status`, `content_type` and `body`.
    ///
    /// ```
    /// let page = ws_mio::HttpResponse::new(200, "text/html; charset=utf-8", b"<h1>hi</h1>".to_vec());
    /// assert_eq!(page.status, 200);
    /// ```
    pub fn new(status: u16, content_type: impl Into<String>, body: Vec<u8>) -> Self {
        HttpResponse {
            status,
            content_type: content_type.into(),
            body,
        }
    }

    /// A `404 Not Found` with a plain-text body.
    ///
    /// ```
    /// assert_eq!(ws_mio::HttpResponse::not_found().status, 404);
    /// ```
    pub fn not_found() -> Self {
        HttpResponse::new(404, "text/plain; charset=utf-8", b"not found\n".to_vec())
    }
}

/// Why a connection ended or an operation failed, beyond what the close code says.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum DriverError {
    /// A socket operation failed (reset, refused, broken pipe...).
    Io(Arc<io::Error>),
    /// The protocol layer failed the connection (protocol violation, handshake failure, timeout).
    Protocol(ws_proto::Error),
    /// The connection could not be established in time.
    ConnectTimeout,
    /// The server stopped before the closing handshake finished.
    Shutdown,
    /// A slow consumer was closed by the backpressure policy.
    SlowConsumer,
    /// A handler callback panicked: its connection was failed with 1011 (the loop and its
    /// other connections go on).
    HandlerPanicked,
    /// TLS failed: the handshake (an untrusted or expired certificate, a name that does not
    /// match, no common protocol version), or a record that does not decrypt.
    #[cfg(feature = "tls")]
    Tls(rustls::Error),
}

impl fmt::Display for DriverError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DriverError::Io(e) => write!(f, "I/O error: {e}"),
            DriverError::Protocol(e) => e.fmt(f),
            DriverError::ConnectTimeout => f.write_str("connect timed out"),
            DriverError::Shutdown => f.write_str("server shut down"),
            DriverError::SlowConsumer => f.write_str("closed as a slow consumer"),
            DriverError::HandlerPanicked => f.write_str("a handler callback panicked"),
            #[cfg(feature = "tls")]
            DriverError::Tls(e) => write!(f, "TLS: {e}"),
        }
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DriverError::Io(e) => Some(e.as_ref()),
            DriverError::Protocol(e) => Some(e),
            #[cfg(feature = "tls")]
            DriverError::Tls(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for DriverError {
    fn from(e: io::Error) -> Self {
        #[cfg(feature = "tls")]
        if let Some(tls) = e.get_ref().and_then(|r| r.downcast_ref::<rustls::Error>()) {
            return DriverError::Tls(tls.clone());
        }
        DriverError::Io(Arc::new(e))
    }
}

/// Who is asking, when a [`Factory`] decides on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Peer {
    /// The peer's address.
    pub addr: SocketAddr,
    /// Whether the connection runs over TLS (`wss://`, `https://`).
    pub tls: bool,
    /// The server name the client asked for in its TLS handshake (SNI), if any.
    pub server_name: Option<String>,
}

impl Peer {
    /// A peer at `addr`, over plain TCP.
    pub fn new(addr: SocketAddr) -> Peer {
        Peer {
            addr,
            tls: false,
            server_name: None,
        }
    }
}

/// How a connection ended, reported once by [`Handler::on_close`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Disconnect {
    /// The close code: the peer's (or ours, echoed) after a closing handshake, the code we
    /// failed the connection with, or 1006 ([`CloseCode::ABNORMAL`]) when it ended without a
    /// close frame.
    pub code: CloseCode,
    /// The close reason, possibly empty.
    pub reason: String,
    /// What went wrong, if the connection did not end with a clean closing handshake.
    pub error: Option<DriverError>,
}

/// The server-wide part of an application: decides on upgrade requests and makes one
/// [`Handler`] per accepted connection (the way ws-rs' `Factory` or uWebSockets' per-socket
/// user data do), so each connection's state (its path, the name it announced, what it
/// received so far) lives in its own handler, reached without a lock.
///
/// It runs on the loop threads, shared by all of them (`&self`, `Sync`). Any
/// `Handler + Clone + Sync` is a `Factory` that accepts every request with a clone of itself.
///
/// ```
/// use ws_mio::ws_proto::handshake::UpgradeRequest;
/// use ws_mio::{Decision, Factory, Handler, Message, Peer, Session};
///
/// /// One per connection: knows which room it joined.
/// struct Member { room: String }
/// impl Handler for Member {
///     fn on_message(&mut self, session: &Session, message: Message) {
///         let _ = session.send_text(format!("[{}] {} bytes", self.room, message.as_bytes().len()));
///     }
/// }
///
/// struct Rooms;
/// impl Factory for Rooms {
///     type Handler = Member;
///     fn on_request(&self, request: &UpgradeRequest, _peer: &Peer) -> Decision<Member> {
///         match request.path.strip_prefix("/room/") {
///             Some(room) => Decision::accept(Member { room: room.to_owned() }),
///             None => Decision::reject(404, "no such room"),
///         }
///     }
/// }
/// ```
pub trait Factory: Send + Sync + 'static {
    /// The per-connection handler this factory makes.
    type Handler: Handler;

    /// Server: decides on a valid upgrade request (checks `Origin`, authenticates, picks
    /// the room...) and, to accept, makes the connection's handler.
    fn on_request(&self, request: &UpgradeRequest, peer: &Peer) -> Decision<Self::Handler>;

    /// Server with [`ws_proto::Config::plain_http`] set: answers a GET request that is not a
    /// WebSocket upgrade (e.g. serves the page that opens the socket). Default: 404.
    fn on_http_request(&self, request: &Request, peer: &Peer) -> HttpResponse {
        let _ = (request, peer);
        HttpResponse::not_found()
    }

    /// Something failed before a connection had a handler: an invalid or refused upgrade
    /// request (with the peer's address), or `accept` itself (no peer, e.g. out of file
    /// descriptors).
    fn on_error(&self, peer: Option<SocketAddr>, error: &DriverError) {
        let _ = (peer, error);
    }
}

/// Any cloneable handler is its own factory: every request is accepted with a fresh clone.
impl<H: Handler + Clone + Sync> Factory for H {
    type Handler = H;

    fn on_request(&self, _request: &UpgradeRequest, _peer: &Peer) -> Decision<H> {
        Decision::accept(self.clone())
    }
}

/// The callbacks of one connection. The handler is owned by the event-loop thread that runs
/// its connection and called with `&mut self`: its state needs no lock. Callbacks must not
/// block: hand long work to another thread (sending from there through the [`Session`] is
/// fine). Sending from inside a callback never deadlocks.
///
/// Every connection whose handshake completes gets exactly one [`on_open`](Self::on_open) and,
/// later, exactly one [`on_close`](Self::on_close), whatever the way it ends.
///
/// A callback that panics costs its own connection only: it is failed with 1011 and its
/// `on_close` carries [`DriverError::HandlerPanicked`]. The loop and its other connections go
/// on.
///
/// ```
/// use ws_mio::{Handler, Message, Session};
/// #[derive(Clone)]
/// struct Echo;
/// impl Handler for Echo {
///     fn on_message(&mut self, session: &Session, message: Message) {
///         let _ = session.send(message);
///     }
/// }
/// ```
pub trait Handler: Send + 'static {
    /// The handshake completed.
    fn on_open(&mut self, session: &Session) {
        let _ = session;
    }

    /// A complete message arrived.
    fn on_message(&mut self, session: &Session, message: Message) {
        let _ = (session, message);
    }

    /// A ping arrived (the pong is sent automatically).
    fn on_ping(&mut self, session: &Session, payload: &[u8]) {
        let _ = (session, payload);
    }

    /// A pong arrived.
    fn on_pong(&mut self, session: &Session, payload: &[u8]) {
        let _ = (session, payload);
    }

    /// A send on this session was refused with [`SendError::BufferFull`](ws_proto::SendError::BufferFull)
    /// and the output has since drained to the low-water mark: sending may go on.
    fn on_drain(&mut self, session: &Session) {
        let _ = session;
    }

    /// Something failed on this connection: a protocol violation by the peer, an I/O error.
    /// Its end is still reported by [`on_close`](Self::on_close).
    fn on_error(&mut self, session: &Session, error: &DriverError) {
        let _ = (session, error);
    }

    /// The connection ended. Called exactly once per opened connection.
    fn on_close(&mut self, session: &Session, disconnect: &Disconnect) {
        let _ = (session, disconnect);
    }
}
