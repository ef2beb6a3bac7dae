//! The client: resolves the host, connects to its addresses in turn, then upgrades and runs
//! the same frame loop as the server in a thread of its own.
//!
//! The TCP connect happens in [`Client::connect`] itself, before the loop thread starts:
//! `connect` blocks until the handshake is over anyway, and a loop that is handed a connected
//! socket keeps its one-connection shape (no retry state, no per-address timers). Each address
//! gets an equal share of what is left of the connect timeout, so an address that drops
//! packets cannot use up the time of the ones after it; the opening handshake then has the rest.
//! Only a failed TCP connect moves on to the next address: once a server has answered, its
//! verdict (a rejected upgrade, a handshake timeout, a panicking `on_open`) is final.

use std::fmt;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::sync::atomic::AtomicUsize;
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::debug;
use mio::{Poll, Waker};
use ws_proto::{ClientRequest, CloseCode};

use crate::config::ClientConfig;
use crate::event_loop::{ClientSide, ConnectRequest, EventLoop, LoopConfig, LoopParts, WAKER};
use crate::handler::{DriverError, Handler};
use crate::session::{next_loop_id, Command, LoopHandle, Session};
use crate::url::{parse_ws_url, UrlError, WsUrl};

/// Why [`Client::connect`] failed. Every message names the host or the addresses concerned.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError {
    /// The URL is not a `ws://` URL we can use.
    InvalidUrl(UrlError),
    /// The host name did not resolve, or resolved to no address.
    #[non_exhaustive]
    Resolve {
        /// The host as given in the URL.
        host: String,
        /// The resolver's error.
        error: io::Error,
    },
    /// No address of the host accepted a TCP connection within the connect timeout: each
    /// address tried, in the resolver's order, with why it failed.
    Unreachable(Vec<(SocketAddr, DriverError)>),
    /// The TCP connection to `addr` was made, but the opening handshake failed: rejected by
    /// the server, timed out, or ended by a panicking [`Handler::on_open`].
    #[non_exhaustive]
    Failed {
        /// The address connected to.
        addr: SocketAddr,
        /// What went wrong.
        error: DriverError,
    },
    /// The client's event loop or thread could not be created.
    Setup(io::Error),
    /// The TLS client could not start (the configuration given refuses to make a session).
    #[cfg(feature = "tls")]
    Tls(rustls::Error),
}

/// A driver error without the `I/O error: ` prefix, which the context already says.
struct Cause<'a>(&'a DriverError);

impl fmt::Display for Cause<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            DriverError::Io(e) => e.fmt(f),
            other => other.fmt(f),
        }
    }
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::InvalidUrl(e) => write!(f, "invalid URL: {e}"),
            ConnectError::Resolve { host, error } => {
                write!(f, "cannot resolve host {host}: {error}")
            }
            ConnectError::Unreachable(attempts) => {
                f.write_str("connection failed: ")?;
                for (i, (addr, error)) in attempts.iter().enumerate() {
                    if i > 0 {
                        f.write_str("; ")?;
                    }
                    write!(f, "{addr}: {}", Cause(error))?;
                }
                Ok(())
            }
            ConnectError::Failed { addr, error } => {
                write!(f, "connection failed: {addr}: {}", Cause(error))
            }
            ConnectError::Setup(e) => write!(f, "cannot start the client: {e}"),
            #[cfg(feature = "tls")]
            ConnectError::Tls(e) => write!(f, "cannot start TLS: {e}"),
        }
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ConnectError::InvalidUrl(e) => Some(e),
            ConnectError::Resolve { error, .. } => Some(error),
            ConnectError::Unreachable(attempts) => attempts
                .last()
                .map(|(_, e)| e as &(dyn std::error::Error + 'static)),
            ConnectError::Failed { error, .. } => Some(error),
            ConnectError::Setup(e) => Some(e),
            #[cfg(feature = "tls")]
            ConnectError::Tls(e) => Some(e),
        }
    }
}

