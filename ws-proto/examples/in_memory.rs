//! A client and a server [`Connection`] talking to each other through in-memory buffers.
//!
//! No socket, no thread and no real clock: this program plays the part of the driver for both
//! ends. It moves the bytes each side queues (`pending_output` / `advance_output`) into the
//! other side's `receive` with the (simulated) time, drains `poll_event` after every transfer,
//! calls `handle_timeout` when a `poll_timeout` deadline is reached, and prints what crossed the "wire", frame by frame,
//! next to the events each side reported:
//!
//! 1. the opening handshake (§4), with a path and a subprotocol;
//! 2. a text message, a text message fragmented into several frames (§5.4), a binary message;
//! 3. a ping and its automatic pong (§5.5.2, §5.5.3);
//! 4. the closing handshake (§7), then the TCP close as a driver would perform it.
//!
//! Run it with `cargo run -p ws-proto --example in_memory`.

use std::time::{Duration, Instant};

use ws_proto::frame::{FrameHeader, OpCode};
use ws_proto::mask::apply_mask;
use ws_proto::{Accept, ClientRequest, CloseCode, Config, Connection, Event};

/// One end of the conversation plus what the transcript printer needs to know about it.
struct Peer {
    name: &'static str,
    conn: Connection,
    /// Whether the HTTP head of this side's handshake was already printed; after it, every byte
    /// this side sends is a WebSocket frame.
    head_printed: bool,
}

impl Peer {
    fn new(name: &'static str, conn: Connection) -> Peer {
        Peer {
            name,
            conn,
            head_printed: false,
        }
    }

    /// Pops every event, prints it and hands it back so the caller can react to it.
    fn events(&mut self) -> Vec<Event> {
        let mut events = Vec::new();
        while let Some(event) = self.conn.poll_event() {
            println!("    {} event: {}", self.name, describe_event(&event));
            events.push(event);
        }
        events
    }
}

/// Moves everything `from` has queued into `to`, the way a driver moves it through a socket,
/// and prints it. The bytes are delivered in 7-byte pieces to show that the receiving state
/// machine does not care where reads split the stream.
fn transfer(from: &mut Peer, to: &mut Peer, now: Instant) {
    let mut wire = Vec::new();
    while !from.conn.pending_output().is_empty() {
        let chunk = from.conn.pending_output();
        wire.extend_from_slice(chunk);
        let n = chunk.len();
        for piece in chunk.chunks(7) {
            to.conn.receive(piece, now);
        }
        from.conn.advance_output(n);
    }
    if wire.is_empty() {
        return;
    }
    println!("  {} -> {}: {} bytes", from.name, to.name, wire.len());
    let mut rest = &wire[..];
    if !from.head_printed {
        rest = print_http_head(rest);
        from.head_printed = true;
    }
    print_frames(rest);
}

/// Prints the HTTP head at the start of `bytes` and returns what follows it.
fn print_http_head(bytes: &[u8]) -> &[u8] {
    let end = bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map_or(bytes.len(), |p| p + 4);
    let head = String::from_utf8_lossy(&bytes[..end]);
    for line in head.lines().filter(|line| !line.is_empty()) {
        println!("      | {line}");
    }
    &bytes[end..]
}

/// Decodes and prints each frame in `bytes` (which holds whole frames only).
fn print_frames(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        let Ok(Some((header, header_len))) = FrameHeader::decode(bytes) else {
            println!("      (undecodable bytes: {bytes:?})");
            return;
        };
        let len = header.payload_len as usize;
        let mut payload = bytes[header_len..header_len + len].to_vec();
        if let Some(key) = header.mask {
            apply_mask(&mut payload, key, 0);
        }
        bytes = &bytes[header_len + len..];
        println!(
            "      [{:<12} fin={} {} {:>3} B] {}",
            format!("{:?}", header.opcode),
            u8::from(header.fin),
            if header.mask.is_some() {
                "masked  "
            } else {
                "unmasked"
            },
            len,
            describe_payload(header.opcode, &payload),
        );
    }
}

fn describe_payload(opcode: OpCode, payload: &[u8]) -> String {
    match opcode {
        OpCode::Close if payload.len() >= 2 => format!(
            "code {} reason {:?}",
            u16::from_be_bytes([payload[0], payload[1]]),
            String::from_utf8_lossy(&payload[2..])
        ),
        OpCode::Binary => format!("{payload:02x?}"),
        _ => format!("{:?}", String::from_utf8_lossy(payload)),
    }
}

fn describe_event(event: &Event) -> String {
    match event {
        Event::Request(request) => format!(
            "upgrade request for {} (Origin {:?}, subprotocols offered {:?})",
            request.path, request.origin, request.subprotocols
        ),
        Event::Open(negotiated) => {
            format!("open, subprotocol {:?}", negotiated.subprotocol)
        }
        Event::Text(text) => format!("text message {text:?} ({} bytes)", text.len()),
        Event::Binary(data) => format!("binary message {data:02x?}"),
        Event::Ping(payload) => format!(
            "ping {:?} (pong already queued)",
            String::from_utf8_lossy(payload)
        ),
        Event::Pong(payload) => format!("pong {:?}", String::from_utf8_lossy(payload)),
        Event::Close(frame) => format!("close, code {} reason {:?}", frame.code, frame.reason),
        Event::Error(error) => format!("error: {error} (close code {})", error.close_code()),
        other => format!("{other:?}"),
    }
}

