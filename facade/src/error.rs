//! The facade's error type.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

/// A configuration value [`create_server`](crate::WebSocketFacade::create_server) or
/// [`create_client`](crate::WebSocketFacade::create_client) refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigError {
    /// The port is 0.
    Port,
    /// The path is empty or does not start with `/`.
    Path,
    /// The ping interval is zero.
    PingInterval,
    /// The server's host is an empty string (`None` means every interface).
    Host,
    /// The cluster URL is malformed, or not of a bus this crate knows (`redis://`).
    ClusterUrl,
    /// The cluster URL names a bus whose cargo feature (named here) this build lacks.
    ClusterFeature(&'static str),
    /// A cluster timing is zero, or the node timeout is not longer than the heartbeat
    /// interval.
    ClusterTiming,
}

/// What went wrong in a facade call or on a connection. [`message`](Self::message) (or
/// `Display`) gives a sentence fit for a log or a terminal.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Error {
    /// A configuration value is invalid.
    InvalidConfig(ConfigError),
    /// `start` was called on a running server or client.
    AlreadyRunning,
    /// The server could not listen on its port (in use, permission denied, a
    /// [`ServerConfig::host`](crate::ServerConfig::host) that is not an address of this
    /// machine...).
    Bind {
        /// The port asked for.
        port: u16,
        /// The operating system's error.
        source: Arc<io::Error>,
    },
    /// The client could not connect or upgrade. The message names the host that did not
    /// resolve, or each address tried and why it failed, e.g. `connection failed:
    /// 127.0.0.1:9001: Connection refused (os error 111)`.
    Connect(Arc<ws_mio::ConnectError>),
    /// The client or session is not connected.
    NotConnected,
    /// The server's cluster node could not start its threads.
    ClusterStart(Arc<io::Error>),
    /// `stop` was called (from a callback or another thread) while `start` was connecting:
    /// the new connection was closed again.
    StoppedWhileStarting,
    /// A send was refused (closed, buffer full...).
    Send(ws_proto::SendError),
    /// A connection failed (protocol error, timeout, dead peer, I/O error).
    Connection(ws_mio::DriverError),
    /// Server: an incoming connection failed before it had a session (an invalid upgrade
    /// request, such as one for another path, refused with a 4xx; a handshake that timed out;
    /// an I/O error during the handshake). The error callback gets it with an empty session id.
    #[non_exhaustive]
    Incoming {
        /// The peer's address.
        peer: SocketAddr,
        /// What failed.
        error: ws_mio::DriverError,
    },
}

impl Error {
    /// The readable message (same as `to_string()`).
    ///
    /// ```
    /// use ws_facade::Error;
    /// assert_eq!(Error::NotConnected.message(), "not connected: call start() first");
    /// ```
    pub fn message(&self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::InvalidConfig(ConfigError::Port) => {
                f.write_str("websocket_facade: port must be between 1 and 65535")
            }
            Error::InvalidConfig(ConfigError::Path) => {
                f.write_str("websocket_facade: path must start with '/'")
            }
            Error::InvalidConfig(ConfigError::PingInterval) => {
                f.write_str("websocket_facade: ping_interval must be positive")
            }
            Error::InvalidConfig(ConfigError::Host) => f.write_str(
                "websocket_facade: host must not be empty (leave it unset for every interface)",
            ),
            Error::InvalidConfig(ConfigError::ClusterUrl) => f.write_str(
                "websocket_facade: the cluster URL must be a valid redis://HOST:PORT URL",
            ),
            Error::InvalidConfig(ConfigError::ClusterFeature(feature)) => write!(
                f,
                "websocket_facade: this cluster URL needs ws-facade's cargo feature `{feature}`"
            ),
            Error::InvalidConfig(ConfigError::ClusterTiming) => f.write_str(
                "websocket_facade: cluster timings must be positive, and the node timeout \
                 longer than the heartbeat interval",
            ),
            Error::AlreadyRunning => f.write_str("already running"),
            Error::ClusterStart(e) => write!(f, "cannot start the cluster node: {e}"),
            Error::Bind { port, source } => match source.kind() {
                io::ErrorKind::AddrInUse => {
                    write!(f, "cannot listen on port {port}: address already in use")
                }
                io::ErrorKind::PermissionDenied => {
                    write!(f, "cannot listen on port {port}: permission denied")
                }
                _ => write!(f, "cannot listen on port {port}: {source}"),
            },
            Error::Connect(e) => e.fmt(f),
            Error::NotConnected => f.write_str("not connected: call start() first"),
            Error::StoppedWhileStarting => f.write_str("stopped while starting"),
            Error::Send(e) => write!(f, "send failed: {e}"),
            Error::Connection(e) => e.fmt(f),
            Error::Incoming { peer, error } => write!(f, "{error} (peer {peer})"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } | Error::ClusterStart(source) => Some(source.as_ref()),
            Error::Connect(e) => Some(e.as_ref()),
            Error::Send(e) => Some(e),
            Error::Connection(e) | Error::Incoming { error: e, .. } => Some(e),
            _ => None,
        }
    }
}

impl From<ws_proto::SendError> for Error {
    fn from(e: ws_proto::SendError) -> Self {
        match e {
            ws_proto::SendError::NotOpen | ws_proto::SendError::Closed => Error::NotConnected,
            other => Error::Send(other),
        }
    }
}
