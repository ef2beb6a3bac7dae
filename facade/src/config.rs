//! Configurations of [`create_server`](crate::WebSocketFacade::create_server) and
//! [`create_client`](crate::WebSocketFacade::create_client), with their validation.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use crate::error::{ConfigError, Error};

/// Settings of a facade server. Only `port`, `path` and `server_id` are the tutorial's; every
/// other field has a default.
///
/// ```
/// use ws_facade::ServerConfig;
/// let mut config = ServerConfig::default();
/// config.port = 9001;
/// config.path = "/chat".into();
/// config.server_id = "chat-server".into();
/// assert_eq!(config.max_connections, 10_000);
/// assert_eq!(config.host, None); // every interface, IPv6 and IPv4
/// config.host = Some("::1".into()); // the IPv6 loopback only
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// The port the server is meant for (validated: 1–65535). As in the tutorial, the port
    /// actually bound is the one given to [`ProtocolServer::start`](crate::ProtocolServer::start).
    pub port: u16,
    /// The URL path the server is bound to; upgrades to any other path get 404. Default `/`.
    pub path: String,
    /// The address to listen on: an IP address (`127.0.0.1`, `::1` or `[::1]`, `0.0.0.0`
    /// for every IPv4 interface, `::` for every IPv6 one) or a host name (its first address
    /// that can be bound). `None`, the default, is every interface, IPv6 and IPv4, with one
    /// listener on `[::]` that takes IPv4 connections too (their peers are shown as IPv4
    /// addresses); on a system where such a listener would take IPv6 only (`IPV6_V6ONLY` on by
    /// default, as on Windows and the BSDs) or without IPv6, on `0.0.0.0`. An empty string is
    /// refused ([`ConfigError::Host`]).
    pub host: Option<String>,
    /// The server's name; empty means a generated `ws_server_NNNNNNNN`.
    pub server_id: String,
    /// Largest message accepted (1009 beyond). Default 64 MiB.
    pub max_message_size: usize,
    /// Largest frame accepted (1009 beyond). Default 16 MiB.
    pub max_frame_size: usize,
    /// Outgoing messages are split into frames of at most this many bytes. Default 64 KiB.
    pub fragment_size: usize,
    /// Bytes that may wait unsent per connection before sends fail. Default 1 MiB.
    pub max_buffered_output: usize,
    /// Connections beyond this are answered 503. Default 10 000.
    pub max_connections: usize,
    /// Time allowed for the opening handshake. Default 10 s.
    pub handshake_timeout: Duration,
    /// Time allowed for the closing handshake. Default 10 s.
    pub close_timeout: Duration,
    /// Server-side keepalive pings: by default every 20 s
    /// ([`ws_mio::SERVER_PING_INTERVAL`]), and a participant that has not answered within 20 s
    /// more is disconnected (1011), so one that vanished without closing (a closed laptop, a
    /// dropped NAT mapping) leaves the room within 40 s. `None` leaves keepalive to clients. A
    /// zero interval is refused ([`ConfigError::PingInterval`]).
    pub ping_interval: Option<Duration>,
    /// Event loops, and threads to run them; 0 means one per core.
    pub threads: usize,
    /// Subprotocols supported, in order of preference.
    pub subprotocols: Vec<String>,
    /// permessage-deflate (RFC 7692), accepted when a client offers it (every browser does):
    /// on by default with [`DeflateConfig::default`](crate::DeflateConfig) (windows of 12 bits,
    /// memory level 5, messages under 64 bytes sent plain). `None` declines compression.
    #[cfg(feature = "deflate")]
    pub compression: Option<crate::DeflateConfig>,
    /// TLS (feature `tls`, on by default): the server speaks `wss://` for WebSocket and
    /// `https://` for its page. Build it with
    /// [`tls::server_config_from_pem`](crate::tls::server_config_from_pem). Default `None`:
    /// plain `ws://`.
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<crate::tls::rustls::ServerConfig>>,
    /// Share the room with other servers through a pub/sub bus (see [`crate::cluster`]):
    /// `Some(ClusterConfig::new("redis://HOST:PORT"))`, with the cargo feature `redis`.
    /// Default `None`: this server's sessions only.
    pub cluster: Option<crate::cluster::ClusterConfig>,
}

