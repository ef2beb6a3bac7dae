//! Interoperability with an independent implementation (tungstenite, sync API, std sockets),
//! both ways: our `Server` with tungstenite clients, our `Client` with a tungstenite server.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::{eventually, pattern, text_pattern, Ev, Probe, Recorder, Recording, WAIT};
use tungstenite::protocol::frame::coding::{CloseCode, Data, OpCode};
use tungstenite::protocol::frame::{CloseFrame, Frame};
use tungstenite::protocol::WebSocketConfig;
use tungstenite::{Message as TMessage, WebSocket};
use ws_mio::{Client, ClientConfig, Message, Server, ServerConfig};

/// An application close code (4000–4999).
fn app_code(code: u16) -> ws_mio::CloseCode {
    ws_mio::CloseCode::new(code).expect("a valid close code")
}

/// 0, the 7-bit/16-bit/64-bit length boundaries, and 16 MiB.
const SIZES: &[usize] = &[0, 1, 125, 126, 65535, 65536, 16 << 20];

fn tungstenite_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .max_message_size(Some(64 << 20))
        .max_frame_size(Some(64 << 20))
}

fn protocol_config() -> ws_mio::ws_proto::Config {
    let mut config = ws_mio::ws_proto::Config::default();
    config.max_frame_size = 32 << 20;
    config.max_message_size = 64 << 20;
    config.max_buffered_output = 32 << 20;
    config
}

fn echo_server() -> (Server, Probe) {
    let (factory, probe) = Recording::new(true);
    let mut config = ServerConfig::default();
    config.protocol = protocol_config();
    config.threads = 2;
    let server = Server::bind("127.0.0.1:0", config, factory).expect("bind");
    (server, probe)
}

fn tungstenite_client(addr: SocketAddr) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream.set_write_timeout(Some(WAIT)).unwrap();
    let url = format!("ws://{addr}/");
    let (ws, response) =
        tungstenite::client::client_with_config(url, stream, Some(tungstenite_config()))
            .expect("tungstenite handshake with our server");
    assert_eq!(response.status(), 101);
    ws
}

/// Reads the next data or close message, answering pings on the way.
fn next_data(ws: &mut WebSocket<TcpStream>) -> TMessage {
    loop {
        match ws.read().expect("tungstenite read") {
            TMessage::Ping(_) | TMessage::Pong(_) | TMessage::Frame(_) => continue,
            other => return other,
        }
    }
}

/// Reads until the server closes TCP after the closing handshake, then drops the socket (the
/// server waits for our FIN before it reports the end of the connection).
fn read_to_end(mut ws: WebSocket<TcpStream>) {
    loop {
        match ws.read() {
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => return,
            Err(e) => panic!("expected a clean close, got {e}"),
        }
    }
}

fn to_ours(message: TMessage) -> Message {
    match message {
        TMessage::Text(text) => Message::Text(text.as_str().to_owned()),
        TMessage::Binary(data) => Message::Binary(data.to_vec()),
        other => panic!("expected a data message, got {other:?}"),
    }
}

fn fragment(data: &[u8], opcode: Data, fin: bool) -> TMessage {
    TMessage::Frame(Frame::message(data.to_vec(), OpCode::Data(opcode), fin))
}

fn close_frame(code: u16, reason: &str) -> CloseFrame {
    CloseFrame {
        code: CloseCode::from(code),
        reason: reason.into(),
    }
}

/// Runs `script` on a tungstenite server accepting one connection on a fresh port.
fn tungstenite_server<T: Send + 'static>(
    script: impl FnOnce(WebSocket<TcpStream>) -> T + Send + 'static,
) -> (SocketAddr, JoinHandle<T>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let thread = std::thread::spawn(move || {
        let deadline = Instant::now() + WAIT;
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    assert!(Instant::now() < deadline, "no client connected");
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => panic!("accept: {e}"),
            }
        };
        stream.set_nonblocking(false).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.set_write_timeout(Some(WAIT)).unwrap();
        let ws = tungstenite::accept_with_config(stream, Some(tungstenite_config()))
            .expect("tungstenite accepts our client");
        script(ws)
    });
    (addr, thread)
}

