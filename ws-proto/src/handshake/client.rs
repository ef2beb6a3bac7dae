//! Client side: writing the opening handshake (RFC 6455 §4.1) and checking
//! the server's answer.

use super::accept_key;
use super::error::HandshakeError;
use super::headers::{parse_extensions, parse_token_list, write_header, ExtensionOffer, Headers};
use super::reader::Response;
use super::server::{exactly_one, optional_one, require_upgrade_tokens};

/// Appends `path` as a request target, percent-encoding the bytes that
/// cannot appear in one (controls, space, DEL, non-ASCII) so that the
/// request line cannot be split. An empty path becomes `/`.
fn write_target(out: &mut Vec<u8>, path: &str) {
    if path.is_empty() {
        out.push(b'/');
        return;
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for b in path.bytes() {
        if b <= b' ' || b >= 0x7f {
            out.extend_from_slice(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
        } else {
            out.push(b);
        }
    }
}

/// The client's opening handshake request (RFC 6455 §4.1), ending with the
/// blank line.
///
/// `path` is the request target (path and query, for example `/chat?room=1`);
/// bytes not allowed there (controls, space, non-ASCII) are percent-encoded
/// and an empty path becomes `/`. `key` should come from
/// [`generate_key`](super::generate_key). `subprotocols`, if any, are sent
/// as one `Sec-WebSocket-Protocol` list; `extensions` as
/// `Sec-WebSocket-Extensions`; `extra` headers follow. A header whose name is
/// not a token is left out, and CR, LF and NUL in values are replaced by
/// spaces.
///
/// ```
/// use ws_proto::handshake::build_request;
/// let bytes = build_request(
///     "server.example.com",
///     "/chat",
///     "dGhlIHNhbXBsZSBub25jZQ==",
///     &["chat".to_string(), "superchat".to_string()],
///     None,
///     &[("Origin".to_string(), "http://example.com".to_string())],
/// );
/// assert_eq!(
///     bytes,
///     b"GET /chat HTTP/1.1\r\n\
///       Host: server.example.com\r\n\
///       Upgrade: websocket\r\n\
///       Connection: Upgrade\r\n\
///       Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///       Sec-WebSocket-Version: 13\r\n\
///       Sec-WebSocket-Protocol: chat, superchat\r\n\
///       Origin: http://example.com\r\n\r\n"
/// );
/// ```
pub fn build_request(
    host: &str,
    path: &str,
    key: &str,
    subprotocols: &[String],
    extensions: Option<&str>,
    extra: &[(String, String)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(192 + path.len());
    out.extend_from_slice(b"GET ");
    write_target(&mut out, path);
    out.extend_from_slice(b" HTTP/1.1\r\n");
    write_header(&mut out, "Host", host);
    write_header(&mut out, "Upgrade", "websocket");
    write_header(&mut out, "Connection", "Upgrade");
    write_header(&mut out, "Sec-WebSocket-Key", key);
    write_header(&mut out, "Sec-WebSocket-Version", "13");
    if !subprotocols.is_empty() {
        write_header(&mut out, "Sec-WebSocket-Protocol", &subprotocols.join(", "));
    }
    if let Some(extensions) = extensions {
        write_header(&mut out, "Sec-WebSocket-Extensions", extensions);
    }
    for (name, value) in extra {
        write_header(&mut out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// A server response that passed the checks of [`validate_response`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeResponse {
    /// The subprotocol the server selected, if any (always one of those
    /// offered).
    pub subprotocol: Option<String>,
    /// The extensions the server accepted, from `Sec-WebSocket-Extensions`
    /// (all occurrences, concatenated). Checking them against what was
    /// offered is left to the extension layer.
    pub extensions: Vec<ExtensionOffer>,
    /// All response headers.
    pub headers: Headers,
}

/// Checks the server's answer to the opening handshake (RFC 6455 §4.1):
///
/// * status 101, else [`HandshakeError::UnexpectedStatus`];
/// * `Upgrade` containing the token `websocket` and `Connection` containing
///   the token `upgrade` (case-insensitive comma lists);
/// * exactly one `Sec-WebSocket-Accept`, equal to [`accept_key`]`(key)`,
///   else [`HandshakeError::AcceptMismatch`];
/// * at most one `Sec-WebSocket-Protocol`, naming a single subprotocol from
///   `offered` (exact match), else [`HandshakeError::UnexpectedSubprotocol`];
/// * `Sec-WebSocket-Extensions`, if present, well-formed.
///
/// ```
/// use ws_proto::handshake::{parse_response, validate_response, HandshakeError, HandshakeLimits};
///
/// let head = b"HTTP/1.1 101 Switching Protocols\r\n\
///     Upgrade: websocket\r\n\
///     Connection: Upgrade\r\n\
///     Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
///     Sec-WebSocket-Protocol: chat\r\n\r\n";
/// let response = parse_response(head, &HandshakeLimits::default()).unwrap();
/// let offered = ["chat".to_string(), "superchat".to_string()];
/// let ok = validate_response(response.clone(), "dGhlIHNhbXBsZSBub25jZQ==", &offered).unwrap();
/// assert_eq!(ok.subprotocol.as_deref(), Some("chat"));
///
/// let err = validate_response(response, "AQIDBAUGBwgJCgsMDQ4PEA==", &offered).unwrap_err();
/// assert_eq!(err, HandshakeError::AcceptMismatch);
/// ```
pub fn validate_response(
    resp: Response,
    key: &str,
    offered: &[String],
) -> Result<UpgradeResponse, HandshakeError> {
    if resp.status != 101 {
        return Err(HandshakeError::UnexpectedStatus(resp.status));
    }
    let headers = &resp.headers;
    require_upgrade_tokens(headers)?;

    let accept = exactly_one(headers, "Sec-WebSocket-Accept")?;
    if accept != accept_key(key.as_bytes()).as_bytes() {
        return Err(HandshakeError::AcceptMismatch);
    }

    let subprotocol = match optional_one(headers, "Sec-WebSocket-Protocol")? {
        None => None,
        Some(value) => {
            let mut selected = parse_token_list(value)?;
            if selected.len() != 1 || !offered.contains(&selected[0]) {
                return Err(HandshakeError::UnexpectedSubprotocol);
            }
            selected.pop()
        }
    };

    let mut extensions = Vec::new();
    for value in headers.get_all("Sec-WebSocket-Extensions") {
        extensions.extend(parse_extensions(value)?);
    }

    Ok(UpgradeResponse {
        subprotocol,
        extensions,
        headers: resp.headers,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{
        generate_key, parse_request, parse_response, response_101, validate_request,
        HandshakeLimits,
    };
    use super::*;

    const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

    fn response(text: &str) -> Response {
        parse_response(text.as_bytes(), &HandshakeLimits::default()).unwrap()
    }

    fn good(extra: &str) -> Response {
        response(&format!(
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             {extra}\r\n"
        ))
    }

    fn offered() -> Vec<String> {
        vec!["chat".into(), "superchat".into()]
    }

    #[test]
    fn build_request_lines() {
        let bytes = build_request(
            "example.com:8080",
            "/chat?room=1",
            KEY,
            &offered(),
            Some("permessage-deflate; client_max_window_bits"),
            &[("User-Agent".into(), "ws-proto-test".into())],
        );
        let text = String::from_utf8(bytes.clone()).unwrap();
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert_eq!(
            lines,
            [
                "GET /chat?room=1 HTTP/1.1",
                "Host: example.com:8080",
                "Upgrade: websocket",
                "Connection: Upgrade",
                "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
                "Sec-WebSocket-Version: 13",
                "Sec-WebSocket-Protocol: chat, superchat",
                "Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits",
                "User-Agent: ws-proto-test",
                "",
                "",
            ]
        );
        // Our own server accepts it.
        let limits = HandshakeLimits::default();
        let up = validate_request(parse_request(&bytes, &limits).unwrap(), Some("/chat")).unwrap();
        assert_eq!(up.subprotocols, offered());
        assert_eq!(up.extensions[0].name, "permessage-deflate");
    }

    #[test]
    fn build_request_minimal_and_sanitised() {
        let text = String::from_utf8(build_request("h", "", KEY, &[], None, &[])).unwrap();
        assert!(text.starts_with("GET / HTTP/1.1\r\nHost: h\r\n"));
        assert!(!text.contains("Sec-WebSocket-Protocol"));
        assert!(!text.contains("Sec-WebSocket-Extensions"));

        let bytes = build_request("h\r\nX-Injected: 1", "/a b\r\nX: é", KEY, &[], None, &[]);
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert!(
            text.starts_with("GET /a%20b%0D%0AX:%20%C3%A9 HTTP/1.1\r\nHost: h  X-Injected: 1\r\n")
        );
        let req = parse_request(&bytes, &HandshakeLimits::default()).unwrap();
        assert_eq!(req.headers.count("X-Injected"), 0);
    }

    #[test]
    fn accepts_correct_101() {
        let ok = validate_response(good(""), KEY, &[]).unwrap();
        assert_eq!(ok.subprotocol, None);
        assert!(ok.extensions.is_empty());
        assert_eq!(ok.headers.len(), 3);

        let ok = validate_response(
            good(
                "Sec-WebSocket-Protocol: superchat\r\n\
                 Sec-WebSocket-Extensions: permessage-deflate; server_max_window_bits=10\r\n",
            ),
            KEY,
            &offered(),
        )
        .unwrap();
        assert_eq!(ok.subprotocol.as_deref(), Some("superchat"));
        assert_eq!(
            ok.extensions[0].param("server_max_window_bits"),
            Some(Some("10"))
        );

        // Token lists and case-insensitivity.
        let resp = response(
            "HTTP/1.1 101 Switching Protocols\r\n\
             upgrade: WebSocket\r\n\
             connection: keep-alive, upgrade\r\n\
             sec-websocket-accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        );
        assert!(validate_response(resp, KEY, &[]).is_ok());
    }

    #[test]
    fn round_trip_with_our_server() {
        let key = generate_key();
        let limits = HandshakeLimits::default();
        let request = build_request("h", "/", &key, &offered(), None, &[]);
        let up = validate_request(parse_request(&request, &limits).unwrap(), None).unwrap();
        let bytes = response_101(&up.key, Some(&up.subprotocols[1]), None, &[]);
        let ok = validate_response(parse_response(&bytes, &limits).unwrap(), &key, &offered());
        assert_eq!(ok.unwrap().subprotocol.as_deref(), Some("superchat"));
    }

    #[test]
    fn rejects_wrong_status() {
        let resp = response("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n");
        assert_eq!(
            validate_response(resp, KEY, &[]),
            Err(HandshakeError::UnexpectedStatus(200))
        );
        let resp = response("HTTP/1.1 426 Upgrade Required\r\nSec-WebSocket-Version: 13\r\n\r\n");
        let err = validate_response(resp, KEY, &[]).unwrap_err();
        assert_eq!(err, HandshakeError::UnexpectedStatus(426));
        assert_eq!(err.http_status(), None);
    }

    #[test]
    fn rejects_accept_mismatch_missing_or_duplicated() {
        assert_eq!(
            validate_response(good(""), "AQIDBAUGBwgJCgsMDQ4PEA==", &[]),
            Err(HandshakeError::AcceptMismatch)
        );
        let missing = response(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
        );
        assert_eq!(
            validate_response(missing, KEY, &[]),
            Err(HandshakeError::MissingHeader("Sec-WebSocket-Accept"))
        );
        assert_eq!(
            validate_response(
                good("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"),
                KEY,
                &[]
            ),
            Err(HandshakeError::DuplicateHeader("Sec-WebSocket-Accept"))
        );
    }

    #[test]
    fn rejects_missing_or_wrong_upgrade_and_connection() {
        let no_upgrade = response(
            "HTTP/1.1 101 Switching Protocols\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        );
        assert_eq!(
            validate_response(no_upgrade, KEY, &[]),
            Err(HandshakeError::MissingHeader("Upgrade"))
        );
        let wrong_upgrade = response(
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: h2c\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        );
        assert_eq!(
            validate_response(wrong_upgrade, KEY, &[]),
            Err(HandshakeError::InvalidUpgrade)
        );
        let wrong_connection = response(
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: close\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        );
        assert_eq!(
            validate_response(wrong_connection, KEY, &[]),
            Err(HandshakeError::InvalidConnection)
        );
    }

    #[test]
    fn rejects_unoffered_or_multiple_subprotocols() {
        let unexpected = Err(HandshakeError::UnexpectedSubprotocol);
        assert_eq!(
            validate_response(good("Sec-WebSocket-Protocol: chat\r\n"), KEY, &[]),
            unexpected
        );
        assert_eq!(
            validate_response(good("Sec-WebSocket-Protocol: other\r\n"), KEY, &offered()),
            unexpected
        );
        // Subprotocol names are compared exactly.
        assert_eq!(
            validate_response(good("Sec-WebSocket-Protocol: Chat\r\n"), KEY, &offered()),
            unexpected
        );
        assert_eq!(
            validate_response(
                good("Sec-WebSocket-Protocol: chat, superchat\r\n"),
                KEY,
                &offered()
            ),
            unexpected
        );
        assert_eq!(
            validate_response(
                good("Sec-WebSocket-Protocol: chat\r\nSec-WebSocket-Protocol: chat\r\n"),
                KEY,
                &offered()
            ),
            Err(HandshakeError::DuplicateHeader("Sec-WebSocket-Protocol"))
        );
        assert_eq!(
            validate_response(good("Sec-WebSocket-Protocol: a b\r\n"), KEY, &offered()),
            Err(HandshakeError::InvalidSubprotocol)
        );
    }

    #[test]
    fn rejects_malformed_extensions() {
        assert_eq!(
            validate_response(good("Sec-WebSocket-Extensions: x; =1\r\n"), KEY, &[]),
            Err(HandshakeError::InvalidExtensions)
        );
    }
}
