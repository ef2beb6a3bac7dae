//! The server: binds, starts the event loops, and stops them.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;

use log::debug;
use mio::{Poll, Waker};
use ws_proto::{CloseCode, PreparedMessage, SendError};

use crate::config::ServerConfig;
use crate::event_loop::{EventLoop, Listener, LoopConfig, LoopParts, WAKER};
use crate::handler::Factory;
use crate::session::{next_loop_id, Command, LoopHandle};

/// A running WebSocket server.
///
/// Loop 0 owns the listening socket and hands accepted sockets round-robin to every loop
/// (itself included) through their command channels; each loop then owns its connections for
/// their whole life, and one thread at a time runs a loop, so no connection state is ever
/// shared between threads. One loop per core by default, and as many threads. On Unix the
/// threads take turns of whichever loops have work (leader/followers): under light load one
/// thread serves every loop instead of each loop being woken for each message.
///
/// ```
/// use ws_mio::{Handler, Message, Server, ServerConfig, Session};
///
/// #[derive(Clone)] // a cloneable handler is its own factory: one clone per connection
/// struct Echo;
/// impl Handler for Echo {
///     fn on_message(&mut self, session: &Session, message: Message) {
///         let _ = session.send(message);
///     }
/// }
///
/// let server = Server::bind("127.0.0.1:0", ServerConfig::default(), Echo).unwrap();
/// assert_ne!(server.local_addr().port(), 0);
/// server.stop();
/// ```
#[derive(Debug)]
#[must_use = "dropping a Server stops it"]
pub struct Server {
    local_addr: SocketAddr,
    loops: Vec<Arc<LoopHandle>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
    connections: Arc<AtomicUsize>,
    /// Bytes of broadcasts one loop may have queued and not yet applied.
    broadcast_limit: usize,
}

