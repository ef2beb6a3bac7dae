//! One mio event loop: a slab of connections (slot = token), a waker token for commands from
//! other threads, a timer heap feeding `Poll::poll`'s timeout, and a read buffer shared by
//! all its connections. All protocol decisions are `ws_proto::Connection`'s; this file only
//! moves bytes, time and callbacks.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use ws_proto::{close, Connection, Event, State};

use crate::client::ConnectRequest;
use crate::config::BackpressurePolicy;
use crate::handler::{Decision, Disconnect, DriverError, Handler, HttpResponse, Message};
use crate::session::{Command, LoopHandle, Outgoing, Session, Shared};
use crate::slab::{Key, Slab};
use crate::timer::TimerHeap;

pub(crate) const WAKER: Token = Token(usize::MAX);
const LISTENER: Token = Token(usize::MAX - 1);
/// Reads per connection per wake-up before the loop serves the others (fairness).
const MAX_READS_PER_TURN: usize = 16;
/// Slices per vectored write.
const MAX_IOV: usize = 64;
/// How long to wait before accepting again after `accept` failed for want of resources.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
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
    pub(crate) protocol: ws_proto::Config,
    pub(crate) backpressure: BackpressurePolicy,
    pub(crate) read_buffer_size: usize,
    pub(crate) stop_timeout: Duration,
    pub(crate) max_connections: usize,
    /// Client loops end when their connection does.
    pub(crate) exit_when_idle: bool,
}

/// The accepting side: owned by loop 0, which hands sockets round-robin to every loop.
pub(crate) struct Listener {
    pub(crate) listener: TcpListener,
    pub(crate) loops: Vec<Arc<LoopHandle>>,
    pub(crate) next: usize,
}

struct Conn {
    stream: TcpStream,
    proto: Connection,
    peer: SocketAddr,
    session: Option<Session>,
    /// Client: TCP connect still in progress.
    connecting: bool,
    writable_interest: bool,
    write_shut: bool,
    /// Reading stopped because the output buffer is over its limit.
    read_paused: bool,
    dirty: bool,
    /// The deadline currently in the timer heap for this connection.
    deadline: Option<Instant>,
    /// The first failure, reported in the disconnect.
    error: Option<DriverError>,
    /// Sends not handed to `proto` yet (see [`EventLoop::hand_over`]).
    deferred: VecDeque<Outgoing>,
    /// Output bytes counted in the session's `pending` (see [`EventLoop::sync_pending`]).
    reported: usize,
    /// Client: who waits for the handshake's outcome.
    notify: Option<mpsc::Sender<Result<Session, DriverError>>>,
}

pub(crate) struct EventLoop {
    id: usize,
    poll: Poll,
    conns: Slab<Conn>,
    timers: TimerHeap,
    rx: mpsc::Receiver<Command>,
    handle: Arc<LoopHandle>,
    handler: Arc<dyn Handler>,
    config: Arc<LoopConfig>,
    read_buf: Vec<u8>,
    listener: Option<Listener>,
    /// Sockets alive across the whole server (all loops).
    connections: Arc<AtomicUsize>,
    stop_deadline: Option<Instant>,
    again: Vec<Key>,
    /// Timer entries due in this pass (reused storage).
    due: Vec<(Instant, Key)>,
    /// When to try `accept` again after it failed for want of resources (file descriptors):
    /// the connections waiting in the backlog raise no new event of their own.
    accept_retry: Option<Instant>,
    dirty: Vec<Key>,
    local: Vec<Command>,
    had_connection: bool,
}

/// Runs a handler callback, catching a panic so that it takes down at most its own connection
/// (failed with 1011 by the caller), never the loop with every other connection on it. The
/// panic hook still prints the panic as usual.
fn guarded<R>(callback: impl FnOnce() -> R) -> Option<R> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(callback)).ok()
}

