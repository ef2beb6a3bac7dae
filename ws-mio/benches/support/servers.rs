//! Echo servers under test, started in-process on 127.0.0.1 with a given number of threads.
//!
//! Both echo every text and binary message back and leave pings and closes to their library.

use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{future, StreamExt, TryStreamExt};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use ws_mio::{Handler, Message, Server, ServerConfig, Session};

/// The tokio runtime's threads (workers included) are named this.
pub const TOKIO_THREAD_NAME: &str = "tt-echo";
/// `ws_mio::Server` names its loop threads `ws-mio-N`.
pub const WS_MIO_THREAD_NAME: &str = "ws-mio-";

/// How to run the servers.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Worker threads (ws-mio event loops, tokio workers).
    pub threads: usize,
    /// tokio-tungstenite's `read_buffer_size` (`None`: its default, 128 KiB). tungstenite
    /// zero-fills up to this much of its buffer before every read, so the default costs a
    /// 128 KiB memset per read: a smaller one is tokio-tungstenite tuned for small messages.
    pub tt_read_buffer: Option<usize>,
}

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `ws_mio::Server` with an echo handler.
    WsMio,
    /// tokio-tungstenite on a multi-thread tokio runtime.
    TokioTungstenite,
}

impl Kind {
    /// Prefix of the names of the server's threads (for CPU accounting).
    pub fn thread_prefix(self) -> &'static str {
        match self {
            Kind::WsMio => WS_MIO_THREAD_NAME,
            Kind::TokioTungstenite => TOKIO_THREAD_NAME,
        }
    }

    /// Starts the server on 127.0.0.1 (any port).
    pub fn start(self, settings: &Settings) -> io::Result<RunningServer> {
        self.start_on(0, settings)
    }

    /// Starts the server on 127.0.0.1:`port`.
    pub fn start_on(self, port: u16, settings: &Settings) -> io::Result<RunningServer> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        match self {
            Kind::WsMio => start_ws_mio(addr, settings.threads),
            Kind::TokioTungstenite => start_tokio_tungstenite(addr, settings),
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::WsMio => "ws-mio",
            Kind::TokioTungstenite => "tokio-tungstenite",
        })
    }
}

/// A server running in this process; stopped (threads joined) by [`RunningServer::stop`] or
/// on drop.
pub struct RunningServer {
    addr: SocketAddr,
    inner: Inner,
}

enum Inner {
    WsMio(Server),
    Tokio(tokio::runtime::Runtime),
    Stopped,
}

impl RunningServer {
    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops it and waits for its threads.
    pub fn stop(mut self) {
        self.shutdown();
    }

    fn shutdown(&mut self) {
        match std::mem::replace(&mut self.inner, Inner::Stopped) {
            Inner::WsMio(server) => server.stop(),
            Inner::Tokio(runtime) => runtime.shutdown_timeout(Duration::from_secs(2)),
            Inner::Stopped => {}
        }
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// One per connection (a cloneable handler is its own factory).
#[derive(Clone)]
struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, session: &Session, message: Message) {
        let _ = session.send(message);
    }
}

fn start_ws_mio(addr: SocketAddr, threads: usize) -> io::Result<RunningServer> {
    let mut config = ServerConfig::default();
    config.threads = threads;
    config.stop_timeout = Duration::from_secs(2);
    let server = Server::bind(addr, config, Echo)?;
    Ok(RunningServer {
        addr: server.local_addr(),
        inner: Inner::WsMio(server),
    })
}

fn start_tokio_tungstenite(addr: SocketAddr, settings: &Settings) -> io::Result<RunningServer> {
    let mut config = WebSocketConfig::default();
    if let Some(size) = settings.tt_read_buffer {
        config = config.read_buffer_size(size);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(settings.threads)
        .thread_name(TOKIO_THREAD_NAME)
        .enable_io()
        .build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(addr))?;
    let addr = listener.local_addr()?;
    runtime.spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            tokio::spawn(async move {
                let Ok(ws) =
                    tokio_tungstenite::accept_async_with_config(stream, Some(config)).await
                else {
                    return;
                };
                // The usual tokio-tungstenite echo: data messages go back through `forward`,
                // which flushes only when no more input is ready (writes are batched).
                let (sink, stream) = ws.split();
                let _ = stream
                    .try_filter(|m| future::ready(m.is_binary() || m.is_text()))
                    .forward(sink)
                    .await;
            });
        }
    });
    Ok(RunningServer {
        addr,
        inner: Inner::Tokio(runtime),
    })
}
