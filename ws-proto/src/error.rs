//! Typed errors: what a peer did wrong ([`ProtocolError`]), why a connection failed ([`Error`]),
//! and why an API call was refused ([`SendError`]).

use std::fmt;

use crate::close::CloseCode;
use crate::extension::ExtensionError;
use crate::handshake::HandshakeError;

/// A violation of RFC 6455 by the peer. Each maps to the close code the connection is failed
/// with ([`close_code`](Self::close_code)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// RSV bits set that no negotiated extension owns (§5.2). 1002.
    ReservedBits(u8),
    /// Opcode 0x3–0x7 or 0xB–0xF (§5.2). 1002.
    ReservedOpcode(u8),
    /// 64-bit length with the most significant bit set (§5.2). 1002.
    InvalidPayloadLength,
    /// A client sent an unmasked frame (§5.1). 1002.
    UnmaskedFrame,
    /// A server sent a masked frame (§5.1). 1002.
    MaskedFrame,
    /// A control frame with FIN clear (§5.5). 1002.
    FragmentedControlFrame,
    /// A control frame payload over 125 bytes (§5.5). 1002.
    ControlFrameTooLong(u64),
    /// A continuation frame with no message in progress (§5.4). 1002.
    UnexpectedContinuation,
    /// A new text/binary frame while a fragmented message is in progress (§5.4). 1002.
    ExpectedContinuation,
    /// A close frame with a 1-byte payload (§5.5.1). 1002.
    InvalidClosePayload,
    /// A close code that may not be sent on the wire (§7.4). 1002.
    InvalidCloseCode(u16),
    /// Text message or close reason that is not UTF-8 (§8.1). 1007.
    InvalidUtf8,
    /// A frame payload above the configured maximum. 1009.
    FrameTooLarge {
        /// Declared payload length.
        size: u64,
        /// Configured limit.
        max: usize,
    },
    /// A message above the configured maximum. 1009.
    MessageTooLarge {
        /// Size the message reached, or would reach with the frame being read.
        size: u64,
        /// Configured limit.
        max: usize,
    },
    /// More pings per second than configured. 1008.
    PingFlood,
    /// A negotiated extension could not transform a message.
    Extension(ExtensionError),
}

impl ProtocolError {
    /// The close code sent to the peer when the connection fails with this error.
    ///
    /// ```
    /// use ws_proto::ProtocolError;
    /// assert_eq!(ProtocolError::InvalidUtf8.close_code(), 1007);
    /// assert_eq!(ProtocolError::UnmaskedFrame.close_code(), 1002);
    /// ```
    pub fn close_code(&self) -> CloseCode {
        match self {
            ProtocolError::InvalidUtf8 => CloseCode::INVALID_PAYLOAD,
            ProtocolError::FrameTooLarge { .. } | ProtocolError::MessageTooLarge { .. } => {
                CloseCode::MESSAGE_TOO_BIG
            }
            ProtocolError::PingFlood => CloseCode::POLICY_VIOLATION,
            ProtocolError::Extension(e) => e.close_code(),
            _ => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ProtocolError::ReservedBits(bits) => write!(f, "reserved bits {bits:#05b} set"),
            ProtocolError::ReservedOpcode(op) => write!(f, "reserved opcode {op:#x}"),
            ProtocolError::InvalidPayloadLength => {
                f.write_str("payload length has its top bit set")
            }
            ProtocolError::UnmaskedFrame => f.write_str("client frame is not masked"),
            ProtocolError::MaskedFrame => f.write_str("server frame is masked"),
            ProtocolError::FragmentedControlFrame => f.write_str("fragmented control frame"),
            ProtocolError::ControlFrameTooLong(len) => {
                write!(f, "control frame payload of {len} bytes (max 125)")
            }
            ProtocolError::UnexpectedContinuation => {
                f.write_str("continuation frame without a message in progress")
            }
            ProtocolError::ExpectedContinuation => {
                f.write_str("new data frame inside a fragmented message")
            }
            ProtocolError::InvalidClosePayload => f.write_str("close frame with a 1-byte payload"),
            ProtocolError::InvalidCloseCode(code) => write!(f, "invalid close code {code}"),
            ProtocolError::InvalidUtf8 => f.write_str("invalid UTF-8 in text"),
            ProtocolError::FrameTooLarge { size, max } => {
                write!(f, "frame of {size} bytes exceeds the limit of {max}")
            }
            ProtocolError::MessageTooLarge { size, max } => {
                write!(f, "message of {size} bytes exceeds the limit of {max}")
            }
            ProtocolError::PingFlood => f.write_str("too many pings"),
            ProtocolError::Extension(e) => write!(f, "extension: {e}"),
        }
    }
}

