//! The thread-safe handle to one connection, and the command path into its event loop.
//!
//! A [`Session`] posts commands to its loop. From another thread they go through a channel
//! and wake the loop with its `mio::Waker`; from a callback running on the loop itself they go
//! into a thread-local list the loop applies as soon as the callback returns (no syscall, no
//! lock held during callbacks, so no deadlock).

use std::cell::RefCell;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};

use ws_proto::frame::{MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use ws_proto::{close, fits_output_limit, CloseCode, PreparedMessage, SendError};

use crate::config::BackpressurePolicy;
use crate::handler::Message;
use crate::slab::Key;

/// Loop ids are unique in the process: the thread-local fast path below must never confuse
/// a client's loop with a server's.
static NEXT_LOOP_ID: AtomicUsize = AtomicUsize::new(0);

/// A fresh, process-unique loop id.
pub(crate) fn next_loop_id() -> usize {
    NEXT_LOOP_ID.fetch_add(1, Ordering::Relaxed)
}

/// Something to send on one connection.
#[derive(Debug)]
pub(crate) enum Outgoing {
    Text(String),
    Binary(Vec<u8>),
    Prepared(PreparedMessage),
    Ping(Vec<u8>),
    Close(CloseCode, String),
    /// Fail the connection (backpressure policy): a send of `refused` bytes found `buffered`
    /// bytes waiting.
    Fail {
        code: CloseCode,
        buffered: usize,
        refused: usize,
    },
}

impl Outgoing {
    /// Whether the output limit applies: everything but the closing is bounded, pings
    /// included (a peer that does not read must not make pings pile up either).
    pub(crate) fn is_limited(&self) -> bool {
        !matches!(self, Outgoing::Close(..) | Outgoing::Fail { .. })
    }

    /// What the command counts for in [`Shared::pending`] until the loop hands it over: its
    /// bytes on the wire, with the largest frame header for those not encoded yet: never less
    /// than what the connection will count for it, so a send the session admits is one the
    /// connection has room for, automatic control frames (pongs) aside. Under
    /// [`BackpressurePolicy::Close`], a send admitted here and refused there would fail the
    /// connection without the sender seeing `BufferFull`.
    pub(crate) fn len(&self) -> usize {
        match self {
            Outgoing::Text(t) => t.len() + MAX_HEADER_LEN,
            Outgoing::Binary(b) => b.len() + MAX_HEADER_LEN,
            Outgoing::Prepared(p) => p.wire_len(),
            Outgoing::Ping(p) => p.len() + MAX_HEADER_LEN,
            Outgoing::Close(_, r) => r.len(),
            Outgoing::Fail { .. } => 0,
        }
    }
}

/// A command for an event loop.
pub(crate) enum Command {
    Send(Key, Outgoing),
    Broadcast(PreparedMessage),
    Adopt(
        mio::net::TcpStream,
        SocketAddr,
        crate::event_loop::ListenerTls,
    ),
    Shutdown(CloseCode),
    /// Loop 0: accept on this listener too ([`Server::listen`](crate::Server::listen)).
    Listen(Box<crate::event_loop::Listener>),
}

/// The way into one event loop, shared by its sessions and by the server.
#[derive(Debug)]
pub(crate) struct LoopHandle {
    pub(crate) id: usize,
    tx: mpsc::Sender<Command>,
    waker: mio::Waker,
    /// Wire bytes of the broadcasts posted to this loop and not yet applied by it: bounded by
    /// [`Server::broadcast`](crate::Server::broadcast), so a busy loop cannot make the command
    /// queue grow without bound.
    pub(crate) broadcast_queued: AtomicUsize,
}

thread_local! {
    /// Commands posted from callbacks on the loop thread: (loop id, commands).
    static LOCAL: RefCell<Option<(usize, Vec<Command>)>> = const { RefCell::new(None) };
}

impl LoopHandle {
    pub(crate) fn new(id: usize, tx: mpsc::Sender<Command>, waker: mio::Waker) -> Self {
        LoopHandle {
            id,
            tx,
            waker,
            broadcast_queued: AtomicUsize::new(0),
        }
    }

    /// Posts a command; false if the loop is gone.
    pub(crate) fn submit(&self, command: Command) -> bool {
        let command = LOCAL.with(|local| match &mut *local.borrow_mut() {
            Some((id, queue)) if *id == self.id => {
                queue.push(command);
                None
            }
            _ => Some(command),
        });
        match command {
            None => true,
            Some(command) => self.tx.send(command).is_ok() && self.waker.wake().is_ok(),
        }
    }

    /// Marks the current thread as running loop `id` (a crew thread takes turns of several
    /// loops; each turn leaves the list empty). The list keeps its storage.
    pub(crate) fn enter(id: usize) {
        LOCAL.with(|local| match &mut *local.borrow_mut() {
            Some((current, queue)) => {
                debug_assert!(queue.is_empty(), "a turn left commands behind");
                *current = id;
            }
            empty => *empty = Some((id, Vec::new())),
        });
    }

    /// Takes the commands posted from callbacks on this thread.
    pub(crate) fn take_local(buf: &mut Vec<Command>) {
        LOCAL.with(|local| {
            if let Some((_, queue)) = &mut *local.borrow_mut() {
                std::mem::swap(queue, buf);
            }
        });
    }
}

/// State shared between a session handle and its loop.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) id: u64,
    pub(crate) key: Key,
    pub(crate) peer: SocketAddr,
    pub(crate) subprotocol: Option<String>,
    /// The extensions in effect, as in the server's response.
    pub(crate) extensions: Box<[ws_proto::handshake::ExtensionOffer]>,
    pub(crate) open: AtomicBool,
    /// Payload bytes posted and not yet handed to the connection, plus the bytes in its output
    /// buffer as of the loop's last look. One counter, so that a send moving from the queue to
    /// the buffer is never seen twice or not at all.
    pub(crate) pending: AtomicUsize,
    pub(crate) limit: usize,
    pub(crate) policy: BackpressurePolicy,
    /// A send was refused for buffer space since the last [`Handler::on_drain`](crate::Handler::on_drain).
    pub(crate) refused: AtomicBool,
    pub(crate) handle: Arc<LoopHandle>,
}

