//! Typed errors for the opening handshake.

use std::fmt;

use crate::extension::ExtensionError;

/// Why an HTTP head could not be parsed (the detail of [`HandshakeError::Malformed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MalformedReason {
    /// An invalid byte in a header name.
    HeaderName,
    /// An invalid byte in a header value.
    HeaderValue,
    /// An invalid line ending (for example a bare CR).
    NewLine,
    /// An invalid status code or reason phrase in a response status line.
    Status,
    /// An invalid byte where a token (method, request target) was expected.
    Token,
    /// An invalid HTTP version (only `HTTP/1.0` and `HTTP/1.1` are understood).
    Version,
    /// The head ended before the blank line that terminates it.
    Incomplete,
    /// Bytes follow the blank line that terminates the head.
    TrailingBytes,
}

impl MalformedReason {
    fn as_str(self) -> &'static str {
        match self {
            MalformedReason::HeaderName => "invalid header name",
            MalformedReason::HeaderValue => "invalid header value",
            MalformedReason::NewLine => "invalid line ending",
            MalformedReason::Status => "invalid status line",
            MalformedReason::Token => "invalid token in request line",
            MalformedReason::Version => "invalid HTTP version",
            MalformedReason::Incomplete => "incomplete HTTP head",
            MalformedReason::TrailingBytes => "bytes after the end of the HTTP head",
        }
    }
}

impl fmt::Display for MalformedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error in the opening handshake, on either side.
///
/// Errors a server can meet while reading and checking a client's request
/// know the HTTP status to answer with ([`http_status`](Self::http_status))
/// and can build the complete error response ([`to_response`](Self::to_response)).
/// Errors only a client can meet (checking the server's response) have no
/// status.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum HandshakeError {
    /// The start line (request line, or status line on the client side) is
    /// longer than [`HandshakeLimits::max_line`](super::HandshakeLimits::max_line). HTTP 414.
    RequestLineTooLong,
    /// A header line is longer than [`HandshakeLimits::max_line`](super::HandshakeLimits::max_line). HTTP 431.
    HeaderLineTooLong,
    /// More header lines than [`HandshakeLimits::max_headers`](super::HandshakeLimits::max_headers). HTTP 431.
    TooManyHeaders,
    /// The head is larger than [`HandshakeLimits::max_head`](super::HandshakeLimits::max_head). HTTP 431.
    HeadTooLarge,
    /// The head is not valid HTTP/1.x. HTTP 400.
    Malformed(MalformedReason),
    /// The request method is not `GET`. HTTP 405 (the response carries `Allow: GET`).
    MethodNotAllowed,
    /// The request is not HTTP/1.1. HTTP 505.
    UnsupportedHttpVersion,
    /// A required header is absent. HTTP 400.
    MissingHeader(&'static str),
    /// A header that must appear once appears several times. HTTP 400.
    DuplicateHeader(&'static str),
    /// A header value is not valid (for example `Host` or `Origin` not UTF-8). HTTP 400.
    InvalidHeaderValue(&'static str),
    /// The `Upgrade` header does not contain the token `websocket`. HTTP 400.
    InvalidUpgrade,
    /// The `Connection` header does not contain the token `upgrade`. HTTP 400.
    InvalidConnection,
    /// `Sec-WebSocket-Key` is not the base64 encoding of exactly 16 bytes. HTTP 400.
    InvalidKey,
    /// `Sec-WebSocket-Version` is absent, repeated or not `13`. HTTP 426
    /// (the response carries `Sec-WebSocket-Version: 13`).
    UnsupportedVersion,
    /// The request path does not match the expected one. HTTP 404.
    PathNotFound,
    /// `Sec-WebSocket-Protocol` is not a comma-separated list of tokens. HTTP 400.
    InvalidSubprotocol,
    /// `Sec-WebSocket-Extensions` does not follow the RFC 6455 §9.1 grammar. HTTP 400.
    InvalidExtensions,
    /// Client side: the response status is not 101.
    UnexpectedStatus(u16),
    /// Client side: `Sec-WebSocket-Accept` does not match the key that was sent.
    AcceptMismatch,
    /// Client side: the server selected a subprotocol that was not offered,
    /// or more than one.
    UnexpectedSubprotocol,
    /// Client side: the server accepted an extension that was not offered, with parameters
    /// the offering extension refuses, or clashing with another one's RSV bits.
    UnexpectedExtension,
    /// Client side: the server accepted an offered extension with a response that extension
    /// refuses (RFC 7692 §5: unknown, repeated or invalid parameters, or values beyond the
    /// offer).
    ExtensionRefused(ExtensionError),
}

impl HandshakeError {
    /// The HTTP status a server should answer with, or `None` for errors only
    /// a client can meet.
    ///
    /// ```
    /// use ws_proto::handshake::HandshakeError;
    /// assert_eq!(HandshakeError::UnsupportedVersion.http_status(), Some(426));
    /// assert_eq!(HandshakeError::AcceptMismatch.http_status(), None);
    /// ```
    pub fn http_status(&self) -> Option<u16> {
        let status = match self {
            HandshakeError::RequestLineTooLong => 414,
            HandshakeError::HeaderLineTooLong
            | HandshakeError::TooManyHeaders
            | HandshakeError::HeadTooLarge => 431,
            HandshakeError::Malformed(_)
            | HandshakeError::MissingHeader(_)
            | HandshakeError::DuplicateHeader(_)
            | HandshakeError::InvalidHeaderValue(_)
            | HandshakeError::InvalidUpgrade
            | HandshakeError::InvalidConnection
            | HandshakeError::InvalidKey
            | HandshakeError::InvalidSubprotocol
            | HandshakeError::InvalidExtensions => 400,
            HandshakeError::MethodNotAllowed => 405,
            HandshakeError::UnsupportedHttpVersion => 505,
            HandshakeError::UnsupportedVersion => 426,
            HandshakeError::PathNotFound => 404,
            HandshakeError::UnexpectedStatus(_)
            | HandshakeError::AcceptMismatch
            | HandshakeError::UnexpectedSubprotocol
            | HandshakeError::UnexpectedExtension
            | HandshakeError::ExtensionRefused(_) => return None,
        };
        Some(status)
    }

    /// The complete HTTP error response a server should send before closing
    /// the connection, or `None` for errors only a client can meet.
    ///
    /// A 405 carries `Allow: GET` and a 426 carries `Sec-WebSocket-Version: 13`.
    /// The body is this error's message.
    ///
    /// ```
    /// use ws_proto::handshake::HandshakeError;
    /// let bytes = HandshakeError::UnsupportedVersion.to_response().unwrap();
    /// let text = String::from_utf8(bytes).unwrap();
    /// assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
    /// assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
    /// ```
    pub fn to_response(&self) -> Option<Vec<u8>> {
        let status = self.http_status()?;
        let extra: Vec<(String, String)> = match self {
            HandshakeError::MethodNotAllowed => vec![("Allow".into(), "GET".into())],
            HandshakeError::UnsupportedVersion => {
                vec![("Sec-WebSocket-Version".into(), "13".into())]
            }
            _ => Vec::new(),
        };
        let body = format!("{self}\n");
        Some(super::server::error_response(status, &extra, &body))
    }
}

impl fmt::Display for HandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HandshakeError::RequestLineTooLong => f.write_str("start line too long"),
            HandshakeError::HeaderLineTooLong => f.write_str("header line too long"),
            HandshakeError::TooManyHeaders => f.write_str("too many headers"),
            HandshakeError::HeadTooLarge => f.write_str("HTTP head too large"),
            HandshakeError::Malformed(reason) => write!(f, "malformed HTTP head: {reason}"),
            HandshakeError::MethodNotAllowed => f.write_str("method not allowed, use GET"),
            HandshakeError::UnsupportedHttpVersion => f.write_str("HTTP/1.1 required"),
            HandshakeError::MissingHeader(name) => write!(f, "missing {name} header"),
            HandshakeError::DuplicateHeader(name) => write!(f, "duplicate {name} header"),
            HandshakeError::InvalidHeaderValue(name) => write!(f, "invalid {name} header"),
            HandshakeError::InvalidUpgrade => {
                f.write_str("Upgrade header does not contain \"websocket\"")
            }
            HandshakeError::InvalidConnection => {
                f.write_str("Connection header does not contain \"upgrade\"")
            }
            HandshakeError::InvalidKey => f.write_str("invalid Sec-WebSocket-Key header"),
            HandshakeError::UnsupportedVersion => {
                f.write_str("unsupported WebSocket version, 13 required")
            }
            HandshakeError::PathNotFound => f.write_str("path not found"),
            HandshakeError::InvalidSubprotocol => {
                f.write_str("malformed Sec-WebSocket-Protocol header")
            }
            HandshakeError::InvalidExtensions => {
                f.write_str("malformed Sec-WebSocket-Extensions header")
            }
            HandshakeError::UnexpectedStatus(status) => {
                write!(f, "unexpected HTTP status {status}, expected 101")
            }
            HandshakeError::AcceptMismatch => {
                f.write_str("Sec-WebSocket-Accept does not match the key sent")
            }
            HandshakeError::UnexpectedExtension => {
                f.write_str("the server selected an extension that was not offered")
            }
            HandshakeError::UnexpectedSubprotocol => {
                f.write_str("server selected a subprotocol that was not offered")
            }
            HandshakeError::ExtensionRefused(e) => {
                write!(f, "the server's extension response is refused: {e}")
            }
        }
    }
}