/// The TLS session of a `wss://` URL: the configured client configuration (Mozilla's roots by
/// default), verifying `host`.
#[cfg(feature = "tls")]
fn client_tls(
    url: &WsUrl,
    host: &str,
    config: &ClientConfig,
) -> Result<crate::event_loop::ClientTls, ConnectError> {
    if !url.secure {
        return Ok(None);
    }
    let tls = config.tls.clone().unwrap_or_else(crate::tls::client_config);
    let name = rustls::pki_types::ServerName::try_from(host.to_owned())
        .map_err(|_| ConnectError::InvalidUrl(UrlError::InvalidHost))?;
    let session = rustls::ClientConnection::new(tls, name).map_err(ConnectError::Tls)?;
    Ok(Some(session.into()))
}

/// Without the `tls` feature, `wss://` URLs are refused when parsed.
#[cfg(not(feature = "tls"))]
fn client_tls(
    _url: &WsUrl,
    _host: &str,
    _config: &ClientConfig,
) -> Result<crate::event_loop::ClientTls, ConnectError> {
    Ok(None)
}

/// Connects to each of `addrs` in turn until one accepts, by `deadline` at the latest. Each
/// address gets an equal share of the time left (the last one all of it). On failure, every
/// address tried with its error.
pub(crate) fn connect_first(
    addrs: &[SocketAddr],
    deadline: Instant,
) -> Result<(TcpStream, SocketAddr), Vec<(SocketAddr, DriverError)>> {
    let mut failures = Vec::with_capacity(addrs.len());
    for (i, &addr) in addrs.iter().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        let share = left / u32::try_from(addrs.len() - i).unwrap_or(u32::MAX);
        let error = if share.is_zero() {
            DriverError::ConnectTimeout
        } else {
            match TcpStream::connect_timeout(&addr, share) {
                Ok(stream) => return Ok((stream, addr)),
                Err(e) if e.kind() == io::ErrorKind::TimedOut => DriverError::ConnectTimeout,
                Err(e) => DriverError::from(e),
            }
        };
        debug!("client connect failed: peer={addr} error=\"{error}\"");
        failures.push((addr, error));
    }
    Err(failures)
}