impl Default for ServerConfig {
    fn default() -> Self {
        let proto = ws_proto::Config::default();
        ServerConfig {
            port: 0,
            path: "/".into(),
            host: None,
            server_id: String::new(),
            max_message_size: proto.max_message_size,
            max_frame_size: proto.max_frame_size,
            fragment_size: proto.fragment_size,
            max_buffered_output: proto.max_buffered_output,
            max_connections: 10_000,
            handshake_timeout: Duration::from_secs(10),
            close_timeout: proto.close_timeout,
            ping_interval: Some(ws_mio::SERVER_PING_INTERVAL),
            threads: 0,
            subprotocols: Vec::new(),
            #[cfg(feature = "deflate")]
            compression: Some(crate::DeflateConfig::default()),
            #[cfg(feature = "tls")]
            tls: None,
            cluster: None,
        }
    }
}

/// Settings of a facade client. Only `client_id` and `ping_interval` are the tutorial's; `path`
/// is added because the server enforces its path.
///
/// ```
/// use std::time::Duration;
/// use ws_facade::ClientConfig;
/// let mut config = ClientConfig::default();
/// config.client_id = "bob".into();
/// config.ping_interval = Duration::from_secs(15);
/// config.path = "/chat".into();
/// assert_eq!(config.connect_timeout, Duration::from_secs(10));
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The client's name, sent to the server (header `X-Client-Id`) which uses it as the
    /// session id; empty means a generated `ws_client_NNNNNNNN`.
    pub client_id: String,
    /// A ping is sent this often; a server that does not answer within `ping_timeout` is
    /// reported dead through the error callback. Must be positive. Default 30 s.
    pub ping_interval: Duration,
    /// How long a ping may go unanswered. Default 20 s.
    pub ping_timeout: Duration,
    /// The URL path to request. Default `/`.
    pub path: String,
    /// Time allowed for TCP connect and the opening handshake. Default 10 s.
    pub connect_timeout: Duration,
    /// Largest message accepted. Default 64 MiB.
    pub max_message_size: usize,
    /// Outgoing messages are split into frames of at most this many bytes. Default 64 KiB.
    pub fragment_size: usize,
    /// Bytes that may wait unsent before sends fail. Default 1 MiB.
    pub max_buffered_output: usize,
    /// Subprotocols offered.
    pub subprotocols: Vec<String>,
    /// permessage-deflate (RFC 7692), offered to the server: on by default with
    /// [`DeflateConfig::default`](crate::DeflateConfig). `None` does not offer it.
    #[cfg(feature = "deflate")]
    pub compression: Option<crate::DeflateConfig>,
    /// TLS (feature `tls`, on by default): `Some` connects with `wss://`, verifying the
    /// server's certificate for the host given to `start` with this configuration:
    /// [`tls::client_config`](crate::tls::client_config) trusts Mozilla's roots,
    /// [`tls::client_config_with_ca_pem`](crate::tls::client_config_with_ca_pem) a private
    /// CA. Default `None`: plain `ws://`.
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<crate::tls::rustls::ClientConfig>>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        let proto = ws_proto::Config::default();
        ClientConfig {
            client_id: String::new(),
            ping_interval: Duration::from_secs(30),
            ping_timeout: Duration::from_secs(20),
            path: "/".into(),
            connect_timeout: Duration::from_secs(10),
            max_message_size: proto.max_message_size,
            fragment_size: proto.fragment_size,
            max_buffered_output: proto.max_buffered_output,
            subprotocols: Vec::new(),
            #[cfg(feature = "deflate")]
            compression: Some(crate::DeflateConfig::default()),
            #[cfg(feature = "tls")]
            tls: None,
        }
    }
}

static NEXT_SERVER: AtomicU32 = AtomicU32::new(0);
static NEXT_CLIENT: AtomicU32 = AtomicU32::new(0);

pub(crate) fn validate_server(config: &ServerConfig) -> Result<String, Error> {
    if config.port == 0 {
        return Err(Error::InvalidConfig(ConfigError::Port));
    }
    if config.ping_interval.is_some_and(|i| i.is_zero()) {
        return Err(Error::InvalidConfig(ConfigError::PingInterval));
    }
    if config.host.as_deref().is_some_and(|h| h.trim().is_empty()) {
        return Err(Error::InvalidConfig(ConfigError::Host));
    }
    validate_path(&config.path)?;
    if let Some(cluster) = &config.cluster {
        crate::cluster::validate(cluster).map_err(Error::InvalidConfig)?;
    }
    Ok(if config.server_id.is_empty() {
        format!(
            "ws_server_{:08}",
            NEXT_SERVER.fetch_add(1, Ordering::Relaxed)
        )
    } else {
        config.server_id.clone()
    })
}

