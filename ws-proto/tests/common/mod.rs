//! Helpers shared by the `ws-proto` integration tests.
//!
//! * open connections: [`open_server`] feeds a valid upgrade request and accepts it,
//!   [`open_client`] feeds a valid `101` answer computed with `handshake::accept_key`;
//! * a frame model, [`Frame`], with an encoder of its own (so the bytes a test feeds do not depend
//!   on the encoder under test) and a decoder, [`decode_frames`], that parses everything a
//!   connection wrote back into frames with unmasked payloads;
//! * assertions on what a connection did: [`events`], [`sent`], [`assert_sent`],
//!   [`assert_failed`].
//!
//! Every test binary includes this module and uses a different part of it.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::Instant;

use ws_proto::handshake::accept_key;
use ws_proto::{
    Accept, ClientRequest, Config, Connection, Error, Event, ProtocolError, Role, State,
};

pub const CONT: u8 = 0x0;
pub const TEXT: u8 = 0x1;
pub const BINARY: u8 = 0x2;
pub const CLOSE: u8 = 0x8;
pub const PING: u8 = 0x9;
pub const PONG: u8 = 0xa;

/// The masking key of the RFC 6455 §5.7 examples; used for every frame a test sends a server.
pub const MASK: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];

/// The `Sec-WebSocket-Key` of RFC 6455 §1.3 and its `Sec-WebSocket-Accept`.
pub const RFC_KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
pub const RFC_ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

pub const ROLES: [Role; 2] = [Role::Server, Role::Client];

/// The instant every helper-built connection starts at. Tests only ever add durations to it:
/// no test depends on the wall clock.
pub fn t0() -> Instant {
    static T0: OnceLock<Instant> = OnceLock::new();
    *T0.get_or_init(Instant::now)
}

// ------------------------------------------------------------------------------------------------
// Frames
// ------------------------------------------------------------------------------------------------

/// A frame as seen on the wire, payload unmasked. `opcode` and `rsv` are raw wire values so tests
/// can build frames the protocol forbids.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    /// `0bRSV1_RSV2_RSV3`.
    pub rsv: u8,
    pub opcode: u8,
    pub mask: Option<[u8; 4]>,
    pub payload: Vec<u8>,
}

impl Frame {
    pub fn new(opcode: u8, payload: impl Into<Vec<u8>>) -> Frame {
        Frame {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload: payload.into(),
        }
    }

    pub fn text(text: &str) -> Frame {
        Frame::new(TEXT, text.as_bytes())
    }

    pub fn binary(data: impl Into<Vec<u8>>) -> Frame {
        Frame::new(BINARY, data)
    }

    pub fn cont(data: impl Into<Vec<u8>>) -> Frame {
        Frame::new(CONT, data)
    }

    pub fn ping(data: impl Into<Vec<u8>>) -> Frame {
        Frame::new(PING, data)
    }

    pub fn pong(data: impl Into<Vec<u8>>) -> Frame {
        Frame::new(PONG, data)
    }

    /// A close frame with a status code and a reason.
    pub fn close(code: u16, reason: &str) -> Frame {
        let mut payload = code.to_be_bytes().to_vec();
        payload.extend_from_slice(reason.as_bytes());
        Frame::new(CLOSE, payload)
    }

    /// A close frame without a payload.
    pub fn close_empty() -> Frame {
        Frame::new(CLOSE, Vec::new())
    }

    pub fn fin(mut self, fin: bool) -> Frame {
        self.fin = fin;
        self
    }

    pub fn rsv(mut self, rsv: u8) -> Frame {
        self.rsv = rsv;
        self
    }

    pub fn masked(mut self, key: [u8; 4]) -> Frame {
        self.mask = Some(key);
        self
    }

    /// The same frame with the mask forgotten (for comparing frames whose key is random).
    pub fn unmasked(mut self) -> Frame {
        self.mask = None;
        self
    }

    /// Wire bytes, with the shortest length encoding; the payload is masked if `mask` is set.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![(u8::from(self.fin) << 7) | (self.rsv << 4) | self.opcode];
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let len = self.payload.len();
        if len < 126 {
            out.push(mask_bit | len as u8);
        } else if len <= 0xffff {
            out.push(mask_bit | 126);
            out.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            out.push(mask_bit | 127);
            out.extend_from_slice(&(len as u64).to_be_bytes());
        }
        match self.mask {
            Some(key) => {
                out.extend_from_slice(&key);
                out.extend(self.payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
            }
            None => out.extend_from_slice(&self.payload),
        }
        out
    }
}

