//! One connection of a loop: its socket I/O ([`Socket`]: read, write, interest, shutdown — the
//! one place bytes meet the OS, where TLS will slot in) and the driver's state around the
//! protocol core.

use std::collections::VecDeque;
use std::io::{self, IoSlice, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::mpsc;
use std::time::Instant;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use ws_proto::Connection;

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

/// A connection of the loop: the socket, the protocol core and the application's handler.
pub(super) struct Conn<H> {
    pub(super) socket: Socket,
    pub(super) proto: Connection,
    pub(super) peer: SocketAddr,
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
