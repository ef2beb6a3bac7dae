//! Header storage and the header-value grammars used by the handshake.
//!
//! Every parser here makes a single left-to-right pass over its input and
//! never backtracks, so its cost is linear in the length of the value however
//! the value is crafted (compare the ReDoS in Node `ws`, CVE-2021-32640, and
//! the exponential `Sec-WebSocket-Extensions` parser of `websocket-extensions`,
//! GHSA-g78m-2chm-r7qv).

use std::fmt;

use super::error::HandshakeError;

/// An ordered list of HTTP header fields.
///
/// Names are kept as received (or as pushed); lookups compare names
/// ASCII-case-insensitively. Values are raw bytes, since HTTP allows
/// non-UTF-8 `obs-text` in values.
///
/// ```
/// use ws_proto::handshake::Headers;
/// let mut headers = Headers::new();
/// headers.push("Sec-WebSocket-Protocol", "chat");
/// headers.push("sec-websocket-protocol", "superchat");
/// assert_eq!(headers.get("SEC-WEBSOCKET-PROTOCOL"), Some(&b"chat"[..]));
/// assert_eq!(headers.count("Sec-WebSocket-Protocol"), 2);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers {
    entries: Vec<(String, Vec<u8>)>,
}

impl Headers {
    /// An empty header list.
    pub fn new() -> Self {
        Self::default()
    }

    /// The value of the first field called `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.get_all(name).next()
    }

    /// The values of all fields called `name` (case-insensitive), in order.
    pub fn get_all<'h, 'n>(&'h self, name: &'n str) -> GetAll<'h, 'n> {
        GetAll {
            entries: self.entries.iter(),
            name,
        }
    }

    /// How many fields are called `name` (case-insensitive).
    pub fn count(&self, name: &str) -> usize {
        self.get_all(name).count()
    }

    /// All fields in order, with names as received.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.entries.iter().map(|(n, v)| (n.as_str(), v.as_slice()))
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Appends a field. Nothing is validated: this is a container.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<Vec<u8>>) {
        self.entries.push((name.into(), value.into()));
    }
}

/// Iterator over the values of the fields with a given name, returned by
/// [`Headers::get_all`].
#[derive(Debug, Clone)]
pub struct GetAll<'h, 'n> {
    entries: std::slice::Iter<'h, (String, Vec<u8>)>,
    name: &'n str,
}

impl<'h> Iterator for GetAll<'h, '_> {
    type Item = &'h [u8];

    fn next(&mut self) -> Option<&'h [u8]> {
        let name = self.name;
        self.entries
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_slice())
    }
}

/// RFC 7230 `tchar`.
pub(crate) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

/// Whether `s` is a non-empty RFC 7230 `token`.
pub(crate) fn is_token(s: &[u8]) -> bool {
    !s.is_empty() && s.iter().all(|&b| is_tchar(b))
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Strips optional whitespace (SP / HTAB) from both ends.
pub(crate) fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

/// An ASCII byte string (checked by the caller) as a `String`.
fn ascii_string(s: &[u8]) -> String {
    s.iter().map(|&b| char::from(b)).collect()
}

/// Whether the comma-separated list `value` contains `token`, compared
/// ASCII-case-insensitively (as for `Connection` and `Upgrade`).
///
/// Elements are trimmed of optional whitespace; empty elements are ignored.
///
/// ```
/// use ws_proto::handshake::has_token;
/// assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
/// assert!(!has_token(b"keep-alive", "upgrade"));
/// ```
pub fn has_token(value: &[u8], token: &str) -> bool {
    value
        .split(|&b| b == b',')
        .any(|item| trim_ows(item).eq_ignore_ascii_case(token.as_bytes()))
}

/// Parses a comma-separated list of RFC 7230 tokens, as used by
/// `Sec-WebSocket-Protocol` (`1#token`).
///
/// Optional whitespace around elements and empty elements are accepted.
/// Returns [`HandshakeError::InvalidSubprotocol`] if an element is not a token
/// or the list has no element.
///
/// ```
/// use ws_proto::handshake::parse_token_list;
/// assert_eq!(parse_token_list(b"chat, , superchat").unwrap(), ["chat", "superchat"]);
/// assert!(parse_token_list(b"chat room").is_err());
/// ```
pub fn parse_token_list(value: &[u8]) -> Result<Vec<String>, HandshakeError> {
    let mut out = Vec::new();
    for item in value.split(|&b| b == b',') {
        let item = trim_ows(item);
        if item.is_empty() {
            continue;
        }
        if !is_token(item) {
            return Err(HandshakeError::InvalidSubprotocol);
        }
        out.push(ascii_string(item));
    }
    if out.is_empty() {
        return Err(HandshakeError::InvalidSubprotocol);
    }
    Ok(out)
}

/// One element of a `Sec-WebSocket-Extensions` header: an extension name and
/// its parameters, in order.
///
/// Parameter values written as quoted strings are stored unquoted. Its
/// [`Display`](fmt::Display) form is the header syntax.
///
/// ```
/// use ws_proto::handshake::ExtensionOffer;
/// let offer = ExtensionOffer {
///     name: "permessage-deflate".into(),
///     params: vec![("client_max_window_bits".into(), Some("10".into()))],
/// };
/// assert_eq!(offer.to_string(), "permessage-deflate; client_max_window_bits=10");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExtensionOffer {
    /// The extension token, for example `permessage-deflate`.
    pub name: String,
    /// The parameters: name and optional value.
    pub params: Vec<(String, Option<String>)>,
}

