//! `ws-facade`: the WebSocket facade of the Network System tutorial, in Rust.
//!
//! [`WebSocketFacade::create_server`] and [`WebSocketFacade::create_client`] take a config and
//! return a shared handle to a [`ProtocolServer`] / [`ProtocolClient`]. Callbacks report
//! connections, disconnections, messages and errors; [`Session`]s send. Messages are binary by
//! default; text, ping, close codes and subprotocols are reached through `as_websocket()`.
//! One logical message arrives per receive callback (fragments reassembled), and large sends
//! are split into frames automatically.
//!
//! Logs go through the [`log`](https://docs.rs/log) facade: `info` when a server starts
//! listening and stops, `debug` when a session joins or leaves (with its id) and when a
//! client connects, fails to connect or is disconnected. The driver underneath logs each
//! connection's open and close, refused upgrades and failures under the `ws_mio` targets
//! (see the `ws-mio` crate documentation).
//!
//! ```
//! use std::sync::{mpsc, Mutex};
//! use std::time::Duration;
//! use ws_facade::{ClientConfig, ServerConfig, WebSocketFacade};
//!
//! let mut config = ServerConfig::default();
//! config.port = 9001;
//! config.path = "/chat".into();
//! config.server_id = "chat-server".into();
//! let server = WebSocketFacade::create_server(&config).unwrap();
//! // A callback holding the server itself would keep it alive through the cycle: hold a Weak.
//! let echo = std::sync::Arc::downgrade(&server);
//! server.set_receive_callback(move |sender_id, payload| {
//!     let Some(server) = echo.upgrade() else { return };
//!     let session = server.as_websocket().unwrap().session(sender_id).unwrap();
//!     let _ = session.send(payload.to_vec());
//! });
//! server.start(0).unwrap(); // port 0: any free port (the examples use 9001)
//! let port = server.local_addr().unwrap().port();
//!
//! let mut config = ClientConfig::default();
//! config.client_id = "bob".into();
//! config.ping_interval = Duration::from_secs(15);
//! config.path = "/chat".into();
//! let client = WebSocketFacade::create_client(&config).unwrap();
//! let (tx, rx) = mpsc::channel();
//! let tx = Mutex::new(tx);
//! client.set_receive_callback(move |data| { let _ = tx.lock().unwrap().send(data.to_vec()); });
//! client.start("127.0.0.1", port).unwrap();
//! client.send(b"hello".to_vec()).unwrap();
//! assert_eq!(rx.recv_timeout(Duration::from_secs(5)).unwrap(), b"hello");
//! client.stop().unwrap();
//! server.stop().unwrap();
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod callbacks;
mod client;
pub mod cluster;
mod config;
mod error;
mod server;
mod traits;

use std::sync::Arc;

pub use config::{ClientConfig, ServerConfig};
pub use error::{ConfigError, Error};
pub use traits::*;
/// TLS configurations for [`ServerConfig::tls`] and [`ClientConfig::tls`] (feature `tls`, on
/// by default): the driver's [`ws_mio::tls`] module.
#[cfg(feature = "tls")]
pub use ws_mio::tls;
/// Settings of permessage-deflate compression (feature `deflate`, on by default), for
/// [`ServerConfig::compression`] and [`ClientConfig::compression`].
#[cfg(feature = "deflate")]
pub use ws_proto::extension::deflate::DeflateConfig;

/// Creates WebSocket servers and clients from a config (`websocket_facade`).
#[derive(Debug, Clone, Copy, Default)]
pub struct WebSocketFacade;

impl WebSocketFacade {
    /// A server bound to `config.path` (not started yet: call `start(port)`). Fails if the
    /// port is 0 or the path does not start with `/`.
    pub fn create_server(config: &ServerConfig) -> Result<Arc<dyn ProtocolServer>, Error> {
        let server_id = config::validate_server(config)?;
        Ok(Arc::new(server::WsServer::new(config.clone(), server_id)))
    }

    /// A client (not connected yet: call `start(host, port)`). Fails if the ping interval is
    /// zero or the path does not start with `/`.
    pub fn create_client(config: &ClientConfig) -> Result<Arc<dyn ProtocolClient>, Error> {
        let client_id = config::validate_client(config)?;
        Ok(Arc::new(client::WsClient::new(config.clone(), client_id)))
    }
}