/// A handle to one WebSocket connection: cheap to clone, usable from any thread.
///
/// Sends are queued to the connection's event loop and written as the socket allows. Each
/// connection has a bounded outgoing buffer ([`ws_proto::Config::max_buffered_output`]): a
/// send that would go beyond it fails with [`SendError::BufferFull`] (and, with
/// [`BackpressurePolicy::Close`], closes the connection), so a peer that stops reading can
/// never make memory grow without bound. After a refusal,
/// [`Handler::on_drain`](crate::Handler::on_drain) says when to go on.
///
/// Replies never meet that limit: while a connection's output is high, its loop stops
/// reading it (see [`BackpressurePolicy`]), so what a handler sends in answer to the messages
/// it receives is held back by TCP flow control on the peer, not dropped.
///
/// A session is handed to every callback; keep a clone to send from elsewhere, for example
/// a timer thread:
///
/// ```
/// use std::time::Duration;
/// use ws_mio::{Handler, Session};
///
/// struct Ticker;
/// impl Handler for Ticker {
///     fn on_open(&mut self, session: &Session) {
///         let session = session.clone();
///         std::thread::spawn(move || {
///             // Until the connection ends: sends fail with `SendError::Closed` then.
///             while session.send_text("tick").is_ok() {
///                 std::thread::sleep(Duration::from_secs(1));
///             }
///         });
///     }
/// }
/// ```
#[derive(Clone)]
pub struct Session {
    pub(crate) shared: Arc<Shared>,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("id", &self.shared.id)
            .field("peer", &self.shared.peer)
            .field("open", &self.is_open())
            .finish()
    }
}

