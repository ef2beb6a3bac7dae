//! One connection of a loop: its socket I/O ([`Socket`]: read, write, interest, shutdown — the
//! one place bytes meet the OS, and where TLS sits when the connection has it) and the
//! driver's state around the protocol core.

use std::collections::VecDeque;
use std::fmt;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::mpsc;
use std::time::Instant;

use log::info;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use ws_proto::{CloseCode, Connection, Role, SendError};

use crate::handler::DriverError;
use crate::session::{Outgoing, Session};

/// Slices per vectored write.
const MAX_IOV: usize = 64;

/// The TCP socket of one connection, with its TLS session when it has one.
pub(super) struct Socket {
    stream: TcpStream,
    /// Boxed: a plain connection pays one pointer for it.
    #[cfg(feature = "tls")]
    tls: Option<Box<crate::tls::Session>>,
    #[cfg(feature = "tls")]
    close_notify_sent: bool,
    /// Client: the TCP connect is still in progress.
    connecting: bool,
    writable_interest: bool,
    write_shut: bool,
}

impl fmt::Debug for Socket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Socket")
            .field("stream", &self.stream)
            .field("tls", &self.is_tls())
            .field("connecting", &self.connecting)
            .finish()
    }
}

/// What a write pass achieved.
pub(super) enum Written {
    /// Everything queued was written.
    All,
    /// The socket is full; wait for writability.
    Blocked,
}

impl Socket {
    /// A socket accepted by a listener (connected, read interest registered).
    pub(super) fn accepted(stream: TcpStream) -> Socket {
        Socket {
            stream,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            close_notify_sent: false,
            connecting: false,
            writable_interest: false,
            write_shut: false,
        }
    }

    /// A client socket whose connect is in progress (read and write interest registered).
    pub(super) fn connecting(stream: TcpStream) -> Socket {
        Socket {
            stream,
            #[cfg(feature = "tls")]
            tls: None,
            #[cfg(feature = "tls")]
            close_notify_sent: false,
            connecting: true,
            writable_interest: true,
            write_shut: false,
        }
    }

    /// The same socket speaking TLS through `session`.
    #[cfg(feature = "tls")]
    pub(super) fn with_tls(mut self, session: crate::tls::Session) -> Socket {
        self.tls = Some(Box::new(session));
        self
    }

    /// Whether the connection runs over TLS.
    pub(super) fn is_tls(&self) -> bool {
        #[cfg(feature = "tls")]
        return self.tls.is_some();
        #[cfg(not(feature = "tls"))]
        false
    }

