//! The client: resolves, connects without blocking the loop, upgrades, then runs the same
//! frame loop as the server in a thread of its own.

use std::fmt;
use std::io;
use std::net::ToSocketAddrs;
use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use mio::{Poll, Waker};
use ws_proto::{ClientRequest, CloseCode};

use crate::config::ClientConfig;
use crate::event_loop::{ClientSide, ConnectRequest, EventLoop, LoopConfig, LoopParts, WAKER};
use crate::handler::{DriverError, Handler};
use crate::session::{next_loop_id, Command, LoopHandle, Session};
use crate::url::{parse_ws_url, UrlError, WsUrl};

/// Why [`Client::connect`] failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a `ws://` URL we can use.
    InvalidUrl(UrlError),
    /// The host name did not resolve.
    Resolve(io::Error),
    /// Connecting or the opening handshake failed (refused, timed out, rejected...).
    Failed(DriverError),
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::InvalidUrl(e) => write!(f, "invalid URL: {e}"),
            ConnectError::Resolve(e) => write!(f, "cannot resolve host: {e}"),
            ConnectError::Failed(e) => write!(f, "connection failed: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::InvalidUrl(e) => Some(e),
            ConnectError::Resolve(e) => Some(e),
            ConnectError::Failed(e) => Some(e),
        }
    }
}

/// A connected WebSocket client with its own event-loop thread.
///
/// [`connect`](Self::connect) returns once the opening handshake has succeeded or failed, so
/// sending right after it never races the handshake.
#[derive(Debug)]
#[must_use = "dropping a Client closes its connection"]
pub struct Client {
    session: Session,
    handle: Arc<LoopHandle>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Client {
    /// Connects to a `ws://host[:port]/path` URL and completes the handshake (within
    /// [`ClientConfig::connect_timeout`]). Callbacks of `handler` run on the client's thread.
    pub fn connect(
        url: &str,
        config: ClientConfig,
        handler: impl Handler,
    ) -> Result<Client, ConnectError> {
        let url = parse_ws_url(url).map_err(ConnectError::InvalidUrl)?;
        Self::connect_url(&url, config, handler)
    }

    /// Like [`connect`](Self::connect) with the URL already split.
    pub fn connect_url(
        url: &WsUrl,
        config: ClientConfig,
        handler: impl Handler,
    ) -> Result<Client, ConnectError> {
        let addr = (url.host.as_str(), url.port)
            .to_socket_addrs()
            .map_err(ConnectError::Resolve)?
            .next()
            .ok_or_else(|| {
                ConnectError::Resolve(io::Error::new(io::ErrorKind::NotFound, "no address"))
            })?;
        let mut protocol = config.protocol;
        protocol.handshake_timeout = Some(config.connect_timeout);
        let loop_config = Arc::new(LoopConfig {
            protocol,
            backpressure: config.backpressure,
            read_buffer_size: config.read_buffer_size,
            stop_timeout: Duration::from_secs(5),
            max_connections: 1,
            exit_when_idle: true,
        });
        let poll = Poll::new().map_err(|e| ConnectError::Failed(e.into()))?;
        let waker =
            Waker::new(poll.registry(), WAKER).map_err(|e| ConnectError::Failed(e.into()))?;
        let (tx, rx) = mpsc::channel();
        let handle = Arc::new(LoopHandle::new(next_loop_id(), tx, waker));
        let parts = LoopParts {
            handle: Arc::clone(&handle),
            factory: Arc::new(ClientSide::new()),
            config: loop_config,
            listener: None,
            connections: Arc::new(AtomicUsize::new(0)),
        };
        let mut event_loop =
            EventLoop::new(poll, rx, parts).map_err(|e| ConnectError::Failed(e.into()))?;
        let (notify, outcome) = mpsc::channel();
        let mut request = ClientRequest::new(url.host_header(), url.path.clone());
        request.headers = config.headers;
        let connect = ConnectRequest {
            addr,
            request,
            handler,
            notify,
        };
        let thread = std::thread::Builder::new()
            .name("ws-mio-client".into())
            .spawn(move || {
                // The handshake timer starts here, when the loop takes the connection.
                event_loop.connect(connect, std::time::Instant::now());
                event_loop.run()
            })
            .map_err(|e| ConnectError::Failed(e.into()))?;
        // The loop enforces the timeout itself (the connection's handshake timer, from when it
        // takes the command); this wait is only a safety net, with room for a slow start of
        // the loop thread.
        let result = outcome
            .recv_timeout(
                config
                    .connect_timeout
                    .saturating_add(Duration::from_secs(5)),
            )
            .unwrap_or(Err(DriverError::ConnectTimeout));
        match result {
            Ok(session) => Ok(Client {
                session,
                handle,
                thread: Mutex::new(Some(thread)),
            }),
            Err(e) => {
                handle.submit(Command::Shutdown(CloseCode::NORMAL));
                let _ = thread.join();
                Err(ConnectError::Failed(e))
            }
        }
    }

    /// The connection, for sending (clone it freely, use it from any thread).
    pub fn session(&self) -> &Session {
        &self.session
    }

    /// Closes with 1000 (waiting for the closing handshake, bounded by the close timeout) and
    /// joins the client thread. Idempotent; also run on drop. Called from a handler callback
    /// (on the client's own thread), it starts the close and returns without waiting; a later
    /// `stop` from another thread then waits for it.
    pub fn stop(&self) {
        let mut slot = self.thread.lock().unwrap_or_else(|e| e.into_inner());
        let Some(thread) = slot.as_ref() else {
            return;
        };
        self.handle.submit(Command::Shutdown(CloseCode::NORMAL));
        if thread.thread().id() == std::thread::current().id() {
            return;
        }
        let thread = slot.take();
        drop(slot);
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    /// Whether the client thread has finished (the connection ended).
    pub fn is_finished(&self) -> bool {
        self.thread
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .is_none_or(|t| t.is_finished())
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop();
    }
}