/// Parses a byte stream into frames. Panics unless the bytes are a sequence of complete,
/// well-formed frames: known opcode, minimal length encoding, top length bit clear, control
/// frames final and at most 125 bytes.
pub fn decode_frames(mut bytes: &[u8]) -> Vec<Frame> {
    let mut frames = Vec::new();
    while !bytes.is_empty() {
        assert!(bytes.len() >= 2, "truncated frame header: {bytes:02x?}");
        let fin = bytes[0] & 0x80 != 0;
        let rsv = (bytes[0] >> 4) & 0x7;
        let opcode = bytes[0] & 0x0f;
        assert!(
            matches!(opcode, CONT | TEXT | BINARY | CLOSE | PING | PONG),
            "reserved opcode {opcode:#x}"
        );
        let masked = bytes[1] & 0x80 != 0;
        let (len, mut pos) = match bytes[1] & 0x7f {
            126 => {
                let len = u64::from(u16::from_be_bytes([bytes[2], bytes[3]]));
                assert!(len >= 126, "non-minimal 16-bit length {len}");
                (len, 4)
            }
            127 => {
                let mut be = [0u8; 8];
                be.copy_from_slice(&bytes[2..10]);
                let len = u64::from_be_bytes(be);
                assert!(len > 0xffff, "non-minimal 64-bit length {len}");
                assert!(len >> 63 == 0, "64-bit length with the top bit set");
                (len, 10)
            }
            len => (u64::from(len), 2),
        };
        let mask = masked.then(|| {
            let key = [bytes[pos], bytes[pos + 1], bytes[pos + 2], bytes[pos + 3]];
            pos += 4;
            key
        });
        let len = usize::try_from(len).unwrap();
        assert!(
            bytes.len() >= pos + len,
            "truncated payload: {} bytes declared, {} present",
            len,
            bytes.len() - pos
        );
        let mut payload = bytes[pos..pos + len].to_vec();
        if let Some(key) = mask {
            for (i, b) in payload.iter_mut().enumerate() {
                *b ^= key[i % 4];
            }
        }
        if opcode & 0x8 != 0 {
            assert!(fin, "fragmented control frame");
            assert!(len <= 125, "control frame of {len} bytes");
        }
        frames.push(Frame {
            fin,
            rsv,
            opcode,
            mask,
            payload,
        });
        bytes = &bytes[pos + len..];
    }
    frames
}

/// Bytes of `frame` as a peer of a connection with role `receiver` sends them: masked with
/// [`MASK`] towards a server, unmasked towards a client.
pub fn incoming(receiver: Role, frame: Frame) -> Vec<u8> {
    match receiver {
        Role::Server => frame.masked(MASK).encode(),
        Role::Client => frame.encode(),
    }
}

/// Length of the header of a frame with `payload_len` payload bytes as [`incoming`] encodes it
/// for `receiver`: 2 bytes, 2 or 8 more for a 16- or 64-bit length, 4 more for a mask.
pub fn header_len(receiver: Role, payload_len: usize) -> usize {
    let extended = match payload_len {
        0..=125 => 0,
        126..=0xffff => 2,
        _ => 8,
    };
    2 + extended + if receiver == Role::Server { 4 } else { 0 }
}

/// Feeds one frame the way a slow peer sends it: its header alone first, then its payload in
/// reads of at most `piece` bytes. Returns the events after each read.
pub fn receive_streamed(conn: &mut Connection, frame: Frame, piece: usize) -> Vec<Vec<Event>> {
    let role = conn.role();
    let len = header_len(role, frame.payload.len());
    let wire = incoming(role, frame);
    let mut got = Vec::new();
    conn.receive(&wire[..len], t0());
    got.push(events(conn));
    for chunk in wire[len..].chunks(piece) {
        conn.receive(chunk, t0());
        got.push(events(conn));
    }
    got
}

/// Bytes of several frames, as [`incoming`].
pub fn incoming_all(receiver: Role, frames: impl IntoIterator<Item = Frame>) -> Vec<u8> {
    frames
        .into_iter()
        .flat_map(|f| incoming(receiver, f))
        .collect()
}

// ------------------------------------------------------------------------------------------------
// Driving a connection
// ------------------------------------------------------------------------------------------------

/// Takes every byte the connection has queued, through `pending_output`/`advance_output`.
pub fn drain(conn: &mut Connection) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let chunk = conn.pending_output();
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len();
        out.extend_from_slice(chunk);
        conn.advance_output(n);
    }
    assert_eq!(conn.buffered_amount(), 0);
    out
}

/// Every pending event.
pub fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

/// The frames the connection wrote since the last drain. Checks that a client masked each of
/// them and a server none.
pub fn sent(conn: &mut Connection) -> Vec<Frame> {
    let frames = decode_frames(&drain(conn));
    for frame in &frames {
        assert_eq!(
            frame.mask.is_some(),
            conn.role() == Role::Client,
            "a {:?} sent {frame:?}",
            conn.role()
        );
    }
    frames
}

/// Asserts the connection wrote exactly `expected` (masks aside: a client's are random).
pub fn assert_sent(conn: &mut Connection, expected: &[Frame]) {
    let frames: Vec<Frame> = sent(conn).into_iter().map(Frame::unmasked).collect();
    assert_eq!(frames, expected);
}

