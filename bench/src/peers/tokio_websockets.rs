//! The tokio-websockets peer: tokio-websockets 0.13 with `ServerBuilder`, as the crate's
//! `examples/echo_server.rs` builds a server.
//!
//! Each accepted socket gets its own task, which runs the handshake with
//! `ServerBuilder::accept`. The configuration is the example's, except for the size limit:
//! outgoing messages are never split into several frames (`Config::frame_size(usize::MAX)`; the
//! default would split messages above 4 MiB), and incoming messages keep the default limit of
//! 64 MiB (the example lifts it with `Limits::unlimited()`; here every peer has the same limit).
//! tokio-websockets answers pings and close frames itself.
//!
//! - **Echo** is the example's loop, run inside `tokio::task::unconstrained` as the example
//!   runs it: every text and binary message is `send` back (written and flushed) as it came.
//! - **Chat** follows tokio-tungstenite's `examples/server.rs`, as the other peers do: the stream
//!   is split into its sink and stream halves (`StreamExt::split`), the connection joins the
//!   shared room with the sending end of an unbounded channel, and `future::select` runs the
//!   future that broadcasts each incoming message (one `Message` cloned per recipient) beside
//!   the one that `forward`s the channel into the sink.

use std::convert::Infallible;
use std::net::SocketAddr;

use futures_util::future;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use futures_util::SinkExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_websockets::{Config, Error, Limits, Message, ServerBuilder, WebSocketStream};

use super::{
    accept_connection, chat_line, chat_prefix, is_disconnect, log_connection_error, ChatRoom, Mode,
    PeerImpl, MAX_MESSAGE_SIZE,
};

/// The chat room of this peer: broadcast messages are tokio-websockets messages.
type Room = ChatRoom<Message>;

/// Serves WebSocket connections accepted on `listener` in `mode`, forever.
pub async fn serve(listener: TcpListener, mode: Mode) -> Infallible {
    let room = Room::new();
    loop {
        let (stream, client) = accept_connection(&listener).await;
        let room = room.clone();
        tokio::spawn(async move {
            let result = match mode {
                Mode::Echo => tokio::task::unconstrained(echo(stream)).await,
                Mode::Chat => chat(stream, client, room).await,
            };
            if let Err(e) = result {
                if !is_websockets_disconnect(&e) {
                    log_connection_error(PeerImpl::TokioWebsockets, client, &e);
                }
            }
        });
    }
}

/// Runs the upgrade handshake on `stream` with this peer's configuration.
async fn accept(stream: TcpStream) -> Result<WebSocketStream<TcpStream>, Error> {
    let (_request, ws) = ServerBuilder::new()
        .config(Config::default().frame_size(usize::MAX))
        .limits(Limits::default().max_payload_len(Some(MAX_MESSAGE_SIZE)))
        .accept(stream)
        .await?;
    Ok(ws)
}

/// [`Mode::Echo`]: sends every text and binary message back until the connection ends.
async fn echo(stream: TcpStream) -> Result<(), Error> {
    let mut ws = accept(stream).await?;
    while let Some(message) = ws.next().await {
        let message = message?;
        if message.is_text() || message.is_binary() {
            ws.send(message).await?;
        }
    }
    Ok(())
}

/// [`Mode::Chat`]: joins the room as `client`, then at the same time broadcasts what the client
/// sends and forwards to the client what the room sends it, until either side ends.
async fn chat(stream: TcpStream, client: SocketAddr, room: Room) -> Result<(), Error> {
    let ws = accept(stream).await?;
    let (outgoing, incoming) = ws.split();

    let (to_client, mut from_room) = mpsc::unbounded_channel::<Message>();
    room.join(client, to_client);

    let prefix = chat_prefix(client);
    let broadcast_from_client = incoming.try_for_each(|message| {
        if message.is_text() || message.is_binary() {
            let line = chat_line(&prefix, message.as_payload());
            room.broadcast(Message::binary(line));
        }
        future::ok(())
    });
    let forward_to_client = stream::poll_fn(|cx| from_room.poll_recv(cx))
        .map(Ok)
        .forward(outgoing);

    room.serve_member(client, broadcast_from_client, forward_to_client)
        .await
}

/// Whether a tokio-websockets error only says that the client went away or closed the
/// connection.
fn is_websockets_disconnect(error: &Error) -> bool {
    match error {
        Error::AlreadyClosed => true,
        Error::Io(e) => is_disconnect(e),
        _ => false,
    }
}