impl std::error::Error for HandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            HandshakeError::ExtensionRefused(e) => Some(e),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        assert_eq!(HandshakeError::RequestLineTooLong.http_status(), Some(414));
        assert_eq!(HandshakeError::HeaderLineTooLong.http_status(), Some(431));
        assert_eq!(HandshakeError::TooManyHeaders.http_status(), Some(431));
        assert_eq!(HandshakeError::HeadTooLarge.http_status(), Some(431));
        assert_eq!(
            HandshakeError::Malformed(MalformedReason::Token).http_status(),
            Some(400)
        );
        assert_eq!(HandshakeError::MethodNotAllowed.http_status(), Some(405));
        assert_eq!(
            HandshakeError::UnsupportedHttpVersion.http_status(),
            Some(505)
        );
        assert_eq!(HandshakeError::PathNotFound.http_status(), Some(404));
        assert_eq!(HandshakeError::UnexpectedStatus(200).http_status(), None);
        assert_eq!(HandshakeError::UnexpectedSubprotocol.to_response(), None);
    }

    #[test]
    fn method_not_allowed_response_has_allow() {
        let text =
            String::from_utf8(HandshakeError::MethodNotAllowed.to_response().unwrap()).unwrap();
        assert!(text.starts_with("HTTP/1.1 405 Method Not Allowed\r\n"));
        assert!(text.contains("\r\nAllow: GET\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nmethod not allowed, use GET\n"));
    }

    #[test]
    fn error_trait_and_display() {
        let e: Box<dyn std::error::Error> = Box::new(HandshakeError::MissingHeader("Host"));
        assert_eq!(e.to_string(), "missing Host header");
        assert_eq!(
            HandshakeError::Malformed(MalformedReason::Incomplete).to_string(),
            "malformed HTTP head: incomplete HTTP head"
        );
    }
}
