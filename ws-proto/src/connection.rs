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
//! Input: [`Connection::receive`] / [`Connection::receive_eof`] / [`Connection::handle_timeout`].
//! Output: [`Connection::poll_event`], [`Connection::pending_output`] +
//! [`Connection::advance_output`], [`Connection::should_shutdown`], [`Connection::is_terminated`].
//! Commands: `send_*`, [`Connection::ping`], [`Connection::close`], [`Connection::fail`], and on
//! the server [`Connection::accept`] / [`Connection::reject`].

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::RngCore;

use crate::close::{self, CloseFrame};
use crate::config::Config;
use crate::error::{Error, ProtocolError, SendError, TimeoutKind};
use crate::extension::Extension;
use crate::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use crate::handshake::{
    self, ExtensionOffer, HandshakeError, HeadReader, Headers, Request, UpgradeRequest,
};
use crate::mask::{apply_mask, extend_masked};
use crate::output::{OutputQueue, ZERO_COPY_THRESHOLD};
use crate::utf8::Utf8Validator;

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
    /// The peer's close frame arrived ([`close::NO_STATUS`] when it had no code). If we had not
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

/// A message encoded once, to be queued on many server connections without copying its bytes
/// (broadcast). Server frames are unmasked, so the bytes are the same for every client.
///
/// ```
/// use ws_proto::PreparedMessage;
/// let msg = PreparedMessage::text("hello everyone");
/// assert_eq!(msg.wire_len(), 2 + 14);
/// ```
#[derive(Debug, Clone)]
pub struct PreparedMessage {
    wire: Arc<Vec<u8>>,
    opcode: OpCode,
    payload_start: usize,
}

impl PreparedMessage {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(OpCode::Text, text.into().into_bytes())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Vec<u8>>) -> Self {
        Self::new(OpCode::Binary, data.into())
    }

    fn new(opcode: OpCode, payload: Vec<u8>) -> Self {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: payload.len() as u64,
        };
        let (bytes, n) = header.encode();
        let mut wire = Vec::with_capacity(n + payload.len());
        wire.extend_from_slice(&bytes[..n]);
        wire.extend_from_slice(&payload);
        PreparedMessage {
            wire: Arc::new(wire),
            opcode,
            payload_start: n,
        }
    }

    /// Bytes on the wire (header and payload).
    pub fn wire_len(&self) -> usize {
        self.wire.len()
    }
}

#[derive(Debug)]
enum Handshake {
    /// Server reading the request head.
    ServerReading(HeadReader),
    /// Server waiting for the application's accept/reject.
    ServerPending(Box<UpgradeRequest>),
    /// Server waiting for the application's answer to a plain HTTP request.
    ServerHttpPending,
    /// Client waiting for the response head.
    ClientReading { reader: HeadReader, key: String },
    /// Finished (successfully or not).
    Done,
}

#[derive(Debug)]
enum Rx {
    /// Collecting a frame header; `len` bytes of it are in `buf`.
    Header {
        buf: [u8; MAX_HEADER_LEN],
        len: usize,
    },
    /// Streaming a payload.
    Payload {
        header: FrameHeader,
        remaining: u64,
        mask_offset: usize,
    },
    /// Ignoring input: a close was received or the connection failed.
    Discard,
}

/// A data message being reassembled.
#[derive(Debug)]
struct Incoming {
    opcode: OpCode,
    rsv: u8,
    buf: Vec<u8>,
    /// `Some` when the text is validated as it arrives (not transformed by an extension).
    utf8: Option<Utf8Validator>,
}

#[derive(Debug, Default)]
struct Timers {
    handshake: Option<Instant>,
    close: Option<Instant>,
    next_ping: Option<Instant>,
    pong: Option<Instant>,
    /// Timers to start at the next [`Connection::handle_timeout`] (the first moment the
    /// connection learns the time after the event that starts them).
    arm_close: bool,
    arm_ping: bool,
}

/// How the peer ended the connection: a protocol violation, or its close frame.
#[derive(Debug)]
enum Ending {
    Failure(Error),
    PeerClose(CloseFrame),
}

/// Never read more than this many bytes ahead of the message buffer's actual content.
const MAX_PREALLOCATION: u64 = 1 << 20;

