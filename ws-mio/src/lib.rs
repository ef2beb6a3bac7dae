//! `ws-mio`: runs [`ws_proto`] connections over real sockets with mio event loops.
//!
//! * [`Server`]: binds, accepts, and serves connections on one event loop per core.
//! * [`Client`]: connects to a `ws://` URL and runs its connection on a thread of its own.
//! * [`Factory`] and [`Handler`]: what the application implements. The factory decides on
//!   upgrade requests and makes one handler per connection, owned by its loop thread (state
//!   per connection, no lock); any `Handler + Clone` is a factory of its clones.
//! * [`Session`]: a `Clone + Send + Sync` handle to send text, binary, pings and closes from
//!   anywhere, including from inside callbacks.
//!
//! Sockets, threads and time live here; every protocol decision is made by
//! [`ws_proto::Connection`]. Each connection has a bounded outgoing buffer
//! ([`ws_proto::Config::max_buffered_output`]) with a [`BackpressurePolicy`]; a connection
//! whose output reaches half the limit stops being read until it drains, so replies are held
//! back by TCP flow control, never dropped.
//!
//! # An echo server and a client
//!
//! ```
//! use std::sync::mpsc;
//! use ws_mio::{Client, ClientConfig, Handler, Message, Server, ServerConfig, Session};
//!
//! #[derive(Clone)] // a cloneable handler is its own factory: one clone per connection
//! struct Echo;
//! impl Handler for Echo {
//!     fn on_message(&mut self, session: &Session, message: Message) {
//!         let _ = session.send(message);
//!     }
//! }
//!
//! /// The client's handler: hands what it receives to the main thread.
//! struct Print(mpsc::Sender<Message>);
//! impl Handler for Print {
//!     fn on_message(&mut self, _session: &Session, message: Message) {
//!         let _ = self.0.send(message);
//!     }
//! }
//!
//! let server = Server::bind("127.0.0.1:0", ServerConfig::default(), Echo).unwrap();
//! let url = format!("ws://{}/echo", server.local_addr());
//! let (tx, rx) = mpsc::channel();
//! let client = Client::connect(&url, ClientConfig::default(), Print(tx)).unwrap();
//! client.session().send_text("hello").unwrap();
//! assert_eq!(rx.recv().unwrap(), Message::Text("hello".into()));
//! client.stop();
//! server.stop();
//! ```
//!
//! # Logging
//!
//! The driver logs through the [`log`](https://docs.rs/log) facade (any logger, or `tracing`
//! through `tracing-log`; nothing is formatted when no logger takes the level). Targets are
//! the module paths under `ws_mio`. Levels:
//!
//! * `error`: a panicking callback (which one, which peer), `accept` failing (e.g. out of
//!   file descriptors: the first failure of a streak; `info` when accepting works again), a
//!   loop whose `poll` failed;
//! * `warn`: the server reaching `max_connections` (the first 503 of a streak; `info` when
//!   it is below again), an accepted socket that cannot be registered;
//! * `info`: a slow consumer closed by [`BackpressurePolicy::Close`];
//! * `debug`: each connection's open (peer, path, subprotocol) and close (peer, path, code,
//!   reason, the error if any, and who closed: `by=us` for [`Session::close`],
//!   `us-stopping` for [`Server::stop`] or [`Client::stop`], `us-failing` when we failed the
//!   connection — a protocol violation by the peer, a keepalive timeout, a slow consumer, a
//!   panicking callback —, `peer` when its close frame came first, `abnormal` for an end
//!   without closing handshake — EOF, I/O error, timeout —, `abnormal-after-our-close` when
//!   our close frame got no answer), refused or rejected upgrade requests (peer, path when
//!   known, status, reason), failed client connects, plain HTTP requests, each further 503
//!   or accept failure;
//! * `trace`: per message, ping, pong and close frame (sizes and close codes, never
//!   payloads).
#![deny(missing_docs, missing_debug_implementations)]
#![forbid(unsafe_code)]

mod client;
mod config;
mod event_loop;
mod handler;
mod server;
mod session;
mod slab;
mod timer;
#[cfg(feature = "tls")]
pub mod tls;
mod url;

pub use client::{Client, ConnectError};
pub use config::{BackpressurePolicy, ClientConfig, ServerConfig, SERVER_PING_INTERVAL};
pub use handler::{
    Decision, Disconnect, DriverError, Factory, Handler, HttpResponse, Message, Peer,
};
pub use server::Server;
pub use session::Session;
pub use url::{parse_ws_url, UrlError, WsUrl};
pub use ws_proto;
pub use ws_proto::{CloseCode, PreparedMessage, SendError};
