//! Incremental, bounded reading of an HTTP/1.x head, and its parsing.
//!
//! [`HeadReader`] finds the end of the head (the blank line) by scanning each
//! fed byte exactly once, enforcing [`HandshakeLimits`] as it goes. Only then
//! is the complete head handed to `httparse`, once, by [`parse_request`] or
//! [`parse_response`]. The cost of reading a head is therefore linear in its
//! size however it is split into reads (tungstenite re-parsed the whole
//! buffer on every read, which was quadratic: CVE-2023-43669).

use super::error::{HandshakeError, MalformedReason};
use super::headers::Headers;
use super::HandshakeLimits;

/// The per-line, per-head counters of the boundary scanner. It owns no
/// buffer, so it can check a head that is already in memory without a copy.
#[derive(Debug, Clone)]
struct Scanner {
    limits: HandshakeLimits,
    /// Bytes accepted so far (all of them part of the head).
    total: usize,
    /// Length of the current line so far, without its `\n`.
    line_len: usize,
    /// Whether the last accepted byte of the current line is `\r`.
    last_cr: bool,
    /// Whether the start line (request or status line) is complete.
    seen_start: bool,
    /// Complete header lines.
    headers: usize,
    /// Bytes examined by the line-end search (for tests: never exceeds `total`).
    scanned: usize,
}

impl Scanner {
    fn new(limits: HandshakeLimits) -> Self {
        Scanner {
            limits,
            total: 0,
            line_len: 0,
            last_cr: false,
            seen_start: false,
            headers: 0,
            scanned: 0,
        }
    }

    /// Scans `data`, which follows everything scanned before. Returns the
    /// number of bytes of `data` that are part of the head: `Ok(Some(n))` if
    /// the head ends at `data[..n]`, `Ok(None)` if all of `data` is part of
    /// the head and more is needed.
    fn scan(&mut self, data: &[u8]) -> Result<Option<usize>, HandshakeError> {
        let mut i = 0;
        while i < data.len() {
            // Never look past the bytes the head may still hold.
            let room = self.limits.max_head - self.total;
            if room == 0 {
                return Err(HandshakeError::HeadTooLarge);
            }
            let window = &data[i..data.len().min(i + room)];
            let newline = window.iter().position(|&b| b == b'\n');
            let seg_len = newline.unwrap_or(window.len());
            self.scanned += newline.map_or(window.len(), |p| p + 1);

            if seg_len > 0 {
                self.line_len += seg_len;
                self.last_cr = window[seg_len - 1] == b'\r';
                // A trailing `\r` may turn out to be part of the line ending.
                // Once the line is too long it stays too long, so this check
                // fails at the same byte however the input is split.
                if self.line_len - usize::from(self.last_cr) > self.limits.max_line {
                    return Err(if self.seen_start {
                        HandshakeError::HeaderLineTooLong
                    } else {
                        HandshakeError::RequestLineTooLong
                    });
                }
            }
            self.total += seg_len;
            i += seg_len;

            if newline.is_some() {
                self.total += 1;
                i += 1;
                let content = self.line_len - usize::from(self.last_cr);
                self.line_len = 0;
                self.last_cr = false;
                if content == 0 {
                    if self.seen_start {
                        return Ok(Some(i));
                    }
                    // An empty line before the start line is ignored, as
                    // RFC 7230 §3.5 recommends (and httparse does).
                } else if !self.seen_start {
                    self.seen_start = true;
                } else {
                    self.headers += 1;
                    if self.headers > self.limits.max_headers {
                        return Err(HandshakeError::TooManyHeaders);
                    }
                }
            }
        }
        Ok(None)
    }
}

#[derive(Debug, Clone)]
enum State {
    Reading,
    Done,
    Failed(HandshakeError),
}

