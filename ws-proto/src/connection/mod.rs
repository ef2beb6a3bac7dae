//! The connection state machine: one place for the whole protocol.
//!
//! ```text
//!               client: request queued            peer's close echoed, or close() answered
//!  CONNECTING ───────────────────────────▶ OPEN ───────────────────────────────────────────▶ CLOSED
//!   (§4.1)     server: accept() after          │ close() (§7.1.2)                    ▲  (§7.1.4)
//!              Event::Request                  ▼                                      │
//!                                           CLOSING ─── peer's close frame ───────────┘
//! ```
//!
//! Input, each with the time: [`Connection::receive`], [`Connection::receive_eof`],
//! [`Connection::handle_timeout`]. Output: [`Connection::poll_event`],
//! [`Connection::pending_output`] + [`Connection::advance_output`],
//! [`Connection::should_shutdown`], [`Connection::is_terminated`],
//! [`Connection::poll_timeout`]. Commands: `send_*`, [`Connection::ping`],
//! [`Connection::close`], [`Connection::fail`], and on the server [`Connection::accept`] /
//! [`Connection::reject`].
//!
//! The parts, one file each: [`event`] (the public types), [`handshake`] (§4, the server's
//! decision), [`recv`] (§5 frames in, reassembly, UTF-8), [`send`] (frames out), [`closing`]
//! (§7: the closing handshake, failing, EOF, and how the connection ended) and [`timers`].

mod closing;
mod event;
mod handshake;
mod recv;
mod send;
mod timers;

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::Instant;

use crate::close::CloseFrame;
use crate::config::Config;
use crate::extension::Extension;
use crate::output::OutputQueue;

use closing::{Deferred, End};
pub use event::{Accept, ClientRequest, Event, Negotiated, Role, State};
use handshake::Handshake;
use recv::{Incoming, Rx};
pub use send::PreparedMessage;
use timers::{Timer, TimerTable};

/// Where the connection is in its life, with the data each stage needs.
#[derive(Debug)]
enum Phase {
    /// The opening handshake (§4). Boxed: an open connection does not carry its size.
    Connecting(Box<Handshake>),
    /// Messages flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's (§7.1.2).
    Closing,
    /// Nothing more is exchanged; `end` says how it ended. `terminated`: the driver drops the
    /// socket now (EOF received, a timeout, a client's failed handshake).
    Closed { end: End, terminated: bool },
}

/// A sans-IO WebSocket connection (client or server).
///
/// A whole session through in-memory buffers — a client and a server passing bytes to each
/// other the way a driver passes them through a socket:
///
/// ```
/// use std::time::Instant;
/// use ws_proto::{Accept, ClientRequest, CloseCode, Config, Connection, Event};
///
/// let now = Instant::now();
/// let mut client = Connection::client(Config::default(), ClientRequest::new("example.com", "/chat"), now);
/// let mut server_config = Config::default();
/// server_config.path = Some("/chat".into());
/// let mut server = Connection::server(server_config, now);
///
/// // Moves every pending byte from one side to the other.
/// fn pump(from: &mut Connection, to: &mut Connection, now: Instant) {
///     while !from.pending_output().is_empty() {
///         let n = from.pending_output().len();
///         to.receive(from.pending_output(), now);
///         from.advance_output(n);
///     }
/// }
///
/// pump(&mut client, &mut server, now);
/// let Some(Event::Request(request)) = server.poll_event() else { panic!() };
/// assert_eq!(request.path, "/chat");
/// server.accept(Accept::default(), now).unwrap();
/// assert!(matches!(server.poll_event(), Some(Event::Open(_))));
/// pump(&mut server, &mut client, now);
/// assert!(matches!(client.poll_event(), Some(Event::Open(_))));
///
/// client.send_text("hello").unwrap();
/// pump(&mut client, &mut server, now);
/// assert_eq!(server.poll_event(), Some(Event::Text("hello".into())));
///
/// // Closing handshake started by the client; the server echoes and closes TCP first.
/// client.close(CloseCode::NORMAL, "bye", now).unwrap();
/// pump(&mut client, &mut server, now);
/// assert!(matches!(server.poll_event(), Some(Event::Close(c)) if c.code == CloseCode::NORMAL));
/// pump(&mut server, &mut client, now);
/// assert!(matches!(client.poll_event(), Some(Event::Close(c)) if c.code == 1000)); // the echo
/// assert!(server.should_shutdown());
/// client.receive_eof(now); // the server shut its write side down
/// assert!(client.is_terminated());
/// ```
#[derive(Debug)]
pub struct Connection {
    role: Role,
    /// Shared: a driver's connections all use the same settings, and keep one copy of them.
    config: Arc<Config>,
    phase: Phase,
    /// The latest time an input told us (inputs never move it backwards).
    now: Instant,
    timers: TimerTable,
    /// Bytes received after the request head while the server awaits accept/reject.
    early_input: Vec<u8>,
    rx: Rx,
    message: Option<Incoming>,
    control: Vec<u8>,
    extensions: Vec<Box<dyn Extension>>,
    extension_rsv: u8,
    /// The shortest [`Extension::hibernate_after`] of the negotiated extensions.
    hibernate_after: Option<std::time::Duration>,
    /// A message went through the extensions since the hibernate timer last expired.
    extension_activity: bool,
    out: OutputQueue,
    events: VecDeque<Event>,
    /// The payload of the keepalive ping waiting for its pong.
    ping_payload: Option<[u8; 4]>,
    /// Start of the current one-second window of received pings, and their count in it.
    ping_window: (Instant, u32),
    /// An ending found while events were queued ahead of it; see [`Connection::poll_event`].
    deferred: Option<Deferred>,
}

