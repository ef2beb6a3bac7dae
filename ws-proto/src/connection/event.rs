//! The public types a connection reports and takes: its role and state, the events it
//! raises, and what the application answers or asks for during the opening handshake.

use crate::close::CloseFrame;
use crate::error::Error;
use crate::handshake::{ExtensionOffer, Headers, Request, UpgradeRequest};

#[cfg(doc)]
use crate::{Config, Connection};

/// Which end of the connection this state machine plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Accepts the upgrade; sends unmasked frames, requires masked ones.
    Server,
    /// Sends the upgrade; masks every frame it sends, refuses masked ones.
    Client,
}

/// RFC 6455 connection states (§4.1, §4.2, §7.1.3, §7.1.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// The opening handshake is in progress.
    Connecting,
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's.
    Closing,
    /// The closing handshake is over (or the connection failed): only the TCP close remains.
    Closed,
}

/// What the handshake settled, reported by [`Event::Open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    /// The subprotocol both sides agreed on.
    pub subprotocol: Option<String>,
    /// The extensions in effect, as in the server's response.
    pub extensions: Vec<ExtensionOffer>,
    /// The headers of the peer's handshake message (the client's request on the server, the
    /// server's response on the client).
    pub headers: Headers,
}

/// Something the driver or application should know about; see [`Connection::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// Server: a valid upgrade request waits for [`Connection::accept`] or [`Connection::reject`].
    Request(Box<UpgradeRequest>),
    /// Server with [`Config::plain_http`]: a GET request that is not an upgrade waits for
    /// [`Connection::respond`].
    HttpRequest(Box<Request>),
    /// The opening handshake completed.
    Open(Box<Negotiated>),
    /// A complete, UTF-8-validated text message.
    Text(String),
    /// A complete binary message.
    Binary(Vec<u8>),
    /// A ping arrived; the pong is already queued.
    Ping(Vec<u8>),
    /// A pong arrived.
    Pong(Vec<u8>),
    /// The peer's close frame arrived ([`CloseCode::NO_STATUS`](crate::CloseCode::NO_STATUS) when it had no code). If we had not
    /// sent a close yet, the echo is already queued.
    Close(CloseFrame),
    /// The connection failed. A close frame with [`Error::close_code`] (or an HTTP error
    /// response during the handshake) is queued when the protocol calls for one.
    Error(Error),
}

/// How the server answers an upgrade request; see [`Connection::accept`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Accept {
    /// The subprotocol to select; ignored unless the client offered it. `None` selects the
    /// first of [`Config::subprotocols`] that the client offered, if any.
    pub subprotocol: Option<String>,
    /// Extra response headers (e.g. `Set-Cookie`).
    pub headers: Vec<(String, String)>,
}

/// What the client sends in its upgrade request; see [`Connection::client`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientRequest {
    /// The `Host` header value (`host` or `host:port`).
    pub host: String,
    /// The request target, e.g. `/chat` or `/chat?room=1`.
    pub path: String,
    /// Extra request headers (e.g. `Origin`, `Authorization`).
    pub headers: Vec<(String, String)>,
}

impl ClientRequest {
    /// A request for `path` on `host`, with no extra headers.
    ///
    /// ```
    /// let request = ws_proto::ClientRequest::new("localhost:9001", "/chat");
    /// assert_eq!(request.path, "/chat");
    /// ```
    pub fn new(host: impl Into<String>, path: impl Into<String>) -> Self {
        ClientRequest {
            host: host.into(),
            path: path.into(),
            headers: Vec::new(),
        }
    }
}