impl std::error::Error for ProtocolError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            ProtocolError::Extension(e) => Some(e),
            _ => None,
        }
    }
}

/// Which timer expired.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutKind {
    /// The opening handshake did not finish in time.
    Handshake,
    /// The peer did not answer a keepalive ping in time.
    Pong,
    /// The peer did not complete the closing handshake (or close TCP) in time.
    Close,
}

/// Why a connection failed, reported in [`Event::Error`](crate::Event::Error).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// The opening handshake failed. On the server, the HTTP error response is already queued.
    Handshake(HandshakeError),
    /// The peer broke the protocol; a close frame with its code is queued.
    Protocol(ProtocolError),
    /// A timer expired.
    Timeout(TimeoutKind),
    /// The peer closed TCP without a closing handshake (reported as 1006).
    ConnectionReset,
}

impl Error {
    /// The close code this failure is reported with (1006 when no close frame applies).
    ///
    /// ```
    /// use ws_proto::{Error, ProtocolError};
    /// assert_eq!(Error::Protocol(ProtocolError::InvalidUtf8).close_code(), 1007);
    /// assert_eq!(Error::ConnectionReset.close_code(), 1006);
    /// ```
    pub fn close_code(&self) -> CloseCode {
        match self {
            Error::Protocol(e) => e.close_code(),
            Error::Timeout(TimeoutKind::Pong) => CloseCode::INTERNAL_ERROR,
            _ => CloseCode::ABNORMAL,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Handshake(e) => write!(f, "handshake failed: {e}"),
            Error::Protocol(e) => write!(f, "protocol error: {e}"),
            Error::Timeout(TimeoutKind::Handshake) => f.write_str("handshake timed out"),
            Error::Timeout(TimeoutKind::Pong) => f.write_str("keepalive ping timed out"),
            Error::Timeout(TimeoutKind::Close) => f.write_str("closing handshake timed out"),
            Error::ConnectionReset => f.write_str("connection closed without a close frame"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Handshake(e) => Some(e),
            Error::Protocol(e) => Some(e),
            _ => None,
        }
    }
}

impl From<ProtocolError> for Error {
    fn from(e: ProtocolError) -> Self {
        Error::Protocol(e)
    }
}

impl From<HandshakeError> for Error {
    fn from(e: HandshakeError) -> Self {
        Error::Handshake(e)
    }
}

/// An API call the connection refused. Nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendError {
    /// The handshake has not completed yet.
    NotOpen,
    /// A close frame was already sent (or the connection failed): no more data may follow (§5.5.1).
    Closed,
    /// Control frame payloads are limited to 125 bytes (§5.5).
    ControlTooLong(usize),
    /// The close code may not be sent (1005, 1006, 1015, or out of range).
    InvalidCloseCode(u16),
    /// The outgoing buffer is over its limit; retry after the peer has read some data.
    BufferFull {
        /// Bytes already waiting to be written.
        buffered: usize,
        /// Configured limit.
        limit: usize,
    },
    /// A negotiated extension failed to encode the message.
    Extension(ExtensionError),
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SendError::NotOpen => f.write_str("the connection is not open yet"),
            SendError::Closed => f.write_str("the connection is closing or closed"),
            SendError::ControlTooLong(len) => {
                write!(f, "control frame payload of {len} bytes (max 125)")
            }
            SendError::InvalidCloseCode(code) => write!(f, "close code {code} may not be sent"),
            SendError::BufferFull { buffered, limit } => {
                write!(
                    f,
                    "outgoing buffer full ({buffered} bytes buffered, limit {limit})"
                )
            }
            SendError::Extension(e) => write!(f, "extension: {e}"),
        }
    }
}

impl std::error::Error for SendError {}

/// An answer to a request ([`Connection::accept`](crate::Connection::accept),
/// [`reject`](crate::Connection::reject), [`respond`](crate::Connection::respond)) the
/// connection refused. Nothing was queued.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum AnswerError {
    /// No request is waiting for this answer (none arrived, it was answered already, or it
    /// was a plain HTTP request answered with `accept`/`reject`, or an upgrade with `respond`).
    NoPendingRequest,
    /// `reject` with a status that does not refuse a request (only 300–599 do).
    InvalidStatus(u16),
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::NoPendingRequest => f.write_str("no request is waiting for this answer"),
            AnswerError::InvalidStatus(status) => write!(
                f,
                "HTTP status {status} cannot reject a request (300-599 can)"
            ),
        }
    }
}

impl std::error::Error for AnswerError {}
