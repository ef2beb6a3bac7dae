//! The load generator's own RFC 6455 bytes, written apart from `ws-proto` so that the suite
//! measures every server with the same independent client: the upgrade request, pre-masked
//! client frames, and the frame headers servers send.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use crate::LoadError;

/// Binary opcode (RFC 6455 §5.2).
pub const OP_BINARY: u8 = 0x2;
/// Close opcode.
pub const OP_CLOSE: u8 = 0x8;

/// A client frame (FIN set, masked with `key`), as a client sends it (§5.3).
pub fn client_frame(opcode: u8, payload: &[u8], key: [u8; 4]) -> Vec<u8> {
    let mut frame = header(opcode, payload.len(), true);
    frame.extend_from_slice(&key);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ key[i % 4]));
    frame
}

/// A server frame (FIN set, unmasked): what an echo of `payload` looks like on the wire.
pub fn server_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    let mut frame = header(opcode, payload.len(), false);
    frame.extend_from_slice(payload);
    frame
}

fn header(opcode: u8, len: usize, masked: bool) -> Vec<u8> {
    let mask_bit = if masked { 0x80 } else { 0 };
    let mut h = vec![0x80 | opcode];
    match len {
        0..=125 => h.push(mask_bit | len as u8),
        126..=0xffff => {
            h.push(mask_bit | 126);
            h.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            h.push(mask_bit | 127);
            h.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    h
}

/// A frame header a server sent: `(opcode, header length, payload length)`, or `None` when
/// `bytes` does not hold the whole header yet. Servers never mask (§5.1).
pub fn parse_server_header(bytes: &[u8]) -> Option<(u8, usize, usize)> {
    let (&b0, &b1) = (bytes.first()?, bytes.get(1)?);
    let opcode = b0 & 0x0f;
    match b1 & 0x7f {
        126 => {
            let len = u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?);
            Some((opcode, 4, len as usize))
        }
        127 => {
            let len = u64::from_be_bytes(bytes.get(2..10)?.try_into().ok()?);
            Some((opcode, 10, len as usize))
        }
        len => Some((opcode, 2, len as usize)),
    }
}

/// Opens a TCP connection and completes the opening handshake on `path` (blocking, bounded by
/// `timeout`), returning the socket set non-blocking, with `TCP_NODELAY`.
pub fn connect(addr: SocketAddr, path: &str, timeout: Duration) -> Result<TcpStream, LoadError> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(timeout))?;
    // Any valid key will do: the suite does not check Sec-WebSocket-Accept, only the status.
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    // Byte by byte up to the blank line: nothing of the first frames may be read here.
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(LoadError::Handshake(
                "connection closed during the handshake".into(),
            ));
        }
        head.push(byte[0]);
        if head.len() > 16 << 10 {
            return Err(LoadError::Handshake("response head over 16 KiB".into()));
        }
    }
    let status = String::from_utf8_lossy(&head);
    let status = status.lines().next().unwrap_or_default();
    if !status.starts_with("HTTP/1.1 101") {
        return Err(LoadError::Handshake(status.to_owned()));
    }
    stream.set_read_timeout(None)?;
    stream.set_nonblocking(true)?;
    Ok(stream)
}

/// One read from a non-blocking socket: `Some(n)` bytes, `None` when nothing is waiting (the
/// socket is drained). End of stream is [`LoadError::Closed`]: no server under test closes
/// a connection in the middle of a run.
pub fn read_some(stream: &mut impl Read, buf: &mut [u8]) -> Result<Option<usize>, LoadError> {
    loop {
        return match stream.read(buf) {
            Ok(0) => Err(LoadError::Closed),
            Ok(n) => Ok(Some(n)),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => Err(e.into()),
        };
    }
}

/// Writes all of `bytes` to a non-blocking socket, waiting briefly when it is full (only for
/// rare writes outside the measured loop, such as closing frames).
pub fn write_all_nonblocking(stream: &mut impl Write, mut bytes: &[u8]) -> io::Result<()> {
    let deadline = std::time::Instant::now() + Duration::from_secs(2);
    while !bytes.is_empty() {
        match stream.write(bytes) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                if std::time::Instant::now() > deadline {
                    return Err(io::ErrorKind::TimedOut.into());
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_through_the_header_parser() {
        for len in [0usize, 14, 125, 126, 65535, 65536, 1 << 20] {
            let payload = vec![7u8; len];
            let frame = server_frame(OP_BINARY, &payload);
            let (opcode, header_len, payload_len) = parse_server_header(&frame).unwrap();
            assert_eq!((opcode, payload_len), (OP_BINARY, len));
            assert_eq!(header_len + payload_len, frame.len());
            let masked = client_frame(OP_BINARY, &payload, [1, 2, 3, 4]);
            assert_eq!(masked.len(), frame.len() + 4);
            assert_eq!(masked[1] & 0x80, 0x80, "client frames are masked");
        }
        assert_eq!(parse_server_header(&[0x82]), None);
        assert_eq!(parse_server_header(&[0x82, 126, 1]), None);
    }

    #[test]
    fn masking_follows_the_key() {
        let frame = client_frame(OP_BINARY, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        // RFC 6455 §5.7: a masked "Hello".
        assert_eq!(
            frame,
            [0x82, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]
        );
    }
}
