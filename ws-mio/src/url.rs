//! `ws://` and `wss://` URLs, parsed by the [`url`](https://docs.rs/url) crate: the WHATWG URL parser that
//! browsers use for `new WebSocket(url)`. It knows `ws` and `wss` as special schemes (default
//! ports 80 and 443), lowercases the scheme and domain names, converts international domain
//! names to ASCII, parses IPv4 and IPv6 literals and percent-encodes the path and query.

use std::fmt;

use url::{Host, Url};

/// A parsed `ws://host[:port][/path][?query]` or `wss://…` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// `wss://`: the connection runs over TLS (cargo feature `tls`).
    pub secure: bool,
    /// Host name (lowercase, international names in their ASCII form) or IP address (IPv6
    /// without brackets).
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Request target, `/` when absent; includes any query string, never a fragment.
    pub path: String,
}

impl WsUrl {
    /// A URL from its parts, checked and normalised as [`parse_ws_url`] does: `host` is a name
    /// or an IP address (IPv6 with or without brackets), `path` is empty (meaning `/`) or starts
    /// with `/`, and may carry a query but no fragment.
    ///
    /// ```
    /// use ws_mio::{UrlError, WsUrl};
    /// let url = WsUrl::new("::1", 9001, "/chat").unwrap();
    /// assert_eq!(url.to_string(), "ws://[::1]:9001/chat");
    /// assert_eq!(WsUrl::new("example.com/x", 80, "/"), Err(UrlError::InvalidHost));
    /// ```
    pub fn new(host: &str, port: u16, path: &str) -> Result<WsUrl, UrlError> {
        // An IPv6 literal needs its brackets in a URL; a name never contains ':'.
        let bracketed;
        let host = if host.contains(':') && !host.starts_with('[') {
            bracketed = format!("[{host}]");
            &bracketed
        } else {
            host
        };
        // The host alone first: parsed inside a whole URL, a host such as `a/b` or `a@b`
        // would silently become a path or user information.
        let host = Host::parse(host).map_err(UrlError::from_parse)?;
        if port == 0 {
            return Err(UrlError::InvalidPort);
        }
        if !(path.is_empty() || path.starts_with('/')) {
            return Err(UrlError::InvalidPath);
        }
        parse_ws_url(&format!("ws://{host}:{port}{path}"))
    }

    /// The `Host` header value: the host, with the port unless it is the scheme's default
    /// (80, or 443 for `wss://`).
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        let default_port = if self.secure { 443 } else { 80 };
        if self.port == default_port {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// The URL again, e.g. `ws://[::1]:9001/chat` (the port only when it is not the default).
impl fmt::Display for WsUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.secure { "wss" } else { "ws" };
        write!(f, "{scheme}://{}{}", self.host_header(), self.path)
    }
}

/// Why a URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// Not a `ws://` URL (another scheme, or no scheme at all).
    UnsupportedScheme,
    /// A `wss://` URL, and this build has no TLS (cargo feature `tls` of `ws-mio`).
    TlsNotSupported,
    /// No host.
    MissingHost,
    /// The host is neither a valid domain name nor a valid IP address.
    InvalidHost,
    /// The port is not a number in 1–65535.
    InvalidPort,
    /// The path does not start with `/` ([`WsUrl::new`]).
    InvalidPath,
    /// The URL has a fragment (`#...`), which RFC 6455 §3 forbids in WebSocket URIs.
    Fragment,
}

impl UrlError {
    fn from_parse(error: url::ParseError) -> UrlError {
        use url::ParseError as P;
        match error {
            P::EmptyHost => UrlError::MissingHost,
            P::InvalidPort => UrlError::InvalidPort,
            P::RelativeUrlWithoutBase | P::RelativeUrlWithCannotBeABaseBase => {
                UrlError::UnsupportedScheme
            }
            // IDNA, IPv4, IPv6 and domain character errors, and any the parser adds later.
            _ => UrlError::InvalidHost,
        }
    }
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::UnsupportedScheme => "only ws:// and wss:// URLs are supported",
            UrlError::TlsNotSupported => {
                "wss:// URLs need TLS: build ws-mio with its `tls` feature"
            }
            UrlError::MissingHost => "the URL has no host",
            UrlError::InvalidHost => "the host is not a valid domain name or IP address",
            UrlError::InvalidPort => "the port is not a number between 1 and 65535",
            UrlError::InvalidPath => "the path does not start with '/'",
            UrlError::Fragment => {
                "a WebSocket URL may not have a fragment ('#'; RFC 6455 section 3)"
            }
        })
    }
}

impl std::error::Error for UrlError {}