impl Connection {
    /// A server connection for a freshly accepted socket. `now` starts the handshake timer.
    /// `config` is a [`Config`], or an `Arc<Config>` that many connections share (a driver
    /// keeps one copy of its settings instead of one per connection).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_proto::{Config, Connection, State};
    /// let server = Connection::server(Config::default(), Instant::now());
    /// assert_eq!(server.state(), State::Connecting);
    /// ```
    pub fn server(config: impl Into<Arc<Config>>, now: Instant) -> Connection {
        let config = config.into();
        let handshake = Handshake::server(&config);
        Connection::new(Role::Server, config, handshake, now)
    }

    /// A client connection: the upgrade request is queued right away (with a fresh random key
    /// and the offers of [`Config::subprotocols`] and [`Config::extensions`]). `now` starts
    /// the handshake timer.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_proto::{ClientRequest, Config, Connection};
    /// let client = Connection::client(Config::default(), ClientRequest::new("localhost", "/"), Instant::now());
    /// assert!(client.pending_output().starts_with(b"GET / HTTP/1.1\r\n"));
    /// ```
    pub fn client(
        config: impl Into<Arc<Config>>,
        request: ClientRequest,
        now: Instant,
    ) -> Connection {
        let config = config.into();
        let (handshake, bytes) = Handshake::client(&config, &request);
        let mut conn = Connection::new(Role::Client, config, handshake, now);
        conn.out.push_vec(bytes);
        conn
    }

    /// A server connection that refuses the socket before reading anything: `status` (e.g.
    /// 503 when the server is at capacity) with `body` is queued, and the connection closes
    /// like after a rejected upgrade (write the output, shut down, wait for EOF or the close
    /// timer). Statuses outside 300–599 are answered as 500.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_proto::{Config, Connection};
    /// let refused = Connection::refuse(Config::default(), 503, "too many connections\n", Instant::now());
    /// assert!(refused.pending_output().starts_with(b"HTTP/1.1 503 Service Unavailable\r\n"));
    /// assert!(!refused.should_shutdown()); // the response is not written yet
    /// ```
    pub fn refuse(
        config: impl Into<Arc<Config>>,
        status: u16,
        body: &str,
        now: Instant,
    ) -> Connection {
        let mut conn = Connection::server(config, now);
        let status = if (300..=599).contains(&status) {
            status
        } else {
            500
        };
        conn.out
            .push_vec(crate::handshake::error_response(status, &[], body));
        conn.end_handshake_unsuccessfully();
        conn
    }

