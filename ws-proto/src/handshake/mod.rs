//! The HTTP/1.1 Upgrade handshake that opens a WebSocket connection
//! (RFC 6455 §4), for both sides, without any I/O.
//!
//! Server side:
//! 1. feed received bytes to a [`HeadReader`] until it reports the end of
//!    the head (bytes after it are the first WebSocket frames);
//! 2. [`parse_request`] the head, then [`validate_request`] it;
//! 3. send [`response_101`], or on error the bytes of
//!    [`HandshakeError::to_response`], and close.
//!
//! Client side:
//! 1. send [`build_request`] with a fresh [`generate_key`];
//! 2. read the response head with a [`HeadReader`], [`parse_response`] it and
//!    [`validate_response`] it against the key.
//!
//! Every step is bounded by [`HandshakeLimits`] and linear in its input.
//!
//! ```
//! use ws_proto::handshake::{
//!     build_request, generate_key, parse_request, parse_response, response_101,
//!     validate_request, validate_response, HandshakeLimits, HeadReader,
//! };
//!
//! let limits = HandshakeLimits::default();
//!
//! // Client: send the request.
//! let key = generate_key();
//! let offered = vec!["chat".to_string()];
//! let request_bytes = build_request("example.com", "/chat", &key, &offered, None, &[]);
//!
//! // Server: read, parse, validate, answer.
//! let mut reader = HeadReader::new(limits);
//! let end = reader.feed(&request_bytes).unwrap().expect("complete head");
//! assert_eq!(end, request_bytes.len());
//! let request = validate_request(parse_request(reader.head(), &limits).unwrap(), Some("/chat"))
//!     .unwrap();
//! assert_eq!(request.subprotocols, ["chat"]);
//! let response_bytes = response_101(&request.key, Some("chat"), None, &[]);
//!
//! // Client: check the answer.
//! let mut reader = HeadReader::new(limits);
//! reader.feed(&response_bytes).unwrap().expect("complete head");
//! let response = parse_response(reader.head(), &limits).unwrap();
//! let accepted = validate_response(response, &key, &offered).unwrap();
//! assert_eq!(accepted.subprotocol.as_deref(), Some("chat"));
//! ```

mod client;
mod error;
mod headers;
mod reader;
mod server;

use base64::Engine as _;
use sha1::{Digest, Sha1};

pub use client::{build_request, validate_response, UpgradeResponse};
pub use error::{HandshakeError, MalformedReason};
pub use headers::{has_token, parse_extensions, parse_token_list, ExtensionOffer, GetAll, Headers};
pub use reader::{parse_request, parse_response, HeadReader, Method, Request, Response};
pub use server::{
    error_response, http_response, reason_phrase, resource_path, resource_query, response_101,
    validate_request, UpgradeRequest,
};

/// The GUID that RFC 6455 §1.3 appends to the key before hashing.
pub const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// The `Sec-WebSocket-Accept` value for a `Sec-WebSocket-Key`:
/// base64(SHA-1(key ++ GUID)).
///
/// ```
/// use ws_proto::handshake::accept_key;
/// // RFC 6455 §1.3.
/// assert_eq!(accept_key(b"dGhlIHNhbXBsZSBub25jZQ=="), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn accept_key(key: &[u8]) -> String {
    let mut sha1 = Sha1::new();
    sha1.update(key);
    sha1.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha1.finalize())
}

/// A fresh `Sec-WebSocket-Key`: the base64 encoding of 16 bytes from a
/// cryptographically secure generator (RFC 6455 §4.1).
///
/// ```
/// use ws_proto::handshake::generate_key;
/// let key = generate_key();
/// assert_eq!(key.len(), 24);
/// assert_ne!(key, generate_key());
/// ```
pub fn generate_key() -> String {
    let mut nonce = [0u8; 16];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut nonce);
    base64::engine::general_purpose::STANDARD.encode(nonce)
}

/// Size limits for reading an HTTP head, applied by [`HeadReader`],
/// [`parse_request`] and [`parse_response`].
///
/// ```
/// use ws_proto::handshake::HandshakeLimits;
/// let mut strict = HandshakeLimits::default();
/// strict.max_headers = 32;
/// assert_eq!(strict.max_line, 8192);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct HandshakeLimits {
    /// Maximum length of one line (request, status or header line), line
    /// ending excluded. Default 8192.
    pub max_line: usize,
    /// Maximum number of header lines. Default 128.
    pub max_headers: usize,
    /// Maximum size of the whole head, line endings and final blank line
    /// included. Default 65536.
    pub max_head: usize,
}

impl Default for HandshakeLimits {
    fn default() -> Self {
        HandshakeLimits {
            max_line: 8192,
            max_headers: 128,
            max_head: 65536,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_rfc_example() {
        // RFC 6455 §1.3, byte for byte.
        assert_eq!(
            accept_key(b"dGhlIHNhbXBsZSBub25jZQ==").as_bytes(),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn generated_keys_are_16_random_bytes() {
        let a = generate_key();
        let b = generate_key();
        let engine = base64::engine::general_purpose::STANDARD;
        assert_eq!(engine.decode(&a).unwrap().len(), 16);
        assert_eq!(engine.decode(&b).unwrap().len(), 16);
        assert_ne!(a, b);
    }

    #[test]
    fn default_limits() {
        let limits = HandshakeLimits::default();
        assert_eq!(
            (limits.max_line, limits.max_headers, limits.max_head),
            (8192, 128, 65536)
        );
    }
}
