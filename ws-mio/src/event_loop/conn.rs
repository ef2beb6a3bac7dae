//! One connection of a loop: its socket I/O ([`Socket`]: read, write, interest, shutdown — the
//! one place bytes meet the OS, where TLS will slot in) and the driver's state around the
//! protocol core.

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

/// The TCP socket of one connection.
#[derive(Debug)]
pub(super) struct Socket {
    stream: TcpStream,
    /// Client: the TCP connect is still in progress.
    connecting: bool,
    writable_interest: bool,
    write_shut: bool,
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
            connecting: false,
            writable_interest: false,
            write_shut: false,
        }
    }

    /// A client socket whose connect is in progress (read and write interest registered).
    pub(super) fn connecting(stream: TcpStream) -> Socket {
        Socket {
            stream,
            connecting: true,
            writable_interest: true,
            write_shut: false,
        }
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

    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.stream.read(buf)
    }

    /// Writes `proto`'s output until it is empty or the socket is full.
    pub(super) fn write_from(&mut self, proto: &mut Connection) -> io::Result<Written> {
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

    /// Asks for writability events only while output waits (edge-triggered: no busy loop).
    pub(super) fn want_writable(
        &mut self,
        registry: &Registry,
        token: Token,
        writable: bool,
    ) -> io::Result<()> {
        if writable == self.writable_interest {
            return Ok(());
        }
        let interest = if writable {
            Interest::READABLE | Interest::WRITABLE
        } else {
            Interest::READABLE
        };
        registry.reregister(&mut self.stream, token, interest)?;
        self.writable_interest = writable;
        Ok(())
    }

    /// Shuts down the write half, once (the peer then sees EOF; we keep reading).
    pub(super) fn shutdown_write(&mut self) {
        if !self.write_shut {
            self.write_shut = true;
            let _ = self.stream.shutdown(Shutdown::Write);
        }
    }
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
    pub(super) error: Option<DriverError>,
    /// Sends not handed to `proto` yet (see `EventLoop::hand_over`).
    pub(super) deferred: VecDeque<Outgoing>,
    /// Output bytes counted in the session's `pending` (see `EventLoop::sync_pending`).
    pub(super) reported: usize,
    /// Client: who waits for the handshake's outcome.
    pub(super) notify: Option<mpsc::Sender<Result<Session, DriverError>>>,
}

impl<H> Conn<H> {
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
            error: None,
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