    fn new(role: Role, config: Arc<Config>, handshake: Handshake, now: Instant) -> Connection {
        let mut timers = TimerTable::default();
        if let Some(timeout) = config.handshake_timeout {
            timers.start(Timer::Handshake, now, timeout);
        }
        Connection {
            role,
            config,
            phase: Phase::Connecting(Box::new(handshake)),
            now,
            timers,
            early_input: Vec::new(),
            rx: Rx::new(),
            message: None,
            control: Vec::new(),
            extensions: Vec::new(),
            extension_rsv: 0,
            hibernate_after: None,
            extension_activity: false,
            out: OutputQueue::default(),
            events: VecDeque::new(),
            ping_payload: None,
            ping_window: (now, 0),
            deferred: None,
        }
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current RFC state.
    pub fn state(&self) -> State {
        match self.phase {
            Phase::Connecting(_) => State::Connecting,
            Phase::Open => State::Open,
            Phase::Closing => State::Closing,
            Phase::Closed { .. } => State::Closed,
        }
    }

    /// The configuration this connection was built with.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_proto::{Config, Connection};
    /// let mut config = Config::default();
    /// config.path = Some("/chat".into());
    /// let server = Connection::server(config, Instant::now());
    /// assert_eq!(server.config().path.as_deref(), Some("/chat"));
    /// ```
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How the connection ended, once it has: the peer's close frame, the code we failed it
    /// with, or 1006 when TCP closed without a closing handshake.
    pub fn close_status(&self) -> Option<&CloseFrame> {
        match &self.phase {
            Phase::Closed { end, .. } => Some(end.close_frame()),
            _ => None,
        }
    }

    /// Moves the connection's clock to `now` (never backwards).
    fn advance_clock(&mut self, now: Instant) {
        self.now = self.now.max(now);
    }

    // ----------------------------------------------------------------------------------------
    // What the driver polls
    // ----------------------------------------------------------------------------------------

    /// The next event, if any. Call until `None` after every input.
    ///
    /// When the peer breaks the protocol, or sends its close frame, after messages that are
    /// still queued here, that ending (our close frame, and [`Event::Error`] or
    /// [`Event::Close`]) takes effect once those messages have been polled, so that what the
    /// application sends in reply to them goes out first.
    pub fn poll_event(&mut self) -> Option<Event> {
        if let Some(deferred) = &mut self.deferred {
            if deferred.ahead > 0 {
                deferred.ahead -= 1;
            } else if let Some(deferred) = self.deferred.take() {
                return Some(self.apply_ending(deferred.ending));
            }
        }
        let event = self.events.pop_front();
        if matches!(event, Some(Event::Open(_))) && self.events.is_empty() {
            // The handshake's events are over: an idle connection keeps no event storage.
            self.events = VecDeque::new();
        }
        event
    }

    /// Bytes to write to the transport now (the front of the output queue; empty when there is
    /// nothing to write). After writing `n` of them, call [`advance_output`](Self::advance_output).
    pub fn pending_output(&self) -> &[u8] {
        self.out.front()
    }

    /// Fills `slices` with the queued output for a vectored write; returns how many were used.
    pub fn pending_output_vectored<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        self.out.fill_slices(slices)
    }

    /// Marks `n` bytes of output as written.
    pub fn advance_output(&mut self, n: usize) {
        self.out.advance(n);
    }

    /// Bytes queued and not yet written.
    pub fn buffered_amount(&self) -> usize {
        self.out.len()
    }

    /// Bytes of the data message being received (its frames so far), 0 between messages. A
    /// driver that stops reading to bound its output counts them: the application may answer
    /// the whole message once its last frame arrives.
    pub fn incoming_amount(&self) -> usize {
        self.message.as_ref().map_or(0, |m| m.buf.len())
    }

    /// Whether the driver should now shut down the write side of TCP (all output is written).
    /// The server closes TCP first after the closing handshake (§7.1.1); either side does after
    /// failing the connection. Keep reading until EOF, or until [`is_terminated`](Self::is_terminated).
    pub fn should_shutdown(&self) -> bool {
        match &self.phase {
            Phase::Closed { end, terminated } => {
                self.out.is_empty()
                    && (self.role == Role::Server || end.is_failure() || *terminated)
            }
            _ => false,
        }
    }

    /// Whether the driver should close the socket and drop the connection: EOF received, a
    /// timeout, or (client) a handshake failure. A server that rejected a handshake first sends
    /// its HTTP response and shuts down, then waits for EOF or the close timer like any closed
    /// connection. Any output left is abandoned.
    pub fn is_terminated(&self) -> bool {
        matches!(
            self.phase,
            Phase::Closed {
                terminated: true,
                ..
            }
        )
    }
}