/// A sans-IO WebSocket connection (client or server).
///
/// A whole session through in-memory buffers — a client and a server passing bytes to each
/// other the way a driver passes them through a socket:
///
/// ```
/// use std::time::Instant;
/// use ws_proto::{Accept, ClientRequest, Config, Connection, Event};
///
/// let now = Instant::now();
/// let mut client = Connection::client(Config::default(), ClientRequest::new("example.com", "/chat"), now);
/// let mut server = Connection::server(Config { path: Some("/chat".into()), ..Config::default() }, now);
///
/// // Moves every pending byte from one side to the other.
/// fn pump(from: &mut Connection, to: &mut Connection) {
///     while !from.pending_output().is_empty() {
///         let n = from.pending_output().len();
///         to.receive(from.pending_output());
///         from.advance_output(n);
///     }
/// }
///
/// pump(&mut client, &mut server);
/// let Some(Event::Request(request)) = server.poll_event() else { panic!() };
/// assert_eq!(request.path, "/chat");
/// server.accept(Accept::default()).unwrap();
/// assert!(matches!(server.poll_event(), Some(Event::Open(_))));
/// pump(&mut server, &mut client);
/// assert!(matches!(client.poll_event(), Some(Event::Open(_))));
///
/// client.send_text("hello").unwrap();
/// pump(&mut client, &mut server);
/// assert_eq!(server.poll_event(), Some(Event::Text("hello".into())));
///
/// // Closing handshake started by the client; the server echoes and closes TCP first.
/// client.close(1000, "bye").unwrap();
/// pump(&mut client, &mut server);
/// assert!(matches!(server.poll_event(), Some(Event::Close(c)) if c.code == 1000));
/// pump(&mut server, &mut client);
/// assert!(matches!(client.poll_event(), Some(Event::Close(c)) if c.code == 1000)); // the echo
/// assert!(server.should_shutdown());
/// client.receive_eof(); // the server shut its write side down
/// assert!(client.is_terminated());
/// ```
#[derive(Debug)]
pub struct Connection {
    role: Role,
    config: Config,
    state: State,
    handshake: Handshake,
    /// Bytes received after the request head while the server awaits accept/reject.
    early_input: Vec<u8>,
    rx: Rx,
    message: Option<Incoming>,
    control: Vec<u8>,
    extensions: Vec<Box<dyn Extension>>,
    extension_rsv: u8,
    out: OutputQueue,
    events: VecDeque<Event>,
    close_sent: bool,
    close_status: Option<CloseFrame>,
    /// The connection failed (protocol error, handshake rejection, app `fail`): we close TCP
    /// first whatever our role.
    failed: bool,
    terminated: bool,
    now: Instant,
    timers: Timers,
    ping_payload: Option<[u8; 4]>,
    ping_window: (Instant, u32),
    /// An ending found while events were queued ahead of it, with their number; see
    /// [`Connection::poll_event`].
    deferred_ending: Option<(usize, Ending)>,
}

impl Connection {
    /// A server connection for a freshly accepted socket. `now` starts the handshake timer.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_proto::{Config, Connection, State};
    /// let server = Connection::server(Config::default(), Instant::now());
    /// assert_eq!(server.state(), State::Connecting);
    /// ```
    pub fn server(config: Config, now: Instant) -> Connection {
        let reader = HeadReader::new(config.handshake_limits);
        Connection::new(Role::Server, config, Handshake::ServerReading(reader), now)
    }

    /// A client connection: the upgrade request is queued right away (with a fresh random key
    /// and the offers of [`Config::subprotocols`] and [`Config::extensions`]).
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_proto::{ClientRequest, Config, Connection};
    /// let client = Connection::client(Config::default(), ClientRequest::new("localhost", "/"), Instant::now());
    /// assert!(client.pending_output().starts_with(b"GET / HTTP/1.1\r\n"));
    /// ```
    pub fn client(config: Config, request: ClientRequest, now: Instant) -> Connection {
        let key = handshake::generate_key();
        let offers: Vec<String> = config
            .extensions
            .iter()
            .map(|f| f.offer().to_string())
            .collect();
        let offers = (!offers.is_empty()).then(|| offers.join(", "));
        let bytes = handshake::build_request(
            &request.host,
            &request.path,
            &key,
            &config.subprotocols,
            offers.as_deref(),
            &request.headers,
        );
        let reader = HeadReader::new(config.handshake_limits);
        let mut conn = Connection::new(
            Role::Client,
            config,
            Handshake::ClientReading { reader, key },
            now,
        );
        conn.out.push_vec(bytes);
        conn
    }

    fn new(role: Role, config: Config, handshake: Handshake, now: Instant) -> Connection {
        let timers = Timers {
            handshake: config.handshake_timeout.and_then(|t| now.checked_add(t)),
            ..Timers::default()
        };
        Connection {
            role,
            config,
            state: State::Connecting,
            handshake,
            early_input: Vec::new(),
            rx: Rx::Header {
                buf: [0; MAX_HEADER_LEN],
                len: 0,
            },
            message: None,
            control: Vec::new(),
            extensions: Vec::new(),
            extension_rsv: 0,
            out: OutputQueue::default(),
            events: VecDeque::new(),
            close_sent: false,
            close_status: None,
            failed: false,
            terminated: false,
            now,
            timers,
            ping_payload: None,
            ping_window: (now, 0),
            deferred_ending: None,
        }
    }

    /// This side's role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The current RFC state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration this connection was built with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// How the connection ended, once it has: the peer's close frame, the code we failed it
    /// with, or 1006 when TCP closed without a closing handshake.
    pub fn close_status(&self) -> Option<&CloseFrame> {
        self.close_status.as_ref()
    }

    // ----------------------------------------------------------------------------------------
    // Input
    // ----------------------------------------------------------------------------------------

    /// Feeds bytes read from the transport. Never fails and never panics: protocol violations
    /// become an [`Event::Error`] plus the right close frame in the output.
    pub fn receive(&mut self, data: &[u8]) {
        if self.terminated {
            return;
        }
        match self.handshake {
            Handshake::Done => self.receive_frames(data),
            Handshake::ServerHttpPending => {}
            Handshake::ServerPending(_) => {
                // Pipelined frames before the application decided: keep them, within bounds.
                if self.early_input.len() + data.len() > self.config.handshake_limits.max_head {
                    self.handshake_failed(HandshakeError::HeadTooLarge);
                } else {
                    self.early_input.extend_from_slice(data);
                }
            }
            _ => self.receive_handshake(data),
        }
    }

