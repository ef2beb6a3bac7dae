//! The peer servers: small WebSocket servers built with the libraries this stack is compared
//! with, each written the way that library's own documentation and examples write one.
//!
//! | peer | built from |
//! |---|---|
//! | [`PeerImpl::Fastwebsockets`] | a hyper 1 HTTP/1.1 server, `fastwebsockets::upgrade::upgrade`, `FragmentCollector` (its `examples/echo_server.rs`) |
//! | [`PeerImpl::TokioTungstenite`] | `tokio_tungstenite::accept_async` on each accepted socket (its `examples/echo-server.rs` and `examples/server.rs`) |
//! | [`PeerImpl::TokioWebsockets`] | `tokio_websockets::ServerBuilder` on each accepted socket (its `examples/echo_server.rs`) |
//!
//! Every peer runs on a default multi-thread tokio runtime (one worker thread per core), listens
//! on `127.0.0.1`, and serves one of two [`Mode`]s:
//!
//! - [`Mode::Echo`]: every text or binary message is sent back as it came (same opcode); pings
//!   are answered and the close handshake completed by the library itself.
//! - [`Mode::Chat`]: one broadcasting chat room. Every text or binary message received from any
//!   connection goes to every connected client, the sender included, as one binary message
//!   `"<peer ip:port>: <message>"`. The room is the pattern of tokio-tungstenite's
//!   `examples/server.rs`: a shared map from each client's address to the sending end of an
//!   unbounded channel (`ChatRoom`), and in each connection's task a future that forwards
//!   what arrives on that channel to the socket, beside the one that reads the socket.
//!
//! Two things are the same for every peer and are not in the libraries' examples: each
//! accepted socket gets `TCP_NODELAY` (as `ws-mio` sets on its own sockets, so that no peer is
//! slowed by Nagle's algorithm), and a failed `accept` is logged and retried instead of ending
//! the server. No peer accepts messages smaller than [`MAX_MESSAGE_SIZE`], except that
//! tokio-tungstenite keeps its default 16 MiB limit on a single frame (larger messages must
//! come in several frames).
//!
//! [`run`] starts a peer: it binds, prints `listening on 127.0.0.1:PORT` on stdout once the
//! socket accepts connections, and serves until the process is killed.

pub mod fastwebsockets;
pub mod tokio_tungstenite;
pub mod tokio_websockets;

use std::collections::HashMap;
use std::convert::Infallible;
use std::fmt;
use std::io::{self, Write as _};
use std::net::{Ipv4Addr, SocketAddr};
use std::str::FromStr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedSender;

/// The largest message every peer accepts (64 MiB): the default of tungstenite,
/// tokio-websockets and fastwebsockets alike. Peers whose default is lower are raised to it.
pub const MAX_MESSAGE_SIZE: usize = 64 << 20;

/// How long a peer waits before it calls `accept` again after a failed one (for example when
/// it has run out of file descriptors), so that a persistent error does not spin a core.
const ACCEPT_RETRY_DELAY: Duration = Duration::from_millis(10);

/// Which library a peer server is built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PeerImpl {
    /// [fastwebsockets](https://docs.rs/fastwebsockets) 0.10 behind a hyper 1 HTTP/1.1 server.
    Fastwebsockets,
    /// [tokio-tungstenite](https://docs.rs/tokio-tungstenite) 0.29.
    TokioTungstenite,
    /// [tokio-websockets](https://docs.rs/tokio-websockets) 0.13.
    TokioWebsockets,
}

impl PeerImpl {
    /// Every peer, in the order the suite reports them.
    pub const ALL: [PeerImpl; 3] = [
        PeerImpl::Fastwebsockets,
        PeerImpl::TokioTungstenite,
        PeerImpl::TokioWebsockets,
    ];

    /// The peer's name on the command line and in reports: the library's crate name.
    pub fn name(self) -> &'static str {
        match self {
            PeerImpl::Fastwebsockets => "fastwebsockets",
            PeerImpl::TokioTungstenite => "tokio-tungstenite",
            PeerImpl::TokioWebsockets => "tokio-websockets",
        }
    }
}