/// Incremental reader of an HTTP head (request or response) up to and
/// including the blank line that ends it.
///
/// Feed it whatever the transport delivers; it buffers only the head and
/// tells you where the head ends in the last chunk, so that bytes after it
/// (for example the first WebSocket frames) are not lost.
///
/// Line endings: a line ends at LF; an optional CR before the LF is part of
/// the line ending. So both CRLF and bare LF are accepted, as RFC 7230 §3.5
/// allows and as `httparse` does. Empty lines before the start line are
/// ignored (RFC 7230 §3.5).
///
/// Limits (from [`HandshakeLimits`]), checked as bytes arrive:
/// * a line (without its line ending) longer than `max_line` gives
///   [`HandshakeError::RequestLineTooLong`] for the start line and
///   [`HandshakeError::HeaderLineTooLong`] for a header line;
/// * more than `max_headers` header lines give [`HandshakeError::TooManyHeaders`];
/// * a head (line endings and final blank line included) longer than
///   `max_head` bytes gives [`HandshakeError::HeadTooLarge`].
///
/// Every fed byte is examined once, so the total cost is linear in the input
/// however it is split.
///
/// ```
/// use ws_proto::handshake::{parse_request, HandshakeLimits, HeadReader};
///
/// let limits = HandshakeLimits::default();
/// let mut reader = HeadReader::new(limits);
/// assert_eq!(reader.feed(b"GET /chat HTTP/1.1\r\nHost: exa").unwrap(), None);
/// // The rest of the head, followed by the first bytes of a frame.
/// let n = reader.feed(b"mple.com\r\n\r\n\x81\x05").unwrap().unwrap();
/// assert_eq!(n, 12); // the frame bytes start at data[12]
/// let request = parse_request(reader.head(), &limits).unwrap();
/// assert_eq!(request.path, "/chat");
/// ```
#[derive(Debug, Clone)]
pub struct HeadReader {
    scanner: Scanner,
    buf: Vec<u8>,
    state: State,
    /// A byte has been fed (the first one is checked; see `feed`).
    started: bool,
}

impl HeadReader {
    /// A reader enforcing `limits`.
    pub fn new(limits: HandshakeLimits) -> Self {
        HeadReader {
            scanner: Scanner::new(limits),
            buf: Vec::new(),
            state: State::Reading,
            started: false,
        }
    }

    /// Feeds the next bytes received.
    ///
    /// * `Ok(None)`: all of `data` was buffered; the head is not complete yet.
    /// * `Ok(Some(n))`: the head is complete and ends at byte `n` of `data`;
    ///   `data[n..]` is not part of the head and belongs to the caller.
    /// * `Err(_)`: a limit was exceeded (see the type's documentation).
    ///
    /// Once the head is complete, further calls return `Ok(Some(0))` (none of
    /// the new bytes are part of the head); after an error, they return the
    /// same error.
    pub fn feed(&mut self, data: &[u8]) -> Result<Option<usize>, HandshakeError> {
        match &self.state {
            State::Reading => {}
            State::Done => return Ok(Some(0)),
            State::Failed(err) => return Err(err.clone()),
        }
        // A head is text: its first byte is printable ASCII (a request's method, a response's
        // `HTTP`) or the CR/LF of an empty line before it (RFC 9112 §2.2). Binary is refused at
        // the first byte rather than when the head would be complete: a TLS handshake (0x16)
        // on a plain port, or a plain client reading a TLS server's answer (0x15, 0x16), fails
        // at once instead of at the timeout. Printable text goes on to the full parse, which
        // says what is wrong with it.
        if let (false, Some(&first)) = (self.started, data.first()) {
            self.started = true;
            if !((0x20..0x7f).contains(&first) || first == b'\r' || first == b'\n') {
                let err = HandshakeError::Malformed(MalformedReason::Token);
                self.state = State::Failed(err.clone());
                return Err(err);
            }
        }
        match self.scanner.scan(data) {
            Ok(Some(n)) => {
                self.buf.extend_from_slice(&data[..n]);
                self.state = State::Done;
                Ok(Some(n))
            }
            Ok(None) => {
                self.buf.extend_from_slice(data);
                Ok(None)
            }
            Err(err) => {
                self.buf = Vec::new();
                self.state = State::Failed(err.clone());
                Err(err)
            }
        }
    }

