//! `ws-proto`: a sans-IO implementation of the WebSocket protocol (RFC 6455).
//!
//! A [`Connection`] is a pure state machine. It never touches a socket, a thread or the clock:
//!
//! * **bytes in** — [`Connection::receive`] with what the transport read, [`Connection::receive_eof`]
//!   when it reached end of file, each with the time of the read;
//! * **events out** — [`Connection::poll_event`]: the upgrade request (server), the handshake's
//!   completion, messages, pings, pongs, the peer's close, failures;
//! * **calls in** — [`Connection::send_text`], [`Connection::send_binary`], [`Connection::ping`],
//!   [`Connection::close`], [`Connection::fail`], and [`Connection::accept`] /
//!   [`Connection::reject`] on a server;
//! * **bytes out** — [`Connection::pending_output`] / [`Connection::advance_output`], and
//!   [`Connection::should_shutdown`] / [`Connection::is_terminated`] to know when TCP closes;
//! * **time in** — every input and command that may start a timer takes `now`;
//!   [`Connection::poll_timeout`] is the next deadline and [`Connection::handle_timeout`] runs
//!   the handshake, close and keepalive timers when it is reached.
//!
//! `docs/sans-io.md` in the repository is the contract a driver follows. The modules below are
//! usable on their own: [`frame`] headers, [`mask`], [`utf8`] validation, [`close`] codes,
//! the [`handshake`] (HTTP upgrade) and the [`extension`] seam.
//!
//! ```
//! use std::time::Instant;
//! use ws_proto::{Config, Connection, Event};
//!
//! let now = Instant::now();
//! let mut server = Connection::server(Config::default(), now);
//! server.receive(b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
//!     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
//!     Sec-WebSocket-Version: 13\r\n\r\n", now);
//! assert!(matches!(server.poll_event(), Some(Event::Request(_))));
//! server.accept(Default::default(), now).unwrap();
//! assert!(std::str::from_utf8(server.pending_output()).unwrap()
//!     .contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"));
//! ```
#![deny(missing_docs, missing_debug_implementations)]
#![forbid(unsafe_code)]

pub mod close;
mod config;
mod connection;
mod error;
pub mod extension;
pub mod frame;
pub mod handshake;
pub mod mask;
mod output;
pub mod utf8;

pub use close::{CloseCode, CloseFrame};
pub use config::Config;
pub use connection::{
    Accept, ClientRequest, Connection, Event, Negotiated, PreparedMessage, Role, State,
};
pub use error::{AnswerError, Error, ProtocolError, SendError, TimeoutKind};
pub use output::fits_output_limit;