/// A connected WebSocket client with its own event-loop thread.
///
/// [`connect`](Self::connect) returns once the opening handshake has succeeded or failed, so
/// sending right after it never races the handshake.
///
/// ```
/// use ws_mio::{Client, ClientConfig, ConnectError, Handler, Message, Session};
///
/// struct Printer;
/// impl Handler for Printer {
///     fn on_message(&mut self, _session: &Session, message: Message) {
///         println!("{}", String::from_utf8_lossy(message.as_bytes()));
///     }
/// }
///
/// // Nothing listens on port 1 here: the error says which address failed, and why.
/// match Client::connect("ws://127.0.0.1:1/chat", ClientConfig::default(), Printer) {
///     Ok(client) => client.session().send_text("hello").unwrap(),
///     Err(e) => assert!(e.to_string().contains("127.0.0.1:1")),
/// }
/// // A fragment has no meaning in a WebSocket URL (RFC 6455 §3): refused before connecting.
/// let refused = Client::connect("ws://127.0.0.1:1/chat#top", ClientConfig::default(), Printer);
/// assert!(matches!(refused, Err(ConnectError::InvalidUrl(_))));
/// ```
#[derive(Debug)]
#[must_use = "dropping a Client closes its connection"]
pub struct Client {
    session: Session,
    handle: Arc<LoopHandle>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl Client {
    /// Connects to a `ws://host[:port]/path` URL (see [`parse_ws_url`]) and completes the
    /// handshake. Every address the host resolves to is tried in turn until one accepts the
    /// TCP connection; resolving, connecting and the handshake together take at most
    /// [`ClientConfig::connect_timeout`] (resolving itself cannot be interrupted). Callbacks
    /// of `handler` run on the client's thread.
    pub fn connect(
        url: &str,
        config: ClientConfig,
        handler: impl Handler,
    ) -> Result<Client, ConnectError> {
        let url = parse_ws_url(url).map_err(ConnectError::InvalidUrl)?;
        Self::connect_url(&url, config, handler)
    }

    /// Like [`connect`](Self::connect) with the URL already split (see [`WsUrl::new`]). An
    /// IPv6 host may be given with or without brackets; a path with a fragment (`#`) is
    /// refused.
    pub fn connect_url(
        url: &WsUrl,
        config: ClientConfig,
        handler: impl Handler,
    ) -> Result<Client, ConnectError> {
        let deadline = Instant::now() + config.connect_timeout;
        // RFC 6455 §3: fragments MUST NOT be used on WebSocket URIs (see `parse_ws_url`).
        if url.path.contains('#') {
            return Err(ConnectError::InvalidUrl(UrlError::Fragment));
        }
        let host = url
            .host
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(&url.host);
        let resolve_error = |error| ConnectError::Resolve {
            host: host.to_owned(),
            error,
        };
        let addrs: Vec<SocketAddr> = (host, url.port)
            .to_socket_addrs()
            .map_err(resolve_error)?
            .collect();
        if addrs.is_empty() {
            return Err(resolve_error(io::Error::new(
                io::ErrorKind::NotFound,
                "no address",
            )));
        }
        let tls = client_tls(url, host, &config)?;
        let (stream, addr) = connect_first(&addrs, deadline).map_err(ConnectError::Unreachable)?;
        let _ = stream.set_nodelay(true);
        stream.set_nonblocking(true).map_err(ConnectError::Setup)?;
        let stream = mio::net::TcpStream::from_std(stream);
        let loop_config = Arc::new(LoopConfig {
            // The handshake timeout is set per connection, to what is left until `deadline`.
            protocol: Arc::new(config.protocol),
            backpressure: config.backpressure,
            read_buffer_size: config.read_buffer_size,
            stop_timeout: Duration::from_secs(5),
            max_connections: 1,
            exit_when_idle: true,
        });
        let poll = Poll::new().map_err(ConnectError::Setup)?;
        let waker = Waker::new(poll.registry(), WAKER).map_err(ConnectError::Setup)?;
        let (tx, rx) = mpsc::channel();
        let handle = Arc::new(LoopHandle::new(next_loop_id(), tx, waker));
        let parts = LoopParts {
            handle: Arc::clone(&handle),
            factory: Arc::new(ClientSide::new()),
            config: loop_config,
            listener: None,
            connections: Arc::new(AtomicUsize::new(0)),
        };
        let mut event_loop = EventLoop::new(poll, rx, parts).map_err(ConnectError::Setup)?;
        let (notify, outcome) = mpsc::channel();
        let mut request = ClientRequest::new(url.host_header(), url.path.clone());
        request.headers = config.headers;
        let connect = ConnectRequest {
            stream,
            addr,
            deadline,
            request,
            tls,
            handler,
            notify,
        };
        let thread = std::thread::Builder::new()
            .name("ws-mio-client".into())
            .spawn(move || {
                event_loop.connect(connect, Instant::now());
                event_loop.run()
            })
            .map_err(ConnectError::Setup)?;
        // The loop enforces the deadline itself (the connection's handshake timer); this wait
        // is only a safety net, with room for a slow start of the loop thread.
        let result = outcome
            .recv_timeout(
                deadline
                    .saturating_duration_since(Instant::now())
                    .saturating_add(Duration::from_secs(5)),
            )
            .unwrap_or(Err(DriverError::ConnectTimeout));
        match result {
            Ok(session) => Ok(Client {
                session,
                handle,
                thread: Mutex::new(Some(thread)),
            }),
            Err(error) => {
                handle.submit(Command::Shutdown(CloseCode::NORMAL));
                let _ = thread.join();
                Err(ConnectError::Failed { addr, error })
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};

    /// A local port nothing listens on: bound a moment ago, then released.
    fn closed_port(ip: &str) -> Option<SocketAddr> {
        let listener = TcpListener::bind((ip, 0)).ok()?;
        listener.local_addr().ok()
    }

    #[test]
    fn every_address_is_tried_in_turn_until_one_accepts() {
        let refused = closed_port("127.0.0.1").unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let open = listener.local_addr().unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let (stream, addr) = connect_first(&[refused, open], deadline).unwrap();
        assert_eq!(addr, open);
        assert_eq!(stream.peer_addr().unwrap(), open);
        // The first address that accepts wins: the ones after it are not tried.
        let (_, addr) = connect_first(&[open, refused], deadline).unwrap();
        assert_eq!(addr, open);
    }

    #[test]
    fn when_every_address_fails_each_is_named_with_its_error() {
        let v4 = closed_port("127.0.0.1").unwrap();
        // Without an IPv6 loopback the second address fails differently, which is fine.
        let v6 = closed_port("::1")
            .unwrap_or_else(|| SocketAddr::from((Ipv6Addr::LOCALHOST, v4.port())));
        let deadline = Instant::now() + Duration::from_secs(5);
        let failures = connect_first(&[v4, v6], deadline).unwrap_err();
        let tried: Vec<SocketAddr> = failures.iter().map(|(a, _)| *a).collect();
        assert_eq!(tried, [v4, v6]);
        assert!(
            matches!(&failures[0].1, DriverError::Io(e) if e.kind() == io::ErrorKind::ConnectionRefused),
            "{:?}",
            failures[0].1
        );
        let message = ConnectError::Unreachable(failures).to_string();
        let expected_start = format!("connection failed: {v4}: Connection refused");
        assert!(message.starts_with(&expected_start), "{message}");
        assert!(
            message.contains(&format!("; [::1]:{}: ", v6.port())),
            "{message}"
        );
        assert!(!message.contains("I/O error"), "{message}");
    }

    #[test]
    fn an_exhausted_deadline_times_every_address_out_without_waiting() {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 9));
        let failures = connect_first(&[addr, addr], Instant::now()).unwrap_err();
        assert_eq!(failures.len(), 2);
        assert!(failures
            .iter()
            .all(|(_, e)| matches!(e, DriverError::ConnectTimeout)));
    }

    #[test]
    fn messages_name_the_host_or_the_address() {
        let addr: SocketAddr = "[::1]:9001".parse().unwrap();
        let failed = ConnectError::Failed {
            addr,
            error: DriverError::ConnectTimeout,
        };
        assert_eq!(
            failed.to_string(),
            "connection failed: [::1]:9001: connect timed out"
        );
        let resolve = ConnectError::Resolve {
            host: "no-such-host.invalid".into(),
            error: io::Error::new(io::ErrorKind::NotFound, "no address"),
        };
        assert_eq!(
            resolve.to_string(),
            "cannot resolve host no-such-host.invalid: no address"
        );
        assert_eq!(
            ConnectError::InvalidUrl(UrlError::Fragment).to_string(),
            format!("invalid URL: {}", UrlError::Fragment)
        );
    }

    #[test]
    fn a_fragment_or_a_bracketed_host_in_a_split_url() {
        let url = WsUrl {
            secure: false,
            host: "h".into(),
            port: 9,
            path: "/a#b".into(),
        };
        let result = Client::connect_url(&url, ClientConfig::default(), NoHandler);
        assert!(
            matches!(result, Err(ConnectError::InvalidUrl(UrlError::Fragment))),
            "{result:?}"
        );
        // Brackets are taken off before resolving: the refusal names the address.
        let Some(addr) = closed_port("::1") else {
            eprintln!("skipped: no IPv6 loopback");
            return;
        };
        let url = WsUrl {
            secure: false,
            host: "[::1]".into(),
            port: addr.port(),
            path: "/".into(),
        };
        match Client::connect_url(&url, ClientConfig::default(), NoHandler) {
            Err(ConnectError::Unreachable(failures)) => {
                assert_eq!(failures.len(), 1);
                assert_eq!(failures[0].0, addr);
            }
            other => panic!("{other:?}"),
        }
    }

    struct NoHandler;
    impl Handler for NoHandler {}
}
