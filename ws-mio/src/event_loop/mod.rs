//! One mio event loop: a slab of connections (slot = token), a waker token for commands from
//! other threads, a timer heap feeding `Poll::poll`'s timeout, and a read buffer shared by
//! all its connections. All protocol decisions are `ws_proto::Connection`'s; this module only
//! moves bytes, time and callbacks.
//!
//! The parts: [`conn`] (a connection's socket I/O and driver state), [`dispatch`] (events to
//! the application), [`commands`] (sends, broadcasts, shutdown) and, here, the loop itself:
//! accepting, reading, writing, timers and removal.

mod commands;
mod conn;
#[cfg(unix)]
pub(crate) mod crew;
mod dispatch;

use std::io;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use log::{debug, error, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use ws_proto::{ClientRequest, Connection};

use crate::config::BackpressurePolicy;
use crate::handler::{Decision, Disconnect, DriverError, Factory, Handler};
use crate::session::{Command, LoopHandle, Session};
use crate::slab::{Key, Slab};
use crate::timer::TimerHeap;
use commands::{hand_over, sync_pending};
use conn::{closed_by, role_name, Closer, Conn, Socket, Written};
use dispatch::with_handler;

pub(crate) const WAKER: Token = Token(usize::MAX);
/// The token of the first listener; the next ones count down from it.
const FIRST_LISTENER: usize = usize::MAX - 1;
/// Reads per connection per wake-up before the loop serves the others (fairness).
const MAX_READS_PER_TURN: usize = 16;
/// How long to wait before accepting again after `accept` failed for want of resources.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// The longest a connection refused for capacity (503) waits for the peer's EOF.
const REFUSED_LINGER: Duration = Duration::from_secs(1);
/// Whether mio's selector here is edge-triggered epoll or kqueue, where a read that does not
/// fill the buffer proves the socket was drained, and data arriving later raises a new event:
/// reading on until `WouldBlock` would only cost one more syscall per wake-up.
const SHORT_READ_DRAINS: bool = cfg!(any(
    target_os = "linux",
    target_os = "android",
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "netbsd",
    target_os = "openbsd",
    target_os = "dragonfly",
));

static NEXT_SESSION_ID: AtomicU64 = AtomicU64::new(1);

/// Settings every loop of a server (or a client's loop) shares.
#[derive(Debug)]
pub(crate) struct LoopConfig {
    /// Shared by every connection of the loops (one copy, however many connections).
    pub(crate) protocol: Arc<ws_proto::Config>,
    pub(crate) backpressure: BackpressurePolicy,
    pub(crate) read_buffer_size: usize,
    pub(crate) stop_timeout: Duration,
    pub(crate) max_connections: usize,
    /// Client loops end when their connection does.
    pub(crate) exit_when_idle: bool,
}

impl LoopConfig {
    /// Reading a connection pauses when its output reaches this (see
    /// [`BackpressurePolicy`]): half the output limit.
    fn high_water(&self) -> usize {
        self.protocol.max_buffered_output / 2
    }

    /// Reading resumes when the output has drained to this: a quarter of the output limit.
    /// [`Handler::on_drain`] is called at the same mark.
    fn low_water(&self) -> usize {
        self.protocol.max_buffered_output / 4
    }
}

/// The TLS configuration of a listener's connections (`None`: plain TCP).
#[cfg(feature = "tls")]
pub(crate) type ListenerTls = Option<Arc<rustls::ServerConfig>>;
/// The TLS configuration of a listener's connections: always `None` without the `tls` feature.
#[cfg(not(feature = "tls"))]
pub(crate) type ListenerTls = Option<Arc<std::convert::Infallible>>;

/// A client's TLS session, ready to start its handshake (`None`: plain TCP).
#[cfg(feature = "tls")]
pub(crate) type ClientTls = Option<crate::tls::Session>;
/// A client's TLS session: always `None` without the `tls` feature.
#[cfg(not(feature = "tls"))]
pub(crate) type ClientTls = Option<std::convert::Infallible>;

/// The accepting side: owned by loop 0, which hands sockets round-robin to every loop.
pub(crate) struct Listener {
    pub(crate) listener: TcpListener,
    pub(crate) loops: Vec<Arc<LoopHandle>>,
    pub(crate) next: usize,
    pub(crate) tls: ListenerTls,
}

/// A client's connection, handed to its loop thread before the loop runs: TCP is connected
/// already (by `Client::connect`, which tries each address of the host in turn).
pub(crate) struct ConnectRequest<H> {
    pub(crate) stream: TcpStream,
    /// The address `stream` is connected to.
    pub(crate) addr: SocketAddr,
    /// The end of the connect timeout: the opening handshake must be over by then.
    pub(crate) deadline: Instant,
    pub(crate) request: ClientRequest,
    /// `wss://`: the TLS session, whose handshake starts once TCP is connected.
    pub(crate) tls: ClientTls,
    pub(crate) handler: H,
    pub(crate) notify: mpsc::Sender<Result<Session, DriverError>>,
}

/// The factory of a client's loop: its one connection comes with its handler, so requests
/// (which only servers receive) are never asked about.
pub(crate) struct ClientSide<H>(PhantomData<fn() -> H>);

impl<H> ClientSide<H> {
    pub(crate) fn new() -> Self {
        ClientSide(PhantomData)
    }
}

impl<H: Handler> Factory for ClientSide<H> {
    type Handler = H;

    fn on_request(
        &self,
        _request: &ws_proto::handshake::UpgradeRequest,
        _peer: &crate::handler::Peer,
    ) -> Decision<H> {
        Decision::reject(500, "")
    }
}

pub(crate) struct EventLoop<F: Factory> {
    id: usize,
    poll: Poll,
    conns: Slab<Conn<F::Handler>>,
    timers: TimerHeap,
    rx: mpsc::Receiver<Command>,
    handle: Arc<LoopHandle>,
    factory: Arc<F>,
    config: Arc<LoopConfig>,
    read_buf: Vec<u8>,
    /// Loop 0's listeners (a server may listen on several addresses, plain and TLS); the
    /// others have none. Listener `i` has token `FIRST_LISTENER - i`.
    listeners: Vec<Listener>,
    /// Sockets alive across the whole server (all loops).
    connections: Arc<AtomicUsize>,
    stop_deadline: Option<Instant>,
    again: Vec<Key>,
    /// Timer entries due in this pass (reused storage).
    due: Vec<(Instant, Key)>,
    /// When to try `accept` again after it failed for want of resources (file descriptors):
    /// the connections waiting in the backlog raise no new event of their own.
    accept_retry: Option<Instant>,
    /// `accept` failures in a row (the first is logged as an error, the others at debug).
    accept_failures: u64,
    /// Connections refused with 503 since the server reached `max_connections` (the first
    /// is logged as a warning, the others at debug).
    capacity_refusals: u64,
    dirty: Vec<Key>,
    /// The `again` or `dirty` list being worked through (both keep their storage).
    scratch: Vec<Key>,
    local: Vec<Command>,
    had_connection: bool,
}

/// What a loop is made of, besides its poll and command channel.
pub(crate) struct LoopParts<F> {
    pub(crate) handle: Arc<LoopHandle>,
    pub(crate) factory: Arc<F>,
    pub(crate) config: Arc<LoopConfig>,
    pub(crate) listener: Option<Listener>,
    pub(crate) connections: Arc<AtomicUsize>,
}

/// The token of listener `index`.
fn listener_token(index: usize) -> Token {
    Token(FIRST_LISTENER - index)
}

/// Runs an application callback, catching a panic so that it takes down at most its own
/// connection (failed with 1011 by the caller), never the loop with every other connection on
/// it. The panic hook still prints the panic as usual.
fn guarded<R>(callback: impl FnOnce() -> R) -> Option<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(callback)).ok()
}

