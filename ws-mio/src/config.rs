//! Driver configuration.

use std::time::Duration;

use ws_proto::CloseCode;

/// What happens when a send would exceed a connection's outgoing buffer limit.
///
/// Whatever the policy, the loop protects the limit from the other side too: it stops
/// reading a connection while the connection's output plus the message it is receiving is at
/// or above half of [`ws_proto::Config::max_buffered_output`] (the high-water mark), and
/// reads again once the output has drained to a quarter of it (the low-water mark). One read
/// takes at most `read_buffer_size` bytes, so as long as `read_buffer_size` is at most half
/// the limit (64 KiB of 1 MiB by default), the replies a handler sends to what one read
/// delivered (each no larger than the message it answers, as an echo) always fit: they are
/// never refused, and a peer that sends without reading is slowed down by TCP flow control
/// instead of losing replies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum BackpressurePolicy {
    /// The send fails with [`ws_proto::SendError::BufferFull`]; the caller decides (drop, retry
    /// later, close). Broadcasts skip that connection.
    #[default]
    Error,
    /// The send fails and the connection is failed with this close code: 1008 (policy
    /// violation) or 1013 (try again later) are the usual choices.
    Close(CloseCode),
}

/// Settings of a [`Server`](crate::Server).
///
/// ```
/// use ws_mio::ServerConfig;
/// let mut config = ServerConfig::default();
/// config.threads = 2;
/// assert_eq!(config.protocol.max_message_size, 64 << 20);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Protocol limits and timeouts of every connection (see [`ws_proto::Config`]); its
    /// `max_buffered_output` (default 1 MiB) is the per-connection outgoing buffer limit.
    pub protocol: ws_proto::Config,
    /// Event loops, and threads to run them; 0 means one per available core. Default 0.
    /// On Unix a thread takes turns of any loop with work, and the threads beyond the first
    /// wake only when there is work for them (see [`Server`](crate::Server)).
    pub threads: usize,
    /// Connections beyond this are answered `503 Service Unavailable` and closed. Default 10 000.
    pub max_connections: usize,
    /// What a send over the buffer limit does. Default [`BackpressurePolicy::Error`].
    pub backpressure: BackpressurePolicy,
    /// Size of each loop's read buffer (shared by its connections). Default 64 KiB.
    pub read_buffer_size: usize,
    /// How long [`Server::stop`](crate::Server::stop) waits for closing handshakes. Default 5 s.
    pub stop_timeout: Duration,
    /// TLS for every connection the server accepts (`wss://`, and `https://` for plain HTTP
    /// requests): see [`crate::tls`]. The handshake timeout covers the TLS handshake. Default
    /// `None`: plain TCP.
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

/// The keepalive a server runs by default: a ping every 20 s, and a connection whose peer has
/// not answered within 20 s more is failed with 1011. A peer that vanished without a FIN (a
/// closed laptop, a dropped NAT mapping) is thus noticed within 40 s, instead of holding its
/// slot until the operating system gives up on the socket, hours later. Python `websockets`
/// uses the same 20 s + 20 s.
pub const SERVER_PING_INTERVAL: Duration = Duration::from_secs(20);

impl Default for ServerConfig {
    /// The defaults of each field, and server keepalive on: `protocol.ping_interval` is
    /// [`SERVER_PING_INTERVAL`] and `protocol.ping_timeout` 20 s (set `ping_interval` to `None`
    /// to leave keepalive to clients).
    ///
    /// ```
    /// let config = ws_mio::ServerConfig::default();
    /// assert_eq!(config.protocol.ping_interval, Some(ws_mio::SERVER_PING_INTERVAL));
    /// ```
    fn default() -> Self {
        let mut protocol = ws_proto::Config::default();
        protocol.ping_interval = Some(SERVER_PING_INTERVAL);
        ServerConfig {
            protocol,
            threads: 0,
            max_connections: 10_000,
            backpressure: BackpressurePolicy::Error,
            read_buffer_size: 64 << 10,
            stop_timeout: Duration::from_secs(5),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

/// Settings of a [`Client`](crate::Client).
///
/// ```
/// use std::time::Duration;
/// use ws_mio::ClientConfig;
/// let mut config = ClientConfig::default();
/// config.protocol.ping_interval = Some(Duration::from_secs(15));
/// assert_eq!(config.connect_timeout, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Protocol limits, timeouts, keepalive, subprotocols offered.
    pub protocol: ws_proto::Config,
    /// Time allowed for TCP connect plus the opening handshake. Default 10 s.
    pub connect_timeout: Duration,
    /// Extra request headers (e.g. `Origin`).
    pub headers: Vec<(String, String)>,
    /// What a send over the buffer limit does.
    pub backpressure: BackpressurePolicy,
    /// Read buffer size. Default 64 KiB.
    pub read_buffer_size: usize,
    /// The TLS configuration for `wss://` URLs (`ws://` ones ignore it). Default `None`:
    /// [`tls::client_config`](crate::tls::client_config), Mozilla's roots.
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ClientConfig>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            protocol: ws_proto::Config::default(),
            connect_timeout: Duration::from_secs(10),
            headers: Vec::new(),
            backpressure: BackpressurePolicy::Error,
            read_buffer_size: 64 << 10,
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}
