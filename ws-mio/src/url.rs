//! `ws://` URLs.

use std::fmt;

/// A parsed `ws://host[:port][/path]` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WsUrl {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port (80 when absent).
    pub port: u16,
    /// Request target, `/` when absent; includes any query string.
    pub path: String,
}

impl WsUrl {
    /// The `Host` header value: the host, with the port unless it is 80.
    pub fn host_header(&self) -> String {
        let host = if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        };
        if self.port == 80 {
            host
        } else {
            format!("{host}:{}", self.port)
        }
    }
}

/// Why a URL was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// Not `ws://` (`wss://` needs TLS, which this driver does not provide).
    UnsupportedScheme,
    /// No host.
    MissingHost,
    /// The port is not a number in 1–65535.
    InvalidPort,
}

impl fmt::Display for UrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlError::UnsupportedScheme => "only ws:// URLs are supported",
            UrlError::MissingHost => "the URL has no host",
            UrlError::InvalidPort => "the port is not a number between 1 and 65535",
        })
    }
}

impl std::error::Error for UrlError {}

/// Parses a `ws://` URL.
///
/// ```
/// use ws_mio::parse_ws_url;
/// let url = parse_ws_url("ws://127.0.0.1:9002/chat?room=1").unwrap();
/// assert_eq!((url.host.as_str(), url.port, url.path.as_str()), ("127.0.0.1", 9002, "/chat?room=1"));
/// assert_eq!(parse_ws_url("ws://example.com").unwrap().path, "/");
/// assert!(parse_ws_url("wss://example.com/").is_err());
/// ```
pub fn parse_ws_url(url: &str) -> Result<WsUrl, UrlError> {
    let rest = url
        .strip_prefix("ws://")
        .or_else(|| url.strip_prefix("WS://"))
        .ok_or(UrlError::UnsupportedScheme)?;
    let (authority, path) = match rest.find(['/', '?']) {
        Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
        Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
        None => (rest, "/".to_owned()),
    };
    let authority = authority
        .rsplit_once('@')
        .map_or(authority, |(_, host)| host);
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or(UrlError::MissingHost)?;
        (host, after.strip_prefix(':'))
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(UrlError::MissingHost);
    }
    let port = match port {
        None => 80,
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or(UrlError::InvalidPort)?,
    };
    Ok(WsUrl {
        host: host.to_owned(),
        port,
        path,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms() {
        assert_eq!(parse_ws_url("ws://[::1]:9/x").unwrap().host, "::1");
        assert_eq!(
            parse_ws_url("ws://[::1]:9/x").unwrap().host_header(),
            "[::1]:9"
        );
        assert_eq!(parse_ws_url("ws://h?q=1").unwrap().path, "/?q=1");
        assert_eq!(parse_ws_url("ws://h:0/"), Err(UrlError::InvalidPort));
        assert_eq!(parse_ws_url("ws://:80/"), Err(UrlError::MissingHost));
        assert_eq!(parse_ws_url("http://h/"), Err(UrlError::UnsupportedScheme));
        assert_eq!(parse_ws_url("ws://h:80/").unwrap().host_header(), "h");
    }
}