    /// Whether the head is complete.
    pub fn is_complete(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// The head bytes buffered so far: once [`feed`](Self::feed) has returned
    /// `Ok(Some(_))`, the complete head, blank line included. Empty after an
    /// error.
    pub fn head(&self) -> &[u8] {
        &self.buf
    }

    /// The number of bytes buffered so far.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// How many bytes the end-of-head search has examined so far, over all
    /// [`feed`](Self::feed) calls. Each fed byte is examined at most once, so
    /// this never exceeds the bytes fed, however they were split: tests use
    /// it to check that reading a head is linear (CVE-2023-43669).
    #[doc(hidden)]
    pub fn bytes_examined(&self) -> usize {
        self.scanner.scanned
    }

    /// Consumes the reader and returns the buffered head bytes.
    pub fn into_head(self) -> Vec<u8> {
        self.buf
    }
}

/// An HTTP request method (RFC 9110 §9). Methods are case-sensitive: `get` is not `GET`.
///
/// ```
/// use ws_proto::handshake::Method;
/// assert_eq!(Method::parse("GET"), Method::Get);
/// assert_eq!(Method::parse("get"), Method::Other("get".into()));
/// assert_eq!(Method::Post.as_str(), "POST");
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// `GET`: the only method that may ask for a WebSocket upgrade (RFC 6455 §4.1).
    Get,
    /// `HEAD`.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `DELETE`.
    Delete,
    /// `OPTIONS`.
    Options,
    /// `PATCH`.
    Patch,
    /// `CONNECT`.
    Connect,
    /// `TRACE`.
    Trace,
    /// Any other token.
    Other(String),
}

impl Method {
    /// The method named by `token`, exactly as sent.
    pub fn parse(token: &str) -> Method {
        match token {
            "GET" => Method::Get,
            "HEAD" => Method::Head,
            "POST" => Method::Post,
            "PUT" => Method::Put,
            "DELETE" => Method::Delete,
            "OPTIONS" => Method::Options,
            "PATCH" => Method::Patch,
            "CONNECT" => Method::Connect,
            "TRACE" => Method::Trace,
            other => Method::Other(other.to_owned()),
        }
    }

    /// The method's token.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Connect => "CONNECT",
            Method::Trace => "TRACE",
            Method::Other(token) => token,
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A parsed HTTP request head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method, for example [`Method::Get`].
    pub method: Method,
    /// The request target as sent, for example `/chat?room=1`.
    pub path: String,
    /// The HTTP minor version: `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub version: u8,
    /// The header fields.
    pub headers: Headers,
}

/// A parsed HTTP response head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The HTTP minor version: `1` for HTTP/1.1, `0` for HTTP/1.0.
    pub version: u8,
    /// The status code, for example `101`.
    pub status: u16,
    /// The reason phrase (empty if absent or not ASCII).
    pub reason: String,
    /// The header fields.
    pub headers: Headers,
}

fn malformed(err: httparse::Error) -> HandshakeError {
    let reason = match err {
        httparse::Error::HeaderName => MalformedReason::HeaderName,
        httparse::Error::HeaderValue => MalformedReason::HeaderValue,
        httparse::Error::NewLine => MalformedReason::NewLine,
        httparse::Error::Status => MalformedReason::Status,
        httparse::Error::Token => MalformedReason::Token,
        httparse::Error::Version => MalformedReason::Version,
        httparse::Error::TooManyHeaders => return HandshakeError::TooManyHeaders,
    };
    HandshakeError::Malformed(reason)
}