pub(crate) fn validate_client(config: &ClientConfig) -> Result<String, Error> {
    if config.ping_interval.is_zero() {
        return Err(Error::InvalidConfig(ConfigError::PingInterval));
    }
    validate_path(&config.path)?;
    Ok(if config.client_id.is_empty() {
        format!(
            "ws_client_{:08}",
            NEXT_CLIENT.fetch_add(1, Ordering::Relaxed)
        )
    } else {
        config.client_id.clone()
    })
}

fn validate_path(path: &str) -> Result<(), Error> {
    if !path.starts_with('/') {
        return Err(Error::InvalidConfig(ConfigError::Path));
    }
    Ok(())
}

impl ServerConfig {
    pub(crate) fn protocol(&self) -> ws_proto::Config {
        let mut config = ws_proto::Config::default();
        config.max_frame_size = self.max_frame_size;
        config.max_message_size = self.max_message_size;
        config.fragment_size = self.fragment_size;
        config.max_buffered_output = self.max_buffered_output;
        config.handshake_timeout = Some(self.handshake_timeout);
        config.close_timeout = self.close_timeout;
        config.ping_interval = self.ping_interval;
        config.path = Some(self.path.clone());
        config.plain_http = true;
        config.subprotocols = self.subprotocols.clone();
        #[cfg(feature = "deflate")]
        add_deflate(&mut config, &self.compression);
        config
    }
}

impl ClientConfig {
    pub(crate) fn protocol(&self) -> ws_proto::Config {
        let mut config = ws_proto::Config::default();
        config.max_message_size = self.max_message_size;
        config.max_frame_size = self
            .max_message_size
            .min(ws_proto::Config::default().max_frame_size);
        config.fragment_size = self.fragment_size;
        config.max_buffered_output = self.max_buffered_output;
        config.ping_interval = Some(self.ping_interval);
        config.ping_timeout = self.ping_timeout;
        config.subprotocols = self.subprotocols.clone();
        #[cfg(feature = "deflate")]
        add_deflate(&mut config, &self.compression);
        config
    }
}

#[cfg(feature = "deflate")]
fn add_deflate(config: &mut ws_proto::Config, compression: &Option<crate::DeflateConfig>) {
    if let Some(deflate) = compression {
        config.extensions.push(std::sync::Arc::new(
            ws_proto::extension::deflate::PerMessageDeflate::new(deflate.clone()),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_messages() {
        let port0 = ServerConfig::default();
        assert_eq!(
            validate_server(&port0).unwrap_err().to_string(),
            "websocket_facade: port must be between 1 and 65535"
        );
        let bad_path = ServerConfig {
            port: 1,
            path: "chat".into(),
            ..Default::default()
        };
        assert_eq!(
            validate_server(&bad_path).unwrap_err().to_string(),
            "websocket_facade: path must start with '/'"
        );
        let empty_path = ServerConfig {
            port: 1,
            path: String::new(),
            ..Default::default()
        };
        assert!(validate_server(&empty_path).is_err());
        let no_host = ServerConfig {
            port: 1,
            host: Some(String::new()),
            ..Default::default()
        };
        assert_eq!(
            validate_server(&no_host).unwrap_err().to_string(),
            "websocket_facade: host must not be empty (leave it unset for every interface)"
        );
        let zero_ping = ClientConfig {
            ping_interval: Duration::ZERO,
            ..Default::default()
        };
        assert_eq!(
            validate_client(&zero_ping).unwrap_err().to_string(),
            "websocket_facade: ping_interval must be positive"
        );
    }

    #[test]
    fn generated_ids_are_unique_and_prefixed() {
        let a = validate_client(&ClientConfig::default()).unwrap();
        let b = validate_client(&ClientConfig::default()).unwrap();
        assert!(a.starts_with("ws_client_") && b.starts_with("ws_client_") && a != b);
        let s = validate_server(&ServerConfig {
            port: 1,
            ..Default::default()
        })
        .unwrap();
        assert!(s.starts_with("ws_server_"));
        let named = ClientConfig {
            client_id: "bob".into(),
            ..Default::default()
        };
        assert_eq!(validate_client(&named).unwrap(), "bob");
    }
}