impl Session {
    /// A process-wide unique number for this connection.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The peer's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.shared.peer
    }

    /// The negotiated subprotocol.
    pub fn subprotocol(&self) -> Option<&str> {
        self.shared.subprotocol.as_deref()
    }

    /// The extensions in effect, with their parameters as in the server's response, e.g.
    /// `permessage-deflate; server_max_window_bits=12` when compression was negotiated.
    pub fn extensions(&self) -> &[ws_proto::handshake::ExtensionOffer] {
        &self.shared.extensions
    }

    /// Whether the connection is open (handshake done, no close sent or received).
    pub fn is_open(&self) -> bool {
        self.shared.open.load(Ordering::Acquire)
    }

    /// Bytes waiting to be written to this peer (queued sends and the output buffer).
    pub fn buffered_amount(&self) -> usize {
        self.shared.pending.load(Ordering::Acquire)
    }

    /// Sends a message.
    ///
    /// Errors: [`SendError::Closed`] once the connection is closing or gone,
    /// [`SendError::BufferFull`] when the output has no room for it.
    pub fn send(&self, message: Message) -> Result<(), SendError> {
        match message {
            Message::Text(text) => self.post(Outgoing::Text(text)),
            Message::Binary(data) => self.post(Outgoing::Binary(data)),
        }
    }

    /// Sends a text message.
    pub fn send_text(&self, text: impl Into<String>) -> Result<(), SendError> {
        self.post(Outgoing::Text(text.into()))
    }

    /// Sends a binary message.
    pub fn send_binary(&self, data: impl Into<Vec<u8>>) -> Result<(), SendError> {
        self.post(Outgoing::Binary(data.into()))
    }

    /// Sends a message encoded once for many sessions (no copy of its bytes per session).
    pub fn send_prepared(&self, message: &PreparedMessage) -> Result<(), SendError> {
        self.post(Outgoing::Prepared(message.clone()))
    }

    /// Sends a ping (at most 125 bytes of payload).
    pub fn ping(&self, payload: impl Into<Vec<u8>>) -> Result<(), SendError> {
        let payload = payload.into();
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong(payload.len()));
        }
        self.post(Outgoing::Ping(payload))
    }

    /// Starts the closing handshake with a code and reason (at most 123 bytes).
    ///
    /// ```
    /// # use ws_mio::{CloseCode, SendError};
    /// # fn demo(session: &ws_mio::Session) {
    /// session.close(CloseCode::NORMAL, "bye").unwrap();
    /// # }
    /// ```
    pub fn close(&self, code: CloseCode, reason: &str) -> Result<(), SendError> {
        close::check_close(code, reason)?;
        self.post(Outgoing::Close(code, reason.to_owned()))
    }

    fn post(&self, outgoing: Outgoing) -> Result<(), SendError> {
        if !self.is_open() {
            return Err(SendError::Closed);
        }
        let len = outgoing.len();
        let pending = self.buffered_amount();
        if outgoing.is_limited() && !fits_output_limit(pending, len, self.shared.limit) {
            self.shared.refused.store(true, Ordering::Release);
            if let BackpressurePolicy::Close(code) = self.shared.policy {
                let fail = Outgoing::Fail {
                    code,
                    buffered: pending,
                    refused: len,
                };
                self.shared
                    .handle
                    .submit(Command::Send(self.shared.key, fail));
            }
            return Err(SendError::BufferFull {
                buffered: pending,
                limit: self.shared.limit,
            });
        }
        self.shared.pending.fetch_add(len, Ordering::AcqRel);
        if self
            .shared
            .handle
            .submit(Command::Send(self.shared.key, outgoing))
        {
            Ok(())
        } else {
            self.shared.pending.fetch_sub(len, Ordering::AcqRel);
            Err(SendError::Closed)
        }
    }
}