/// Calls [`Factory::on_error`], catching (and logging) a panic.
fn factory_on_error<F: Factory>(
    factory: &F,
    peer: Option<SocketAddr>,
    error: &DriverError,
) -> Option<()> {
    let returned = guarded(|| factory.on_error(peer, error));
    if returned.is_none() {
        match peer {
            Some(peer) => error!("Factory::on_error panicked: peer={peer}"),
            None => error!("Factory::on_error panicked"),
        }
    }
    returned
}

impl<F: Factory> EventLoop<F> {
    pub(crate) fn new(
        poll: Poll,
        rx: mpsc::Receiver<Command>,
        parts: LoopParts<F>,
    ) -> io::Result<EventLoop<F>> {
        let LoopParts {
            handle,
            factory,
            config,
            mut listener,
            connections,
        } = parts;
        if let Some(l) = &mut listener {
            poll.registry()
                .register(&mut l.listener, listener_token(0), Interest::READABLE)?;
        }
        Ok(EventLoop {
            id: handle.id,
            poll,
            conns: Slab::default(),
            timers: TimerHeap::default(),
            rx,
            handle,
            factory,
            read_buf: vec![0; config.read_buffer_size.max(1024)],
            config,
            listeners: listener.into_iter().collect(),
            connections,
            stop_deadline: None,
            again: Vec::new(),
            due: Vec::new(),
            accept_retry: None,
            accept_failures: 0,
            capacity_refusals: 0,
            dirty: Vec::new(),
            scratch: Vec::new(),
            local: Vec::new(),
            had_connection: false,
        })
    }