    /// The server name the client asked for (SNI), on a TLS server connection.
    pub(super) fn server_name(&self) -> Option<&str> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            if let rustls::Connection::Server(server) = &**tls {
                return server.server_name();
            }
        }
        None
    }

    /// Whether a short read means the socket is empty (edge-triggered readiness then needs no
    /// further read). Not with TLS: a read returns the plaintext of what one `read_tls` took
    /// from the socket, which may have more.
    pub(super) fn short_read_drains(&self) -> bool {
        !self.is_tls()
    }

    /// Whether the socket has bytes of its own to write (TLS records: handshake, alerts,
    /// close_notify), beyond the protocol core's output.
    pub(super) fn wants_write(&self) -> bool {
        #[cfg(feature = "tls")]
        if let Some(tls) = &self.tls {
            return tls.wants_write();
        }
        false
    }

    pub(super) fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        registry.register(&mut self.stream, token, interest)
    }

    pub(super) fn deregister(&mut self, registry: &Registry) {
        // TLS: "Each party MUST send a close_notify alert before closing its write side of
        // the connection, unless it has already sent some error alert" (RFC 8446 §6.1). Best
        // effort: the socket is about to be closed, whatever it takes now.
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            if !self.close_notify_sent && !self.write_shut && !tls.is_handshaking() {
                self.close_notify_sent = true;
                tls.send_close_notify();
                let _ = flush_tls(tls, &mut self.stream);
            }
        }
        let _ = registry.deregister(&mut self.stream);
    }

    pub(super) fn is_connecting(&self) -> bool {
        self.connecting
    }

    /// Client: whether the non-blocking connect has completed (`Ok(false)`: not yet).
    pub(super) fn finish_connect(&mut self) -> io::Result<bool> {
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connecting = false;
                let _ = self.stream.set_nodelay(true);
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads plaintext: `Ok(0)` at the end of the stream (TCP EOF, or TLS close_notify).
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return tls_read(tls, &mut self.stream, buf);
        }
        self.stream.read(buf)
    }

    /// Writes `proto`'s output until it is empty or the socket is full.
    pub(super) fn write_from(&mut self, proto: &mut Connection) -> io::Result<Written> {
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            return tls_write_from(tls, &mut self.stream, proto);
        }
        while proto.buffered_amount() > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let n = proto.pending_output_vectored(&mut slices);
            match self.stream.write_vectored(&slices[..n]) {
                Ok(0) => return Ok(Written::Blocked),
                Ok(written) => proto.advance_output(written),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Written::Blocked),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(Written::All)
    }

    /// Asks for writability events the first time output waits, and keeps them: the
    /// selector is edge-triggered (epoll with `EPOLLET`, kqueue with `EV_CLEAR`), so an idle
    /// interest costs nothing, and a writable event comes only after a write found the socket
    /// full. Dropping the interest whenever the output drained cost two `epoll_ctl` calls per
    /// blocked write on a busy connection.
    pub(super) fn want_writable(
        &mut self,
        registry: &Registry,
        token: Token,
        writable: bool,
    ) -> io::Result<()> {
        if !writable || self.writable_interest {
            return Ok(());
        }
        registry.reregister(
            &mut self.stream,
            token,
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.writable_interest = true;
        Ok(())
    }

    /// Shuts down the write half, once (the peer then sees EOF; we keep reading). Over TLS,
    /// a close_notify goes first, and TCP is shut down once it is written (called again on
    /// writability until then).
    pub(super) fn shutdown_write(&mut self) {
        if self.write_shut {
            return;
        }
        #[cfg(feature = "tls")]
        if let Some(tls) = &mut self.tls {
            if tls.is_handshaking() {
                // Output queued before the handshake completes (a 503 answering a connection
                // over capacity) is plaintext rustls still holds: closing now would lose it.
                // The connection's close timer bounds the wait.
                return;
            }
            if !self.close_notify_sent {
                self.close_notify_sent = true;
                tls.send_close_notify();
            }
            if flush_tls(tls, &mut self.stream).is_ok_and(|w| matches!(w, Written::Blocked)) {
                return;
            }
        }
        self.write_shut = true;
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// Plaintext from a TLS session, reading records from the socket as needed.
#[cfg(feature = "tls")]
fn tls_read(
    tls: &mut crate::tls::Session,
    stream: &mut TcpStream,
    buf: &mut [u8],
) -> io::Result<usize> {
    loop {
        match tls.reader().read(buf) {
            // `Ok(0)`: the peer's close_notify.
            Ok(n) => return Ok(n),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            // TCP EOF without close_notify: a WebSocket has its own closing handshake, which
            // says whether the end was clean; for the transport it is an end of stream.
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
            Err(e) => return Err(e),
        }
        // No plaintext buffered: more records from the socket (`WouldBlock` when none).
        if tls.read_tls(stream)? == 0 {
            // EOF: the next `reader().read` says whether a close_notify came first.
            continue;
        }
        if let Err(e) = tls.process_new_packets() {
            // rustls queued an alert saying why; send it if the socket takes it.
            let _ = tls.write_tls(stream);
            return Err(crate::tls::io_error(e));
        }
    }
}

/// Moves the protocol core's output into the TLS session and its records to the socket.
#[cfg(feature = "tls")]
fn tls_write_from(
    tls: &mut crate::tls::Session,
    stream: &mut TcpStream,
    proto: &mut Connection,
) -> io::Result<Written> {
    loop {
        // Plaintext in, as much as rustls buffers (64 KiB: the rest waits in the core, where
        // backpressure counts it).
        let mut taken = 0;
        while proto.buffered_amount() > 0 {
            let mut slices = [IoSlice::new(&[]); MAX_IOV];
            let n = proto.pending_output_vectored(&mut slices);
            let written = tls.writer().write_vectored(&slices[..n])?;
            if written == 0 {
                break;
            }
            proto.advance_output(written);
            taken += written;
        }
        let had_records = tls.wants_write();
        if let Written::Blocked = flush_tls(tls, stream)? {
            return Ok(Written::Blocked);
        }
        if proto.buffered_amount() == 0 {
            return Ok(Written::All);
        }
        if taken == 0 && !had_records {
            // Nothing moved and nothing to write: rustls holds plaintext until its handshake
            // completes. The peer's next flight (a readable event) moves things on. (Records
            // written just now emptied rustls' buffer: go round again, the socket is not full.)
            return Ok(Written::Blocked);
        }
    }
}

/// Writes the TLS session's pending records.
#[cfg(feature = "tls")]
fn flush_tls(tls: &mut crate::tls::Session, stream: &mut TcpStream) -> io::Result<Written> {
    while tls.wants_write() {
        match tls.write_tls(stream) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(Written::Blocked),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(Written::All)
}

/// Who started the end of an open connection, as far as the driver can tell; the close log
/// line reports it (see [`closed_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Closer {
    /// We sent the first close frame: [`Session::close`].
    Us,
    /// We sent the first close frame because the loop is stopping: [`Server::stop`](crate::Server::stop)
    /// or [`Client::stop`](crate::Client::stop).
    Stopping,
    /// We failed the connection: the peer broke the protocol, did not answer a keepalive ping,
    /// read too slowly (backpressure policy), or a callback panicked.
    Failing,
    /// The peer's close frame came first.
    Peer,
}

/// Who closed, for the close log line (one word): from what the driver recorded and the
/// close code. A 1006 (no closing handshake: EOF, I/O error, close or stop timeout) is
/// `abnormal`, `abnormal-after-our-close` when our close frame had gone out.
pub(super) fn closed_by(closer: Option<Closer>, code: CloseCode) -> &'static str {
    match (code == CloseCode::ABNORMAL, closer) {
        (true, None | Some(Closer::Peer)) => "abnormal",
        (true, Some(_)) => "abnormal-after-our-close",
        (false, Some(Closer::Us)) => "us",
        (false, Some(Closer::Stopping)) => "us-stopping",
        (false, Some(Closer::Failing)) => "us-failing",
        (false, Some(Closer::Peer)) => "peer",
        (false, None) => "unknown",
    }
}

/// An optional string for a log line: `"escaped"` (quoted, control characters escaped, so
/// a peer's text cannot forge log lines) or `-`.
pub(super) struct Quoted<'a>(pub(super) Option<&'a str>);