impl ExtensionOffer {
    /// The value of the first parameter called `name` (case-insensitive):
    /// `None` if absent, `Some(None)` if present without a value.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_deref())
    }
}

impl fmt::Display for ExtensionOffer {
    /// Writes `name; param; param=value`. Values that are not tokens are
    /// written as quoted strings.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        for (name, value) in &self.params {
            write!(f, "; {name}")?;
            match value {
                None => {}
                Some(v) if is_token(v.as_bytes()) => write!(f, "={v}")?,
                Some(v) => {
                    f.write_str("=\"")?;
                    for c in v.chars() {
                        if c == '"' || c == '\\' {
                            f.write_str("\\")?;
                        }
                        write!(f, "{c}")?;
                    }
                    f.write_str("\"")?;
                }
            }
        }
        Ok(())
    }
}

/// A forward-only cursor over a header value.
struct Cursor<'a> {
    s: &'a [u8],
    i: usize,
}

impl Cursor<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.i).copied()
    }

    fn skip_ows(&mut self) {
        while self.peek().is_some_and(is_ows) {
            self.i += 1;
        }
    }

    /// Consumes a non-empty token.
    fn token(&mut self) -> Option<String> {
        let start = self.i;
        while self.peek().is_some_and(is_tchar) {
            self.i += 1;
        }
        (self.i > start).then(|| ascii_string(&self.s[start..self.i]))
    }

    /// Consumes an RFC 7230 quoted-string (the cursor is on the opening
    /// quote) and returns its unescaped content.
    fn quoted_string(&mut self) -> Option<Vec<u8>> {
        debug_assert_eq!(self.peek(), Some(b'"'));
        self.i += 1;
        let mut out = Vec::new();
        loop {
            let b = self.peek()?;
            self.i += 1;
            match b {
                b'"' => return Some(out),
                b'\\' => {
                    // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )
                    let escaped = self.peek()?;
                    if !(escaped == b'\t' || escaped == b' ' || (0x21..=0x7e).contains(&escaped))
                        && escaped < 0x80
                    {
                        return None;
                    }
                    self.i += 1;
                    out.push(escaped);
                }
                // qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text
                b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff => out.push(b),
                _ => return None,
            }
        }
    }

    /// Consumes a parameter value: a token, or a quoted string whose content
    /// is a token (RFC 6455 §9.1).
    fn param_value(&mut self) -> Option<String> {
        if self.peek() == Some(b'"') {
            let content = self.quoted_string()?;
            is_token(&content).then(|| ascii_string(&content))
        } else {
            self.token()
        }
    }
}

/// Parses a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1):
/// `1#( token *( ";" token [ "=" ( token / quoted-string ) ] ) )`.
///
/// Optional whitespace is accepted around `,`, `;` and `=`; empty list
/// elements are ignored (RFC 9110 §5.6.1.2: "a recipient MUST parse and ignore
/// a reasonable number of empty list elements"), so an empty value is no
/// extension at all, as Python `websockets` sends when given none. A quoted
/// value must unescape to a token. Anything else gives
/// [`HandshakeError::InvalidExtensions`].
///
/// ```
/// use ws_proto::handshake::parse_extensions;
/// let offers = parse_extensions(
///     b"permessage-deflate; client_max_window_bits, permessage-deflate; server_max_window_bits=\"10\"",
/// )
/// .unwrap();
/// assert_eq!(offers.len(), 2);
/// assert_eq!(offers[0].params, [("client_max_window_bits".to_string(), None)]);
/// assert_eq!(offers[1].param("server_max_window_bits"), Some(Some("10")));
/// ```
pub fn parse_extensions(value: &[u8]) -> Result<Vec<ExtensionOffer>, HandshakeError> {
    parse_extensions_inner(value).ok_or(HandshakeError::InvalidExtensions)
}