/// Checks that `head` is exactly one complete head within `limits`.
fn check_head(head: &[u8], limits: &HandshakeLimits) -> Result<(), HandshakeError> {
    match Scanner::new(*limits).scan(head)? {
        Some(n) if n == head.len() => Ok(()),
        Some(_) => Err(HandshakeError::Malformed(MalformedReason::TrailingBytes)),
        None => Err(HandshakeError::Malformed(MalformedReason::Incomplete)),
    }
}

fn collect_headers(parsed: &[httparse::Header<'_>]) -> Headers {
    let mut headers = Headers::new();
    for h in parsed {
        headers.push(h.name, h.value);
    }
    headers
}

/// Parses a complete request head (as returned by [`HeadReader::head`]).
///
/// The head must end with its blank line and nothing may follow it. The
/// limits are checked again (in one linear pass), then `httparse` parses the
/// head once.
///
/// ```
/// use ws_proto::handshake::{parse_request, HandshakeLimits};
/// let head = b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\n\r\n";
/// let request = parse_request(head, &HandshakeLimits::default()).unwrap();
/// assert_eq!((request.method.as_str(), request.path.as_str()), ("GET", "/chat"));
/// assert_eq!(request.headers.get("host"), Some(&b"server.example.com"[..]));
/// ```
pub fn parse_request(head: &[u8], limits: &HandshakeLimits) -> Result<Request, HandshakeError> {
    check_head(head, limits)?;
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut req = httparse::Request::new(&mut slots);
    match req.parse(head).map_err(malformed)? {
        httparse::Status::Complete(_) => {}
        httparse::Status::Partial => {
            return Err(HandshakeError::Malformed(MalformedReason::Incomplete))
        }
    }
    let incomplete = HandshakeError::Malformed(MalformedReason::Incomplete);
    Ok(Request {
        method: Method::parse(req.method.ok_or_else(|| incomplete.clone())?),
        path: req.path.ok_or_else(|| incomplete.clone())?.to_owned(),
        version: req.version.ok_or_else(|| incomplete.clone())?,
        headers: collect_headers(req.headers),
    })
}

/// Parses a complete response head (as returned by [`HeadReader::head`]).
///
/// The head must end with its blank line and nothing may follow it. The
/// limits are checked again (in one linear pass), then `httparse` parses the
/// head once.
///
/// ```
/// use ws_proto::handshake::{parse_response, HandshakeLimits};
/// let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
/// let response = parse_response(head, &HandshakeLimits::default()).unwrap();
/// assert_eq!(response.status, 101);
/// assert_eq!(response.reason, "Switching Protocols");
/// ```
pub fn parse_response(head: &[u8], limits: &HandshakeLimits) -> Result<Response, HandshakeError> {
    check_head(head, limits)?;
    let mut slots = vec![httparse::EMPTY_HEADER; limits.max_headers];
    let mut resp = httparse::Response::new(&mut slots);
    match resp.parse(head).map_err(malformed)? {
        httparse::Status::Complete(_) => {}
        httparse::Status::Partial => {
            return Err(HandshakeError::Malformed(MalformedReason::Incomplete))
        }
    }
    let incomplete = HandshakeError::Malformed(MalformedReason::Incomplete);
    Ok(Response {
        version: resp.version.ok_or_else(|| incomplete.clone())?,
        status: resp.code.ok_or_else(|| incomplete.clone())?,
        reason: resp.reason.unwrap_or("").to_owned(),
        headers: collect_headers(resp.headers),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_that_cannot_be_http_fails_at_its_first_byte() {
        // A TLS ClientHello (record type 0x16) on a plain port; a TLS alert (0x15).
        for first in [
            &[0x16u8, 0x03, 0x01][..],
            &[0x15, 0x03, 0x03],
            &[0x00],
            &[0x80, b'G'],
        ] {
            let mut reader = HeadReader::new(HandshakeLimits::default());
            assert_eq!(
                reader.feed(first),
                Err(HandshakeError::Malformed(MalformedReason::Token)),
                "{first:?}"
            );
            assert_eq!(
                reader.feed(b"GET / HTTP/1.1\r\n\r\n"),
                Err(HandshakeError::Malformed(MalformedReason::Token)),
                "stays failed"
            );
        }
        // Empty lines before the request line are allowed, and printable text goes on to the
        // full parse; only the first byte is checked, however the input is split.
        for start in [
            &b"\r\nGET"[..],
            b"\nGET",
            b"HTTP",
            b"get",
            b" GET",
            b"/x",
            b"\r\n\x16",
        ] {
            let mut reader = HeadReader::new(HandshakeLimits::default());
            assert_eq!(reader.feed(start), Ok(None), "{start:?}");
        }
    }

    const REQUEST: &[u8] = b"GET /chat?x=1 HTTP/1.1\r\n\
        Host: server.example.com\r\n\
        Upgrade: websocket\r\n\
        Connection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Origin: http://example.com\r\n\
        Sec-WebSocket-Protocol: chat, superchat\r\n\
        Sec-WebSocket-Version: 13\r\n\
        \r\n";

    /// A deterministic xorshift generator, so split tests are reproducible.
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Feeds `input` in the given chunk sizes; returns the head and the
    /// absolute offset where it ended.
    fn feed_chunks(
        limits: HandshakeLimits,
        input: &[u8],
        sizes: &mut dyn FnMut() -> usize,
    ) -> Result<(Vec<u8>, usize), HandshakeError> {
        let mut reader = HeadReader::new(limits);
        let mut offset = 0;
        while offset < input.len() {
            let len = sizes().clamp(1, input.len() - offset);
            let chunk = &input[offset..offset + len];
            if let Some(n) = reader.feed(chunk)? {
                assert!(reader.is_complete());
                assert_eq!(reader.scanner.scanned, reader.buffered());
                return Ok((reader.into_head(), offset + n));
            }
            offset += len;
        }
        Err(HandshakeError::Malformed(MalformedReason::Incomplete))
    }

    fn feed_whole(
        limits: HandshakeLimits,
        input: &[u8],
    ) -> Result<(Vec<u8>, usize), HandshakeError> {
        feed_chunks(limits, input, &mut || usize::MAX)
    }

    fn feed_bytewise(
        limits: HandshakeLimits,
        input: &[u8],
    ) -> Result<(Vec<u8>, usize), HandshakeError> {
        feed_chunks(limits, input, &mut || 1)
    }

    fn feed_random(
        limits: HandshakeLimits,
        input: &[u8],
        seed: u64,
    ) -> Result<(Vec<u8>, usize), HandshakeError> {
        let mut rng = XorShift(seed);
        feed_chunks(limits, input, &mut || (rng.next() % 40) as usize)
    }

    /// Feeds `input` whole, byte by byte and in random splits, checks that
    /// all agree, and returns the common result.
    fn feed_all_ways(
        limits: HandshakeLimits,
        input: &[u8],
    ) -> Result<(Vec<u8>, usize), HandshakeError> {
        let whole = feed_whole(limits, input);
        assert_eq!(feed_bytewise(limits, input), whole);
        for seed in 1..=20 {
            assert_eq!(feed_random(limits, input, seed), whole, "seed {seed}");
        }
        whole
    }

    fn header_block(count: usize, line: &[u8]) -> Vec<u8> {
        let mut head = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..count {
            head.extend_from_slice(line);
        }
        head.extend_from_slice(b"\r\n");
        head
    }

    #[test]
    fn whole_bytewise_and_random_splits_agree() {
        let (head, n) = feed_all_ways(HandshakeLimits::default(), REQUEST).unwrap();
        assert_eq!(head, REQUEST);
        assert_eq!(n, REQUEST.len());
    }

    #[test]
    fn trailing_bytes_are_reported() {
        let frame = b"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58";
        let input = [REQUEST, frame].concat();
        let (head, n) = feed_all_ways(HandshakeLimits::default(), &input).unwrap();
        assert_eq!(head, REQUEST);
        assert_eq!(&input[n..], frame);

        let mut reader = HeadReader::new(HandshakeLimits::default());
        let n = reader.feed(&input).unwrap().unwrap();
        assert_eq!(&input[n..], frame);
        assert_eq!(reader.head(), REQUEST);
        assert_eq!(reader.buffered(), REQUEST.len());
        // Once complete, nothing more is taken.
        assert_eq!(reader.feed(b"more"), Ok(Some(0)));
        assert_eq!(reader.head(), REQUEST);
    }

    #[test]
    fn bare_lf_and_leading_blank_lines() {
        let input = b"\r\n\nGET / HTTP/1.1\nHost: a\n\nrest";
        let (head, n) = feed_all_ways(HandshakeLimits::default(), input).unwrap();
        assert_eq!(&input[n..], b"rest");
        let req = parse_request(&head, &HandshakeLimits::default()).unwrap();
        assert_eq!(req.path, "/");
        assert_eq!(req.headers.get("host"), Some(&b"a"[..]));
    }

    #[test]
    fn need_more_and_empty_feeds() {
        let mut reader = HeadReader::new(HandshakeLimits::default());
        assert_eq!(reader.feed(b""), Ok(None));
        assert_eq!(reader.feed(b"GET / HTTP/1.1\r\n\r"), Ok(None));
        assert!(!reader.is_complete());
        assert_eq!(reader.buffered(), 17);
        assert_eq!(reader.feed(b"\n"), Ok(Some(1)));
    }

    #[test]
    fn request_line_limit() {
        let limits = HandshakeLimits::default();
        // Exactly max_line bytes is fine, with CRLF or LF.
        let path = "/".repeat(limits.max_line - "GET  HTTP/1.1".len());
        let ok = format!("GET {path} HTTP/1.1\r\n\r\n");
        assert!(feed_all_ways(limits, ok.as_bytes()).is_ok());
        let ok_lf = format!("GET {path} HTTP/1.1\n\n");
        assert!(feed_all_ways(limits, ok_lf.as_bytes()).is_ok());
        // One more byte is not.
        let long = format!("GET /{path} HTTP/1.1\r\n\r\n");
        let err = feed_all_ways(limits, long.as_bytes()).unwrap_err();
        assert_eq!(err, HandshakeError::RequestLineTooLong);
        assert_eq!(err.http_status(), Some(414));
        // Detected without waiting for the end of the line.
        let mut reader = HeadReader::new(limits);
        assert_eq!(
            reader.feed(&vec![b'G'; limits.max_line + 2]),
            Err(HandshakeError::RequestLineTooLong)
        );
        // Errors are sticky.
        assert_eq!(
            reader.feed(b"\r\n\r\n"),
            Err(HandshakeError::RequestLineTooLong)
        );
        assert_eq!(reader.buffered(), 0);
    }

    #[test]
    fn header_line_limit() {
        let limits = HandshakeLimits::default();
        let value = "v".repeat(limits.max_line - "X: ".len());
        let ok = format!("GET / HTTP/1.1\r\nX: {value}\r\n\r\n");
        assert!(feed_all_ways(limits, ok.as_bytes()).is_ok());
        let long = format!("GET / HTTP/1.1\r\nX: {value}v\r\n\r\n");
        let err = feed_all_ways(limits, long.as_bytes()).unwrap_err();
        assert_eq!(err, HandshakeError::HeaderLineTooLong);
        assert_eq!(err.http_status(), Some(431));
        // A CR inside an over-long line is not mistaken for a line ending.
        let cr = format!("GET / HTTP/1.1\r\nX: {value}\rv\r\n\r\n");
        assert_eq!(
            feed_all_ways(limits, cr.as_bytes()),
            Err(HandshakeError::HeaderLineTooLong)
        );
    }

    #[test]
    fn header_count_limit() {
        let limits = HandshakeLimits::default();
        let ok = header_block(limits.max_headers, b"X: 1\r\n");
        assert!(feed_all_ways(limits, &ok).is_ok());
        let parsed = parse_request(&ok, &limits).unwrap();
        assert_eq!(parsed.headers.len(), 128);
        let too_many = header_block(limits.max_headers + 1, b"X: 1\r\n");
        let err = feed_all_ways(limits, &too_many).unwrap_err();
        assert_eq!(err, HandshakeError::TooManyHeaders);
        assert_eq!(err.http_status(), Some(431));
        assert_eq!(
            parse_request(&too_many, &limits),
            Err(HandshakeError::TooManyHeaders)
        );
    }

    #[test]
    fn head_size_limit() {
        let limits = HandshakeLimits::default();
        // 100 header lines of 1000 bytes: each within limits, 100 KB in total.
        let line = [b"X: ".to_vec(), vec![b'v'; 995], b"\r\n".to_vec()].concat();
        let big = header_block(100, &line);
        assert!(big.len() > limits.max_head);
        let err = feed_all_ways(limits, &big).unwrap_err();
        assert_eq!(err, HandshakeError::HeadTooLarge);
        assert_eq!(err.http_status(), Some(431));

        // The limit includes the final blank line: exactly max_head is fine.
        let mut small = limits;
        small.max_head = 40;
        let exact = b"GET / HTTP/1.1\r\nHost: abcdefghijklmn\r\n\r\n";
        assert_eq!(exact.len(), 40);
        assert_eq!(feed_all_ways(small, exact).unwrap().1, 40);
        let over = b"GET / HTTP/1.1\r\nHost: abcdefghijklmno\r\n\r\n";
        assert_eq!(
            feed_all_ways(small, over),
            Err(HandshakeError::HeadTooLarge)
        );
        // Bytes after a complete head do not count.
        let (_, n) = feed_all_ways(small, &[&exact[..], b"trailing"].concat()).unwrap();
        assert_eq!(n, 40);
    }

    #[test]
    fn large_head_bytewise_scans_each_byte_once() {
        // A head of almost 64 KiB fed one byte at a time: every byte is
        // examined exactly once (`scanned` counts the bytes the line-end
        // search looks at), so the work is linear.
        let limits = HandshakeLimits::default();
        let line = [b"X: ".to_vec(), vec![b'v'; 515], b"\r\n".to_vec()].concat();
        let head = header_block(125, &line);
        assert!(head.len() > 63 * 1024 && head.len() <= limits.max_head);
        let mut reader = HeadReader::new(limits);
        let mut result = None;
        for (i, b) in head.iter().enumerate() {
            assert_eq!(reader.scanner.scanned, i);
            if let Some(n) = reader.feed(std::slice::from_ref(b)).unwrap() {
                result = Some((i, n));
            }
        }
        assert_eq!(result, Some((head.len() - 1, 1)));
        assert_eq!(reader.scanner.scanned, head.len());
        assert_eq!(reader.head(), &head[..]);

        // Same when a single 64 KiB line arrives byte by byte (the error
        // comes as soon as the line is known to be too long).
        let mut reader = HeadReader::new(limits);
        let mut fed = 0;
        let err = loop {
            fed += 1;
            if let Err(e) = reader.feed(b"a") {
                break e;
            }
        };
        assert_eq!(err, HandshakeError::RequestLineTooLong);
        assert_eq!(fed, limits.max_line + 1);
        assert_eq!(reader.scanner.scanned, fed);
    }

    #[test]
    fn random_inputs_agree_across_splits_and_never_panic() {
        // Small limits and an alphabet rich in line endings, so every limit
        // and every outcome is exercised.
        let limits = HandshakeLimits {
            max_line: 12,
            max_headers: 3,
            max_head: 48,
        };
        let alphabet = b"\r\n\r\n\r\nGET / HTTP/1.1:ab ,;=\"\\\xff";
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut outcomes = std::collections::BTreeSet::new();
        for _ in 0..2000 {
            let len = (rng.next() % 64) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
                .collect();
            let result = feed_all_ways(limits, &input);
            outcomes.insert(format!("{:?}", result.as_ref().map(|_| ())));
            if let Ok((head, n)) = &result {
                assert_eq!(&input[..*n], &head[..]);
                let _ =
                    parse_request(head, &limits).map(|r| super::super::validate_request(r, None));
                let _ = parse_response(head, &limits)
                    .map(|r| super::super::validate_response(r, "", &[]));
            }
        }
        // Completion, need-more, each limit and a binary first byte all occurred.
        assert_eq!(outcomes.len(), 7, "{outcomes:?}");
    }

    #[test]
    fn parse_request_fields() {
        let req = parse_request(REQUEST, &HandshakeLimits::default()).unwrap();
        assert_eq!(req.method, Method::Get);
        assert_eq!(req.path, "/chat?x=1");
        assert_eq!(req.version, 1);
        assert_eq!(req.headers.len(), 7);
        assert_eq!(req.headers.get("origin"), Some(&b"http://example.com"[..]));
        let names: Vec<&str> = req.headers.iter().map(|(n, _)| n).collect();
        assert_eq!(names[0], "Host");
    }

    #[test]
    fn parse_request_errors() {
        let limits = HandshakeLimits::default();
        let incomplete = HandshakeError::Malformed(MalformedReason::Incomplete);
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\n", &limits),
            Err(incomplete.clone())
        );
        assert_eq!(parse_request(b"", &limits), Err(incomplete));
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\n\r\nX", &limits),
            Err(HandshakeError::Malformed(MalformedReason::TrailingBytes))
        );
        assert_eq!(
            parse_request(b"GET / HTTP/2.0\r\n\r\n", &limits),
            Err(HandshakeError::Malformed(MalformedReason::Version))
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nBad Name: x\r\n\r\n", &limits),
            Err(HandshakeError::Malformed(MalformedReason::HeaderName))
        );
        assert_eq!(
            parse_request(b"GET / HTTP/1.1\r\nX: a\rb\r\n\r\n", &limits),
            Err(HandshakeError::Malformed(MalformedReason::HeaderValue))
        );
        assert!(matches!(
            parse_request(b"G(T / HTTP/1.1\r\n\r\n", &limits),
            Err(HandshakeError::Malformed(_))
        ));
        // Limits are enforced here too.
        let long = format!("GET /{} HTTP/1.1\r\n\r\n", "a".repeat(limits.max_line));
        assert_eq!(
            parse_request(long.as_bytes(), &limits),
            Err(HandshakeError::RequestLineTooLong)
        );
        let ten = parse_request(b"GET / HTTP/1.0\r\n\r\n", &limits).unwrap();
        assert_eq!(ten.version, 0);
    }

    #[test]
    fn parse_response_fields_and_errors() {
        let limits = HandshakeLimits::default();
        let head = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n";
        let resp = parse_response(head, &limits).unwrap();
        assert_eq!(resp.version, 1);
        assert_eq!(resp.status, 101);
        assert_eq!(resp.reason, "Switching Protocols");
        assert_eq!(resp.headers.get("upgrade"), Some(&b"websocket"[..]));
        let no_reason = parse_response(b"HTTP/1.1 404\r\n\r\n", &limits).unwrap();
        assert_eq!((no_reason.status, no_reason.reason.as_str()), (404, ""));
        assert_eq!(
            parse_response(b"HTTP/1.1 1x1 Oops\r\n\r\n", &limits),
            Err(HandshakeError::Malformed(MalformedReason::Status))
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 101 OK\r\n", &limits),
            Err(HandshakeError::Malformed(MalformedReason::Incomplete))
        );
    }
}
