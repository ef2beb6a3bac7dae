//! Server side: checking the client's opening handshake (RFC 6455 §4.2.1)
//! and writing the answer (§4.2.2).

use base64::Engine as _;

use super::accept_key;
use super::error::HandshakeError;
use super::headers::{
    has_token, parse_extensions, parse_token_list, trim_ows, write_header, ExtensionOffer, Headers,
};
use super::reader::{Method, Request};

/// A request that passed the RFC 6455 §4.2.1 checks of [`validate_request`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// The request target as sent, query string included.
    pub path: String,
    /// The `Host` header.
    pub host: String,
    /// The `Sec-WebSocket-Key` header (24 base64 characters); pass it to
    /// [`response_101`].
    pub key: String,
    /// The `Origin` header, if present.
    pub origin: Option<String>,
    /// The subprotocols offered in `Sec-WebSocket-Protocol`, in order of
    /// preference (all occurrences of the header, concatenated).
    pub subprotocols: Vec<String>,
    /// The extensions offered in `Sec-WebSocket-Extensions` (all occurrences
    /// of the header, concatenated).
    pub extensions: Vec<ExtensionOffer>,
    /// All request headers.
    pub headers: Headers,
}

/// The value of a header that must appear exactly once.
pub(crate) fn exactly_one<'a>(
    headers: &'a Headers,
    name: &'static str,
) -> Result<&'a [u8], HandshakeError> {
    optional_one(headers, name)?.ok_or(HandshakeError::MissingHeader(name))
}

/// The value of a header that may appear at most once.
pub(crate) fn optional_one<'a>(
    headers: &'a Headers,
    name: &'static str,
) -> Result<Option<&'a [u8]>, HandshakeError> {
    let mut values = headers.get_all(name);
    let first = values.next();
    if values.next().is_some() {
        return Err(HandshakeError::DuplicateHeader(name));
    }
    Ok(first.map(trim_ows))
}

fn utf8(value: &[u8], name: &'static str) -> Result<String, HandshakeError> {
    std::str::from_utf8(value)
        .map(str::to_owned)
        .map_err(|_| HandshakeError::InvalidHeaderValue(name))
}

/// Checks that a list header (`Upgrade`, `Connection`) is present and that
/// one of its occurrences contains `token`.
pub(crate) fn require_token(
    headers: &Headers,
    name: &'static str,
    token: &str,
    invalid: HandshakeError,
) -> Result<(), HandshakeError> {
    if headers.count(name) == 0 {
        return Err(HandshakeError::MissingHeader(name));
    }
    if headers.get_all(name).any(|v| has_token(v, token)) {
        Ok(())
    } else {
        Err(invalid)
    }
}

/// `Upgrade` lists `websocket` and `Connection` lists `upgrade` (both sides of §4).
pub(crate) fn require_upgrade_tokens(headers: &Headers) -> Result<(), HandshakeError> {
    require_token(
        headers,
        "Upgrade",
        "websocket",
        HandshakeError::InvalidUpgrade,
    )?;
    require_token(
        headers,
        "Connection",
        "upgrade",
        HandshakeError::InvalidConnection,
    )
}

/// The path of a request target without its query: `/chat?x=1` → `/chat`. An absolute URI
/// (`http://host/chat`, allowed by §4.2.1 item 1) gives the path after its authority.
///
/// ```
/// use ws_proto::handshake::{resource_path, resource_query};
/// assert_eq!(resource_path("/chat?id=bob"), "/chat");
/// assert_eq!(resource_path("http://example.com/chat"), "/chat");
/// assert_eq!(resource_query("/chat?id=bob"), Some("id=bob"));
/// assert_eq!(resource_query("/chat"), None);
/// ```
pub fn resource_path(target: &str) -> &str {
    let scheme_len = ["http://", "https://"]
        .iter()
        .find(|scheme| {
            target
                .get(..scheme.len())
                .is_some_and(|s| s.eq_ignore_ascii_case(scheme))
        })
        .map_or(0, |scheme| scheme.len());
    let rest = &target[scheme_len..];
    let path = if scheme_len == 0 {
        rest
    } else {
        // The authority ends at the path, or at the query when the path is empty.
        match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => &rest[i..],
            _ => "/",
        }
    };
    path.split('?').next().unwrap_or("")
}