impl fmt::Display for PeerImpl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PeerImpl {
    type Err = UnknownNameError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        PeerImpl::ALL
            .into_iter()
            .find(|peer| peer.name() == name)
            .ok_or_else(|| UnknownNameError::new("peer implementation", name, PEER_NAMES))
    }
}

/// The names [`PeerImpl::from_str`] accepts, for error messages and usage text.
const PEER_NAMES: &[&str] = &["fastwebsockets", "tokio-tungstenite", "tokio-websockets"];

/// What a peer server does with the messages it receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// Send every text and binary message back to its sender, with the same opcode.
    Echo,
    /// Send every text and binary message to every connected client, the sender included, as
    /// a binary message `"<sender ip:port>: <message>"`.
    Chat,
}

impl Mode {
    /// Both modes.
    pub const ALL: [Mode; 2] = [Mode::Echo, Mode::Chat];

    /// The mode's name on the command line: `echo` or `chat`.
    pub fn name(self) -> &'static str {
        match self {
            Mode::Echo => "echo",
            Mode::Chat => "chat",
        }
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Mode {
    type Err = UnknownNameError;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        Mode::ALL
            .into_iter()
            .find(|mode| mode.name() == name)
            .ok_or_else(|| UnknownNameError::new("mode", name, MODE_NAMES))
    }
}

/// The names [`Mode::from_str`] accepts.
const MODE_NAMES: &[&str] = &["echo", "chat"];

/// A name that is not one of a [`PeerImpl`]'s or a [`Mode`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownNameError {
    /// What was being named: `"peer implementation"` or `"mode"`.
    what: &'static str,
    /// The name that was given.
    given: String,
    /// The names that would have been accepted.
    expected: &'static [&'static str],
}

impl UnknownNameError {
    /// An error for `given`, which names none of `expected`.
    fn new(what: &'static str, given: &str, expected: &'static [&'static str]) -> Self {
        UnknownNameError {
            what,
            given: given.to_owned(),
            expected,
        }
    }
}

impl fmt::Display for UnknownNameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown {} `{}` (expected one of: {})",
            self.what,
            self.given,
            self.expected.join(", ")
        )
    }
}

impl std::error::Error for UnknownNameError {}

/// Why a peer server could not start. Once it serves, a peer never stops on its own: errors of
/// single connections are logged to stderr and end only that connection.
#[derive(Debug)]
#[non_exhaustive]
pub enum PeerError {
    /// The tokio runtime could not be built.
    Runtime(io::Error),
    /// Binding or listening on `127.0.0.1` with the requested port failed.
    Bind(io::Error),
    /// The `listening on …` line could not be written to stdout.
    Announce(io::Error),
}

impl fmt::Display for PeerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PeerError::Runtime(e) => write!(f, "cannot build the tokio runtime: {e}"),
            PeerError::Bind(e) => write!(f, "cannot listen on 127.0.0.1: {e}"),
            PeerError::Announce(e) => write!(f, "cannot write the listening address: {e}"),
        }
    }
}

impl std::error::Error for PeerError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PeerError::Runtime(e) | PeerError::Bind(e) | PeerError::Announce(e) => Some(e),
        }
    }
}

/// Runs the peer server `peer` in `mode` on `127.0.0.1:port` (`port` 0 picks a free port), on
/// a default multi-thread tokio runtime, until the process ends.
///
/// Once the socket listens, it prints exactly one line, `listening on 127.0.0.1:PORT`, to
/// stdout and flushes it. It returns only if it cannot start.
pub fn run(peer: PeerImpl, mode: Mode, port: u16) -> Result<Infallible, PeerError> {
    let runtime = tokio::runtime::Runtime::new().map_err(PeerError::Runtime)?;
    runtime.block_on(async move {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .map_err(PeerError::Bind)?;
        let address = listener.local_addr().map_err(PeerError::Bind)?;
        announce(address).map_err(PeerError::Announce)?;
        Ok(serve(peer, mode, listener).await)
    })
}

