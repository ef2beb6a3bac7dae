//! The codec in memory for the peers: the workload of [`crate::codec`] (a client and a server
//! joined by an in-memory transport, in lockstep: the client sends one binary message, the
//! server reads it and sends it back, the client reads the echo), run with fastwebsockets and
//! with tungstenite instead of `ws-proto`.
//!
//! Each side uses its library's ordinary message API. The client sends a message made from the
//! payload slice, which costs one copy of it in either library (tungstenite's `Message` owns its
//! bytes; fastwebsockets copies a borrowed payload before it masks it in place); the server sends
//! back the message it read; the client compares the echo with the payload. A mismatch panics:
//! it is the benchmark's self-check, not an error to recover from.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fastwebsockets::{FragmentCollector, Frame, OpCode, Payload, Role, WebSocket};
use tokio::io::DuplexStream;
use tungstenite::protocol::{Role as TungsteniteRole, WebSocket as TungsteniteSocket};
use tungstenite::Message;

/// `messages` lockstep round trips of `payload` (binary) between a fastwebsockets client and
/// server; panics if an echo differs. Returns the time of the loop only.
///
/// The two ends are `WebSocket::after_handshake` (`Role::Client` and `Role::Server`) on the two
/// halves of a `tokio::io::duplex` pipe, each wrapped in a `FragmentCollector` (the message API
/// the fastwebsockets peer server uses). They run in a current-thread tokio runtime built
/// before the clock starts, inside `tokio::task::unconstrained` so that tokio's cooperative
/// scheduling budget never makes the loop yield. The client writes
/// `Frame::binary(Payload::Borrowed(payload))`, which fastwebsockets copies to mask.
pub fn fastwebsockets_round_trips(messages: usize, payload: &[u8]) -> Duration {
    fastwebsockets_checked(messages, payload, payload)
}

/// [`fastwebsockets_round_trips`], with the echo compared against `expected` rather than the
/// payload sent (so tests can check that a mismatch is caught).
fn fastwebsockets_checked(messages: usize, payload: &[u8], expected: &[u8]) -> Duration {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("cannot build a current-thread tokio runtime");
    runtime.block_on(tokio::task::unconstrained(async {
        // In lockstep only one frame is ever in the pipe, so it must hold one whole frame: a
        // write that does not fit would wait forever for a read that comes after it.
        let (client_io, server_io) = tokio::io::duplex(payload.len() + FRAME_HEADER_ROOM);
        let mut client = fastwebsockets_end(client_io, Role::Client, payload.len());
        let mut server = fastwebsockets_end(server_io, Role::Server, payload.len());

        let start = Instant::now();
        for _ in 0..messages {
            client
                .write_frame(Frame::binary(Payload::Borrowed(payload)))
                .await
                .expect("fastwebsockets client: write");
            let received = server
                .read_frame()
                .await
                .expect("fastwebsockets server: read");
            assert_eq!(
                received.opcode,
                OpCode::Binary,
                "fastwebsockets server: expected a binary message"
            );
            server
                .write_frame(received)
                .await
                .expect("fastwebsockets server: write");
            let echo = client
                .read_frame()
                .await
                .expect("fastwebsockets client: read");
            assert_eq!(
                echo.opcode,
                OpCode::Binary,
                "fastwebsockets client: expected a binary echo"
            );
            check_echo("fastwebsockets", &echo.payload, expected);
        }
        start.elapsed()
    }))
}

/// Room left in the in-memory pipe for a frame header: 14 bytes at most (2, an 8-byte length
/// and a 4-byte mask), rounded up.
const FRAME_HEADER_ROOM: usize = 16;

/// One end of the fastwebsockets pair, with a message limit above `payload_len` (its default
/// refuses frames of 64 MiB and more).
fn fastwebsockets_end(
    io: DuplexStream,
    role: Role,
    payload_len: usize,
) -> FragmentCollector<DuplexStream> {
    let mut ws = WebSocket::after_handshake(io, role);
    ws.set_max_message_size((payload_len + 1).max(crate::peers::MAX_MESSAGE_SIZE + 1));
    FragmentCollector::new(ws)
}

/// `messages` lockstep round trips of `payload` (binary) between a tungstenite client and
/// server; panics if an echo differs. Returns the time of the loop only.
///
/// The two ends are `WebSocket::from_raw_socket` (`Role::Client` and `Role::Server`, default
/// configuration) over the two ends of an in-memory [`MemoryPipe`]. The client sends
/// `Message::Binary(Bytes::copy_from_slice(payload))` with `send` (write and flush), and the
/// server `send`s back the message `read` returned. tungstenite's default limits apply: frames
/// up to 16 MiB, so `payload` must not be longer than that.
pub fn tungstenite_round_trips(messages: usize, payload: &[u8]) -> Duration {
    tungstenite_checked(messages, payload, payload)
}