impl fmt::Display for Quoted<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(s) => write!(f, "{s:?}"),
            None => f.write_str("-"),
        }
    }
}

/// "server" or "client", for log lines.
pub(super) fn role_name(role: Role) -> &'static str {
    match role {
        Role::Server => "server",
        Role::Client => "client",
    }
}

/// A connection's first failure, boxed: most connections never fail, and pay one pointer
/// for it instead of a whole [`DriverError`].
#[derive(Debug, Default)]
pub(super) struct FirstError(Option<Box<DriverError>>);

impl FirstError {
    /// Records `error` unless one is recorded already.
    pub(super) fn get_or_insert(&mut self, error: DriverError) {
        if self.0.is_none() {
            self.0 = Some(Box::new(error));
        }
    }

    /// Records `error`, replacing any other.
    pub(super) fn set(&mut self, error: DriverError) {
        self.0 = Some(Box::new(error));
    }

    pub(super) fn is_none(&self) -> bool {
        self.0.is_none()
    }

    pub(super) fn is_some(&self) -> bool {
        self.0.is_some()
    }

    pub(super) fn take(&mut self) -> Option<DriverError> {
        self.0.take().map(|e| *e)
    }
}

/// A connection of the loop: the socket, the protocol core and the application's handler.
pub(super) struct Conn<H> {
    pub(super) socket: Socket,
    pub(super) proto: Connection,
    pub(super) peer: SocketAddr,
    /// The request target (query included): the server's from the upgrade request, the
    /// client's from its URL. For log lines.
    pub(super) path: Option<String>,
    /// Who started the end of the connection, once known. For log lines.
    pub(super) closer: Option<Closer>,
    /// The application's handler: from the factory's accept (server) or `connect` (client).
    pub(super) handler: Option<H>,
    pub(super) session: Option<Session>,
    /// Reading stopped because the output is at the high-water mark.
    pub(super) read_paused: bool,
    pub(super) dirty: bool,
    /// The deadline currently in the timer heap for this connection.
    pub(super) deadline: Option<Instant>,
    /// The first failure, reported in the disconnect.
    pub(super) error: FirstError,
    /// Sends not handed to `proto` yet (see `EventLoop::hand_over`).
    pub(super) deferred: VecDeque<Outgoing>,
    /// Output bytes counted in the session's `pending` (see `EventLoop::sync_pending`).
    pub(super) reported: usize,
    /// Client: who waits for the handshake's outcome.
    pub(super) notify: Option<mpsc::Sender<Result<Session, DriverError>>>,
}