/// Serves `peer` in `mode` on an already bound `listener`, forever. Call it inside a tokio
/// runtime that has I/O and time enabled; [`run`] does all of that.
pub async fn serve(peer: PeerImpl, mode: Mode, listener: TcpListener) -> Infallible {
    match peer {
        PeerImpl::Fastwebsockets => self::fastwebsockets::serve(listener, mode).await,
        PeerImpl::TokioTungstenite => self::tokio_tungstenite::serve(listener, mode).await,
        PeerImpl::TokioWebsockets => self::tokio_websockets::serve(listener, mode).await,
    }
}

/// Prints the line that tells whoever started the peer where it listens.
fn announce(address: SocketAddr) -> io::Result<()> {
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "listening on {address}")?;
    stdout.flush()
}

/// Waits for the next connection on `listener` and returns it with `TCP_NODELAY` set. A failed
/// `accept` is logged and retried after [`ACCEPT_RETRY_DELAY`].
async fn accept_connection(listener: &TcpListener) -> (TcpStream, SocketAddr) {
    loop {
        match listener.accept().await {
            Ok((stream, address)) => {
                if let Err(e) = stream.set_nodelay(true) {
                    eprintln!("{address}: cannot set TCP_NODELAY: {e}");
                }
                return (stream, address);
            }
            Err(e) => {
                eprintln!("accept failed: {e}");
                tokio::time::sleep(ACCEPT_RETRY_DELAY).await;
            }
        }
    }
}

/// Whether an I/O error only says that the client went away (closed or reset its socket), which
/// a benchmark's load generator does all the time and is not worth a line on stderr.
fn is_disconnect(error: &io::Error) -> bool {
    matches!(
        error.kind(),
        io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
    )
}