/// [`tungstenite_round_trips`], with the echo compared against `expected` rather than the
/// payload sent (so tests can check that a mismatch is caught).
fn tungstenite_checked(messages: usize, payload: &[u8], expected: &[u8]) -> Duration {
    let (client_end, server_end) = MemoryPipe::pair();
    let mut client = TungsteniteSocket::from_raw_socket(client_end, TungsteniteRole::Client, None);
    let mut server = TungsteniteSocket::from_raw_socket(server_end, TungsteniteRole::Server, None);

    let start = Instant::now();
    for _ in 0..messages {
        client
            .send(Message::Binary(Bytes::copy_from_slice(payload)))
            .expect("tungstenite client: send");
        let received = server.read().expect("tungstenite server: read");
        assert!(
            received.is_binary(),
            "tungstenite server: expected a binary message, got {received:?}"
        );
        server.send(received).expect("tungstenite server: send");
        match client.read().expect("tungstenite client: read") {
            Message::Binary(echo) => check_echo("tungstenite", &echo, expected),
            other => panic!("tungstenite client: expected a binary echo, got {other:?}"),
        }
    }
    start.elapsed()
}

/// Panics unless `echo` equals `expected`, naming the first differing byte (not the payloads,
/// which may be megabytes long).
fn check_echo(library: &str, echo: &[u8], expected: &[u8]) {
    if echo != expected {
        let first_difference = echo
            .iter()
            .zip(expected)
            .position(|(a, b)| a != b)
            .unwrap_or(echo.len().min(expected.len()));
        panic!(
            "{library}: the echo differs from the payload: {} bytes instead of {}, first \
             difference at byte {first_difference}",
            echo.len(),
            expected.len()
        );
    }
}

/// One end of an in-memory, single-threaded, bidirectional byte pipe: what one end writes, the
/// other reads. Reading an empty pipe fails with [`io::ErrorKind::WouldBlock`], as a
/// non-blocking socket with nothing to read does; in lockstep it never happens.
pub struct MemoryPipe {
    /// The bytes the other end has written and this end has not read yet.
    incoming: Rc<RefCell<VecDeque<u8>>>,
    /// The bytes this end has written and the other end has not read yet.
    outgoing: Rc<RefCell<VecDeque<u8>>>,
}

impl MemoryPipe {
    /// Two ends connected to each other.
    pub fn pair() -> (MemoryPipe, MemoryPipe) {
        let one_way = Rc::new(RefCell::new(VecDeque::new()));
        let other_way = Rc::new(RefCell::new(VecDeque::new()));
        (
            MemoryPipe {
                incoming: Rc::clone(&one_way),
                outgoing: Rc::clone(&other_way),
            },
            MemoryPipe {
                incoming: other_way,
                outgoing: one_way,
            },
        )
    }
}

impl Read for MemoryPipe {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let mut incoming = self.incoming.borrow_mut();
        if incoming.is_empty() && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        incoming.read(buf)
    }
}

impl Write for MemoryPipe {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.outgoing.borrow_mut().extend(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The size of the smallest case of the suite: a 14-byte payload.
    const PAYLOAD: &[u8] = b"fourteen bytes";

    #[test]
    fn fastwebsockets_round_trips_complete() {
        assert_eq!(PAYLOAD.len(), 14);
        fastwebsockets_round_trips(1000, PAYLOAD);
    }

    #[test]
    fn tungstenite_round_trips_complete() {
        tungstenite_round_trips(1000, PAYLOAD);
    }

    #[test]
    fn larger_payloads_round_trip() {
        let payload: Vec<u8> = (0..200_000_u32).map(|i| i as u8).collect();
        fastwebsockets_round_trips(3, &payload);
        tungstenite_round_trips(3, &payload);
        fastwebsockets_round_trips(3, b"");
        tungstenite_round_trips(3, b"");
    }

    #[test]
    #[should_panic(expected = "fastwebsockets: the echo differs")]
    fn fastwebsockets_mismatch_is_detected() {
        fastwebsockets_checked(1000, PAYLOAD, b"fourteen bytez");
    }

    #[test]
    #[should_panic(expected = "tungstenite: the echo differs")]
    fn tungstenite_mismatch_is_detected() {
        tungstenite_checked(1000, PAYLOAD, b"fourteen bytez");
    }

    #[test]
    fn memory_pipe_carries_bytes_both_ways() {
        let (mut a, mut b) = MemoryPipe::pair();
        let mut buf = [0_u8; 8];
        assert_eq!(
            b.read(&mut buf).unwrap_err().kind(),
            io::ErrorKind::WouldBlock
        );
        a.write_all(b"ping").unwrap();
        b.write_all(b"pong!").unwrap();
        assert_eq!(b.read(&mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"ping");
        assert_eq!(a.read(&mut buf).unwrap(), 5);
        assert_eq!(&buf[..5], b"pong!");
    }
}