impl<H> Conn<H> {
    /// Who the peer is, for the factory's decisions.
    pub(super) fn who(&self) -> crate::handler::Peer {
        let mut who = crate::handler::Peer::new(self.peer);
        who.tls = self.socket.is_tls();
        who.server_name = self.socket.server_name().map(str::to_owned);
        who
    }

    pub(super) fn new(
        socket: Socket,
        proto: Connection,
        peer: SocketAddr,
        handler: Option<H>,
        notify: Option<mpsc::Sender<Result<Session, DriverError>>>,
    ) -> Conn<H> {
        Conn {
            socket,
            proto,
            peer,
            path: None,
            closer: None,
            handler,
            session: None,
            read_paused: false,
            dirty: false,
            deadline: None,
            error: FirstError::default(),
            deferred: VecDeque::new(),
            reported: 0,
            notify,
        }
    }

    /// Records who started the end of the connection: the first to do so, except that our
    /// failing it overrides our closing it (the failure is what the close code reports).
    pub(super) fn closed_by(&mut self, closer: Closer) {
        match self.closer {
            None => self.closer = Some(closer),
            Some(Closer::Us | Closer::Stopping) if closer == Closer::Failing => {
                self.closer = Some(closer);
            }
            Some(_) => {}
        }
    }

    /// The request path, for log lines.
    pub(super) fn path(&self) -> Quoted<'_> {
        Quoted(self.path.as_deref())
    }

    /// Fails the connection as a slow consumer (the [`BackpressurePolicy::Close`](crate::BackpressurePolicy::Close)
    /// policy) with `code`, and says so in the log: a send of `refused` bytes found `buffered`
    /// bytes waiting, with room for `limit`.
    pub(super) fn fail_slow_consumer(
        &mut self,
        code: CloseCode,
        (buffered, refused, limit): (usize, usize, usize),
        now: Instant,
    ) -> Result<(), SendError> {
        self.error.get_or_insert(DriverError::SlowConsumer);
        let result = self.proto.fail(code, now);
        if result.is_ok() {
            self.closed_by(Closer::Failing);
            info!(
                "slow consumer closed: peer={} path={} code={code} buffered={buffered} refused_send={refused} limit={limit}",
                self.peer,
                self.path(),
            );
        }
        result
    }

    /// Whether the loop may read more from this connection: its output (with the sends not
    /// handed over yet, and the message being received, which a handler may answer in full
    /// once it completes) is below the high-water mark. An empty output always allows a read,
    /// so a message larger than the mark still completes.
    pub(super) fn may_read(&self, high_water: usize) -> bool {
        let output = self.proto.buffered_amount();
        self.deferred.is_empty()
            && (output == 0 || output + self.proto.incoming_amount() < high_water)
    }
}