/// Echoes data messages until the connection closes; returns the close frame received.
fn tungstenite_echo(mut ws: WebSocket<TcpStream>) -> Option<CloseFrame> {
    let mut close = None;
    loop {
        match ws.read() {
            Ok(m @ (TMessage::Text(_) | TMessage::Binary(_))) => ws.send(m).expect("echo"),
            Ok(TMessage::Close(frame)) => close = frame,
            Ok(_) => {}
            Err(tungstenite::Error::ConnectionClosed) => return close,
            Err(e) => panic!("tungstenite server: {e}"),
        }
    }
}

fn our_client(addr: SocketAddr) -> (Client, Probe) {
    let (handler, probe) = Recorder::new(false);
    let mut config = ClientConfig::default();
    config.protocol = protocol_config();
    config.connect_timeout = Duration::from_secs(5);
    let client = Client::connect(&format!("ws://{addr}/"), config, handler).expect("connect");
    (client, probe)
}

fn sample_messages() -> Vec<Message> {
    let mut messages = Vec::new();
    for &size in SIZES {
        messages.push(Message::Text(text_pattern(size)));
        messages.push(Message::Binary(pattern(size, size as u8)));
    }
    messages.push(Message::Text("héllo wörld ✓ 🦀".into()));
    messages
}

// ---------------------------------------------------------------------------------------------
// Our server, tungstenite clients
// ---------------------------------------------------------------------------------------------

#[test]
fn server_echoes_every_size_to_a_tungstenite_client() {
    let (server, probe) = echo_server();
    let mut ws = tungstenite_client(server.local_addr());
    let session = probe.opened();
    for message in sample_messages() {
        let sent = match &message {
            Message::Text(t) => TMessage::text(t.clone()),
            Message::Binary(b) => TMessage::binary(b.clone()),
            other => panic!("no such sample: {other:?}"),
        };
        ws.send(sent).unwrap();
        let received = probe.message(session.id());
        assert!(received == message, "server got a different message");
        let echoed = to_ours(next_data(&mut ws));
        assert!(
            echoed == message,
            "echo of a {}-byte message differs",
            message.as_bytes().len()
        );
    }
    ws.close(None).unwrap();
    assert!(matches!(next_data(&mut ws), TMessage::Close(_)));
    read_to_end(ws);
    let disconnect = probe.closed(session.id());
    assert_eq!(
        disconnect.code, 1005,
        "a close without code is reported as 1005"
    );
    assert!(disconnect.error.is_none(), "{:?}", disconnect.error);
    assert_eq!(probe.tally().errors, vec![]);
}

#[test]
fn server_reassembles_fragmented_messages_from_tungstenite() {
    let (server, probe) = echo_server();
    let mut ws = tungstenite_client(server.local_addr());
    let session = probe.opened();

    // Text in three fragments, a multi-byte character split across two of them, and a ping
    // between fragments (control frames may interleave, §5.4).
    let text = "héllo wörld".as_bytes();
    ws.send(fragment(&text[..2], Data::Text, false)).unwrap();
    ws.send(TMessage::Ping(b"mid".to_vec().into())).unwrap();
    ws.send(fragment(&text[2..7], Data::Continue, false))
        .unwrap();
    ws.send(fragment(&text[7..], Data::Continue, true)).unwrap();
    assert_eq!(
        probe.message(session.id()),
        Message::Text("héllo wörld".into())
    );
    let mut pong = None;
    let echo = loop {
        match ws.read().unwrap() {
            TMessage::Pong(p) => pong = Some(p.to_vec()),
            TMessage::Text(t) => break t.as_str().to_owned(),
            other => panic!("unexpected {other:?}"),
        }
    };
    assert_eq!(echo, "héllo wörld");
    assert_eq!(pong.as_deref(), Some(&b"mid"[..]), "pong echoes the ping");

    // Binary with an empty first fragment, then 100 KiB in 1-KiB-sized pieces.
    let data = pattern(100 << 10, 7);
    ws.send(fragment(&[], Data::Binary, false)).unwrap();
    for (i, piece) in data.chunks(1024).enumerate() {
        let last = i == data.len() / 1024 - 1;
        ws.write(fragment(piece, Data::Continue, last)).unwrap();
    }
    ws.flush().unwrap();
    assert!(probe.message(session.id()) == Message::Binary(data.clone()));
    assert!(to_ours(next_data(&mut ws)) == Message::Binary(data));
    assert_eq!(probe.tally().errors, vec![]);
}