/// Logs the error that ended the connection from `client` to stderr, with its chain of causes.
fn log_connection_error(
    peer: PeerImpl,
    client: SocketAddr,
    error: &(dyn std::error::Error + 'static),
) {
    let mut line = format!("{peer} peer: connection from {client}: {error}");
    let mut cause = error.source();
    while let Some(source) = cause {
        // Many errors already print their cause in their own message; it is not repeated.
        let text = source.to_string();
        if !line.ends_with(&text) {
            line.push_str(": ");
            line.push_str(&text);
        }
        cause = source.source();
    }
    eprintln!("{line}");
}

/// The chat message `"<sender ip:port>: <message>"` that [`Mode::Chat`] sends for `message`,
/// given the sender's `prefix` made by [`chat_prefix`].
fn chat_line(prefix: &[u8], message: &[u8]) -> Bytes {
    let mut line = BytesMut::with_capacity(prefix.len() + message.len());
    line.extend_from_slice(prefix);
    line.extend_from_slice(message);
    line.freeze()
}

/// The `"<ip:port>: "` that starts every chat message from `sender`.
fn chat_prefix(sender: SocketAddr) -> Vec<u8> {
    format!("{sender}: ").into_bytes()
}

/// The chat room of [`Mode::Chat`]: every connected client's address, with the sending end of
/// the unbounded channel whose messages that client's connection forwards to its socket.
///
/// This is tokio-tungstenite's `examples/server.rs` `PeerMap`
/// (`Arc<Mutex<HashMap<SocketAddr, UnboundedSender<Message>>>>`), generic over the message type
/// so every peer can use it with its own library's message. Cloning it clones the handle, not
/// the room.
struct ChatRoom<M> {
    /// The members, by address.
    members: Arc<Mutex<HashMap<SocketAddr, UnboundedSender<M>>>>,
}

impl<M> Clone for ChatRoom<M> {
    fn clone(&self) -> Self {
        ChatRoom {
            members: Arc::clone(&self.members),
        }
    }
}

impl<M: Clone> ChatRoom<M> {
    /// An empty room.
    fn new() -> Self {
        ChatRoom {
            members: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Adds the client at `address`, whose outgoing messages go into `outgoing`.
    fn join(&self, address: SocketAddr, outgoing: UnboundedSender<M>) {
        self.lock().insert(address, outgoing);
    }

    /// Removes the client at `address`.
    fn leave(&self, address: SocketAddr) {
        self.lock().remove(&address);
    }

    /// Runs a member's two halves, reading its socket into the room and forwarding the room
    /// to its socket, until either ends; then the member at `address` leaves the room.
    async fn serve_member<E>(
        &self,
        address: SocketAddr,
        reading: impl std::future::Future<Output = Result<(), E>>,
        forwarding: impl std::future::Future<Output = Result<(), E>>,
    ) -> Result<(), E> {
        use futures_util::future::{self, Either};
        let result = match future::select(std::pin::pin!(reading), std::pin::pin!(forwarding)).await
        {
            Either::Left((result, _)) | Either::Right((result, _)) => result,
        };
        self.leave(address);
        result
    }

    /// Queues a clone of `message` for every member, the sender included. A member whose
    /// connection has already ended (its receiver is gone) is skipped; it leaves the room itself.
    fn broadcast(&self, message: M) {
        for outgoing in self.lock().values() {
            let _ = outgoing.send(message.clone());
        }
    }

    /// Locks the member map. A panic of another connection while it held the lock leaves the map
    /// itself consistent (every operation on it is a single call), so a poisoned lock is used.
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, UnboundedSender<M>>> {
        self.members.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    //! Each peer, in each mode, started in-process on a free port and exercised with a
    //! tokio-tungstenite client for a few messages.

    use super::*;

    use ::tokio_tungstenite::tungstenite::Message;
    use ::tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
    use futures_util::{SinkExt, StreamExt};

    /// A connected test client.
    type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

    /// How long any single step of these tests may take before it counts as hung.
    const STEP_TIMEOUT: Duration = Duration::from_secs(5);

    #[test]
    fn names_parse_and_print() {
        for peer in PeerImpl::ALL {
            assert_eq!(peer.name().parse::<PeerImpl>(), Ok(peer));
            assert_eq!(peer.to_string(), peer.name());
        }
        for mode in Mode::ALL {
            assert_eq!(mode.name().parse::<Mode>(), Ok(mode));
        }
        let error = "tungstenite".parse::<PeerImpl>().unwrap_err();
        assert!(error.to_string().contains("`tungstenite`"), "{error}");
        assert!("Echo".parse::<Mode>().is_err());
    }

    #[test]
    fn chat_line_is_prefixed_with_the_sender() {
        let sender: SocketAddr = "127.0.0.1:4242".parse().unwrap();
        let line = chat_line(&chat_prefix(sender), b"hi");
        assert_eq!(&line[..], b"127.0.0.1:4242: hi");
    }

    /// Starts `peer` in `mode` on a free port of a runtime of the test's own; returns the runtime
    /// (dropping it stops the peer) and the address.
    fn start(peer: PeerImpl, mode: Mode) -> (tokio::runtime::Runtime, SocketAddr) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(TcpListener::bind((Ipv4Addr::LOCALHOST, 0)))
            .expect("bind");
        let address = listener.local_addr().expect("local address");
        runtime.spawn(serve(peer, mode, listener));
        (runtime, address)
    }

    /// Opens a WebSocket connection to `address`; returns it with the client's own address.
    async fn connect(address: SocketAddr) -> (Client, SocketAddr) {
        let (client, _response) = tokio::time::timeout(
            STEP_TIMEOUT,
            ::tokio_tungstenite::connect_async(format!("ws://{address}/")),
        )
        .await
        .expect("handshake timed out")
        .expect("handshake");
        let local = match client.get_ref() {
            MaybeTlsStream::Plain(stream) => stream.local_addr().expect("local address"),
            _ => unreachable!("plain ws:// connection"),
        };
        (client, local)
    }

    /// The next message that is not a ping or pong.
    async fn next_message(client: &mut Client) -> Message {
        loop {
            let message = tokio::time::timeout(STEP_TIMEOUT, client.next())
                .await
                .expect("no message in time")
                .expect("connection ended")
                .expect("read");
            if !message.is_ping() && !message.is_pong() {
                return message;
            }
        }
    }

    /// Sends a close frame and checks that the server answers with one and then closes the
    /// connection.
    async fn close(mut client: Client) {
        client.close(None).await.expect("send close");
        loop {
            match tokio::time::timeout(STEP_TIMEOUT, client.next())
                .await
                .expect("close handshake timed out")
            {
                Some(Ok(Message::Close(_))) => break,
                Some(Ok(_)) => {}
                Some(Err(e)) => panic!("close handshake: {e}"),
                None => panic!("the server closed the connection without a close frame"),
            }
        }
        // After the close handshake the server closes the TCP connection.
        let end = tokio::time::timeout(STEP_TIMEOUT, client.next())
            .await
            .expect("the server did not close the connection");
        assert!(
            !matches!(end, Some(Ok(_))),
            "a message after the close: {end:?}"
        );
    }

    fn check_echo(peer: PeerImpl) {
        let (runtime, address) = start(peer, Mode::Echo);
        runtime.block_on(async {
            let (mut client, _) = connect(address).await;
            let big = vec![7_u8; 300_000];
            let messages = [
                Message::text("hello"),
                Message::binary(vec![1_u8, 2, 3]),
                Message::binary(big),
                Message::text(""),
            ];
            for message in messages {
                client.send(message.clone()).await.expect("send");
                assert_eq!(next_message(&mut client).await, message, "{peer}");
            }
            client
                .send(Message::Ping(Bytes::from_static(b"p")))
                .await
                .expect("ping");
            let pong = tokio::time::timeout(STEP_TIMEOUT, client.next())
                .await
                .expect("no pong in time")
                .expect("connection ended")
                .expect("read");
            assert_eq!(pong, Message::Pong(Bytes::from_static(b"p")), "{peer}");
            close(client).await;
        });
    }

    /// Reads `client`'s messages until one ends with `suffix`, skipping the others; returns it.
    async fn skip_until(client: &mut Client, suffix: &[u8]) -> Message {
        loop {
            let message = next_message(client).await;
            if message.clone().into_data().ends_with(suffix) {
                return message;
            }
        }
    }

    fn check_chat(peer: PeerImpl) {
        let (runtime, address) = start(peer, Mode::Chat);
        runtime.block_on(async {
            let (mut alice, alice_address) = connect(address).await;
            let (mut bob, bob_address) = connect(address).await;
            // A connection joins the room just after its handshake. Each client waits for its
            // own "join" to come back, which proves it is in the room.
            for (client, own) in [(&mut alice, alice_address), (&mut bob, bob_address)] {
                client.send(Message::text("join")).await.expect("send");
                skip_until(client, format!("{own}: join").as_bytes()).await;
            }
            // Both are in the room now, so from here on each sees exactly the same messages.
            alice
                .send(Message::binary(b"marker".to_vec()))
                .await
                .expect("send");
            let marker = Message::binary(format!("{alice_address}: marker").into_bytes());
            assert_eq!(skip_until(&mut alice, b": marker").await, marker, "{peer}");
            assert_eq!(skip_until(&mut bob, b": marker").await, marker, "{peer}");
            bob.send(Message::text("hi all")).await.expect("send");
            let expected = Message::binary(format!("{bob_address}: hi all").into_bytes());
            assert_eq!(next_message(&mut alice).await, expected, "{peer}");
            assert_eq!(next_message(&mut bob).await, expected, "{peer}");
            close(alice).await;
            close(bob).await;
        });
    }

    #[test]
    fn fastwebsockets_echoes() {
        check_echo(PeerImpl::Fastwebsockets);
    }

    #[test]
    fn tokio_tungstenite_echoes() {
        check_echo(PeerImpl::TokioTungstenite);
    }

    #[test]
    fn tokio_websockets_echoes() {
        check_echo(PeerImpl::TokioWebsockets);
    }

    #[test]
    fn fastwebsockets_chat_broadcasts() {
        check_chat(PeerImpl::Fastwebsockets);
    }

    #[test]
    fn tokio_tungstenite_chat_broadcasts() {
        check_chat(PeerImpl::TokioTungstenite);
    }

    #[test]
    fn tokio_websockets_chat_broadcasts() {
        check_chat(PeerImpl::TokioWebsockets);
    }
}