/// Asserts the connection failed with `error`: that error is the only pending event, a close
/// frame with `code` (and no reason) is the only output, the state is `Closed`, the driver is
/// told to shut TCP down, and further input is ignored.
pub fn assert_failed(conn: &mut Connection, error: ProtocolError, code: u16) {
    assert_eq!(events(conn), vec![Event::Error(Error::Protocol(error))]);
    assert_failed_quietly(conn, code);
}

/// [`assert_failed`] for a caller that already took the events.
pub fn assert_failed_quietly(conn: &mut Connection, code: u16) {
    assert!(
        !conn.should_shutdown(),
        "the close frame must be written before TCP is shut down"
    );
    assert_sent(conn, &[Frame::close(code, "")]);
    assert_eq!(conn.state(), State::Closed);
    assert!(conn.should_shutdown());
    assert_eq!(conn.close_status().map(|c| c.code.as_u16()), Some(code));
    let role = conn.role();
    conn.receive(
        &incoming_all(role, [Frame::ping("ignored"), Frame::text("ignored")]),
        t0(),
    );
    conn.receive(b"\xff\xff\xff\xff", t0());
    assert_eq!(events(conn), vec![]);
    assert_eq!(drain(conn), b"");
    assert!(conn.should_shutdown());
}

// ------------------------------------------------------------------------------------------------
// Handshakes
// ------------------------------------------------------------------------------------------------

/// An upgrade request for `path` with the RFC 6455 §1.3 key and `extra` header lines.
pub fn upgrade_request(path: &str, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut head = format!(
        "GET {path} HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: {RFC_KEY}\r\nSec-WebSocket-Version: 13\r\n"
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// The value of header `name` in an HTTP head (case-insensitive name), if present.
pub fn header_value(head: &[u8], name: &str) -> Option<String> {
    let text = std::str::from_utf8(head).expect("HTTP head is ASCII");
    let head = text.split("\r\n\r\n").next().unwrap();
    head.split("\r\n").skip(1).find_map(|line| {
        let (n, v) = line.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// A valid `101` answer to the upgrade request `request` (as a client wrote it), with `extra`
/// header lines.
pub fn response_for(request: &[u8], extra: &[(&str, &str)]) -> Vec<u8> {
    let key = header_value(request, "Sec-WebSocket-Key").expect("request has a key");
    let mut head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n",
        accept_key(key.as_bytes())
    );
    for (name, value) in extra {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    head.into_bytes()
}

/// A server that received a valid upgrade request at [`t0`] and accepted it; its `101` response
/// and its `Request`/`Open` events are consumed.
pub fn open_server(config: Config) -> Connection {
    let mut server = Connection::server(config, t0());
    server.receive(&upgrade_request("/chat", &[]), t0());
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.accept(Accept::default(), t0()).unwrap();
    assert!(matches!(server.poll_event(), Some(Event::Open(_))));
    assert_eq!(server.poll_event(), None);
    let response = drain(&mut server);
    assert!(response.starts_with(b"HTTP/1.1 101 Switching Protocols\r\n"));
    assert_eq!(server.state(), State::Open);
    server
}

/// A client created at [`t0`] that received a valid `101`; its request and its `Open` event are
/// consumed.
pub fn open_client(config: Config) -> Connection {
    let mut client = Connection::client(config, ClientRequest::new("example.com", "/chat"), t0());
    let request = drain(&mut client);
    client.receive(&response_for(&request, &[]), t0());
    assert!(matches!(client.poll_event(), Some(Event::Open(_))));
    assert_eq!(client.poll_event(), None);
    assert_eq!(drain(&mut client), b"");
    assert_eq!(client.state(), State::Open);
    client
}

/// An open connection of the given role.
pub fn open(role: Role, config: Config) -> Connection {
    match role {
        Role::Server => open_server(config),
        Role::Client => open_client(config),
    }
}

/// Moves every pending byte of `from` into `to`, in the chunks `pending_output` hands out.
/// Returns how many bytes moved.
pub fn pump(from: &mut Connection, to: &mut Connection) -> usize {
    let mut moved = 0;
    loop {
        let chunk = from.pending_output();
        if chunk.is_empty() {
            return moved;
        }
        let n = chunk.len();
        to.receive(chunk, t0());
        from.advance_output(n);
        moved += n;
    }
}

/// A client and a server with the given configurations, handshake done in memory; the `Request`
/// and `Open` events are consumed.
pub fn connected_pair(client_config: Config, server_config: Config) -> (Connection, Connection) {
    let mut client = Connection::client(
        client_config,
        ClientRequest::new("example.com", "/chat"),
        t0(),
    );
    let mut server = Connection::server(server_config, t0());
    pump(&mut client, &mut server);
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.accept(Accept::default(), t0()).unwrap();
    assert!(matches!(server.poll_event(), Some(Event::Open(_))));
    pump(&mut server, &mut client);
    assert!(matches!(client.poll_event(), Some(Event::Open(_))));
    (client, server)
}
