//! What the application implements: callbacks for the life of each connection.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use ws_proto::handshake::{Request, UpgradeRequest};
use ws_proto::Accept;

use crate::session::Session;

/// A complete message received from a peer.
#[derive(Debug, Clone, PartialEq, Eq)]
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

/// The server's answer to an upgrade request; see [`Handler::on_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Complete the handshake.
    Accept(Accept),
    /// Refuse with an HTTP status (e.g. 403) and a plain-text body.
    Reject {
        /// HTTP status code, 300–599; any other status is answered as 500 (it would not
        /// refuse the request).
        status: u16,
        /// Response body.
        body: String,
    },
}

/// The answer to a plain HTTP request; see [`Handler::on_http_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// HTTP status code.
    pub status: u16,
    /// `Content-Type` header value.
    pub content_type: String,
    /// Response body.
    pub body: Vec<u8>,
}

impl HttpResponse {
    /// A `404 Not Found` with a plain-text body.
    ///
    /// ```
    /// assert_eq!(ws_mio::HttpResponse::not_found().status, 404);
    /// ```
    pub fn not_found() -> Self {
        HttpResponse {
            status: 404,
            content_type: "text/plain; charset=utf-8".into(),
            body: b"not found\n".to_vec(),
        }
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
        }
    }
}

impl std::error::Error for DriverError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            DriverError::Io(e) => Some(e.as_ref()),
            DriverError::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for DriverError {
    fn from(e: io::Error) -> Self {
        DriverError::Io(Arc::new(e))
    }
}

/// How a connection ended, reported once by [`Handler::on_close`].
#[derive(Debug, Clone)]
pub struct Disconnect {
    /// The close code: the peer's (or ours, echoed) after a closing handshake, the code we
    /// failed the connection with, or 1006 when it ended without a close frame.
    pub code: u16,
    /// The close reason, possibly empty.
    pub reason: String,
    /// What went wrong, if the connection did not end with a clean closing handshake.
    pub error: Option<DriverError>,
}

/// Connection callbacks. They run on the event-loop thread that owns the connection, so they
/// must not block: hand long work to another thread (sending from there through the
/// [`Session`] is fine). Sending from inside a callback never deadlocks.
///
/// Every connection whose handshake completes gets exactly one [`on_open`](Self::on_open) and,
/// later, exactly one [`on_close`](Self::on_close), whatever the way it ends. A connection
/// that fails during the handshake gets neither, only [`on_error`](Self::on_error).
///
/// A callback that panics costs its own connection only: it is failed with 1011 and its
/// `on_close` carries [`DriverError::HandlerPanicked`] (a panicking `on_request` or
/// `on_http_request` is answered with 500). The loop and its other connections go on.
///
/// ```
/// use ws_mio::{Handler, Message, Session};
/// struct Echo;
/// impl Handler for Echo {
///     fn on_message(&self, session: &Session, message: Message) {
///         let _ = match message {
///             Message::Text(text) => session.send_text(text),
///             Message::Binary(data) => session.send_binary(data),
///         };
///     }
/// }
/// ```
pub trait Handler: Send + Sync + 'static {
    /// Server: decides on a valid upgrade request (e.g. checks `Origin`). Default: accept.
    fn on_request(&self, request: &UpgradeRequest, peer: SocketAddr) -> Decision {
        let _ = (request, peer);
        Decision::Accept(Accept::default())
    }

    /// Server with [`ws_proto::Config::plain_http`] set: answers a GET request that is not a
    /// WebSocket upgrade (e.g. serves the page that opens the socket). Default: 404.
    fn on_http_request(&self, request: &Request, peer: SocketAddr) -> HttpResponse {
        let _ = (request, peer);
        HttpResponse::not_found()
    }

    /// The handshake completed.
    fn on_open(&self, session: &Session) {
        let _ = session;
    }

    /// A complete message arrived.
    fn on_message(&self, session: &Session, message: Message) {
        let _ = (session, message);
    }

    /// A ping arrived (the pong is sent automatically).
    fn on_ping(&self, session: &Session, payload: &[u8]) {
        let _ = (session, payload);
    }

    /// A pong arrived.
    fn on_pong(&self, session: &Session, payload: &[u8]) {
        let _ = (session, payload);
    }

    /// The connection ended. Called exactly once per opened connection.
    fn on_close(&self, session: &Session, disconnect: &Disconnect) {
        let _ = (session, disconnect);
    }

    /// Something failed: a handshake (then `session` is `None`), a protocol violation by the
    /// peer, an I/O error. The connection's end is still reported by `on_close` if it was open.
    fn on_error(&self, session: Option<&Session>, error: &DriverError) {
        let _ = (session, error);
    }
}

/// A shared handler: keep an `Arc` to read the handler's state from elsewhere.
impl<H: Handler> Handler for Arc<H> {
    fn on_request(&self, request: &UpgradeRequest, peer: SocketAddr) -> Decision {
        (**self).on_request(request, peer)
    }
    fn on_http_request(&self, request: &Request, peer: SocketAddr) -> HttpResponse {
        (**self).on_http_request(request, peer)
    }
    fn on_open(&self, session: &Session) {
        (**self).on_open(session)
    }
    fn on_message(&self, session: &Session, message: Message) {
        (**self).on_message(session, message)
    }
    fn on_ping(&self, session: &Session, payload: &[u8]) {
        (**self).on_ping(session, payload)
    }
    fn on_pong(&self, session: &Session, payload: &[u8]) {
        (**self).on_pong(session, payload)
    }
    fn on_close(&self, session: &Session, disconnect: &Disconnect) {
        (**self).on_close(session, disconnect)
    }
    fn on_error(&self, session: Option<&Session>, error: &DriverError) {
        (**self).on_error(session, error)
    }
}
