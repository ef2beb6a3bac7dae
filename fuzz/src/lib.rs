//! Shared harness for the fuzz targets: in-memory handshakes, a checker that decodes every
//! byte a connection writes, and the structured operations of the `connection_*` targets.

use std::time::{Duration, Instant};

use arbitrary::Arbitrary;
use ws_proto::frame::{FrameHeader, OpCode};
use ws_proto::handshake::accept_key;
use ws_proto::{
    fits_output_limit, Accept, ClientRequest, CloseCode, Config, Connection, Event, Role,
    SendError, State,
};

/// Small limits so that the fuzzer reaches them.
pub fn config() -> Config {
    { let mut config = Config::default(); config.max_frame_size = 16 << 10; config.max_message_size = 64 << 10; config.fragment_size = 1000; config.max_buffered_output = 64 << 10; config.ping_interval = Some(Duration::from_millis(500)); config.ping_timeout = Duration::from_millis(700); config.max_pings_per_second = 50; config }
}

pub const REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/// The `Sec-WebSocket-Key` a client connection put in its request.
pub fn client_key(client: &Connection) -> String {
    let request = String::from_utf8_lossy(client.pending_output()).into_owned();
    request
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// A valid 101 response for `key`.
pub fn response_for(key: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key.as_bytes())
    )
    .into_bytes()
}

/// An open server connection (handshake done, output drained).
pub fn open_server(now: Instant) -> Connection {
    let mut server = Connection::server(config(), now);
    server.receive(REQUEST, now);
    while let Some(event) = server.poll_event() {
        if let Event::Request(_) = event {
            server.accept(Accept::default(), now).expect("accept");
        }
    }
    let n = server.buffered_amount();
    drain(&mut server, n);
    assert_eq!(server.state(), State::Open);
    server
}

/// An open client connection (handshake done, output drained).
pub fn open_client(now: Instant) -> Connection {
    let mut client = Connection::client(config(), ClientRequest::new("example.com", "/chat"), now);
    let key = client_key(&client);
    let n = client.buffered_amount();
    drain(&mut client, n);
    client.receive(&response_for(&key), now);
    while client.poll_event().is_some() {}
    assert_eq!(client.state(), State::Open);
    client
}

/// Takes up to `max` bytes of output.
pub fn drain(conn: &mut Connection, max: usize) -> Vec<u8> {
    let mut out = Vec::new();
    while out.len() < max {
        let chunk = conn.pending_output();
        if chunk.is_empty() {
            break;
        }
        let n = chunk.len().min(max - out.len());
        out.extend_from_slice(&chunk[..n]);
        conn.advance_output(n);
    }
    out
}

/// Decodes the byte stream a connection writes after its handshake and checks every frame.
pub struct WireChecker {
    role: Role,
    buf: Vec<u8>,
    close_seen: bool,
    in_message: bool,
}

impl WireChecker {
    pub fn new(role: Role) -> Self {
        WireChecker {
            role,
            buf: Vec::new(),
            close_seen: false,
            in_message: false,
        }
    }

    /// Adds written bytes; panics if they break RFC 6455.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
        loop {
            let (header, len) = match FrameHeader::decode(&self.buf) {
                Ok(Some(h)) => h,
                Ok(None) => return,
                Err(e) => panic!("we wrote an undecodable frame header: {e}"),
            };
            let total = len + header.payload_len as usize;
            if self.buf.len() < total {
                return;
            }
            assert_eq!(
                header.mask.is_some(),
                self.role == Role::Client,
                "masking must follow the role"
            );
            // §5.5.1: no data frame (and no second close) after a close; pongs may still go.
            let late = header.opcode != OpCode::Ping && header.opcode != OpCode::Pong;
            assert!(
                !(self.close_seen && late),
                "no data or close frame may follow a close frame"
            );
            if header.opcode.is_control() {
                assert!(
                    header.fin && header.payload_len <= 125,
                    "control frame rules"
                );
            } else {
                let continuation = header.opcode == OpCode::Continuation;
                assert_eq!(
                    continuation, self.in_message,
                    "fragment sequence must be valid"
                );
                self.in_message = !header.fin;
            }
            if header.opcode == OpCode::Close {
                assert!(header.payload_len != 1, "a close payload is never 1 byte");
                if header.payload_len >= 2 {
                    let code = u16::from_be_bytes([self.buf[len], self.buf[len + 1]]);
                    let code = match header.mask {
                        Some(k) => code ^ u16::from_be_bytes([k[0], k[1]]),
                        None => code,
                    };
                    assert!(
                        ws_proto::close::is_valid_code(code),
                        "close code {code} must be sendable"
                    );
                }
                self.close_seen = true;
            }
            self.buf.drain(..total);
        }
    }
}