impl EventLoop {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        id: usize,
        poll: Poll,
        rx: mpsc::Receiver<Command>,
        handle: Arc<LoopHandle>,
        handler: Arc<dyn Handler>,
        config: Arc<LoopConfig>,
        listener: Option<Listener>,
        connections: Arc<AtomicUsize>,
    ) -> io::Result<EventLoop> {
        let mut listener = listener;
        if let Some(l) = &mut listener {
            poll.registry()
                .register(&mut l.listener, LISTENER, Interest::READABLE)?;
        }
        Ok(EventLoop {
            id,
            poll,
            conns: Slab::default(),
            timers: TimerHeap::default(),
            rx,
            handle,
            handler,
            read_buf: vec![0; config.read_buffer_size.max(1024)],
            config,
            listener,
            connections,
            stop_deadline: None,
            again: Vec::new(),
            due: Vec::new(),
            accept_retry: None,
            dirty: Vec::new(),
            local: Vec::new(),
            had_connection: false,
        })
    }

    pub(crate) fn run(mut self) {
        LoopHandle::enter(self.id);
        let mut events = Events::with_capacity(1024);
        loop {
            let now = Instant::now();
            let mut deadline = self.timers.next_deadline();
            for other in [self.stop_deadline, self.accept_retry]
                .into_iter()
                .flatten()
            {
                deadline = Some(deadline.map_or(other, |d| d.min(other)));
            }
            let timeout = if self.again.is_empty() {
                deadline.map(|d| d.saturating_duration_since(now))
            } else {
                Some(Duration::ZERO)
            };
            if let Err(e) = self.poll.poll(&mut events, timeout) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                guarded(|| self.handler.on_error(None, &DriverError::from(e)));
                break;
            }
            let now = Instant::now();
            for event in events.iter() {
                match event.token() {
                    WAKER => self.drain_commands(now),
                    LISTENER => self.accept(now),
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
            for key in std::mem::take(&mut self.again) {
                self.drive(key, true, false, true, now);
            }
            if self.accept_retry.is_some_and(|at| now >= at) {
                self.accept_retry = None;
                self.accept(now);
            }
            // Take the due entries first: an update may reschedule its connection at `now`
            // again, which must wait for the next pass instead of spinning in this one.
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
            self.flush_dirty(now);
            if let Some(stop) = self.stop_deadline {
                if self.conns.len() == 0 {
                    break;
                }
                if now >= stop {
                    for key in self.conns.keys() {
                        if let Some(conn) = self.conns.get_mut(key) {
                            conn.error.get_or_insert(DriverError::Shutdown);
                        }
                        self.remove(key);
                    }
                    break;
                }
            }
            if self.config.exit_when_idle && self.had_connection && self.conns.len() == 0 {
                break;
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // Commands
    // ----------------------------------------------------------------------------------------

    fn drain_commands(&mut self, now: Instant) {
        while let Ok(command) = self.rx.try_recv() {
            self.apply(command, now);
        }
    }

    fn apply_local(&mut self, now: Instant) {
        loop {
            LoopHandle::take_local(&mut self.local);
            if self.local.is_empty() {
                return;
            }
            let mut local = std::mem::take(&mut self.local);
            for command in local.drain(..) {
                self.apply(command, now);
            }
            self.local = local;
        }
    }

    fn apply(&mut self, command: Command, now: Instant) {
        match command {
            Command::Send(key, outgoing) => {
                let Some(conn) = self.conns.get_mut(key) else {
                    return;
                };
                conn.deferred.push_back(outgoing);
                Self::hand_over(conn, &self.config);
                self.mark_dirty(key);
            }
            Command::Broadcast(message) => {
                self.handle
                    .broadcast_queued
                    .fetch_sub(message.wire_len(), Ordering::AcqRel);
                let limit = self.config.protocol.max_buffered_output;
                for key in self.conns.keys() {
                    let Some(conn) = self.conns.get_mut(key) else {
                        continue;
                    };
                    if conn.session.is_none() || conn.proto.state() != State::Open {
                        continue;
                    }
                    let buffered = conn.proto.buffered_amount();
                    let full = buffered > 0 && buffered + message.wire_len() > limit;
                    if full || !conn.deferred.is_empty() {
                        if let BackpressurePolicy::Close(code) = self.config.backpressure {
                            conn.error.get_or_insert(DriverError::SlowConsumer);
                            let _ = conn.proto.fail(code);
                            self.mark_dirty(key);
                        }
                        continue;
                    }
                    let _ = conn.proto.send_prepared(&message);
                    self.mark_dirty(key);
                }
            }
            Command::Adopt(stream, peer) => self.add_server_conn(stream, peer, now),
            Command::Connect(request) => self.add_client_conn(*request, now),
            Command::Shutdown(code) => self.begin_stop(code, now),
        }
    }

    /// Hands the connection the sends posted for it, in order. With the `Error` policy, a
    /// message the connection has no room for yet stays in `deferred` (still counted in the
    /// session's `pending`) until writes make room: the session admitted it, so it must not be
    /// lost. The session's check can pass what the connection's refuses (sends still in the
    /// channel count their payload without frame headers, automatic control frames join the
    /// buffer unseen, several threads may send at once), so this does happen.
    fn hand_over(conn: &mut Conn, config: &LoopConfig) {
        let limit = config.protocol.max_buffered_output;
        while let Some(next) = conn.deferred.front() {
            let limited = !matches!(next, Outgoing::Close(..) | Outgoing::Fail(_));
            let buffered = conn.proto.buffered_amount();
            if config.backpressure == BackpressurePolicy::Error
                && limited
                && buffered > 0
                && buffered + next.len() > limit
            {
                return;
            }
            let Some(outgoing) = conn.deferred.pop_front() else {
                return;
            };
            let len = outgoing.len();
            let result = match outgoing {
                Outgoing::Text(text) => conn.proto.send_text(text),
                Outgoing::Binary(data) => conn.proto.send_binary(data),
                Outgoing::Prepared(message) => conn.proto.send_prepared(&message),
                Outgoing::Ping(payload) => conn.proto.ping(&payload),
                Outgoing::Close(code, reason) => conn.proto.close(code, &reason),
                Outgoing::Fail(code) => {
                    conn.error.get_or_insert(DriverError::SlowConsumer);
                    conn.proto.fail(code)
                }
            };
            if let Err(ws_proto::SendError::BufferFull { .. }) = result {
                if let BackpressurePolicy::Close(code) = config.backpressure {
                    conn.error.get_or_insert(DriverError::SlowConsumer);
                    let _ = conn.proto.fail(code);
                }
            }
            Self::sync_pending(conn, len);
        }
    }

    /// Brings the session's `pending` count in line with the output buffer, `handed` bytes of
    /// posted sends having moved into it since the last call.
    fn sync_pending(conn: &mut Conn, handed: usize) {
        let Some(session) = &conn.session else {
            return;
        };
        let buffered = conn.proto.buffered_amount();
        let gone = conn.reported + handed;
        if buffered >= gone {
            session
                .shared
                .pending
                .fetch_add(buffered - gone, Ordering::AcqRel);
        } else {
            session
                .shared
                .pending
                .fetch_sub(gone - buffered, Ordering::AcqRel);
        }
        conn.reported = buffered;
    }

    fn mark_dirty(&mut self, key: Key) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    fn flush_dirty(&mut self, now: Instant) {
        while !self.dirty.is_empty() {
            for key in std::mem::take(&mut self.dirty) {
                self.update(key, now);
            }
        }
    }

    fn begin_stop(&mut self, code: u16, now: Instant) {
        if self.stop_deadline.is_some() {
            return;
        }
        // A timeout too large for `Instant` waits as long as the closing handshakes take.
        let far = now + Duration::from_secs(100 * 365 * 24 * 3600);
        self.stop_deadline = Some(now.checked_add(self.config.stop_timeout).unwrap_or(far));
        if let Some(mut l) = self.listener.take() {
            let _ = self.poll.registry().deregister(&mut l.listener);
        }
        for key in self.conns.keys() {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            match conn.proto.state() {
                State::Open => {
                    let _ = conn.proto.close(code, "");
                    self.mark_dirty(key);
                }
                State::Connecting => {
                    conn.error.get_or_insert(DriverError::Shutdown);
                    self.remove(key);
                }
                State::Closing | State::Closed => {}
            }
        }
    }

    // ----------------------------------------------------------------------------------------
    // Connections
    // ----------------------------------------------------------------------------------------

    fn accept(&mut self, now: Instant) {
        loop {
            let Some(l) = &mut self.listener else { return };
            let (mut stream, peer) = match l.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // Out of file descriptors or similar: report, and try again shortly (the
                    // edge-triggered listener may raise no event for connections already
                    // waiting).
                    guarded(|| self.handler.on_error(None, &DriverError::from(e)));
                    self.accept_retry = Some(now + ACCEPT_RETRY);
                    return;
                }
            };
            if self.connections.load(Ordering::Acquire) >= self.config.max_connections {
                let response =
                    ws_proto::handshake::error_response(503, &[], "too many connections\n");
                let _ = stream.write(&response);
                continue;
            }
            let _ = stream.set_nodelay(true);
            self.connections.fetch_add(1, Ordering::AcqRel);
            let target = Arc::clone(&l.loops[l.next % l.loops.len()]);
            l.next = l.next.wrapping_add(1);
            if target.id == self.id {
                self.add_server_conn(stream, peer, now);
            } else if !target.submit(Command::Adopt(stream, peer)) {
                self.connections.fetch_sub(1, Ordering::AcqRel);
            }
        }
    }

    fn add_server_conn(&mut self, mut stream: TcpStream, peer: SocketAddr, now: Instant) {
        if self.stop_deadline.is_some() {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            return;
        }
        let key = self.conns.vacant_key();
        if let Err(e) =
            self.poll
                .registry()
                .register(&mut stream, Token(key.index), Interest::READABLE)
        {
            self.connections.fetch_sub(1, Ordering::AcqRel);
            guarded(|| self.handler.on_error(None, &DriverError::from(e)));
            return;
        }
        let proto = Connection::server(self.config.protocol.clone(), now);
        self.insert(Conn::new(stream, proto, peer, false, None), now);
        // The request may already be waiting: edge-triggered readiness fired before registration.
        self.again.push(key);
    }

    fn add_client_conn(&mut self, request: ConnectRequest, now: Instant) {
        let ConnectRequest {
            addr,
            request,
            notify,
        } = request;
        let mut stream = match TcpStream::connect(addr) {
            Ok(stream) => stream,
            Err(e) => {
                let _ = notify.send(Err(DriverError::from(e)));
                self.had_connection = true;
                return;
            }
        };
        let key = self.conns.vacant_key();
        let interest = Interest::READABLE | Interest::WRITABLE;
        if let Err(e) = self
            .poll
            .registry()
            .register(&mut stream, Token(key.index), interest)
        {
            let _ = notify.send(Err(DriverError::from(e)));
            self.had_connection = true;
            return;
        }
        self.connections.fetch_add(1, Ordering::AcqRel);
        let proto = Connection::client(self.config.protocol.clone(), request, now);
        let mut conn = Conn::new(stream, proto, addr, true, Some(notify));
        conn.writable_interest = true;
        self.insert(conn, now);
    }

    fn insert(&mut self, conn: Conn, now: Instant) {
        self.had_connection = true;
        let key = self.conns.insert(conn);
        self.schedule(key, now);
    }

    fn schedule(&mut self, key: Key, _now: Instant) {
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

    /// Handles readiness of one connection; `drain` reads until `WouldBlock` even after a
    /// short read.
    fn drive(&mut self, key: Key, readable: bool, writable: bool, drain: bool, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.connecting {
            if !readable && !writable {
                return;
            }
            match conn.stream.take_error() {
                Ok(None) => {}
                Ok(Some(e)) | Err(e) => return self.fail_io(key, e, now),
            }
            match conn.stream.peer_addr() {
                Ok(_) => {
                    conn.connecting = false;
                    let _ = conn.stream.set_nodelay(true);
                }
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return,
                Err(e) => return self.fail_io(key, e, now),
            }
        }
        if readable {
            self.read(key, drain, now);
        }
        self.update(key, now);
    }

    fn read(&mut self, key: Key, drain: bool, now: Instant) {
        let limit = self.config.protocol.max_buffered_output;
        for _ in 0..MAX_READS_PER_TURN {
            let Some(conn) = self.conns.get_mut(key) else {
                return;
            };
            if conn.proto.is_terminated() {
                return;
            }
            if conn.proto.buffered_amount() > limit {
                // The peer is not reading what we send: stop reading what it sends until it
                // does, so TCP flow control slows it down instead of our memory growing.
                conn.read_paused = true;
                return;
            }
            match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    conn.proto.receive_eof();
                    self.dispatch(key, now);
                    return;
                }
                Ok(n) => {
                    // Input checked against time (the ping rate) must see the time of this
                    // read, not that of the connection's last update, which may be long ago.
                    conn.proto.handle_timeout(now);
                    conn.proto.receive(&self.read_buf[..n]);
                    self.dispatch(key, now);
                    if n < self.read_buf.len() && !drain && SHORT_READ_DRAINS {
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
            guarded(|| self.handler.on_error(conn.session.as_ref(), &error));
            conn.error = Some(error);
        }
        conn.proto.receive_eof();
        self.dispatch(key, now);
        self.remove(key);
    }

    /// Delivers the connection's events to the handler, applying what each callback sent
    /// before taking the next event. A callback that panics fails its connection with 1011.
    fn dispatch(&mut self, key: Key, now: Instant) {
        while let Some(conn) = self.conns.get_mut(key) {
            let Some(event) = conn.proto.poll_event() else {
                break;
            };
            let handler = &self.handler;
            // `None` when the callback panicked.
            let returned = match event {
                Event::Request(request) => {
                    let decision = guarded(|| handler.on_request(&request, conn.peer))
                        .unwrap_or_else(|| Decision::Reject {
                            status: 500,
                            body: String::new(),
                        });
                    let _ = match decision {
                        Decision::Accept(accept) => conn.proto.accept(accept),
                        Decision::Reject { status, body } => conn
                            .proto
                            .reject(status, &body)
                            .or_else(|_| conn.proto.reject(500, &body)),
                    };
                    Some(())
                }
                Event::HttpRequest(request) => {
                    let response = guarded(|| handler.on_http_request(&request, conn.peer))
                        .unwrap_or_else(|| HttpResponse {
                            status: 500,
                            content_type: "text/plain; charset=utf-8".into(),
                            body: Vec::new(),
                        });
                    let _ =
                        conn.proto
                            .respond(response.status, &response.content_type, &response.body);
                    Some(())
                }
                Event::Open(negotiated) => {
                    let session = Session {
                        shared: Arc::new(Shared {
                            id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
                            key,
                            peer: conn.peer,
                            subprotocol: negotiated.subprotocol,
                            open: true.into(),
                            pending: AtomicUsize::new(0),
                            limit: self.config.protocol.max_buffered_output,
                            policy: self.config.backpressure,
                            handle: Arc::clone(&self.handle),
                        }),
                    };
                    conn.session = Some(session.clone());
                    let returned = guarded(|| handler.on_open(&session));
                    if let Some(notify) = conn.notify.take() {
                        // A client whose `on_open` panicked is failing: `connect` says so.
                        let outcome = returned
                            .map(|()| session)
                            .ok_or(DriverError::HandlerPanicked);
                        let _ = notify.send(outcome);
                    }
                    returned
                }
                Event::Text(text) => conn.session.as_ref().map_or(Some(()), |s| {
                    guarded(|| handler.on_message(s, Message::Text(text)))
                }),
                Event::Binary(data) => conn.session.as_ref().map_or(Some(()), |s| {
                    guarded(|| handler.on_message(s, Message::Binary(data)))
                }),
                Event::Ping(payload) => conn
                    .session
                    .as_ref()
                    .map_or(Some(()), |s| guarded(|| handler.on_ping(s, &payload))),
                Event::Pong(payload) => conn
                    .session
                    .as_ref()
                    .map_or(Some(()), |s| guarded(|| handler.on_pong(s, &payload))),
                Event::Close(_) => {
                    if let Some(s) = &conn.session {
                        s.shared.open.store(false, Ordering::Release);
                    }
                    Some(())
                }
                Event::Error(error) if conn.error.is_none() => {
                    // A peer vanishing is reported by on_close (1006), not as an error.
                    if error != ws_proto::Error::ConnectionReset {
                        let reported = DriverError::Protocol(error.clone());
                        guarded(|| handler.on_error(conn.session.as_ref(), &reported));
                    }
                    conn.error = Some(DriverError::Protocol(error));
                    Some(())
                }
                _ => Some(()),
            };
            if returned.is_none() && conn.error.is_none() {
                conn.error = Some(DriverError::HandlerPanicked);
                let _ = conn.proto.fail(close::INTERNAL_ERROR);
                // A failed connection processes nothing more (§7.1.7): what was received
                // behind the message that panicked is not delivered.
                while conn.proto.poll_event().is_some() {}
                guarded(|| handler.on_error(conn.session.as_ref(), &DriverError::HandlerPanicked));
            }
            // What the callback sent goes to the connection before the next event is taken:
            // a reply to a message must precede a failure that follows the message.
            self.apply_local(now);
        }
    }

    /// After any activity: runs timers, writes output, adjusts interest, shuts down or removes
    /// the connection, and reschedules its deadline.
    fn update(&mut self, key: Key, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        conn.dirty = false;
        conn.proto.handle_timeout(now);
        self.dispatch(key, now);
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.connecting {
            if conn.proto.is_terminated() {
                conn.error.get_or_insert(DriverError::ConnectTimeout);
                self.remove(key);
            } else {
                self.schedule(key, now);
            }
            return;
        }
        // Write what we can, handing over deferred sends as room appears.
        Self::hand_over(conn, &self.config);
        while conn.proto.buffered_amount() > 0 && !conn.proto.is_terminated() {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let n = conn.proto.pending_output_vectored(&mut slices);
            match conn.stream.write_vectored(&slices[..n]) {
                Ok(0) => break,
                Ok(written) => {
                    conn.proto.advance_output(written);
                    if !conn.deferred.is_empty() {
                        Self::hand_over(conn, &self.config);
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.fail_io(key, e, now),
            }
        }
        let buffered = conn.proto.buffered_amount();
        Self::sync_pending(conn, 0);
        if let Some(session) = &conn.session {
            if conn.proto.state() != State::Open {
                session.shared.open.store(false, Ordering::Release);
            }
        }
        if conn.read_paused && buffered <= self.config.protocol.max_buffered_output {
            conn.read_paused = false;
            self.again.push(key);
        }
        let want_writable = buffered > 0;
        if want_writable != conn.writable_interest {
            let interest = if want_writable {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            if let Err(e) =
                self.poll
                    .registry()
                    .reregister(&mut conn.stream, Token(key.index), interest)
            {
                return self.fail_io(key, e, now);
            }
            conn.writable_interest = want_writable;
        }
        if conn.proto.should_shutdown() && !conn.write_shut {
            conn.write_shut = true;
            let _ = conn.stream.shutdown(Shutdown::Write);
        }
        if conn.proto.is_terminated() {
            self.remove(key);
        } else {
            self.schedule(key, now);
        }
    }

    fn remove(&mut self, key: Key) {
        let Some(mut conn) = self.conns.remove(key) else {
            return;
        };
        let _ = self.poll.registry().deregister(&mut conn.stream);
        self.connections.fetch_sub(1, Ordering::AcqRel);
        if let Some(session) = &conn.session {
            session.shared.open.store(false, Ordering::Release);
            let status = conn.proto.close_status();
            let disconnect = Disconnect {
                code: status.map_or(close::ABNORMAL, |s| s.code),
                reason: status.map(|s| s.reason.clone()).unwrap_or_default(),
                error: conn.error.take(),
            };
            guarded(|| self.handler.on_close(session, &disconnect));
        } else if let Some(notify) = conn.notify.take() {
            let error = conn.error.take().unwrap_or(DriverError::ConnectTimeout);
            let _ = notify.send(Err(error));
        }
        self.apply_local(Instant::now());
    }
}

impl Conn {
    fn new(
        stream: TcpStream,
        proto: Connection,
        peer: SocketAddr,
        connecting: bool,
        notify: Option<mpsc::Sender<Result<Session, DriverError>>>,
    ) -> Conn {
        Conn {
            stream,
            proto,
            peer,
            session: None,
            connecting,
            writable_interest: false,
            write_shut: false,
            read_paused: false,
            dirty: false,
            deadline: None,
            error: None,
            deferred: VecDeque::new(),
            reported: 0,
            notify,
        }
    }
}
