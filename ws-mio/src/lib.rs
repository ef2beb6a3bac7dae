//! `ws-mio`: runs [`ws_proto`] connections over real sockets with mio event loops.
//!
//! * [`Server`]: binds, accepts, and serves connections on one event loop per core.
//! * [`Client`]: connects to a `ws://` URL and runs its connection on a thread of its own.
//! * [`Handler`]: the callbacks the application implements (they run on loop threads).
//! * [`Session`]: a `Clone + Send + Sync` handle to send text, binary, pings and closes from
//!   anywhere, including from inside callbacks.
//!
//! Sockets, threads and time live here; every protocol decision is made by
//! [`ws_proto::Connection`]. Each connection has a bounded outgoing buffer
//! ([`ws_proto::Config::max_buffered_output`]) with a [`BackpressurePolicy`]; a connection
//! whose output is over the limit also stops being read until the peer catches up.
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
mod url;

pub use client::{Client, ConnectError};
pub use config::{BackpressurePolicy, ClientConfig, ServerConfig};
pub use handler::{Decision, Disconnect, DriverError, Handler, HttpResponse, Message};
pub use server::Server;
pub use session::Session;
pub use url::{parse_ws_url, UrlError, WsUrl};
pub use ws_proto;
pub use ws_proto::{PreparedMessage, SendError};