    /// Tells the connection the peer closed its side of TCP (a read returned 0).
    pub fn receive_eof(&mut self) {
        if self.terminated {
            return;
        }
        // An ending still waiting behind queued messages (the peer's close, or its violation)
        // came before the EOF: it takes effect now, in its place in the event order, and is
        // the one ending reported.
        if let Some((ahead, ending)) = self.deferred_ending.take() {
            let event = self.apply_ending(ending);
            self.events.insert(ahead, event);
        }
        if self.state != State::Closed {
            self.events.push_back(Event::Error(Error::ConnectionReset));
            self.close_status = Some(CloseFrame {
                code: close::ABNORMAL,
                reason: String::new(),
            });
            self.state = State::Closed;
            self.handshake = Handshake::Done;
        }
        self.rx = Rx::Discard;
        self.terminated = true;
    }

    fn receive_handshake(&mut self, data: &[u8]) {
        let limits = self.config.handshake_limits;
        match &mut self.handshake {
            Handshake::ServerReading(reader) => {
                let end = match reader.feed(data) {
                    Ok(None) => return,
                    Ok(Some(end)) => end,
                    Err(e) => return self.handshake_failed(e),
                };
                let request = match handshake::parse_request(reader.head(), &limits) {
                    Ok(r) if self.config.plain_http && is_plain_get(&r) => {
                        self.events.push_back(Event::HttpRequest(Box::new(r)));
                        self.handshake = Handshake::ServerHttpPending;
                        return;
                    }
                    parsed => parsed
                        .and_then(|r| handshake::validate_request(r, self.config.path.as_deref())),
                };
                match request {
                    Ok(request) => {
                        // Pipelined bytes wait for accept/reject within the same bound as
                        // those of later reads (see `receive`).
                        if data.len() - end > limits.max_head {
                            return self.handshake_failed(HandshakeError::HeadTooLarge);
                        }
                        self.early_input.extend_from_slice(&data[end..]);
                        self.events
                            .push_back(Event::Request(Box::new(request.clone())));
                        self.handshake = Handshake::ServerPending(Box::new(request));
                    }
                    Err(e) => self.handshake_failed(e),
                }
            }
            Handshake::ClientReading { reader, key } => {
                let end = match reader.feed(data) {
                    Ok(None) => return,
                    Ok(Some(end)) => end,
                    Err(e) => return self.handshake_failed(e),
                };
                let response = handshake::parse_response(reader.head(), &limits)
                    .and_then(|r| handshake::validate_response(r, key, &self.config.subprotocols));
                let response = match response {
                    Ok(r) => r,
                    Err(e) => return self.handshake_failed(e),
                };
                if let Err(e) = self.confirm_extensions(&response.extensions) {
                    return self.handshake_failed(e);
                }
                self.open(Negotiated {
                    subprotocol: response.subprotocol,
                    extensions: response.extensions,
                    headers: response.headers,
                });
                self.receive_frames(&data[end..]);
            }
            Handshake::ServerPending(_) | Handshake::ServerHttpPending | Handshake::Done => {}
        }
    }

    fn confirm_extensions(&mut self, answers: &[ExtensionOffer]) -> Result<(), HandshakeError> {
        for answer in answers {
            let factory = self
                .config
                .extensions
                .iter()
                .find(|f| f.name() == answer.name)
                .ok_or(HandshakeError::UnexpectedExtension)?;
            let ext = factory
                .confirm(answer)
                .map_err(|_| HandshakeError::UnexpectedExtension)?;
            self.add_extension(ext)
                .ok_or(HandshakeError::UnexpectedExtension)?;
        }
        Ok(())
    }

    /// Adds a negotiated extension unless its RSV bits clash with one already in effect.
    fn add_extension(&mut self, ext: Box<dyn Extension>) -> Option<()> {
        let bits = ext.rsv_bits();
        if bits & self.extension_rsv != 0 {
            return None;
        }
        self.extension_rsv |= bits;
        self.extensions.push(ext);
        Some(())
    }

    fn handshake_failed(&mut self, error: HandshakeError) {
        if self.role == Role::Server {
            if let Some(response) = error.to_response() {
                self.out.push_vec(response);
            }
        } else {
            // Nothing to say to a server that broke the handshake: just close.
            self.terminated = true;
        }
        self.events.push_back(Event::Error(Error::Handshake(error)));
        self.end_handshake_unsuccessfully();
    }

    fn end_handshake_unsuccessfully(&mut self) {
        self.handshake = Handshake::Done;
        self.state = State::Closed;
        self.failed = true;
        self.rx = Rx::Discard;
        self.close_status = Some(CloseFrame {
            code: close::ABNORMAL,
            reason: String::new(),
        });
        self.timers.arm_close = true;
    }

    fn open(&mut self, negotiated: Negotiated) {
        self.handshake = Handshake::Done;
        self.state = State::Open;
        self.timers.handshake = None;
        self.timers.arm_ping = self.keepalive_interval().is_some();
        self.events.push_back(Event::Open(Box::new(negotiated)));
    }

    // ----------------------------------------------------------------------------------------
    // Server decision
    // ----------------------------------------------------------------------------------------