/// One step of the structured connection fuzzers.
#[derive(Debug, Arbitrary)]
pub enum Op {
    Receive(Vec<u8>),
    /// A well-formed frame from the peer (masked as the peer's role requires).
    Frame {
        fin: bool,
        opcode: u8,
        payload: Vec<u8>,
    },
    Eof,
    SendText(String),
    SendBinary(Vec<u8>),
    Ping(Vec<u8>),
    /// `close` with the code [`close_code`] makes of the number, and a reason.
    Close(u16, String),
    /// `fail` with the code [`close_code`] makes of the number.
    Fail(u16),
    /// Advance the clock by this many milliseconds.
    Advance(u16),
    /// Let the transport take at most this many bytes.
    Write(u16),
}

/// The close code an [`Op::Close`] or [`Op::Fail`] number stands for: the number itself when it
/// is a code that may be sent. Otherwise (most numbers) half of them stand for the two codes
/// that are reported locally and never sent (1005, 1006), which `close` and `fail` must
/// refuse, and half for an application code (3000-4999), so that both calls succeed often.
pub fn close_code(code: u16) -> CloseCode {
    if let Some(code) = CloseCode::new(code) {
        return code;
    }
    match code % 4 {
        0 => CloseCode::NO_STATUS,
        1 => CloseCode::ABNORMAL,
        _ => CloseCode::new(3000 + code % 2000).expect("3000-4999 may be sent"),
    }
}

/// Checks the answer to a data or control send of `len` payload bytes, made in state `before`
/// with `buffered` bytes queued: refused exactly as the state and [`fits_output_limit`] say,
/// and a refused send queued nothing.
fn check_send(
    conn: &Connection,
    before: State,
    buffered: usize,
    len: usize,
    result: &Result<(), SendError>,
) {
    let limit = conn.config().max_buffered_output;
    let expected = match before {
        State::Open if fits_output_limit(buffered, len, limit) => Ok(()),
        State::Open => Err(SendError::BufferFull { buffered, limit }),
        State::Connecting => Err(SendError::NotOpen),
        State::Closing | State::Closed => Err(SendError::Closed),
    };
    assert_eq!(
        result, &expected,
        "a send of {len} bytes in {before:?} with {buffered} of {limit} bytes buffered"
    );
    if result.is_err() {
        assert_eq!(
            conn.buffered_amount(),
            buffered,
            "a refused send queues nothing"
        );
    } else {
        assert!(
            conn.buffered_amount() >= buffered + 2 + len,
            "an accepted send queues its frames"
        );
    }
}

/// Frame bytes as the peer of `role` would send them.
pub fn peer_frame(role: Role, fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let Ok(opcode) = OpCode::from_u8(opcode & 0x0f) else {
        return Vec::new();
    };
    let mask = (role == Role::Server).then_some([0x12, 0x34, 0x56, 0x78]);
    let header = FrameHeader {
        fin,
        rsv: 0,
        opcode,
        mask,
        payload_len: payload.len() as u64,
    };
    let (bytes, n) = header.encode();
    let mut out = bytes[..n].to_vec();
    let start = out.len();
    out.extend_from_slice(payload);
    if let Some(key) = mask {
        ws_proto::mask::apply_mask(&mut out[start..], key, 0);
    }
    out
}

