//! The fastwebsockets peer: fastwebsockets 0.10 behind a hyper 1 HTTP/1.1 server, as the
//! crate's `examples/echo_server.rs` builds one.
//!
//! Each accepted socket is served by `hyper::server::conn::http1` with upgrades enabled. The
//! service answers a WebSocket upgrade request with `fastwebsockets::upgrade::upgrade`, which
//! returns the `101 Switching Protocols` response and a future of the upgraded socket, and spawns
//! the connection's task on that future. A request that is not a valid upgrade makes the service
//! fail, and hyper closes the connection (as in the example).
//!
//! - **Echo** is the example's handler: a `FragmentCollector` (whole messages, fragments joined)
//!   whose text and binary messages are written back as they came, run inside
//!   `tokio::task::unconstrained` as the example runs it. The library answers pings and close
//!   frames itself (`auto_pong`, `auto_close`, both on by default).
//! - **Chat** splits the socket with `WebSocket::split(tokio::io::split)` (feature
//!   `unstable-split`) and reads through a `FragmentCollectorRead`. The write half sits in a
//!   `tokio::sync::Mutex` shared by the forwarding future and the reader's `send_fn`, which
//!   writes the pongs and the close reply the reader owes (the way the crate's `tests/split.rs`
//!   shares it). Broadcast messages travel as `Bytes`, cloned per recipient.
//!
//! The per-frame size limit is raised by one byte so that a frame of exactly
//! [`MAX_MESSAGE_SIZE`] is accepted: fastwebsockets refuses a frame whose length is *equal to*
//! its limit (64 MiB by default).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use ::fastwebsockets::upgrade::{upgrade, UpgradeFut};
use ::fastwebsockets::{
    FragmentCollector, FragmentCollectorRead, Frame, OpCode, Payload, WebSocket, WebSocketError,
};
use bytes::Bytes;
use http_body_util::Empty;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, Mutex};

use super::{
    accept_connection, chat_line, chat_prefix, is_disconnect, log_connection_error, ChatRoom, Mode,
    PeerImpl, MAX_MESSAGE_SIZE,
};

/// The socket of an upgraded connection, as `fastwebsockets::upgrade` hands it out.
type UpgradedIo = TokioIo<hyper::upgrade::Upgraded>;

/// The chat room of this peer: broadcast messages are the bytes of one binary frame's payload.
type Room = ChatRoom<Bytes>;

/// Serves WebSocket connections accepted on `listener` in `mode`, forever.
pub async fn serve(listener: TcpListener, mode: Mode) -> Infallible {
    let room = Room::new();
    loop {
        let (stream, client) = accept_connection(&listener).await;
        let room = room.clone();
        tokio::spawn(async move {
            let service =
                service_fn(move |request| upgrade_request(request, mode, client, room.clone()));
            let connection = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades();
            if let Err(e) = connection.await {
                if !is_hyper_disconnect(&e) {
                    log_connection_error(PeerImpl::Fastwebsockets, client, &e);
                }
            }
        });
    }
}

/// The hyper service: upgrades `request` to a WebSocket connection and spawns the task that
/// serves it in `mode`, then returns the `101` response for hyper to send.
async fn upgrade_request(
    mut request: Request<Incoming>,
    mode: Mode,
    client: SocketAddr,
    room: Room,
) -> Result<Response<Empty<Bytes>>, WebSocketError> {
    let (response, upgraded) = upgrade(&mut request)?;
    tokio::spawn(async move {
        let result = match mode {
            Mode::Echo => tokio::task::unconstrained(echo(upgraded)).await,
            Mode::Chat => chat(upgraded, client, room).await,
        };
        if let Err(e) = result {
            if !is_websocket_disconnect(&e) {
                log_connection_error(PeerImpl::Fastwebsockets, client, &e);
            }
        }
    });
    Ok(response)
}

/// Waits for the upgrade to complete and applies this suite's settings to the socket.
async fn open(upgraded: UpgradeFut) -> Result<WebSocket<UpgradedIo>, WebSocketError> {
    let mut ws = upgraded.await?;
    ws.set_max_message_size(MAX_MESSAGE_SIZE + 1);
    Ok(ws)
}

/// [`Mode::Echo`]: writes every text and binary message back until the client closes.
async fn echo(upgraded: UpgradeFut) -> Result<(), WebSocketError> {
    let mut ws = FragmentCollector::new(open(upgraded).await?);
    loop {
        let frame = ws.read_frame().await?;
        match frame.opcode {
            // `read_frame` has already written the close reply (auto_close).
            OpCode::Close => return Ok(()),
            OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
            _ => {}
        }
    }
}

/// [`Mode::Chat`]: joins the room as `client`, then at the same time broadcasts what the client
/// sends and forwards to the client what the room sends it, until either side ends.
async fn chat(upgraded: UpgradeFut, client: SocketAddr, room: Room) -> Result<(), WebSocketError> {
    let ws = open(upgraded).await?;
    let (reader, writer) = ws.split(tokio::io::split);
    let mut reader = FragmentCollectorRead::new(reader);
    let writer = Arc::new(Mutex::new(writer));

    let (outgoing, mut incoming) = mpsc::unbounded_channel::<Bytes>();
    room.join(client, outgoing);

    // What the room sends this client, written to its socket one frame per message.
    let forward_to_client = {
        let writer = Arc::clone(&writer);
        async move {
            while let Some(line) = incoming.recv().await {
                let frame = Frame::binary(Payload::Borrowed(&line));
                writer.lock().await.write_frame(frame).await?;
            }
            Ok::<(), WebSocketError>(())
        }
    };

    // What the client sends, broadcast to the room. `send_fn` writes the frames the reader owes
    // the client: pongs, and the reply to a close frame.
    let prefix = chat_prefix(client);
    let broadcast_from_client = async {
        let mut send_owed_frame = |frame: Frame<'static>| {
            let writer = Arc::clone(&writer);
            async move { writer.lock().await.write_frame(frame).await }
        };
        loop {
            let frame = reader.read_frame(&mut send_owed_frame).await?;
            match frame.opcode {
                OpCode::Close => return Ok::<(), WebSocketError>(()),
                OpCode::Text | OpCode::Binary => room.broadcast(chat_line(&prefix, &frame.payload)),
                _ => {}
            }
        }
    };

    room.serve_member(client, broadcast_from_client, forward_to_client)
        .await
}

/// Whether a fastwebsockets error only says that the client went away.
fn is_websocket_disconnect(error: &WebSocketError) -> bool {
    match error {
        WebSocketError::UnexpectedEOF | WebSocketError::ConnectionClosed => true,
        WebSocketError::IoError(e) => is_disconnect(e),
        WebSocketError::HTTPError(e) => is_hyper_disconnect(e),
        _ => false,
    }
}

/// Whether a hyper connection error only says that the client went away.
fn is_hyper_disconnect(error: &hyper::Error) -> bool {
    if error.is_incomplete_message() || error.is_closed() {
        return true;
    }
    std::error::Error::source(error)
        .and_then(|source| source.downcast_ref::<std::io::Error>())
        .is_some_and(is_disconnect)
}