    /// Server: accepts the pending upgrade request, queues the `101` response and opens the
    /// connection. Extensions are negotiated from [`Config::extensions`]; frames the client sent
    /// right after its request are processed now.
    pub fn accept(&mut self, accept: Accept) -> Result<(), SendError> {
        let Handshake::ServerPending(request) =
            std::mem::replace(&mut self.handshake, Handshake::Done)
        else {
            return Err(SendError::NoPendingRequest);
        };
        let offered = |p: &String| request.subprotocols.contains(p);
        let subprotocol = accept.subprotocol.filter(offered).or_else(|| {
            self.config
                .subprotocols
                .iter()
                .find(|p| request.subprotocols.contains(p))
                .cloned()
        });
        let mut answers = Vec::new();
        let factories = self.config.extensions.clone();
        for factory in &factories {
            let accepted = request
                .extensions
                .iter()
                .filter(|offer| offer.name == factory.name())
                .find_map(|offer| factory.accept(offer));
            if let Some((ext, answer)) = accepted {
                if self.add_extension(ext).is_some() {
                    answers.push(answer);
                }
            }
        }
        let header = answers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let response = handshake::response_101(
            &request.key,
            subprotocol.as_deref(),
            (!header.is_empty()).then_some(header.as_str()),
            &accept.headers,
        );
        self.out.push_vec(response);
        let request = *request;
        self.open(Negotiated {
            subprotocol,
            extensions: answers,
            headers: request.headers,
        });
        let early = std::mem::take(&mut self.early_input);
        self.receive_frames(&early);
        Ok(())
    }

    /// Server: refuses the pending upgrade request with an HTTP error response (e.g. 403 for a
    /// disallowed Origin); the connection then closes. `status` must be 300–599: anything else
    /// (a 101 or a 200 above all) would not refuse the request.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_proto::{Config, Connection, Event, SendError};
    /// let mut server = Connection::server(Config::default(), Instant::now());
    /// server.receive(b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
    ///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///     Sec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\n\r\n");
    /// let Some(Event::Request(request)) = server.poll_event() else { panic!() };
    /// assert_eq!(request.origin.as_deref(), Some("http://evil.example"));
    /// assert_eq!(server.reject(101, ""), Err(SendError::InvalidStatus(101)));
    /// server.reject(403, "origin not allowed").unwrap();
    /// assert!(server.pending_output().starts_with(b"HTTP/1.1 403 Forbidden\r\n"));
    /// ```
    pub fn reject(&mut self, status: u16, body: &str) -> Result<(), SendError> {
        if !matches!(self.handshake, Handshake::ServerPending(_)) {
            return Err(SendError::NoPendingRequest);
        }
        if !(300..=599).contains(&status) {
            return Err(SendError::InvalidStatus(status));
        }
        self.out
            .push_vec(handshake::error_response(status, &[], body));
        self.early_input = Vec::new();
        self.end_handshake_unsuccessfully();
        Ok(())
    }

    /// Server: answers a plain HTTP request ([`Event::HttpRequest`]) with a complete response
    /// (`Connection: close`); the connection then closes.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_proto::{Config, Connection, Event};
    /// let config = Config { plain_http: true, ..Config::default() };
    /// let mut server = Connection::server(config, Instant::now());
    /// server.receive(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    /// assert!(matches!(server.poll_event(), Some(Event::HttpRequest(r)) if r.path == "/"));
    /// server.respond(200, "text/html; charset=utf-8", b"<h1>hi</h1>").unwrap();
    /// assert!(server.pending_output().starts_with(b"HTTP/1.1 200 OK\r\n"));
    /// ```
    pub fn respond(
        &mut self,
        status: u16,
        content_type: &str,
        body: &[u8],
    ) -> Result<(), SendError> {
        if !matches!(self.handshake, Handshake::ServerHttpPending) {
            return Err(SendError::NoPendingRequest);
        }
        self.out
            .push_vec(handshake::http_response(status, content_type, &[], body));
        self.end_handshake_unsuccessfully();
        Ok(())
    }

    // ----------------------------------------------------------------------------------------
    // Frames in
    // ----------------------------------------------------------------------------------------