fn parse_extensions_inner(value: &[u8]) -> Option<Vec<ExtensionOffer>> {
    let mut c = Cursor { s: value, i: 0 };
    let mut out = Vec::new();
    loop {
        c.skip_ows();
        match c.peek() {
            None => break,
            Some(b',') => {
                c.i += 1;
                continue;
            }
            Some(_) => {}
        }
        let name = c.token()?;
        let mut params = Vec::new();
        loop {
            c.skip_ows();
            match c.peek() {
                None => break,
                Some(b',') => {
                    c.i += 1;
                    break;
                }
                Some(b';') => {
                    c.i += 1;
                    c.skip_ows();
                    let param = c.token()?;
                    c.skip_ows();
                    let value = if c.peek() == Some(b'=') {
                        c.i += 1;
                        c.skip_ows();
                        Some(c.param_value()?)
                    } else {
                        None
                    };
                    params.push((param, value));
                }
                Some(_) => return None,
            }
        }
        out.push(ExtensionOffer { name, params });
    }
    Some(out)
}

/// Appends `name: value\r\n` to `out`, never letting caller-supplied text
/// break the message framing: a field whose name is not a token is left out,
/// and CR, LF and NUL in the value are replaced by spaces.
pub(crate) fn write_header(out: &mut Vec<u8>, name: &str, value: &str) {
    if !is_token(name.as_bytes()) {
        return;
    }
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend(value.bytes().map(|b| match b {
        b'\r' | b'\n' | 0 => b' ',
        b => b,
    }));
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offer(name: &str, params: &[(&str, Option<&str>)]) -> ExtensionOffer {
        ExtensionOffer {
            name: name.into(),
            params: params
                .iter()
                .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
                .collect(),
        }
    }

    #[test]
    fn headers_case_insensitive() {
        let mut h = Headers::new();
        assert!(h.is_empty());
        h.push("Host", "a");
        h.push("X-Foo", b"1".to_vec());
        h.push("x-foo", "2");
        assert_eq!(h.len(), 3);
        assert_eq!(h.get("host"), Some(&b"a"[..]));
        assert_eq!(h.get("X-FOO"), Some(&b"1"[..]));
        assert_eq!(h.get_all("x-Foo").collect::<Vec<_>>(), [b"1", b"2"]);
        assert_eq!(h.count("x-foo"), 2);
        assert_eq!(h.count("missing"), 0);
        assert_eq!(h.get("missing"), None);
        let names: Vec<&str> = h.iter().map(|(n, _)| n).collect();
        assert_eq!(names, ["Host", "X-Foo", "x-foo"]);
    }

    #[test]
    fn has_token_variants() {
        assert!(has_token(b"Upgrade", "upgrade"));
        assert!(has_token(b"keep-alive, Upgrade", "upgrade"));
        assert!(has_token(b"keep-alive,Upgrade", "UPGRADE"));
        assert!(has_token(b" \tupgrade\t ", "upgrade"));
        assert!(has_token(b",,upgrade,,", "upgrade"));
        assert!(!has_token(b"", "upgrade"));
        assert!(!has_token(b"upgrades", "upgrade"));
        assert!(!has_token(b"keep-alive upgrade", "upgrade"));
        assert!(!has_token(b"\xff\xfe", "upgrade"));
    }

    #[test]
    fn token_list_variants() {
        assert_eq!(parse_token_list(b"chat").unwrap(), ["chat"]);
        assert_eq!(parse_token_list(b"a,b").unwrap(), ["a", "b"]);
        assert_eq!(
            parse_token_list(b"  a ,\tb\t, c ").unwrap(),
            ["a", "b", "c"]
        );
        assert_eq!(parse_token_list(b",a,,b,").unwrap(), ["a", "b"]);
        assert_eq!(
            parse_token_list(b"v1.chat.example.com, x-y_z~").unwrap(),
            ["v1.chat.example.com", "x-y_z~"]
        );
        for bad in [
            &b""[..],
            b" , ,",
            b"a b",
            b"a;b",
            b"\"a\"",
            b"a,b/c",
            b"\xc3\xa9",
            b"a\r\nb",
        ] {
            assert_eq!(
                parse_token_list(bad),
                Err(HandshakeError::InvalidSubprotocol),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn extensions_basic() {
        assert_eq!(
            parse_extensions(b"permessage-deflate").unwrap(),
            [offer("permessage-deflate", &[])]
        );
        assert_eq!(
            parse_extensions(b"permessage-deflate; client_max_window_bits").unwrap(),
            [offer(
                "permessage-deflate",
                &[("client_max_window_bits", None)]
            )]
        );
        assert_eq!(
            parse_extensions(
                b"permessage-deflate; client_no_context_takeover; server_max_window_bits=10, \
                  permessage-deflate"
            )
            .unwrap(),
            [
                offer(
                    "permessage-deflate",
                    &[
                        ("client_no_context_takeover", None),
                        ("server_max_window_bits", Some("10"))
                    ]
                ),
                offer("permessage-deflate", &[]),
            ]
        );
    }

    #[test]
    fn extensions_whitespace_and_empty_items() {
        let expected = [
            offer("foo", &[("a", Some("1")), ("b", None)]),
            offer("bar", &[]),
        ];
        for input in [
            &b"foo;a=1;b,bar"[..],
            b"foo ; a = 1 ; b , bar",
            b"\tfoo\t;\ta\t=\t1\t;\tb\t,\tbar\t",
            b", ,foo; a=1; b,, ,bar,",
            b"foo; a=\"1\"; b, bar",
        ] {
            assert_eq!(parse_extensions(input).unwrap(), expected, "{input:?}");
        }
    }

    #[test]
    fn extensions_quoted_strings() {
        // Escapes are removed; the result must still be a token.
        let got = parse_extensions(br#"x; p="\a\b\c"; q="10""#).unwrap();
        assert_eq!(got, [offer("x", &[("p", Some("abc")), ("q", Some("10"))])]);
        // A quoted value that is not a token after unescaping is rejected.
        for bad in [
            &br#"x; p="a b""#[..],
            br#"x; p="a\"b""#,
            br#"x; p="""#,
            br#"x; p="a,b""#,
            br#"x; p="a"#,
            br#"x; p="a\"#,
            b"x; p=\"a\x01\"",
        ] {
            assert_eq!(
                parse_extensions(bad),
                Err(HandshakeError::InvalidExtensions),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn extensions_malformed() {
        for empty in [&b""[..], b"   ", b",,", b" , "] {
            assert_eq!(parse_extensions(empty), Ok(Vec::new()), "{empty:?}");
        }
        for bad in [
            &b";"[..],
            b"foo;",
            b"foo; ",
            b"foo;;a",
            b"foo; a=",
            b"foo; =1",
            b"foo bar",
            b"foo; a b",
            b"foo; a=1 2",
            b"foo; a==1",
            b"foo/bar",
            b"\"foo\"",
            b"foo; a=\"1\"x",
            b"foo\xff",
            b"foo\r\n; a",
        ] {
            assert_eq!(
                parse_extensions(bad),
                Err(HandshakeError::InvalidExtensions),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn extension_display_round_trip() {
        let offers = parse_extensions(
            b"permessage-deflate;client_max_window_bits=10;server_no_context_takeover, x",
        )
        .unwrap();
        let text: Vec<String> = offers.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "permessage-deflate; client_max_window_bits=10; server_no_context_takeover",
                "x"
            ]
        );
        assert_eq!(parse_extensions(text[0].as_bytes()).unwrap()[0], offers[0]);
        // Values that are not tokens are quoted and escaped.
        let odd = offer("x", &[("p", Some("a \"b\\"))]);
        assert_eq!(odd.to_string(), r#"x; p="a \"b\\""#);
        assert_eq!(odd.param("P"), Some(Some("a \"b\\")));
        assert_eq!(odd.param("q"), None);
    }

    #[test]
    fn pathological_values_are_linear() {
        // ~60 KiB values of the shapes that trip backtracking parsers. Each
        // parser makes one pass; these complete instantly.
        let n = 60 * 1024;
        let spaces_then_bad = [vec![b' '; n], b"x y".to_vec()].concat();
        assert!(parse_token_list(&spaces_then_bad).is_err());
        assert!(!has_token(&spaces_then_bad, "upgrade"));
        assert!(parse_extensions(&spaces_then_bad).is_err());

        let many_items = b"a,".repeat(n / 2);
        assert_eq!(parse_token_list(&many_items).unwrap().len(), n / 2);
        assert!(has_token(&many_items, "A"));

        let many_params = [b"x".to_vec(), b"; a=\"b\"".repeat(n / 8)].concat();
        assert_eq!(
            parse_extensions(&many_params).unwrap()[0].params.len(),
            n / 8
        );
        let unterminated = [b"x; a=\"".to_vec(), b"\\a".repeat(n / 2)].concat();
        assert!(parse_extensions(&unterminated).is_err());
        let commas_ws = b" ,\t".repeat(n / 3);
        assert_eq!(parse_extensions(&commas_ws), Ok(Vec::new()));
        let semis = [b"x".to_vec(), b" ; a = b ".repeat(n / 10), b";".to_vec()].concat();
        assert!(parse_extensions(&semis).is_err());
    }

    #[test]
    fn write_header_sanitises() {
        let mut out = Vec::new();
        write_header(&mut out, "X-A", "1\r\nInjected: yes\0");
        write_header(&mut out, "Bad Name", "x");
        write_header(&mut out, "Bad\r\nName", "x");
        write_header(&mut out, "", "x");
        assert_eq!(out, b"X-A: 1  Injected: yes \r\n");
    }
}