/// Parses a `ws://` or `wss://` URL (the scheme in any case). The port defaults to 80 (443), an empty path is
/// `/`, the query is kept, user information (`user:password@`, which RFC 6455's `ws-URI` does
/// not have) is ignored, and a URL with a fragment is refused.
///
/// ```
/// use ws_mio::{parse_ws_url, UrlError};
/// let url = parse_ws_url("ws://127.0.0.1:9002/chat?room=1").unwrap();
/// assert_eq!((url.host.as_str(), url.port, url.path.as_str()), ("127.0.0.1", 9002, "/chat?room=1"));
/// let url = parse_ws_url("WS://[::1]:9001/chat").unwrap();
/// assert_eq!((url.host.as_str(), url.host_header().as_str()), ("::1", "[::1]:9001"));
/// assert_eq!(parse_ws_url("ws://example.com").unwrap().path, "/");
/// assert_eq!(parse_ws_url("ws://example.com/#top"), Err(UrlError::Fragment));
/// let secure = parse_ws_url("wss://example.com/chat");
/// if cfg!(feature = "tls") {
///     let secure = secure.unwrap();
///     assert_eq!((secure.secure, secure.port, secure.host_header().as_str()), (true, 443, "example.com"));
/// } else {
///     assert_eq!(secure, Err(UrlError::TlsNotSupported));
/// }
/// ```
pub fn parse_ws_url(url: &str) -> Result<WsUrl, UrlError> {
    let url = Url::parse(url).map_err(UrlError::from_parse)?;
    let secure = match url.scheme() {
        "ws" => false,
        "wss" if cfg!(feature = "tls") => true,
        "wss" => return Err(UrlError::TlsNotSupported),
        _ => return Err(UrlError::UnsupportedScheme),
    };
    // RFC 6455 §3: "Fragment identifiers are meaningless in the context of WebSocket URIs and
    // MUST NOT be used on these URIs. As with any URI scheme, the character '#', when not
    // indicating the start of a fragment, MUST be escaped as %23." A '#' is therefore always a
    // fragment, and a URL with one is refused rather than sent without it.
    if url.fragment().is_some() {
        return Err(UrlError::Fragment);
    }
    let host = match url.host() {
        Some(Host::Domain(name)) if !name.is_empty() => name.to_owned(),
        Some(Host::Ipv4(ip)) => ip.to_string(),
        Some(Host::Ipv6(ip)) => ip.to_string(),
        _ => return Err(UrlError::MissingHost),
    };
    let port = match url.port_or_known_default() {
        Some(0) | None => return Err(UrlError::InvalidPort),
        Some(port) => port,
    };
    // A special scheme's path is never empty: at least `/`.
    let mut path = url.path().to_owned();
    if let Some(query) = url.query() {
        path.push('?');
        path.push_str(query);
    }
    Ok(WsUrl {
        secure,
        host,
        port,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(url: &str) -> (String, u16, String) {
        let url = parse_ws_url(url).unwrap_or_else(|e| panic!("{url}: {e}"));
        (url.host, url.port, url.path)
    }

    fn p(host: &str, port: u16, path: &str) -> (String, u16, String) {
        (host.to_owned(), port, path.to_owned())
    }

    #[test]
    fn the_scheme_is_case_insensitive() {
        for url in ["ws://h/", "Ws://h/", "WS://h/", "wS://h/"] {
            assert_eq!(parts(url), p("h", 80, "/"), "{url}");
        }
    }

    #[test]
    fn other_schemes_are_refused_and_wss_says_tls() {
        assert_eq!(parse_ws_url("http://h/"), Err(UrlError::UnsupportedScheme));
        assert_eq!(parse_ws_url("ftp://h/"), Err(UrlError::UnsupportedScheme));
        // No scheme at all: relative, or `localhost:` taken for a scheme.
        assert_eq!(parse_ws_url("/chat"), Err(UrlError::UnsupportedScheme));
        assert_eq!(
            parse_ws_url("127.0.0.1:9001/chat"),
            Err(UrlError::UnsupportedScheme)
        );
        assert_eq!(
            parse_ws_url("localhost:9001/chat"),
            Err(UrlError::UnsupportedScheme)
        );
        for url in ["wss://h/", "WSS://h:443/"] {
            if cfg!(feature = "tls") {
                let parsed = parse_ws_url(url).unwrap();
                assert!(parsed.secure && parsed.port == 443, "{url}");
                assert_eq!(parsed.to_string(), "wss://h/");
            } else {
                assert_eq!(parse_ws_url(url), Err(UrlError::TlsNotSupported), "{url}");
            }
        }
        assert!(UrlError::TlsNotSupported
            .to_string()
            .contains("`tls` feature"));
    }

    #[test]
    fn a_fragment_is_refused_never_sent() {
        for url in ["ws://h/a#frag", "ws://h/#", "ws://h#x", "ws://h/a?q=1#frag"] {
            assert_eq!(parse_ws_url(url), Err(UrlError::Fragment), "{url}");
        }
        assert!(UrlError::Fragment.to_string().contains("RFC 6455"));
        // An escaped '#' is part of the path.
        assert_eq!(parts("ws://h/a%23b"), p("h", 80, "/a%23b"));
    }

    #[test]
    fn ipv6_literals() {
        let url = parse_ws_url("ws://[::1]:9001/chat").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 9001));
        assert_eq!(url.host_header(), "[::1]:9001");
        assert_eq!(url.to_string(), "ws://[::1]:9001/chat");
        let url = parse_ws_url("ws://[::1]/").unwrap();
        assert_eq!((url.port, url.host_header().as_str()), (80, "[::1]"));
        // Normalised: the shortest form, lowercase.
        assert_eq!(
            parts("ws://[0:0:0:0:0:0:0:1]:9/x").0,
            "::1",
            "compressed form"
        );
        assert_eq!(parts("ws://[FE80::A]/").0, "fe80::a");
        assert_eq!(parse_ws_url("ws://[::1/"), Err(UrlError::InvalidHost));
        assert_eq!(parse_ws_url("ws://[::g]/"), Err(UrlError::InvalidHost));
    }

    #[test]
    fn default_and_explicit_ports() {
        assert_eq!(parts("ws://h"), p("h", 80, "/"));
        assert_eq!(parts("ws://h:80/"), p("h", 80, "/"));
        assert_eq!(parts("ws://h:9001/"), p("h", 9001, "/"));
        assert_eq!(parts("ws://h:65535/"), p("h", 65535, "/"));
        assert_eq!(parse_ws_url("ws://h:80/").unwrap().host_header(), "h");
        assert_eq!(parse_ws_url("ws://h:81/").unwrap().host_header(), "h:81");
        for url in ["ws://h:0/", "ws://h:65536/", "ws://h:x/", "ws://h:-1/"] {
            assert_eq!(parse_ws_url(url), Err(UrlError::InvalidPort), "{url}");
        }
    }

    #[test]
    fn path_and_query_are_kept() {
        assert_eq!(parts("ws://h/a/b?x=1&y"), p("h", 80, "/a/b?x=1&y"));
        assert_eq!(parts("ws://h?q=1"), p("h", 80, "/?q=1"));
        assert_eq!(parts("ws://h:9?q=1"), p("h", 9, "/?q=1"));
        assert_eq!(parts("ws://h/chat?"), p("h", 80, "/chat?"));
        // Characters that may not appear in a request line are percent-encoded.
        assert_eq!(parts("ws://h/a b?c d").2, "/a%20b?c%20d");
    }

    #[test]
    fn hosts() {
        assert_eq!(parse_ws_url("ws://:80/"), Err(UrlError::MissingHost));
        assert_eq!(parse_ws_url("ws://"), Err(UrlError::MissingHost));
        assert_eq!(parse_ws_url("ws://exa mple/"), Err(UrlError::InvalidHost));
        assert_eq!(parse_ws_url("ws://a<b/"), Err(UrlError::InvalidHost));
        assert_eq!(parts("ws://EXAMPLE.com/").0, "example.com");
        assert_eq!(parts("ws://bücher.example/").0, "xn--bcher-kva.example");
        assert_eq!(parts("ws://127.0.0.1:9/").0, "127.0.0.1");
        // User information is not part of a ws-URI: ignored, never sent.
        assert_eq!(parts("ws://user:pw@h:9/x"), p("h", 9, "/x"));
    }

    #[test]
    fn from_parts() {
        let url = WsUrl::new("::1", 9001, "/chat").unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 9001));
        assert_eq!(url.host_header(), "[::1]:9001");
        assert_eq!(WsUrl::new("[::1]", 9001, "/chat"), Ok(url));
        assert_eq!(
            WsUrl::new("Example.COM", 80, "/a?b=1").unwrap().to_string(),
            "ws://example.com/a?b=1"
        );
        assert_eq!(WsUrl::new("h", 1, "").unwrap().path, "/");
        for host in ["example.com/x", "a@b", "a?b", "a#b", "", "a b", ":::"] {
            assert!(WsUrl::new(host, 80, "/").is_err(), "{host:?}");
        }
        assert_eq!(WsUrl::new("", 80, "/"), Err(UrlError::MissingHost));
        assert_eq!(WsUrl::new("h", 0, "/"), Err(UrlError::InvalidPort));
        assert_eq!(WsUrl::new("h", 1, "chat"), Err(UrlError::InvalidPath));
        assert_eq!(WsUrl::new("h", 1, "/a#b"), Err(UrlError::Fragment));
    }
}