/// The query of a request target (after the first `?`), if it has one.
pub fn resource_query(target: &str) -> Option<&str> {
    target.split_once('?').map(|(_, query)| query)
}

/// Checks a client's opening handshake (RFC 6455 §4.2.1), in this order:
///
/// * method `GET`, else [`HandshakeError::MethodNotAllowed`] (405);
/// * HTTP/1.1, else [`HandshakeError::UnsupportedHttpVersion`] (505);
/// * if `expected_path` is given, the path (the target before any `?`; the
///   part after the authority in an absolute `http://host/path` target)
///   equals it, else [`HandshakeError::PathNotFound`] (404);
/// * exactly one `Host`, in UTF-8;
/// * `Upgrade` containing the token `websocket` and `Connection` containing
///   the token `upgrade`, both compared case-insensitively in comma lists
///   (several occurrences of these headers are combined, as RFC 7230 §3.2.2
///   allows);
/// * exactly one `Sec-WebSocket-Key`, the base64 encoding of 16 bytes;
/// * exactly one `Sec-WebSocket-Version`, equal to `13`, else
///   [`HandshakeError::UnsupportedVersion`] (426);
/// * at most one `Origin`, in UTF-8;
/// * `Sec-WebSocket-Protocol` (token lists) and `Sec-WebSocket-Extensions`
///   (RFC 6455 §9.1), if present, well-formed.
///
/// A missing header gives [`HandshakeError::MissingHeader`] and a repeated
/// one [`HandshakeError::DuplicateHeader`] (both 400). Choosing a subprotocol
/// or accepting extensions is left to the caller.
///
/// ```
/// use ws_proto::handshake::{parse_request, validate_request, HandshakeLimits};
///
/// let head = b"GET /chat HTTP/1.1\r\n\
///     Host: server.example.com\r\n\
///     Upgrade: websocket\r\n\
///     Connection: Upgrade\r\n\
///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
///     Sec-WebSocket-Version: 13\r\n\r\n";
/// let request = parse_request(head, &HandshakeLimits::default()).unwrap();
/// let upgrade = validate_request(request.clone(), Some("/chat")).unwrap();
/// assert_eq!(upgrade.key, "dGhlIHNhbXBsZSBub25jZQ==");
///
/// let err = validate_request(request, Some("/other")).unwrap_err();
/// assert_eq!(err.http_status(), Some(404));
/// ```
pub fn validate_request(
    req: Request,
    expected_path: Option<&str>,
) -> Result<UpgradeRequest, HandshakeError> {
    if req.method != Method::Get {
        return Err(HandshakeError::MethodNotAllowed);
    }
    if req.version != 1 {
        return Err(HandshakeError::UnsupportedHttpVersion);
    }
    if let Some(expected) = expected_path {
        if resource_path(&req.path) != expected {
            return Err(HandshakeError::PathNotFound);
        }
    }
    let headers = &req.headers;

    let host = utf8(exactly_one(headers, "Host")?, "Host")?;
    require_upgrade_tokens(headers)?;

    let key = exactly_one(headers, "Sec-WebSocket-Key")?;
    // 16 bytes encode to exactly 24 characters; checking the length first
    // bounds the decoding work.
    let decoded_len = (key.len() == 24)
        .then(|| base64::engine::general_purpose::STANDARD.decode(key).ok())
        .flatten()
        .map(|bytes| bytes.len());
    if decoded_len != Some(16) {
        return Err(HandshakeError::InvalidKey);
    }
    // Valid base64 is ASCII.
    let key = utf8(key, "Sec-WebSocket-Key")?;

    let mut versions = headers.get_all("Sec-WebSocket-Version");
    match (versions.next(), versions.next()) {
        (Some(v), None) if trim_ows(v) == b"13" => {}
        _ => return Err(HandshakeError::UnsupportedVersion),
    }

    let origin = optional_one(headers, "Origin")?
        .map(|v| utf8(v, "Origin"))
        .transpose()?;

    let mut subprotocols = Vec::new();
    for value in headers.get_all("Sec-WebSocket-Protocol") {
        subprotocols.extend(parse_token_list(value)?);
    }
    let mut extensions = Vec::new();
    for value in headers.get_all("Sec-WebSocket-Extensions") {
        extensions.extend(parse_extensions(value)?);
    }

    Ok(UpgradeRequest {
        path: req.path,
        host,
        key,
        origin,
        subprotocols,
        extensions,
        headers: req.headers,
    })
}

