//! The tokio-tungstenite peer: tokio-tungstenite 0.29 with its default configuration, as the
//! crate's examples build a server.
//!
//! Each accepted socket gets its own task, which runs the handshake with
//! `tokio_tungstenite::accept_async` and splits the resulting stream into its sink and stream
//! halves (`StreamExt::split`).
//!
//! - **Echo** is `examples/echo-server.rs`: the stream, filtered to text and binary messages, is
//!   `forward`ed into the sink. `forward` writes every message that is ready and flushes when no
//!   more input is waiting, so writes are batched. tungstenite queues the pongs and the close
//!   reply itself and sends them with the next read or write.
//! - **Chat** is `examples/server.rs`, except that the sender gets its own messages too: the
//!   connection joins the shared room with the sending end of an unbounded channel, and
//!   `future::select` runs the future that broadcasts each incoming message (one `Message`
//!   cloned per recipient) beside the one that `forward`s the channel into the sink.
//!
//! tungstenite's defaults are kept: messages up to 64 MiB, frames up to 16 MiB.

use std::convert::Infallible;
use std::net::SocketAddr;

use futures_util::future;
use futures_util::stream::{self, StreamExt, TryStreamExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tungstenite::error::ProtocolError;
use tungstenite::{Error, Message};

use super::{
    accept_connection, chat_line, chat_prefix, is_disconnect, log_connection_error, ChatRoom, Mode,
    PeerImpl,
};

/// The chat room of this peer: broadcast messages are tungstenite messages.
type Room = ChatRoom<Message>;

/// Serves WebSocket connections accepted on `listener` in `mode`, forever.
pub async fn serve(listener: TcpListener, mode: Mode) -> Infallible {
    let room = Room::new();
    loop {
        let (stream, client) = accept_connection(&listener).await;
        let room = room.clone();
        tokio::spawn(async move {
            let result = match mode {
                Mode::Echo => echo(stream).await,
                Mode::Chat => chat(stream, client, room).await,
            };
            if let Err(e) = result {
                if !is_tungstenite_disconnect(&e) {
                    log_connection_error(PeerImpl::TokioTungstenite, client, &e);
                }
            }
        });
    }
}

/// [`Mode::Echo`]: forwards every text and binary message back until the connection ends.
async fn echo(stream: TcpStream) -> Result<(), Error> {
    let ws = tokio_tungstenite::accept_async(stream).await?;
    let (outgoing, incoming) = ws.split();
    incoming
        .try_filter(|message| future::ready(message.is_text() || message.is_binary()))
        .forward(outgoing)
        .await
}

/// [`Mode::Chat`]: joins the room as `client`, then at the same time broadcasts what the client
/// sends and forwards to the client what the room sends it, until either side ends.
async fn chat(stream: TcpStream, client: SocketAddr, room: Room) -> Result<(), Error> {
    let ws = tokio_tungstenite::accept_async(stream).await?;
    let (outgoing, incoming) = ws.split();

    let (to_client, mut from_room) = mpsc::unbounded_channel::<Message>();
    room.join(client, to_client);

    let prefix = chat_prefix(client);
    let broadcast_from_client = incoming.try_for_each(|message| {
        if message.is_text() || message.is_binary() {
            let line = chat_line(&prefix, &message.into_data());
            room.broadcast(Message::Binary(line));
        }
        future::ok(())
    });
    let forward_to_client = stream::poll_fn(|cx| from_room.poll_recv(cx))
        .map(Ok)
        .forward(outgoing);

    room.serve_member(client, broadcast_from_client, forward_to_client)
        .await
}

/// Whether a tungstenite error only says that the client went away or closed the connection
/// (also in the middle of the handshake).
fn is_tungstenite_disconnect(error: &Error) -> bool {
    match error {
        Error::ConnectionClosed
        | Error::AlreadyClosed
        | Error::Protocol(
            ProtocolError::ResetWithoutClosingHandshake | ProtocolError::HandshakeIncomplete,
        ) => true,
        Error::Io(e) => is_disconnect(e),
        _ => false,
    }
}