/// Runs the operations on an open connection. After every step it checks the answer to the
/// call against the state the call was made in, every event against the connection's state
/// and close status, the bound on the output, and that no deadline is left at or before the
/// clock; every byte written goes through a [`WireChecker`]. The clock starts at the
/// connection's creation and only [`Op::Advance`] moves it, so a run is deterministic.
pub fn run_ops(role: Role, ops: Vec<Op>) {
    let mut now = Instant::now();
    let mut conn = match role {
        Role::Server => open_server(now),
        Role::Client => open_client(now),
    };
    let mut wire = WireChecker::new(role);
    let limit = conn.config().max_buffered_output;
    let mut largest_send = 0usize;
    for op in ops {
        let before = conn.state();
        let buffered = conn.buffered_amount();
        match op {
            Op::Receive(bytes) => conn.receive(&bytes, now),
            Op::Frame {
                fin,
                opcode,
                payload,
            } => conn.receive(&peer_frame(role, fin, opcode, &payload), now),
            Op::Eof => {
                conn.receive_eof(now);
                assert!(
                    conn.is_terminated(),
                    "EOF ends the connection for the driver"
                );
            }
            Op::SendText(text) => {
                let len = text.len();
                largest_send = largest_send.max(len);
                let result = conn.send_text(text);
                check_send(&conn, before, buffered, len, &result);
            }
            Op::SendBinary(data) => {
                let len = data.len();
                largest_send = largest_send.max(len);
                let result = conn.send_binary(data);
                check_send(&conn, before, buffered, len, &result);
            }
            Op::Ping(payload) => {
                let result = conn.ping(&payload);
                if payload.len() > 125 {
                    assert_eq!(result, Err(SendError::ControlTooLong(payload.len())));
                    assert_eq!(conn.buffered_amount(), buffered);
                } else {
                    check_send(&conn, before, buffered, payload.len(), &result);
                }
            }
            Op::Close(code, reason) => {
                let code = close_code(code);
                let result = conn.close(code, &reason, now);
                let expected = if !code.is_sendable() {
                    Err(SendError::InvalidCloseCode(code.as_u16()))
                } else if reason.len() > 123 {
                    Err(SendError::ControlTooLong(reason.len() + 2))
                } else if before == State::Open {
                    Ok(())
                } else {
                    Err(SendError::Closed)
                };
                assert_eq!(
                    result,
                    expected,
                    "close({code}, {} bytes) in {before:?}",
                    reason.len()
                );
                if result.is_ok() {
                    assert_eq!(conn.state(), State::Closing);
                } else {
                    assert_eq!(conn.state(), before);
                    assert_eq!(conn.buffered_amount(), buffered);
                }
            }
            Op::Fail(code) => {
                let code = close_code(code);
                let result = conn.fail(code, now);
                let expected = if !code.is_sendable() {
                    Err(SendError::InvalidCloseCode(code.as_u16()))
                } else if before == State::Closed {
                    Err(SendError::Closed)
                } else {
                    Ok(())
                };
                assert_eq!(result, expected, "fail({code}) in {before:?}");
                if result.is_ok() {
                    assert_eq!(conn.state(), State::Closed);
                    assert_eq!(
                        conn.close_status().map(|c| c.code),
                        Some(code),
                        "the connection ends with the code it was failed with"
                    );
                }
            }
            Op::Advance(ms) => now += Duration::from_millis(u64::from(ms)),
            Op::Write(max) => {
                let bytes = drain(&mut conn, usize::from(max));
                wire.feed(&bytes);
            }
        }
        conn.handle_timeout(now);
        while let Some(event) = conn.poll_event() {
            match &event {
                // A failure is reported once the connection has ended with the failure's code
                // (for a protocol violation, the close frame the WireChecker checks is queued).
                Event::Error(error) => {
                    assert_eq!(conn.state(), State::Closed, "{event:?}");
                    assert_eq!(
                        conn.close_status().map(|c| c.code),
                        Some(error.close_code()),
                        "{event:?}"
                    );
                }
                // The peer's close is the status the connection ended with.
                Event::Close(frame) => {
                    assert_eq!(conn.state(), State::Closed, "{event:?}");
                    assert_eq!(conn.close_status(), Some(frame), "{event:?}");
                }
                Event::Request(_) | Event::HttpRequest(_) | Event::Open(_) => {
                    panic!("{event:?} on an open connection")
                }
                _ => {}
            }
        }
        // Output stays bounded: the limit, plus one message accepted into an empty buffer
        // (with its frame headers), plus control frames.
        let headers = 14 * (largest_send / 1000 + 2);
        assert!(
            conn.buffered_amount() <= limit + largest_send + headers + 4 * 1024,
            "output grew to {} bytes",
            conn.buffered_amount()
        );
        // Every timer that was due has been handled: what is left lies in the future, so a
        // driver sleeping until `poll_timeout` and then calling `handle_timeout` never spins.
        if let Some(deadline) = conn.poll_timeout() {
            assert!(
                deadline > now,
                "a deadline {:?} before the clock is left after handle_timeout",
                now.duration_since(deadline)
            );
        }
    }
    let n = conn.buffered_amount();
    let bytes = drain(&mut conn, n);
    wire.feed(&bytes);
}