/// The `101 Switching Protocols` response accepting a handshake, ending
/// with the blank line.
///
/// `key` is the client's `Sec-WebSocket-Key` ([`UpgradeRequest::key`]).
/// `subprotocol` and `extensions` are the values of `Sec-WebSocket-Protocol`
/// and `Sec-WebSocket-Extensions`, sent if given; `extra` headers follow.
/// Caller-supplied text cannot break the framing: a header whose name is not
/// a token is left out, and CR, LF and NUL in values are replaced by spaces.
///
/// ```
/// use ws_proto::handshake::response_101;
/// let bytes = response_101("dGhlIHNhbXBsZSBub25jZQ==", Some("chat"), None, &[]);
/// assert_eq!(
///     bytes,
///     b"HTTP/1.1 101 Switching Protocols\r\n\
///       Upgrade: websocket\r\n\
///       Connection: Upgrade\r\n\
///       Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
///       Sec-WebSocket-Protocol: chat\r\n\r\n"
/// );
/// ```
pub fn response_101(
    key: &str,
    subprotocol: Option<&str>,
    extensions: Option<&str>,
    extra: &[(String, String)],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(160);
    out.extend_from_slice(b"HTTP/1.1 101 Switching Protocols\r\n");
    write_header(&mut out, "Upgrade", "websocket");
    write_header(&mut out, "Connection", "Upgrade");
    write_header(
        &mut out,
        "Sec-WebSocket-Accept",
        &accept_key(key.as_bytes()),
    );
    if let Some(protocol) = subprotocol {
        write_header(&mut out, "Sec-WebSocket-Protocol", protocol);
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

/// The standard reason phrase of an HTTP status code, or `""` for codes
/// without one here.
///
/// ```
/// use ws_proto::handshake::reason_phrase;
/// assert_eq!(reason_phrase(426), "Upgrade Required");
/// ```
pub fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        406 => "Not Acceptable",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Content Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        426 => "Upgrade Required",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// A complete HTTP error response: status line, `Content-Type: text/plain;
/// charset=utf-8`, `Content-Length`, `Connection: close`, the `extra`
/// headers, the blank line and `body`.
///
/// A `status` outside 100..=999 is replaced by 500. Header text is
/// sanitised as in [`response_101`].
///
/// ```
/// use ws_proto::handshake::error_response;
/// let bytes = error_response(403, &[], "forbidden");
/// assert_eq!(
///     bytes,
///     b"HTTP/1.1 403 Forbidden\r\n\
///       Content-Type: text/plain; charset=utf-8\r\n\
///       Content-Length: 9\r\n\
///       Connection: close\r\n\r\n\
///       forbidden"
/// );
/// ```
pub fn error_response(status: u16, extra: &[(String, String)], body: &str) -> Vec<u8> {
    http_response(status, "text/plain; charset=utf-8", extra, body.as_bytes())
}

/// A complete HTTP/1.1 response with a body of any type and `Connection: close`, for servers
/// that answer plain HTTP requests on their WebSocket port (e.g. a page that opens the socket).
///
/// ```
/// use ws_proto::handshake::http_response;
/// let bytes = http_response(200, "text/html; charset=utf-8", &[], b"<p>hi</p>");
/// let text = String::from_utf8(bytes).unwrap();
/// assert!(text.starts_with("HTTP/1.1 200 OK\r\n"));
/// assert!(text.contains("Content-Length: 9\r\n") && text.ends_with("\r\n\r\n<p>hi</p>"));
/// ```
pub fn http_response(
    status: u16,
    content_type: &str,
    extra: &[(String, String)],
    body: &[u8],
) -> Vec<u8> {
    let status = if (100..=999).contains(&status) {
        status
    } else {
        500
    };
    let mut out = Vec::with_capacity(128 + body.len());
    out.extend_from_slice(format!("HTTP/1.1 {status} {}\r\n", reason_phrase(status)).as_bytes());
    write_header(&mut out, "Content-Type", content_type);
    write_header(&mut out, "Content-Length", &body.len().to_string());
    write_header(&mut out, "Connection", "close");
    for (name, value) in extra {
        write_header(&mut out, name, value);
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(body);
    out
}

#[cfg(test)]
mod tests {
    use super::super::reader::parse_request;
    use super::super::{parse_response, HandshakeLimits};
    use super::*;

    /// The client handshake of RFC 6455 §1.2 / §4.1.
    const RFC_REQUEST: &str = "GET /chat HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\
        \r\n";

    const CHROMIUM_REQUEST: &str = "GET /ws?token=abc HTTP/1.1\r\n\
        Host: localhost:9001\r\n\
        Connection: Upgrade\r\n\
        Pragma: no-cache\r\n\
        Cache-Control: no-cache\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) \
            Chrome/124.0.0.0 Safari/537.36\r\n\
        Upgrade: websocket\r\n\
        Origin: http://localhost:8080\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Accept-Encoding: gzip, deflate, br, zstd\r\n\
        Accept-Language: en-US,en;q=0.9\r\n\
        Sec-WebSocket-Key: x3JJHMbDL1EzLkh9GBhXDw==\r\n\
        Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\
        \r\n";

    const FIREFOX_REQUEST: &str = "GET /socket HTTP/1.1\r\n\
        Host: example.org\r\n\
        User-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0\r\n\
        Accept: */*\r\n\
        Accept-Language: en-US,en;q=0.5\r\n\
        Accept-Encoding: gzip, deflate, br\r\n\
        Sec-WebSocket-Version: 13\r\n\
        Origin: https://example.org\r\n\
        Sec-WebSocket-Extensions: permessage-deflate\r\n\
        Sec-WebSocket-Key: AQIDBAUGBwgJCgsMDQ4PEA==\r\n\
        Connection: keep-alive, Upgrade\r\n\
        Sec-Fetch-Dest: empty\r\n\
        Sec-Fetch-Mode: websocket\r\n\
        Sec-Fetch-Site: same-origin\r\n\
        Pragma: no-cache\r\n\
        Cache-Control: no-cache\r\n\
        Upgrade: websocket\r\n\
        \r\n";

    fn parse(text: &str) -> Request {
        parse_request(text.as_bytes(), &HandshakeLimits::default()).unwrap()
    }

    /// The RFC request with header `name` removed (if `value` is None) or
    /// its value replaced.
    fn rfc_with(name: &str, value: Option<&str>) -> Request {
        let mut req = parse(RFC_REQUEST);
        let mut headers = Headers::new();
        for (n, v) in req.headers.iter() {
            if n.eq_ignore_ascii_case(name) {
                if let Some(value) = value {
                    headers.push(n, value);
                }
            } else {
                headers.push(n, v);
            }
        }
        req.headers = headers;
        req
    }

    fn rfc_plus(name: &str, value: &str) -> Request {
        let mut req = parse(RFC_REQUEST);
        req.headers.push(name, value);
        req
    }

    fn status_of(req: Request, path: Option<&str>) -> Option<u16> {
        validate_request(req, path).unwrap_err().http_status()
    }

    #[test]
    fn rfc_example_request() {
        let up = validate_request(parse(RFC_REQUEST), Some("/chat")).unwrap();
        assert_eq!(up.path, "/chat");
        assert_eq!(up.host, "server.example.com");
        assert_eq!(up.key, "dGhlIHNhbXBsZSBub25jZQ==");
        assert_eq!(up.origin.as_deref(), Some("http://example.com"));
        assert_eq!(up.subprotocols, ["chat", "superchat"]);
        assert!(up.extensions.is_empty());
        assert_eq!(up.headers.len(), 7);
    }

    #[test]
    fn chromium_like_request() {
        let up = validate_request(parse(CHROMIUM_REQUEST), Some("/ws")).unwrap();
        assert_eq!(up.path, "/ws?token=abc");
        assert_eq!(up.host, "localhost:9001");
        assert_eq!(up.origin.as_deref(), Some("http://localhost:8080"));
        assert!(up.subprotocols.is_empty());
        assert_eq!(up.extensions.len(), 1);
        assert_eq!(up.extensions[0].name, "permessage-deflate");
        assert_eq!(up.extensions[0].param("client_max_window_bits"), Some(None));
        assert!(up
            .headers
            .get("user-agent")
            .unwrap()
            .starts_with(b"Mozilla/5.0"));
    }

    #[test]
    fn firefox_like_request() {
        let up = validate_request(parse(FIREFOX_REQUEST), None).unwrap();
        assert_eq!(up.path, "/socket");
        assert_eq!(up.key, "AQIDBAUGBwgJCgsMDQ4PEA==");
        assert_eq!(up.extensions[0].to_string(), "permessage-deflate");
    }

    #[test]
    fn method_must_be_get() {
        let mut req = parse(RFC_REQUEST);
        req.method = Method::Post;
        let err = validate_request(req, None).unwrap_err();
        assert_eq!(err, HandshakeError::MethodNotAllowed);
        assert_eq!(err.http_status(), Some(405));
        let text = String::from_utf8(err.to_response().unwrap()).unwrap();
        assert!(text.contains("\r\nAllow: GET\r\n"));
    }

    #[test]
    fn http_1_0_is_rejected() {
        let req = parse(&RFC_REQUEST.replace("HTTP/1.1", "HTTP/1.0"));
        let err = validate_request(req, None).unwrap_err();
        assert_eq!(err, HandshakeError::UnsupportedHttpVersion);
        assert_eq!(err.http_status(), Some(505));
    }

    #[test]
    fn host_missing_or_duplicated() {
        assert_eq!(
            validate_request(rfc_with("Host", None), None),
            Err(HandshakeError::MissingHeader("Host"))
        );
        assert_eq!(status_of(rfc_with("Host", None), None), Some(400));
        assert_eq!(
            validate_request(rfc_plus("host", "other.example.com"), None),
            Err(HandshakeError::DuplicateHeader("Host"))
        );
        assert_eq!(status_of(rfc_plus("host", "x"), None), Some(400));
        assert_eq!(
            validate_request(rfc_with("Host", Some("")), None)
                .unwrap()
                .host,
            ""
        );
        let mut req = rfc_with("Host", None);
        req.headers.push("Host", b"\xff".to_vec());
        assert_eq!(
            validate_request(req, None),
            Err(HandshakeError::InvalidHeaderValue("Host"))
        );
    }

    #[test]
    fn upgrade_rules() {
        assert_eq!(
            validate_request(rfc_with("Upgrade", None), None),
            Err(HandshakeError::MissingHeader("Upgrade"))
        );
        assert_eq!(status_of(rfc_with("Upgrade", None), None), Some(400));
        assert_eq!(
            validate_request(rfc_with("Upgrade", Some("h2c")), None),
            Err(HandshakeError::InvalidUpgrade)
        );
        assert_eq!(status_of(rfc_with("Upgrade", Some("h2c")), None), Some(400));
        // Case-insensitive, in a list, or in a second occurrence.
        assert!(validate_request(rfc_with("Upgrade", Some("WebSocket")), None).is_ok());
        assert!(validate_request(rfc_with("Upgrade", Some("h2c, websocket")), None).is_ok());
        let mut req = rfc_with("Upgrade", Some("h2c"));
        req.headers.push("Upgrade", "websocket");
        assert!(validate_request(req, None).is_ok());
    }

    #[test]
    fn connection_rules() {
        assert_eq!(
            validate_request(rfc_with("Connection", None), None),
            Err(HandshakeError::MissingHeader("Connection"))
        );
        let err = validate_request(rfc_with("Connection", Some("keep-alive")), None).unwrap_err();
        assert_eq!(err, HandshakeError::InvalidConnection);
        assert_eq!(err.http_status(), Some(400));
        assert!(validate_request(rfc_with("Connection", Some("keep-alive,UPGRADE")), None).is_ok());
    }

    #[test]
    fn key_missing_duplicated_or_invalid() {
        assert_eq!(
            validate_request(rfc_with("Sec-WebSocket-Key", None), None),
            Err(HandshakeError::MissingHeader("Sec-WebSocket-Key"))
        );
        assert_eq!(
            status_of(rfc_with("Sec-WebSocket-Key", None), None),
            Some(400)
        );
        assert_eq!(
            validate_request(
                rfc_plus("Sec-WebSocket-Key", "AQIDBAUGBwgJCgsMDQ4PEA=="),
                None
            ),
            Err(HandshakeError::DuplicateHeader("Sec-WebSocket-Key"))
        );
        for bad in [
            "",
            "dGhlIHNhbXBsZSBub25jZQ",       // no padding
            "dGhlIHNhbXBsZSBub25jZQ==AAAA", // 19 bytes
            "AQIDBAUGBwgJCgsMDQ4P",         // 15 bytes
            "AQIDBAUGBwgJCgsMDQ4PEBES",     // 24 chars but 18 bytes
            "dGhlIHNhbXBsZSBub25jZQ!=",     // not base64
            "dGhlIHNhbXBsZSBub25jZR==",     // non-canonical trailing bits
        ] {
            let err = validate_request(rfc_with("Sec-WebSocket-Key", Some(bad)), None).unwrap_err();
            assert_eq!(err, HandshakeError::InvalidKey, "{bad:?}");
            assert_eq!(err.http_status(), Some(400));
        }
    }

    #[test]
    fn version_must_be_13() {
        for req in [
            rfc_with("Sec-WebSocket-Version", Some("8")),
            rfc_with("Sec-WebSocket-Version", Some("13, 8")),
            rfc_with("Sec-WebSocket-Version", None),
            rfc_plus("Sec-WebSocket-Version", "13"),
        ] {
            let err = validate_request(req, None).unwrap_err();
            assert_eq!(err, HandshakeError::UnsupportedVersion);
            assert_eq!(err.http_status(), Some(426));
            let text = String::from_utf8(err.to_response().unwrap()).unwrap();
            assert!(text.starts_with("HTTP/1.1 426 Upgrade Required\r\n"));
            assert!(text.contains("\r\nSec-WebSocket-Version: 13\r\n"));
        }
    }

    #[test]
    fn path_rules() {
        assert_eq!(
            validate_request(parse(RFC_REQUEST), Some("/other")),
            Err(HandshakeError::PathNotFound)
        );
        assert_eq!(status_of(parse(RFC_REQUEST), Some("/chatroom")), Some(404));
        let with_query = parse(&RFC_REQUEST.replace("/chat ", "/chat?room=1&x=/y "));
        let up = validate_request(with_query, Some("/chat")).unwrap();
        assert_eq!(up.path, "/chat?room=1&x=/y");
        // Without an expected path anything goes.
        assert!(validate_request(parse(RFC_REQUEST), None).is_ok());
    }

    #[test]
    fn origin_rules() {
        let up = validate_request(rfc_with("Origin", None), None).unwrap();
        assert_eq!(up.origin, None);
        assert_eq!(
            validate_request(rfc_plus("Origin", "http://evil.example"), None),
            Err(HandshakeError::DuplicateHeader("Origin"))
        );
    }

    #[test]
    fn subprotocol_and_extension_headers() {
        let mut req = rfc_plus("Sec-WebSocket-Protocol", "v2.chat");
        req.headers.push("Sec-WebSocket-Extensions", "a; x=1, b");
        req.headers.push("Sec-WebSocket-Extensions", "c");
        let up = validate_request(req, None).unwrap();
        assert_eq!(up.subprotocols, ["chat", "superchat", "v2.chat"]);
        let names: Vec<&str> = up.extensions.iter().map(|e| e.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);

        let err = validate_request(rfc_with("Sec-WebSocket-Protocol", Some("chat room")), None)
            .unwrap_err();
        assert_eq!(err, HandshakeError::InvalidSubprotocol);
        assert_eq!(err.http_status(), Some(400));
        let err = validate_request(rfc_plus("Sec-WebSocket-Extensions", "a;;"), None).unwrap_err();
        assert_eq!(err, HandshakeError::InvalidExtensions);
        assert_eq!(err.http_status(), Some(400));
    }

    #[test]
    fn response_101_layout() {
        let extra = vec![
            ("X-Server".to_string(), "test".to_string()),
            ("X-Evil".to_string(), "a\r\nSet-Cookie: x".to_string()),
        ];
        let bytes = response_101(
            "dGhlIHNhbXBsZSBub25jZQ==",
            None,
            Some("permessage-deflate; server_no_context_takeover"),
            &extra,
        );
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 101 Switching Protocols\r\n\
             Upgrade: websocket\r\n\
             Connection: Upgrade\r\n\
             Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
             Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover\r\n\
             X-Server: test\r\n\
             X-Evil: a  Set-Cookie: x\r\n\
             \r\n"
        );
        let resp = parse_response(&bytes, &HandshakeLimits::default()).unwrap();
        assert_eq!(resp.status, 101);
        assert_eq!(resp.headers.len(), 6);
    }

    #[test]
    fn error_response_layout() {
        let extra = vec![("Retry-After".to_string(), "5".to_string())];
        let bytes = error_response(503, &extra, "busy, héhé");
        let text = String::from_utf8(bytes.clone()).unwrap();
        assert_eq!(
            text,
            "HTTP/1.1 503 Service Unavailable\r\n\
             Content-Type: text/plain; charset=utf-8\r\n\
             Content-Length: 12\r\n\
             Connection: close\r\n\
             Retry-After: 5\r\n\
             \r\n\
             busy, héhé"
        );
        let head_len = text.find("\r\n\r\n").unwrap() + 4;
        let resp = parse_response(&bytes[..head_len], &HandshakeLimits::default()).unwrap();
        assert_eq!(resp.status, 503);
        assert!(error_response(42, &[], "").starts_with(b"HTTP/1.1 500 Internal Server Error\r\n"));
        assert!(error_response(599, &[], "").starts_with(b"HTTP/1.1 599 \r\n"));
    }

    #[test]
    fn every_server_error_renders_a_parseable_response() {
        let limits = HandshakeLimits::default();
        for err in [
            HandshakeError::RequestLineTooLong,
            HandshakeError::HeadTooLarge,
            HandshakeError::MethodNotAllowed,
            HandshakeError::UnsupportedHttpVersion,
            HandshakeError::MissingHeader("Host"),
            HandshakeError::UnsupportedVersion,
            HandshakeError::PathNotFound,
        ] {
            let bytes = err.to_response().unwrap();
            let text = String::from_utf8(bytes.clone()).unwrap();
            let head_len = text.find("\r\n\r\n").unwrap() + 4;
            let resp = parse_response(&bytes[..head_len], &limits).unwrap();
            assert_eq!(Some(resp.status), err.http_status());
            let body = &text[head_len..];
            assert_eq!(body, format!("{err}\n"));
            let len = resp.headers.get("content-length").unwrap();
            assert_eq!(len, body.len().to_string().as_bytes());
        }
    }
}