/// Time passes: a driver calls `handle_timeout` when a side's `poll_timeout` deadline is
/// reached (every input carries the time, so nothing else is needed).
fn tick(now: &mut Instant, a: &mut Peer, b: &mut Peer) {
    *now += Duration::from_millis(10);
    for peer in [a, b] {
        if peer.conn.poll_timeout().is_some_and(|at| at <= *now) {
            peer.conn.handle_timeout(*now);
        }
    }
}

fn section(title: &str) {
    println!("\n== {title} ==");
}

fn main() {
    let start = Instant::now();
    let mut now = start;

    // The client splits outgoing messages into frames of at most 16 payload bytes, so the
    // fragmentation is visible; the server only accepts the path /chat and speaks "chat".
    let mut client_config = Config::default();
    client_config.fragment_size = 16;
    client_config.subprotocols = vec!["chat".into()];
    let mut server_config = Config::default();
    server_config.path = Some("/chat".into());
    server_config.subprotocols = vec!["chat".into()];
    let mut request = ClientRequest::new("localhost:9001", "/chat");
    request
        .headers
        .push(("Origin".into(), "http://localhost".into()));

    let mut client = Peer::new("client", Connection::client(client_config, request, now));
    let mut server = Peer::new("server", Connection::server(server_config, now));

    section("1. Opening handshake (RFC 6455 §4)");
    transfer(&mut client, &mut server, now);
    for event in server.events() {
        if let Event::Request(request) = event {
            if request.origin.as_deref() == Some("http://localhost") {
                println!("  server: accept (Origin is allowed)");
                server
                    .conn
                    .accept(Accept::default(), now)
                    .expect("a request is pending");
            } else {
                println!("  server: reject with 403");
                server
                    .conn
                    .reject(403, "origin not allowed", now)
                    .expect("a request is pending");
            }
        }
    }
    server.events(); // Event::Open, queued by accept
    transfer(&mut server, &mut client, now);
    client.events();
    tick(&mut now, &mut client, &mut server);
    println!(
        "  states: client {:?}, server {:?}",
        client.conn.state(),
        server.conn.state()
    );

    section("2. Messages (§5.6), one of them fragmented (§5.4)");
    println!("  client: send_text(\"hello chat\")");
    client.conn.send_text("hello chat").expect("open");
    transfer(&mut client, &mut server, now);
    server.events();

    let long = "this message is longer than the client's 16-byte fragment size";
    println!("  client: send_text of {} bytes", long.len());
    client.conn.send_text(long).expect("open");
    transfer(&mut client, &mut server, now);
    let reassembled = server.events();
    assert_eq!(reassembled, [Event::Text(long.into())]);

    println!("  server: send_binary([0xde, 0xad, 0xbe, 0xef])");
    server
        .conn
        .send_binary(vec![0xde, 0xad, 0xbe, 0xef])
        .expect("open");
    transfer(&mut server, &mut client, now);
    client.events();
    tick(&mut now, &mut client, &mut server);

    section("3. Ping and automatic pong (§5.5.2, §5.5.3)");
    println!("  client: ping(\"are you there?\")");
    client.conn.ping(b"are you there?").expect("open");
    transfer(&mut client, &mut server, now);
    server.events();
    transfer(&mut server, &mut client, now); // the pong the server queued by itself
    client.events();
    tick(&mut now, &mut client, &mut server);

    section("4. Closing handshake (§7) and TCP close");
    println!("  client: close(CloseCode::NORMAL, \"bye\")");
    client
        .conn
        .close(CloseCode::NORMAL, "bye", now)
        .expect("open");
    transfer(&mut client, &mut server, now);
    server.events(); // the echo is already queued
    transfer(&mut server, &mut client, now);
    client.events();
    let close_timer = client
        .conn
        .poll_timeout()
        .map_or(Duration::ZERO, |t| t - now);
    tick(&mut now, &mut client, &mut server);
    println!(
        "  states: client {:?}, server {:?}; client's close timer fires in {close_timer:?}",
        client.conn.state(),
        server.conn.state()
    );

    // §7.1.1: the server closes TCP first. A driver shuts down the write half when
    // should_shutdown() says so; the client's read then returns 0 (EOF).
    assert!(server.conn.should_shutdown());
    assert!(!client.conn.should_shutdown());
    println!("  server: should_shutdown() = true -> shut down the write half of TCP");
    client.conn.receive_eof(now);
    println!(
        "  client: read returned 0 -> receive_eof(); is_terminated() = {} -> close the socket",
        client.conn.is_terminated()
    );
    server.conn.receive_eof(now);
    println!(
        "  server: read returned 0 -> receive_eof(); is_terminated() = {} -> close the socket",
        server.conn.is_terminated()
    );
    client.events();
    server.events();
    println!(
        "  close status: client {:?}, server {:?}",
        client.conn.close_status(),
        server.conn.close_status()
    );
    println!(
        "\nsession over after {:?} of simulated time",
        now.duration_since(start)
    );
}