#[test]
fn server_ping_pong_both_ways_with_tungstenite() {
    let (server, probe) = echo_server();
    let mut ws = tungstenite_client(server.local_addr());
    let session = probe.opened();

    // Client → server ping: answered by a pong with the same payload, and reported.
    ws.send(TMessage::Ping(b"from client".to_vec().into()))
        .unwrap();
    match ws.read().unwrap() {
        TMessage::Pong(p) => assert_eq!(&p[..], b"from client"),
        other => panic!("expected a pong, got {other:?}"),
    }
    let ping = probe.expect("on_ping", |ev| match ev {
        Ev::Ping(id, p) if id == session.id() => Some(p),
        _ => None,
    });
    assert_eq!(ping, b"from client");

    // Server → client ping: tungstenite answers, on_pong carries the payload back.
    session.ping(&b"from server"[..]).unwrap();
    match ws.read().unwrap() {
        TMessage::Ping(p) => assert_eq!(&p[..], b"from server"),
        other => panic!("expected a ping, got {other:?}"),
    }
    ws.flush().unwrap(); // writes the queued pong
    let pong = probe.expect("on_pong", |ev| match ev {
        Ev::Pong(id, p) if id == session.id() => Some(p),
        _ => None,
    });
    assert_eq!(pong, b"from server");
    assert!(session.ping(vec![0u8; 126]).is_err(), "ping payload > 125");
}

#[test]
fn server_close_codes_with_tungstenite() {
    let (server, probe) = echo_server();

    // The client closes with 4000 + reason: our on_close reports them, the echo carries 4000.
    let mut ws = tungstenite_client(server.local_addr());
    let session = probe.opened();
    ws.close(Some(close_frame(4000, "bye"))).unwrap();
    match next_data(&mut ws) {
        TMessage::Close(Some(frame)) => assert_eq!(u16::from(frame.code), 4000),
        other => panic!("expected the close echo, got {other:?}"),
    }
    read_to_end(ws);
    let disconnect = probe.closed(session.id());
    assert_eq!(
        (disconnect.code.as_u16(), disconnect.reason.as_str()),
        (4000, "bye")
    );
    assert!(disconnect.error.is_none(), "{:?}", disconnect.error);
    assert!(!session.is_open());
    assert!(session.send_text("late").is_err());

    // Our side closes with 4001 "x": tungstenite receives exactly that.
    let mut ws = tungstenite_client(server.local_addr());
    let session = probe.opened();
    session.close(app_code(4001), "x").unwrap();
    match next_data(&mut ws) {
        TMessage::Close(Some(frame)) => {
            assert_eq!((u16::from(frame.code), frame.reason.as_str()), (4001, "x"))
        }
        other => panic!("expected a close, got {other:?}"),
    }
    // Reading on sends tungstenite's reply; the server then closes TCP.
    read_to_end(ws);
    let disconnect = probe.closed(session.id());
    assert_eq!(disconnect.code, 4001);
    assert!(disconnect.error.is_none(), "{:?}", disconnect.error);
    assert!(
        eventually(WAIT, || server.connection_count() == 0),
        "connections left: {}",
        server.connection_count()
    );
}

// ---------------------------------------------------------------------------------------------
// Our client, tungstenite server
// ---------------------------------------------------------------------------------------------

#[test]
fn client_exchanges_every_size_with_a_tungstenite_server() {
    let (addr, server) = tungstenite_server(tungstenite_echo);
    let (client, probe) = our_client(addr);
    let id = client.session().id();
    for message in sample_messages() {
        client.session().send(message.clone()).unwrap();
        let echoed = probe.message(id);
        assert!(
            echoed == message,
            "echo of a {}-byte message differs",
            message.as_bytes().len()
        );
    }
    client.stop();
    let close = server.join().expect("tungstenite server thread");
    assert_eq!(close.map(|f| u16::from(f.code)), Some(1000));
    let disconnect = probe.closed(id);
    assert_eq!(disconnect.code, 1000);
    assert!(disconnect.error.is_none(), "{:?}", disconnect.error);
    assert!(client.is_finished());
}