    fn receive_frames(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.rx {
                Rx::Discard => return,
                Rx::Header { buf, len } => {
                    let between_frames = *len == 0;
                    let decoded = if between_frames {
                        FrameHeader::decode(data)
                    } else {
                        let old = *len;
                        let take = (MAX_HEADER_LEN - old).min(data.len());
                        buf[old..old + take].copy_from_slice(&data[..take]);
                        FrameHeader::decode(&buf[..old + take])
                            .map(|d| d.map(|(h, n)| (h, n - old)))
                    };
                    match decoded {
                        Ok(Some((header, used))) => {
                            data = &data[used..];
                            if between_frames {
                                if let Some(rest) = self.receive_whole_message(header, data) {
                                    data = rest;
                                    continue;
                                }
                            }
                            if let Err(e) = self.start_frame(header) {
                                return self.fail_with(Error::Protocol(e));
                            }
                        }
                        Ok(None) => {
                            // Too short for a header: keep what we have (at most 13 bytes).
                            let old = *len;
                            let take = (MAX_HEADER_LEN - old).min(data.len());
                            buf[old..old + take].copy_from_slice(&data[..take]);
                            *len = old + take;
                            return;
                        }
                        Err(e) => return self.fail_with(Error::Protocol(e)),
                    }
                }
                Rx::Payload {
                    header,
                    remaining,
                    mask_offset,
                } => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    let (chunk, rest) = data.split_at(take);
                    data = rest;
                    *remaining -= take as u64;
                    let header = *header;
                    let target = if header.opcode.is_control() {
                        &mut self.control
                    } else {
                        match &mut self.message {
                            Some(m) => &mut m.buf,
                            None => unreachable!("a data payload always has a message"),
                        }
                    };
                    let start = target.len();
                    match header.mask {
                        Some(key) => *mask_offset = extend_masked(target, chunk, key, *mask_offset),
                        None => target.extend_from_slice(chunk),
                    }
                    if let Some(Incoming {
                        utf8: Some(v), buf, ..
                    }) = &mut self.message
                    {
                        if !header.opcode.is_control() && v.feed(&buf[start..]).is_err() {
                            return self.fail_with(Error::Protocol(ProtocolError::InvalidUtf8));
                        }
                    }
                    if *remaining == 0 {
                        self.finish_frame(header);
                    }
                }
            }
        }
    }

    /// The common case, in one step: an unfragmented data frame whose whole payload is in
    /// `data`, with no message in progress and no RSV bit, that passes every check of
    /// [`start_frame`](Self::start_frame). Its message is queued and the input after it
    /// returned. `None` leaves the frame to the general path, which checks it again and reports
    /// what fails (invalid UTF-8 included); nothing has changed then.
    fn receive_whole_message<'a>(
        &mut self,
        header: FrameHeader,
        data: &'a [u8],
    ) -> Option<&'a [u8]> {
        let len = usize::try_from(header.payload_len).ok()?;
        let plain = header.fin
            && header.rsv == 0
            && matches!(header.opcode, OpCode::Text | OpCode::Binary)
            && self.message.is_none()
            && header.mask.is_some() == (self.role == Role::Server)
            && len <= self.config.max_frame_size
            && len <= self.config.max_message_size
            && len <= data.len();
        if !plain {
            return None;
        }
        let (payload, rest) = data.split_at(len);
        let mut buf = Vec::with_capacity(len);
        match header.mask {
            Some(key) => {
                extend_masked(&mut buf, payload, key, 0);
            }
            None => buf.extend_from_slice(payload),
        }
        let event = if header.opcode == OpCode::Text {
            // The whole text is here: validating it at once fails as early as fail-fast can.
            Event::Text(String::from_utf8(buf).ok()?)
        } else {
            Event::Binary(buf)
        };
        self.events.push_back(event);
        Some(rest)
    }

    /// Checks a header against §5 and the limits, and prepares to stream its payload.
    fn start_frame(&mut self, header: FrameHeader) -> Result<(), ProtocolError> {
        // §5.2: RSV bits must be 0 unless an extension defining them was negotiated, and such
        // extensions mark the first frame of a data message only.
        let allowed_rsv = match header.opcode {
            OpCode::Text | OpCode::Binary => self.extension_rsv,
            _ => 0,
        };
        if header.rsv & !allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBits(header.rsv));
        }
        // §5.1: "a server MUST close the connection upon receiving a frame that is not masked";
        // "a client MUST close a connection if it detects a masked frame".
        match (self.role, header.mask) {
            (Role::Server, None) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, Some(_)) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        // §5.5 first, so that a bad control frame is a protocol error (1002) whatever the size
        // limit: "All control frames MUST have a payload length of 125 bytes or less and MUST
        // NOT be fragmented."
        if header.opcode.is_control() {
            if !header.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if header.payload_len > 125 {
                return Err(ProtocolError::ControlFrameTooLong(header.payload_len));
            }
        }
        if header.payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge {
                size: header.payload_len,
                max: self.config.max_frame_size,
            });
        }
        if header.opcode.is_control() {
            self.control.clear();
        } else {
            let so_far = match (&mut self.message, header.opcode) {
                (None, OpCode::Continuation) => return Err(ProtocolError::UnexpectedContinuation),
                (Some(_), OpCode::Text | OpCode::Binary) => {
                    return Err(ProtocolError::ExpectedContinuation)
                }
                (Some(m), _) => m.buf.len() as u64,
                (None, opcode) => {
                    let transformed = header.rsv & self.extension_rsv != 0;
                    self.message = Some(Incoming {
                        opcode,
                        rsv: header.rsv,
                        buf: Vec::new(),
                        utf8: (opcode == OpCode::Text && !transformed).then(Utf8Validator::default),
                    });
                    0
                }
            };
            let size = so_far + header.payload_len;
            if size > self.config.max_message_size as u64 {
                return Err(ProtocolError::MessageTooLarge {
                    size,
                    max: self.config.max_message_size,
                });
            }
            if let Some(m) = &mut self.message {
                // Reserve what was declared, but not more than 1 MiB ahead of the data.
                let additional = header.payload_len.min(MAX_PREALLOCATION) as usize;
                if m.buf.capacity() == 0 {
                    // A new message: one allocation of the right size, without `reserve`'s
                    // growth path (about a tenth of the cost of a small message; see
                    // docs/benchmarks.md).
                    m.buf = Vec::with_capacity(additional);
                } else {
                    m.buf.reserve(additional);
                }
            }
        }
        self.rx = Rx::Payload {
            header,
            remaining: header.payload_len,
            mask_offset: 0,
        };
        if header.payload_len == 0 {
            self.finish_frame(header);
        }
        Ok(())
    }

    fn finish_frame(&mut self, header: FrameHeader) {
        self.rx = Rx::Header {
            buf: [0; MAX_HEADER_LEN],
            len: 0,
        };
        match header.opcode {
            OpCode::Ping => self.on_ping(),
            OpCode::Pong => {
                let payload = std::mem::take(&mut self.control);
                if self.ping_payload.is_some_and(|p| p[..] == payload[..]) {
                    self.ping_payload = None;
                    self.timers.pong = None;
                }
                self.events.push_back(Event::Pong(payload));
            }
            OpCode::Close => self.on_close(),
            _ if header.fin => self.finish_message(),
            _ => {}
        }
    }

    fn on_ping(&mut self) {
        let (start, count) = &mut self.ping_window;
        if self.now.duration_since(*start) >= Duration::from_secs(1) {
            *start = self.now;
            *count = 0;
        }
        *count += 1;
        if *count > self.config.max_pings_per_second {
            return self.fail_with(Error::Protocol(ProtocolError::PingFlood));
        }
        let payload = std::mem::take(&mut self.control);
        // §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response,
        // unless it already received a Close frame." A peer that does not read while pinging
        // cannot make the pongs pile up: over the output limit they are skipped (§5.5.3 allows
        // answering only the most recent ping). Having sent a close (`Closing`) is no exception:
        // only data frames are forbidden after it (§5.5.1).
        let answer = matches!(self.state, State::Open | State::Closing);
        if answer && self.out.len() <= self.config.max_buffered_output {
            self.queue_frame(OpCode::Pong, 0, &payload);
        }
        self.events.push_back(Event::Ping(payload));
    }

    fn on_close(&mut self) {
        match CloseFrame::parse(&self.control) {
            Ok(frame) => self.apply_or_defer(Ending::PeerClose(frame)),
            Err(e) => self.fail_with(Error::Protocol(e)),
        }
    }

    /// The peer's close frame takes effect.
    fn peer_closed(&mut self, frame: CloseFrame) -> Event {
        // §5.5.1: "If an endpoint receives a Close frame and did not previously send a Close
        // frame, the endpoint MUST send a Close frame in response." It echoes the code.
        if !self.close_sent {
            let echo = CloseFrame {
                code: frame.code,
                reason: String::new(),
            };
            self.queue_frame(OpCode::Close, 0, &echo.payload());
            self.close_sent = true;
        }
        self.state = State::Closed;
        self.rx = Rx::Discard;
        self.message = None;
        self.close_status = Some(frame.clone());
        self.timers.arm_close = true;
        self.timers.pong = None;
        Event::Close(frame)
    }

    fn finish_message(&mut self) {
        let Some(message) = self.message.take() else {
            return;
        };
        let mut payload = message.buf;
        if message.rsv & self.extension_rsv != 0 {
            for ext in self.extensions.iter_mut().rev() {
                if message.rsv & ext.rsv_bits() == 0 {
                    continue;
                }
                match ext.decode(message.rsv, payload, self.config.max_message_size) {
                    Ok(decoded) => payload = decoded,
                    Err(e) => return self.fail_with(Error::Protocol(ProtocolError::Extension(e))),
                }
            }
        }
        let event = match message.opcode {
            OpCode::Text => {
                if message.utf8.is_some_and(|v| v.finish().is_err()) {
                    return self.fail_with(Error::Protocol(ProtocolError::InvalidUtf8));
                }
                match String::from_utf8(payload) {
                    Ok(text) => Event::Text(text),
                    Err(_) => return self.fail_with(Error::Protocol(ProtocolError::InvalidUtf8)),
                }
            }
            _ => Event::Binary(payload),
        };
        self.events.push_back(event);
    }

    // ----------------------------------------------------------------------------------------
    // Output
    // ----------------------------------------------------------------------------------------

    /// Queues one complete frame whose payload is copied (control frames, small messages).
    fn queue_frame(&mut self, opcode: OpCode, rsv: u8, payload: &[u8]) {
        let mask = self.next_mask();
        let header = FrameHeader {
            fin: true,
            rsv,
            opcode,
            mask,
            payload_len: payload.len() as u64,
        };
        self.queue_header_and_copy(header, payload);
    }

    fn queue_header_and_copy(&mut self, header: FrameHeader, payload: &[u8]) {
        let (bytes, n) = header.encode();
        let tail = self.out.tail(n + payload.len());
        tail.extend_from_slice(&bytes[..n]);
        let start = tail.len();
        tail.extend_from_slice(payload);
        if let Some(key) = header.mask {
            apply_mask(&mut tail[start..], key, 0);
        }
        self.out.commit_tail(n + payload.len());
    }

    fn next_mask(&self) -> Option<[u8; 4]> {
        // §5.3: the masking key "MUST be derived from a strong source of entropy".
        (self.role == Role::Client).then(|| {
            let mut key = [0u8; 4];
            rand::rng().fill_bytes(&mut key);
            key
        })
    }

    fn check_can_send(&self, len: usize) -> Result<(), SendError> {
        match self.state {
            State::Connecting => return Err(SendError::NotOpen),
            State::Closing | State::Closed => return Err(SendError::Closed),
            State::Open => {}
        }
        let buffered = self.out.len();
        if buffered > 0 && buffered + len > self.config.max_buffered_output {
            return Err(SendError::BufferFull {
                buffered,
                limit: self.config.max_buffered_output,
            });
        }
        Ok(())
    }

    /// Queues a text message (split into frames of [`Config::fragment_size`] if longer).
    ///
    /// Errors: [`SendError::NotOpen`], [`SendError::Closed`], [`SendError::BufferFull`].
    pub fn send_text(&mut self, text: impl Into<String>) -> Result<(), SendError> {
        self.send_message(OpCode::Text, text.into().into_bytes())
    }

    /// Queues a binary message (split into frames of [`Config::fragment_size`] if longer).
    /// The buffer is moved into the output queue without a copy when it is large.
    pub fn send_binary(&mut self, data: impl Into<Vec<u8>>) -> Result<(), SendError> {
        self.send_message(OpCode::Binary, data.into())
    }

    fn send_message(&mut self, opcode: OpCode, payload: Vec<u8>) -> Result<(), SendError> {
        self.check_can_send(payload.len())?;
        let mut payload = payload;
        let mut rsv = 0;
        for ext in &mut self.extensions {
            let (bits, encoded) = ext.encode(opcode, payload).map_err(SendError::Extension)?;
            rsv |= bits & ext.rsv_bits();
            payload = encoded;
        }
        let fragment = self.config.fragment_size.max(1);
        if payload.len() < ZERO_COPY_THRESHOLD {
            // Small: header and payload copied into the coalescing buffer.
            let mut first = true;
            let mut chunks = payload.chunks(fragment).peekable();
            if chunks.peek().is_none() {
                self.queue_frame(opcode, rsv, &[]);
            }
            while let Some(chunk) = chunks.next() {
                let header = FrameHeader {
                    fin: chunks.peek().is_none(),
                    rsv: if first { rsv } else { 0 },
                    opcode: if first { opcode } else { OpCode::Continuation },
                    mask: self.next_mask(),
                    payload_len: chunk.len() as u64,
                };
                self.queue_header_and_copy(header, chunk);
                first = false;
            }
            return Ok(());
        }
        // Large: the payload buffer itself goes into the queue (masked in place on a client).
        let frames = payload.len().div_ceil(fragment);
        let mut headers = Vec::with_capacity(frames);
        for (i, start) in (0..payload.len()).step_by(fragment).enumerate() {
            let end = (start + fragment).min(payload.len());
            let mask = self.next_mask();
            if let Some(key) = mask {
                apply_mask(&mut payload[start..end], key, 0);
            }
            headers.push(FrameHeader {
                fin: i + 1 == frames,
                rsv: if i == 0 { rsv } else { 0 },
                opcode: if i == 0 { opcode } else { OpCode::Continuation },
                mask,
                payload_len: (end - start) as u64,
            });
        }
        if frames == 1 {
            let (bytes, n) = headers[0].encode();
            self.out.push_slice(&bytes[..n]);
            self.out.push_vec(payload);
        } else {
            let shared = Arc::new(payload);
            for (header, start) in headers.iter().zip((0..shared.len()).step_by(fragment)) {
                let (bytes, n) = header.encode();
                self.out.push_slice(&bytes[..n]);
                self.out
                    .push_shared(&shared, start, start + header.payload_len as usize);
            }
        }
        Ok(())
    }

    /// Queues a message encoded once for many connections (see [`PreparedMessage`]). On a
    /// server its bytes are shared, not copied; a client (which must mask) copies and masks.
    pub fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), SendError> {
        self.check_can_send(message.wire.len())?;
        match self.role {
            Role::Server => self.out.push_shared(&message.wire, 0, message.wire.len()),
            Role::Client => {
                let payload = &message.wire[message.payload_start..];
                let mask = self.next_mask();
                let header = FrameHeader {
                    fin: true,
                    rsv: 0,
                    opcode: message.opcode,
                    mask,
                    payload_len: payload.len() as u64,
                };
                self.queue_header_and_copy(header, payload);
            }
        }
        Ok(())
    }

    /// Queues a ping (payload at most 125 bytes).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Queues an unsolicited pong (a unidirectional heartbeat, §5.5.3).
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Pong, payload)
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        if payload.len() > 125 {
            return Err(SendError::ControlTooLong(payload.len()));
        }
        self.check_can_send(payload.len())?;
        self.queue_frame(opcode, 0, payload);
        Ok(())
    }

    /// Starts the closing handshake (§7.1.2) with a code and a reason of at most 123 bytes.
    /// The connection moves to [`State::Closing`] and waits (up to [`Config::close_timeout`])
    /// for the peer's close frame.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_proto::{ClientRequest, Config, Connection, SendError};
    /// let mut client = Connection::client(Config::default(), ClientRequest::new("h", "/"), Instant::now());
    /// assert_eq!(client.close(1000, ""), Err(SendError::NotOpen));
    /// ```
    pub fn close(&mut self, code: u16, reason: &str) -> Result<(), SendError> {
        if !close::is_valid_code(code) {
            return Err(SendError::InvalidCloseCode(code));
        }
        if reason.len() > 123 {
            return Err(SendError::ControlTooLong(reason.len() + 2));
        }
        match self.state {
            State::Connecting => return Err(SendError::NotOpen),
            State::Closing | State::Closed => return Err(SendError::Closed),
            State::Open => {}
        }
        let frame = CloseFrame {
            code,
            reason: reason.to_owned(),
        };
        self.queue_frame(OpCode::Close, 0, &frame.payload());
        self.close_sent = true;
        self.state = State::Closing;
        self.timers.arm_close = true;
        // Keepalive ends with the close: the close timer now bounds the wait for the peer.
        self.timers.pong = None;
        self.timers.next_ping = None;
        self.ping_payload = None;
        Ok(())
    }

    /// Fails the connection (§7.1.7): sends a close frame with `code` (if none was sent yet) and
    /// closes TCP without waiting for the peer's close frame. During the handshake it just
    /// closes. Use it when the application finds the peer misbehaving (e.g. 1008).
    pub fn fail(&mut self, code: u16) -> Result<(), SendError> {
        if !close::is_valid_code(code) {
            return Err(SendError::InvalidCloseCode(code));
        }
        if self.state == State::Closed {
            return Err(SendError::Closed);
        }
        if self.state == State::Connecting {
            self.end_handshake_unsuccessfully();
            return Ok(());
        }
        // The application's failure supersedes an ending still waiting behind queued events.
        self.deferred_ending = None;
        self.fail_connection(code);
        Ok(())
    }

    fn fail_with(&mut self, error: Error) {
        self.apply_or_defer(Ending::Failure(error));
    }

    /// Ends the connection now, or, if messages received before the ending are still queued,
    /// once the application has polled them: what it sends in reply to them then goes out
    /// before the close frame. Reading stops at once either way.
    fn apply_or_defer(&mut self, ending: Ending) {
        if self.deferred_ending.is_some() {
            return;
        }
        if self.events.is_empty() {
            let event = self.apply_ending(ending);
            self.events.push_back(event);
        } else {
            self.rx = Rx::Discard;
            self.message = None;
            self.deferred_ending = Some((self.events.len(), ending));
        }
    }

    fn apply_ending(&mut self, ending: Ending) -> Event {
        match ending {
            Ending::Failure(error) => {
                self.fail_connection(error.close_code());
                Event::Error(error)
            }
            Ending::PeerClose(frame) => self.peer_closed(frame),
        }
    }

    fn fail_connection(&mut self, code: u16) {
        if !self.close_sent {
            let frame = CloseFrame {
                code,
                reason: String::new(),
            };
            self.queue_frame(OpCode::Close, 0, &frame.payload());
            self.close_sent = true;
        }
        self.state = State::Closed;
        self.failed = true;
        self.rx = Rx::Discard;
        self.message = None;
        self.close_status = Some(CloseFrame {
            code,
            reason: String::new(),
        });
        self.timers.arm_close = true;
        self.timers.pong = None;
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
        if let Some((ahead, _)) = &mut self.deferred_ending {
            if *ahead > 0 {
                *ahead -= 1;
            } else if let Some((_, ending)) = self.deferred_ending.take() {
                return Some(self.apply_ending(ending));
            }
        }
        self.events.pop_front()
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

    /// Whether the driver should now shut down the write side of TCP (all output is written).
    /// The server closes TCP first after the closing handshake (§7.1.1); either side does after
    /// failing the connection. Keep reading until EOF, or until [`is_terminated`](Self::is_terminated).
    pub fn should_shutdown(&self) -> bool {
        self.state == State::Closed
            && self.out.is_empty()
            && (self.role == Role::Server || self.failed || self.terminated)
    }

    /// Whether the driver should close the socket and drop the connection: EOF received, a
    /// timeout, or (client) a handshake failure. A server that rejected a handshake first sends
    /// its HTTP response and shuts down, then waits for EOF or the close timer like any closed
    /// connection. Any output left is abandoned.
    pub fn is_terminated(&self) -> bool {
        self.terminated
    }

    // ----------------------------------------------------------------------------------------
    // Time
    // ----------------------------------------------------------------------------------------

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) has work to do.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.terminated {
            return None;
        }
        if self.timers.arm_close || self.timers.arm_ping {
            // A timer waits to be started: wake up now so that handle_timeout starts it.
            return Some(self.now);
        }
        [
            self.timers.handshake,
            self.timers.close,
            self.timers.next_ping,
            self.timers.pong,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The keepalive ping interval, if keepalive is on (a zero interval is off: it would
    /// leave a deadline that is always due).
    fn keepalive_interval(&self) -> Option<Duration> {
        self.config.ping_interval.filter(|i| !i.is_zero())
    }

    /// Tells the connection the time. Call it after every batch of input or commands (it starts
    /// the timers those may have requested) and whenever [`poll_timeout`](Self::poll_timeout)
    /// is reached. Expired timers send keepalive pings or end the connection.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        if self.terminated {
            return;
        }
        if std::mem::take(&mut self.timers.arm_close) {
            // `checked_add`: a timeout too large for `Instant` (e.g. `Duration::MAX`) is "never".
            self.timers.close = now.checked_add(self.config.close_timeout);
            self.timers.next_ping = None;
            self.timers.handshake = None;
        }
        // Keepalive only while open: a close queued before this first call must not leave a
        // ping deadline behind that nothing would ever consume.
        if std::mem::take(&mut self.timers.arm_ping) && self.state == State::Open {
            self.timers.next_ping = self.keepalive_interval().and_then(|i| now.checked_add(i));
        }
        if self.timers.handshake.is_some_and(|t| now >= t) {
            self.timers.handshake = None;
            self.events
                .push_back(Event::Error(Error::Timeout(TimeoutKind::Handshake)));
            self.end_handshake_unsuccessfully();
            self.terminated = true;
            return;
        }
        if self.timers.close.is_some_and(|t| now >= t) {
            self.timers.close = None;
            if !self.failed && self.close_status.is_none() {
                self.close_status = Some(CloseFrame {
                    code: close::ABNORMAL,
                    reason: String::new(),
                });
            }
            if self.state != State::Closed {
                self.events
                    .push_back(Event::Error(Error::Timeout(TimeoutKind::Close)));
                self.state = State::Closed;
            }
            self.terminated = true;
            return;
        }
        if self.timers.pong.is_some_and(|t| now >= t) {
            self.timers.pong = None;
            self.fail_with(Error::Timeout(TimeoutKind::Pong));
            self.handle_timeout(now); // start the close timer right away
            return;
        }
        if self.state == State::Open && self.timers.next_ping.is_some_and(|t| now >= t) {
            self.timers.next_ping = self.keepalive_interval().and_then(|i| now.checked_add(i));
            if self.ping_payload.is_none() {
                let mut payload = [0u8; 4];
                rand::rng().fill_bytes(&mut payload);
                self.queue_frame(OpCode::Ping, 0, &payload);
                self.ping_payload = Some(payload);
                self.timers.pong = now.checked_add(self.config.ping_timeout);
            }
        }
    }
}

/// A GET request that does not ask for a WebSocket upgrade.
fn is_plain_get(request: &Request) -> bool {
    request.method == "GET"
        && !request
            .headers
            .get("upgrade")
            .is_some_and(|v| handshake::has_token(v, "websocket"))
}
