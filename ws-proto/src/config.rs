//! Connection configuration: every limit and timeout in one place, with documented defaults.

use std::sync::Arc;
use std::time::Duration;

use crate::extension::ExtensionFactory;
use crate::handshake::HandshakeLimits;

/// Limits, timeouts and negotiation settings of a [`Connection`](crate::Connection).
///
/// Every field has a default chosen for a server on the open internet; change the ones you need
/// (the struct is `#[non_exhaustive]`: start from the default, fields may be added):
///
/// ```
/// use std::time::Duration;
/// use ws_proto::Config;
/// let mut config = Config::default();
/// config.max_message_size = 1 << 20;
/// config.ping_interval = Some(Duration::from_secs(15));
/// assert_eq!(config.max_frame_size, 16 << 20);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// Largest accepted frame payload; a bigger declared length fails the connection with 1009
    /// before any of it is buffered. Default 16 MiB.
    pub max_frame_size: usize,
    /// Largest accepted message (after reassembly and extension decoding): 1009 beyond.
    /// Default 64 MiB.
    pub max_message_size: usize,
    /// Outgoing messages longer than this are split into frames of at most this many payload
    /// bytes. Default 64 KiB.
    pub fragment_size: usize,
    /// Bytes that may wait in the outgoing buffer: a send that would go beyond is refused with
    /// [`SendError::BufferFull`](crate::SendError::BufferFull), except that one message is always
    /// accepted into an empty buffer. Automatic pongs are skipped while the buffer is over the
    /// limit. Default 1 MiB.
    pub max_buffered_output: usize,
    /// Limits on the HTTP upgrade request or response (8 KiB lines, 128 headers, 64 KiB total).
    pub handshake_limits: HandshakeLimits,
    /// Time allowed for the opening handshake, from construction. Default 10 s.
    pub handshake_timeout: Option<Duration>,
    /// Time allowed for the closing handshake and the TCP close after it. Default 10 s.
    pub close_timeout: Duration,
    /// Send a keepalive ping this often once open. Default `None` (no keepalive); a zero
    /// interval also means no keepalive.
    pub ping_interval: Option<Duration>,
    /// Fail the connection (1011) when a keepalive ping is not answered within this. Default 20 s.
    pub ping_timeout: Duration,
    /// Fail the connection with 1008 when the peer sends more pings than this per second.
    /// Default 100.
    pub max_pings_per_second: u32,
    /// Server: the only request path accepted (404 otherwise); `None` accepts any path.
    pub path: Option<String>,
    /// Server: hand GET requests that are not WebSocket upgrades (no `Upgrade: websocket`) to
    /// the application as [`Event::HttpRequest`](crate::Event::HttpRequest), to be answered
    /// with [`Connection::respond`](crate::Connection::respond), instead of rejecting them.
    /// Default `false`.
    pub plain_http: bool,
    /// Server: subprotocols supported, in order of preference (the first one the client also
    /// offers is selected). Client: subprotocols offered.
    pub subprotocols: Vec<String>,
    /// Extensions offered (client) or accepted (server), e.g. permessage-deflate.
    pub extensions: Vec<Arc<dyn ExtensionFactory>>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            max_frame_size: 16 << 20,
            max_message_size: 64 << 20,
            fragment_size: 64 << 10,
            max_buffered_output: 1 << 20,
            handshake_limits: HandshakeLimits::default(),
            handshake_timeout: Some(Duration::from_secs(10)),
            close_timeout: Duration::from_secs(10),
            ping_interval: None,
            ping_timeout: Duration::from_secs(20),
            max_pings_per_second: 100,
            path: None,
            plain_http: false,
            subprotocols: Vec::new(),
            extensions: Vec::new(),
        }
    }
}