    /// Runs the loop on the calling thread until it finishes (a client's loop; a server's
    /// loops are served by a [`crew::Crew`] where the platform allows).
    pub(crate) fn run(mut self) {
        LoopHandle::enter(self.id);
        let mut events = Events::with_capacity(1024);
        loop {
            let timeout = self
                .next_turn()
                .map(|at| at.saturating_duration_since(Instant::now()));
            if !self.turn(&mut events, timeout) {
                break;
            }
        }
    }

    /// When the loop needs its next turn even if no I/O comes: its earliest timer, the end of
    /// a stop, an accept retry, or now when connections wait to be read again. `None`: only
    /// I/O (or a command) will need it.
    pub(crate) fn next_turn(&self) -> Option<Instant> {
        if !self.again.is_empty() {
            return Some(Instant::now());
        }
        let mut deadline = self.timers.next_deadline();
        for other in [self.stop_deadline, self.accept_retry]
            .into_iter()
            .flatten()
        {
            deadline = Some(deadline.map_or(other, |d| d.min(other)));
        }
        deadline
    }

    /// One turn: waits up to `timeout` for I/O (`Some(ZERO)`: takes only what is ready; `None`:
    /// waits for as long as it takes), handles it, runs the due timers and writes what the
    /// turn produced. Returns false once the loop has finished (stopped, or a client's loop
    /// whose connection ended).
    pub(crate) fn turn(&mut self, events: &mut Events, timeout: Option<Duration>) -> bool {
        if let Err(e) = self.poll.poll(events, timeout) {
            if e.kind() == io::ErrorKind::Interrupted {
                return true;
            }
            error!("event loop {} stopped: poll failed: {e}", self.id);
            factory_on_error(&*self.factory, None, &DriverError::from(e));
            return false;
        }
        let now = Instant::now();
        for event in events.iter() {
            match event.token() {
                WAKER => self.drain_commands(now),
                Token(t) if FIRST_LISTENER - t < self.listeners.len() => {
                    self.accept(FIRST_LISTENER - t, now)
                }
                Token(index) => {
                    if let Some(key) = self.conns.key_at(index) {
                        let readable =
                            event.is_readable() || event.is_read_closed() || event.is_error();
                        let writable = event.is_writable() || event.is_write_closed();
                        // An end of stream or error must be read to be seen.
                        let drain = event.is_read_closed() || event.is_error();
                        self.drive(key, readable, writable, drain, now);
                    }
                }
            }
        }
        // Through `scratch`, so that both lists keep their storage (no allocation per pass).
        std::mem::swap(&mut self.again, &mut self.scratch);
        for i in 0..self.scratch.len() {
            self.drive(self.scratch[i], true, false, true, now);
        }
        self.scratch.clear();
        if self.accept_retry.is_some_and(|at| now >= at) {
            self.accept_retry = None;
            for index in 0..self.listeners.len() {
                self.accept(index, now);
            }
        }
        self.run_timers(now);
        self.flush_dirty(now);
        // Nothing posted on this thread may wait past the turn: a crew thread's next turn
        // may be another loop's.
        self.apply_local(now);
        self.flush_dirty(now);
        if let Some(stop) = self.stop_deadline {
            if self.conns.len() == 0 {
                return false;
            }
            if now >= stop {
                for key in self.conns.keys() {
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.error.get_or_insert(DriverError::Shutdown);
                    }
                    self.remove(key);
                }
                return false;
            }
        }
        !(self.config.exit_when_idle && self.had_connection && self.conns.len() == 0)
    }

    /// The loop's id (unique in the process): what [`LoopHandle::enter`] marks a thread with.
    pub(crate) fn id(&self) -> usize {
        self.id
    }

    // ----------------------------------------------------------------------------------------
    // Timers
    // ----------------------------------------------------------------------------------------

    fn run_timers(&mut self, now: Instant) {
        // Take the due entries first: an update may reschedule its connection at `now` again,
        // which must wait for the next pass instead of spinning in this one.
        let mut due = std::mem::take(&mut self.due);
        due.extend(std::iter::from_fn(|| self.timers.pop_expired(now)));
        for (at, key) in due.drain(..) {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.deadline == Some(at) {
                conn.deadline = None;
                self.update(key, now);
            }
        }
        // Like the timer heap, keep no burst's worth of storage.
        due.shrink_to(64);
        self.due = due;
    }

    fn schedule(&mut self, key: Key) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let next = conn.proto.poll_timeout();
        if next != conn.deadline {
            conn.deadline = next;
            if let Some(at) = next {
                self.timers.schedule(at, key);
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // Connections in
    // ----------------------------------------------------------------------------------------

    /// Adds a listener (loop 0 only): its connections are handed round-robin to every loop.
    pub(super) fn add_listener(&mut self, mut listener: Listener) {
        if self.stop_deadline.is_some() {
            return;
        }
        let token = listener_token(self.listeners.len());
        match self
            .poll
            .registry()
            .register(&mut listener.listener, token, Interest::READABLE)
        {
            Ok(()) => {
                self.listeners.push(listener);
                // Connections may be waiting already.
                self.accept(self.listeners.len() - 1, Instant::now());
            }
            Err(e) => {
                error!("cannot register a listener: {e}");
                factory_on_error(&*self.factory, None, &DriverError::from(e));
            }
        }
    }

    fn accept(&mut self, index: usize, now: Instant) {
        loop {
            let Some(l) = self.listeners.get_mut(index) else {
                return;
            };
            let (stream, peer) = match l.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // Out of file descriptors or similar: report, and try again shortly (the
                    // edge-triggered listener may raise no event for connections already
                    // waiting).
                    if self.accept_failures == 0 {
                        error!("accept failed: {e}; retrying every {ACCEPT_RETRY:?}");
                    } else {
                        debug!("accept failed again: {e}");
                    }
                    self.accept_failures += 1;
                    factory_on_error(&*self.factory, None, &DriverError::from(e));
                    self.accept_retry = Some(now + ACCEPT_RETRY);
                    return;
                }
            };
            if self.accept_failures > 0 {
                info!(
                    "accepting again after {} failed accepts",
                    self.accept_failures
                );
                self.accept_failures = 0;
            }
            let _ = stream.set_nodelay(true);
            let max = self.config.max_connections;
            if self.connections.load(Ordering::Acquire) >= max {
                if self.capacity_refusals == 0 {
                    warn!("at capacity (max_connections={max}): refusing peer={peer} with 503");
                } else {
                    debug!("at capacity: refusing peer={peer} with 503");
                }
                self.capacity_refusals += 1;
                // Answered here, on the accepting loop, through the normal output path.
                let mut protocol = ws_proto::Config::clone(&self.config.protocol);
                protocol.close_timeout = protocol.close_timeout.min(REFUSED_LINGER);
                let refused = Connection::refuse(protocol, 503, "too many connections\n", now);
                self.connections.fetch_add(1, Ordering::AcqRel);
                let tls = l.tls.clone();
                self.add_conn(stream, peer, refused, &tls);
                continue;
            }
            if self.capacity_refusals > 0 {
                info!(
                    "below capacity again: accepting (refused {} connections with 503 meanwhile)",
                    self.capacity_refusals
                );
                self.capacity_refusals = 0;
            }
            self.connections.fetch_add(1, Ordering::AcqRel);
            let target = Arc::clone(&l.loops[l.next % l.loops.len()]);
            l.next = l.next.wrapping_add(1);
            let tls = l.tls.clone();
            if target.id == self.id {
                self.add_server_conn(stream, peer, &tls, now);
            } else if !target.submit(Command::Adopt(stream, peer, tls)) {
                self.connections.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    pub(super) fn add_server_conn(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        tls: &ListenerTls,
        now: Instant,
    ) {
        if self.stop_deadline.is_some() {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let proto = Connection::server(Arc::clone(&self.config.protocol), now);
        self.add_conn(stream, peer, proto, tls);
    }

    /// Registers an accepted socket with its protocol state (and its TLS session: the
    /// handshake timer, already running, covers the TLS handshake too).
    fn add_conn(
        &mut self,
        stream: TcpStream,
        peer: SocketAddr,
        proto: Connection,
        tls: &ListenerTls,
    ) {
        let key = self.conns.vacant_key();
        #[allow(unused_mut)]
        let mut socket = Socket::accepted(stream);
        #[cfg(feature = "tls")]
        if let Some(config) = tls {
            match rustls::ServerConnection::new(Arc::clone(config)) {
                Ok(session) => socket = socket.with_tls(session.into()),
                Err(e) => {
                    self.connections.fetch_sub(1, Ordering::AcqRel);
                    warn!("cannot start TLS on an accepted socket: peer={peer} error=\"{e}\"");
                    factory_on_error(&*self.factory, Some(peer), &DriverError::Tls(e));
                    return;
                }
            }
        }
        #[cfg(not(feature = "tls"))]
        let _ = tls;
        if let Err(e) = socket.register(self.poll.registry(), Token(key.index), Interest::READABLE)
        {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            warn!("cannot register an accepted socket: peer={peer} error=\"{e}\"");
            factory_on_error(&*self.factory, Some(peer), &DriverError::from(e));
            return;
        }
        let key = self.insert(Conn::new(socket, proto, peer, None, None));
        // The request may already be waiting: edge-triggered readiness fired before
        // registration. A refused connection has its response to write.
        self.again.push(key);
        self.mark_dirty(key);
    }

    /// Client: starts the opening handshake on the loop's one connection.
    pub(crate) fn connect(&mut self, request: ConnectRequest<F::Handler>, now: Instant) {
        let ConnectRequest {
            stream,
            addr,
            deadline,
            request,
            tls,
            handler,
            notify,
        } = request;
        self.had_connection = true;
        let path = request.path.clone();
        // Registered like a socket whose connect is in progress: the first event (or the pass
        // queued below) finds it connected and writes the request.
        let key = self.conns.vacant_key();
        #[allow(unused_mut)]
        let mut socket = Socket::connecting(stream);
        #[cfg(feature = "tls")]
        if let Some(session) = tls {
            socket = socket.with_tls(session);
        }
        #[cfg(not(feature = "tls"))]
        let _ = tls;
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = socket.register(self.poll.registry(), Token(key.index), interest) {
            debug!("client connect failed: peer={addr} path={path:?} error=\"I/O error: {e}\"");
            let _ = notify.send(Err(DriverError::from(e)));
            return;
        }
        self.connections.fetch_add(1, Ordering::AcqRel);
        // The handshake gets what is left of the connect timeout.
        let mut protocol = ws_proto::Config::clone(&self.config.protocol);
        protocol.handshake_timeout = Some(deadline.saturating_duration_since(now));
        let proto = Connection::client(protocol, request, now);
        let mut conn = Conn::new(socket, proto, addr, Some(handler), Some(notify));
        conn.path = Some(path);
        let key = self.insert(conn);
        self.again.push(key);
    }

    fn insert(&mut self, conn: Conn<F::Handler>) -> Key {
        self.had_connection = true;
        let key = self.conns.insert(conn);
        self.schedule(key);
        key
    }

    // ----------------------------------------------------------------------------------------
    // Reading, writing, removing
    // ----------------------------------------------------------------------------------------

    /// Handles readiness of one connection; `drain` reads until `WouldBlock` even after a
    /// short read.
    fn drive(&mut self, key: Key, readable: bool, writable: bool, drain: bool, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.socket.is_connecting() {
            if !readable && !writable {
                return;
            }
            match conn.socket.finish_connect() {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => return self.fail_io(key, e, now),
            }
        }
        if readable {
            self.read(key, drain, now);
        }
        self.update(key, now);
    }

    fn read(&mut self, key: Key, drain: bool, now: Instant) {
        let high_water = self.config.high_water();
        for _ in 0..MAX_READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.proto.is_terminated() {
                return;
            }
            if !conn.may_read(high_water) {
                // The peer is not reading what we send: stop reading what it sends until it
                // does, so TCP flow control slows it down; replies are never refused for room.
                conn.read_paused = true;
                return;
            }
            match conn.socket.read(&mut self.read_buf) {
                Ok(0) => {
                    conn.proto.receive_eof(now);
                    self.dispatch(key, now);
                    return;
                }
                Ok(n) => {
                    let short_read_drains = conn.socket.short_read_drains();
                    conn.proto.receive(&self.read_buf[..n], now);
                    self.dispatch(key, now);
                    if n < self.read_buf.len() && !drain && SHORT_READ_DRAINS && short_read_drains {
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail_io(key, e, now),
            }
        }
        self.again.push(key);
    }

    fn fail_io(&mut self, key: Key, error: io::Error, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        let error = DriverError::from(error);
        if conn.error.is_none() {
            // An open connection's error is in its close line; a client's in its connect
            // failure's.
            if conn.session.is_some() {
                with_handler(conn, "on_error", |h, s| h.on_error(s, &error));
            } else if conn.notify.is_none() {
                debug!(
                    "connection failed before its handshake completed: peer={} path={} error=\"{error}\"",
                    conn.peer,
                    conn.path()
                );
                factory_on_error(&*self.factory, Some(conn.peer), &error);
            }
            if let Some(conn) = self.conns.get_mut(key) {
                conn.error.set(error);
            }
        }
        if let Some(conn) = self.conns.get_mut(key) {
            conn.proto.receive_eof(now);
        }
        self.dispatch(key, now);
        self.remove(key);
    }

    /// After any activity: runs due timers, writes output, adjusts interest and reading,
    /// shuts down or removes the connection, and reschedules its deadline.
    fn update(&mut self, key: Key, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.dirty = false;
        if conn.proto.poll_timeout().is_some_and(|at| at <= now) {
            conn.proto.handle_timeout(now);
            self.dispatch(key, now);
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.socket.is_connecting() {
            if conn.proto.is_terminated() {
                conn.error.get_or_insert(DriverError::ConnectTimeout);
                self.remove(key);
            } else {
                self.schedule(key);
            }
            return;
        }
        // Write what we can, handing over deferred sends as room appears.
        hand_over(conn, &self.config, now);
        while !conn.proto.is_terminated() {
            match conn.socket.write_from(&mut conn.proto) {
                Ok(Written::All) if !conn.deferred.is_empty() => {
                    let before = conn.deferred.len();
                    hand_over(conn, &self.config, now);
                    if conn.deferred.len() == before {
                        break;
                    }
                }
                Ok(_) => break,
                Err(e) => return self.fail_io(key, e, now),
            }
        }
        hand_over(conn, &self.config, now);
        sync_pending(conn, 0);
        let buffered = conn.proto.buffered_amount();
        let low_water = self.config.low_water();
        if let Some(session) = &conn.session {
            if conn.proto.state() != ws_proto::State::Open {
                session.shared.open.store(false, Ordering::Release);
            }
        }
        // Only when a read may happen: resuming into a read that pauses at once would spin.
        if conn.read_paused && buffered <= low_water && conn.may_read(self.config.high_water()) {
            conn.read_paused = false;
            self.again.push(key);
        }
        // Only an open connection may go on sending: one failed by the backpressure policy
        // (or closing for any reason) is not told to.
        let open = conn.proto.state() == ws_proto::State::Open;
        let drained = conn.session.as_ref().is_some_and(|s| {
            open && s.buffered_amount() <= low_water
                && s.shared.refused.swap(false, Ordering::AcqRel)
        });
        if drained {
            if with_handler(conn, "on_drain", |h, s| h.on_drain(s)).is_none() {
                // A panicking on_drain fails the connection like any callback.
                conn.error.get_or_insert(DriverError::HandlerPanicked);
                if conn
                    .proto
                    .fail(ws_proto::CloseCode::INTERNAL_ERROR, now)
                    .is_ok()
                {
                    conn.closed_by(Closer::Failing);
                }
            }
            self.apply_local(now);
            self.mark_dirty(key);
        }
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.proto.should_shutdown() {
            conn.socket.shutdown_write();
        }
        let token = Token(key.index);
        // The socket's own output too: TLS records (a close_notify waiting to go out).
        let want_writable = conn.proto.buffered_amount() > 0 || conn.socket.wants_write();
        if let Err(e) = conn
            .socket
            .want_writable(self.poll.registry(), token, want_writable)
        {
            return self.fail_io(key, e, now);
        }
        if conn.proto.is_terminated() {
            self.remove(key);
        } else {
            self.schedule(key);
        }
    }

    fn remove(&mut self, key: Key) {
        let Some(mut conn) = self.conns.remove(key) else {
            return;
        };
        conn.socket.deregister(self.poll.registry());
        self.connections.fetch_sub(1, Ordering::AcqRel);
        if let Some(session) = conn.session.clone() {
            session.shared.open.store(false, Ordering::Release);
            let status = conn.proto.close_status();
            let disconnect = Disconnect {
                code: status.map_or(ws_proto::CloseCode::ABNORMAL, |s| s.code),
                reason: status.map(|s| s.reason.clone()).unwrap_or_default(),
                error: conn.error.take(),
            };
            debug!(
                "{} connection closed: peer={} path={} code={} reason={:?} by={}{}",
                role_name(conn.proto.role()),
                conn.peer,
                conn.path(),
                disconnect.code,
                disconnect.reason,
                closed_by(conn.closer, disconnect.code),
                ErrorField(disconnect.error.as_ref()),
            );
            with_handler(&mut conn, "on_close", |h, s| h.on_close(s, &disconnect));
        } else if let Some(notify) = conn.notify.take() {
            let error = conn.error.take().unwrap_or(DriverError::ConnectTimeout);
            debug!(
                "client connect failed: peer={} path={} error=\"{error}\"",
                conn.peer,
                conn.path()
            );
            let _ = notify.send(Err(error));
        }
        self.apply_local(Instant::now());
    }
}

/// ` error="..."` after a close line, when the connection ended with an error.
struct ErrorField<'a>(Option<&'a DriverError>);

impl std::fmt::Display for ErrorField<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(e) => write!(f, " error={:?}", e.to_string()),
            None => Ok(()),
        }
    }
}