impl Server {
    /// Binds `addr` (port 0 picks a free port) and starts serving: `factory` decides on each
    /// upgrade request and makes the accepted connection's handler (any `Handler + Clone` is a
    /// factory of clones of itself).
    pub fn bind<F: Factory>(
        addr: impl ToSocketAddrs,
        config: ServerConfig,
        factory: F,
    ) -> io::Result<Server> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let broadcast_limit = config.protocol.max_buffered_output;
        let loop_config = Arc::new(LoopConfig {
            protocol: Arc::new(config.protocol),
            backpressure: config.backpressure,
            read_buffer_size: config.read_buffer_size,
            stop_timeout: config.stop_timeout,
            max_connections: config.max_connections,
            exit_when_idle: false,
        });
        let factory = Arc::new(factory);
        let connections = Arc::new(AtomicUsize::new(0));
        let mut polls = Vec::with_capacity(threads);
        let mut loops = Vec::with_capacity(threads);
        for _ in 0..threads {
            let poll = Poll::new()?;
            let waker = Waker::new(poll.registry(), WAKER)?;
            let (tx, rx) = mpsc::channel();
            loops.push(Arc::new(LoopHandle::new(next_loop_id(), tx, waker)));
            polls.push((poll, rx));
        }
        let mut listener = Some(Listener {
            listener: mio::net::TcpListener::from_std(listener),
            loops: loops.clone(),
            next: 0,
            #[cfg(feature = "tls")]
            tls: config.tls.clone(),
            #[cfg(not(feature = "tls"))]
            tls: None,
        });
        let mut event_loops = Vec::with_capacity(threads);
        for (index, (poll, rx)) in polls.into_iter().enumerate() {
            let parts = LoopParts {
                handle: Arc::clone(&loops[index]),
                factory: Arc::clone(&factory),
                config: Arc::clone(&loop_config),
                listener: listener.take(),
                connections: Arc::clone(&connections),
            };
            event_loops.push(EventLoop::new(poll, rx, parts)?);
        }
        let handles = spawn_threads(event_loops)?;
        debug!("listening on {local_addr}: event loops={threads}");
        Ok(Server {
            local_addr,
            loops,
            threads: Mutex::new(handles),
            connections,
            broadcast_limit,
        })
    }

    /// Listens on another address too, served by the same loops and factory (plain TCP, or
    /// TLS with [`listen_tls`](Self::listen_tls)): a server on port 80 and 443 at once, say.
    /// Returns the address bound.
    ///
    /// ```
    /// use ws_mio::{Handler, Server, ServerConfig};
    /// #[derive(Clone)]
    /// struct Quiet;
    /// impl Handler for Quiet {}
    /// let server = Server::bind("127.0.0.1:0", ServerConfig::default(), Quiet).unwrap();
    /// let second = server.listen("127.0.0.1:0").unwrap();
    /// assert_ne!(second, server.local_addr());
    /// std::net::TcpStream::connect(second).unwrap(); // accepted by the same server
    /// ```
    pub fn listen(&self, addr: impl ToSocketAddrs) -> io::Result<SocketAddr> {
        self.add_listener(addr, None)
    }

    /// Listens on another address with TLS (see [`listen`](Self::listen)): plain and TLS
    /// listeners in one server.
    #[cfg(feature = "tls")]
    pub fn listen_tls(
        &self,
        addr: impl ToSocketAddrs,
        tls: Arc<rustls::ServerConfig>,
    ) -> io::Result<SocketAddr> {
        self.add_listener(addr, Some(tls))
    }

    fn add_listener(
        &self,
        addr: impl ToSocketAddrs,
        tls: crate::event_loop::ListenerTls,
    ) -> io::Result<SocketAddr> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let local_addr = listener.local_addr()?;
        let listener = Listener {
            listener: mio::net::TcpListener::from_std(listener),
            loops: self.loops.clone(),
            next: 0,
            tls,
        };
        // Loop 0 accepts for the whole server.
        if !self.loops[0].submit(Command::Listen(Box::new(listener))) {
            return Err(io::Error::other("the server has stopped"));
        }
        debug!("listening on {local_addr} too");
        Ok(local_addr)
    }

    /// The address the server listens on (with the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Sockets currently open (in handshake, open or closing).
    pub fn connection_count(&self) -> usize {
        self.connections.load(Ordering::Acquire)
    }

    /// Sends `message` to every open connection of every loop. The frame is encoded once and
    /// its bytes shared; connections over their buffer limit are skipped (or closed, with
    /// [`BackpressurePolicy::Close`](crate::BackpressurePolicy::Close)).
    ///
    /// Broadcasts wait in each loop's command queue until the loop applies them. A loop whose
    /// queued broadcasts already hold [`ws_proto::Config::max_buffered_output`] bytes (a loop
    /// kept busy by a long callback, say) does not take this one: its connections miss it and
    /// the call returns [`SendError::BufferFull`]. The other loops' connections still get it.
    pub fn broadcast(&self, message: &PreparedMessage) -> Result<(), SendError> {
        let len = message.wire_len();
        let mut refused = None;
        for handle in &self.loops {
            let queued = handle.broadcast_queued.fetch_add(len, Ordering::AcqRel);
            if queued > 0 && queued.saturating_add(len) > self.broadcast_limit {
                handle.broadcast_queued.fetch_sub(len, Ordering::AcqRel);
                refused = Some(queued);
            } else {
                // Not taken back when this fails: if only the wake-up failed, the command is
                // queued and the loop takes its bytes off when it applies it; if the loop is
                // gone, the count no longer matters.
                handle.submit(Command::Broadcast(message.clone()));
            }
        }
        match refused {
            Some(buffered) => Err(SendError::BufferFull {
                buffered,
                limit: self.broadcast_limit,
            }),
            None => Ok(()),
        }
    }

    /// Stops the server: no new connections, every open connection is closed with 1001 and
    /// given up to [`ServerConfig::stop_timeout`] to finish its closing handshake, then the
    /// threads are joined. Every open connection gets its `on_close`. Idempotent; also run on
    /// drop. Called from a handler callback (on a loop thread), it starts the same shutdown
    /// but returns without waiting, since a loop cannot wait for itself; a later `stop` from
    /// another thread (or the drop) then waits for it.
    pub fn stop(&self) {
        let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        // Sent even when no thread is left to join here ([`wait`](Self::wait) may hold them):
        // idempotent in the loops, and a no-op for loops already gone.
        for handle in &self.loops {
            handle.submit(Command::Shutdown(CloseCode::GOING_AWAY));
        }
        let current = std::thread::current().id();
        if threads.iter().any(|t| t.thread().id() == current) {
            return;
        }
        // Joined without the lock held: a callback calling `stop` meanwhile must not block.
        let taken = std::mem::take(&mut *threads);
        drop(threads);
        for thread in taken {
            let _ = thread.join();
        }
    }

    /// Waits until the server has stopped: after a [`stop`](Self::stop) from a callback or
    /// another thread (or forever, for a server that serves until the process ends). A
    /// program's main thread calls it instead of sleeping in a loop.
    pub fn wait(&self) {
        loop {
            let thread = {
                let mut threads = self.threads.lock().unwrap_or_else(|e| e.into_inner());
                match threads.pop() {
                    Some(thread) => thread,
                    None => return,
                }
            };
            let _ = thread.join();
        }
    }
}

/// Starts the threads that serve the loops: a crew sharing them (Unix; see
/// [`crew`](crate::event_loop::crew)), else a thread per loop.
#[cfg(unix)]
fn spawn_threads<F: Factory>(event_loops: Vec<EventLoop<F>>) -> io::Result<Vec<JoinHandle<()>>> {
    let threads = event_loops.len();
    let crew = crate::event_loop::crew::Crew::new(event_loops)?;
    (0..threads)
        .map(|index| {
            let crew = Arc::clone(&crew);
            std::thread::Builder::new()
                .name(format!("ws-mio-{index}"))
                .spawn(move || crew.serve(index))
        })
        .collect()
}

/// Starts the threads that serve the loops: a thread per loop.
#[cfg(not(unix))]
fn spawn_threads<F: Factory>(event_loops: Vec<EventLoop<F>>) -> io::Result<Vec<JoinHandle<()>>> {
    event_loops
        .into_iter()
        .enumerate()
        .map(|(index, event_loop)| {
            std::thread::Builder::new()
                .name(format!("ws-mio-{index}"))
                .spawn(move || event_loop.run())
        })
        .collect()
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}