#[test]
fn client_reassembles_fragmented_messages_from_tungstenite() {
    let (addr, server) = tungstenite_server(|mut ws| {
        let text = "héllo wörld".as_bytes();
        ws.send(fragment(&text[..2], Data::Text, false)).unwrap();
        ws.send(TMessage::Ping(b"mid".to_vec().into())).unwrap();
        ws.send(fragment(&text[2..7], Data::Continue, false))
            .unwrap();
        ws.send(fragment(&text[7..], Data::Continue, true)).unwrap();
        let data = pattern(70_000, 3);
        ws.send(fragment(&data[..1], Data::Binary, false)).unwrap();
        ws.send(fragment(&[], Data::Continue, false)).unwrap();
        ws.send(fragment(&data[1..], Data::Continue, true)).unwrap();
        let mut pong = None;
        loop {
            match ws.read() {
                Ok(TMessage::Pong(p)) => pong = Some(p.to_vec()),
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => return pong,
                Err(e) => panic!("tungstenite server: {e}"),
            }
        }
    });
    let (client, probe) = our_client(addr);
    let id = client.session().id();
    // The ping arrived between two fragments of the text, so it is reported first.
    let ping = probe.expect("on_ping", |ev| match ev {
        Ev::Ping(i, p) if i == id => Some(p),
        _ => None,
    });
    assert_eq!(ping, b"mid");
    assert_eq!(probe.message(id), Message::Text("héllo wörld".into()));
    assert!(probe.message(id) == Message::Binary(pattern(70_000, 3)));
    client.stop();
    let pong = server.join().expect("tungstenite server thread");
    assert_eq!(
        pong.as_deref(),
        Some(&b"mid"[..]),
        "our client answered the ping"
    );
    assert_eq!(probe.tally().errors, vec![]);
}

#[test]
fn client_ping_pong_both_ways_with_tungstenite() {
    let (addr, server) = tungstenite_server(|mut ws| {
        ws.send(TMessage::Ping(b"from server".to_vec().into()))
            .unwrap();
        let mut seen = Vec::new();
        loop {
            match ws.read() {
                Ok(TMessage::Pong(p)) => seen.push(("pong", p.to_vec())),
                Ok(TMessage::Ping(p)) => seen.push(("ping", p.to_vec())),
                Ok(_) => {}
                Err(tungstenite::Error::ConnectionClosed) => return seen,
                Err(e) => panic!("tungstenite server: {e}"),
            }
        }
    });
    let (client, probe) = our_client(addr);
    let id = client.session().id();
    let ping = probe.expect("on_ping", |ev| match ev {
        Ev::Ping(i, p) if i == id => Some(p),
        _ => None,
    });
    assert_eq!(ping, b"from server");
    client.session().ping(&b"from client"[..]).unwrap();
    let pong = probe.expect("on_pong", |ev| match ev {
        Ev::Pong(i, p) if i == id => Some(p),
        _ => None,
    });
    assert_eq!(pong, b"from client");
    client.stop();
    let seen = server.join().expect("tungstenite server thread");
    assert_eq!(
        seen,
        vec![
            ("pong", b"from server".to_vec()),
            ("ping", b"from client".to_vec())
        ]
    );
}

#[test]
fn client_receives_the_servers_close_code() {
    let (addr, server) = tungstenite_server(|mut ws| {
        ws.close(Some(close_frame(4000, "bye"))).unwrap();
        loop {
            match ws.read() {
                Ok(TMessage::Close(frame)) => {
                    return frame.map(|f| u16::from(f.code));
                }
                Ok(_) => {}
                Err(e) => panic!("expected our client's close echo, got {e}"),
            }
        }
    });
    let (client, probe) = our_client(addr);
    let id = client.session().id();
    let disconnect = probe.closed(id);
    assert_eq!(
        (disconnect.code.as_u16(), disconnect.reason.as_str()),
        (4000, "bye")
    );
    assert!(disconnect.error.is_none(), "{:?}", disconnect.error);
    assert_eq!(server.join().expect("server thread"), Some(4000));
    assert!(eventually(WAIT, || client.is_finished()));
}

#[test]
fn client_close_code_reaches_tungstenite() {
    let (addr, server) = tungstenite_server(tungstenite_echo);
    let (client, probe) = our_client(addr);
    let id = client.session().id();
    client.session().close(app_code(4001), "x").unwrap();
    let close = server
        .join()
        .expect("server thread")
        .expect("a close frame");
    assert_eq!((u16::from(close.code), close.reason.as_str()), (4001, "x"));
    let disconnect = probe.closed(id);
    assert_eq!(disconnect.code, 4001, "tungstenite echoes our code");
    assert!(disconnect.error.is_none(), "{:?}", disconnect.error);
    assert!(eventually(WAIT, || client.is_finished()));
}
