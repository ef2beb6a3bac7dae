//! The opening handshake inside a connection (§4): reading the peer's head, the server's
//! decision ([`Connection::accept`], [`Connection::reject`], [`Connection::respond`]), and
//! the extensions both sides settle on.

use std::time::Instant;

use super::closing::End;
use super::timers::Timer;
use super::{ClientRequest, Connection, Event, Negotiated, Phase, Role};
use crate::config::Config;
use crate::error::{AnswerError, Error};
use crate::extension::Extension;
use crate::handshake::{
    self, ExtensionOffer, HandshakeError, HeadReader, Method, Request, UpgradeRequest,
};

#[cfg(doc)]
use super::Accept;

/// Where the opening handshake is.
#[derive(Debug)]
pub(super) enum Handshake {
    /// Server reading the request head.
    ServerReading(HeadReader),
    /// Server waiting for the application's accept/reject.
    ServerPending(Box<UpgradeRequest>),
    /// Server waiting for the application's answer to a plain HTTP request.
    ServerHttpPending,
    /// Client waiting for the response head to its request, sent with `key`.
    ClientReading { reader: HeadReader, key: String },
}

impl Handshake {
    pub(super) fn server(config: &Config) -> Handshake {
        Handshake::ServerReading(HeadReader::new(config.handshake_limits))
    }

    /// The client's state and the request bytes to send (a fresh random key, the offers of
    /// [`Config::subprotocols`] and [`Config::extensions`]).
    pub(super) fn client(config: &Config, request: &ClientRequest) -> (Handshake, Vec<u8>) {
        let key = handshake::generate_key();
        let offers: Vec<String> = config
            .extensions
            .iter()
            .map(|f| f.offer().to_string())
            .collect();
        let offers = (!offers.is_empty()).then(|| offers.join(", "));
        let bytes = handshake::build_request(
            &request.host,
            &request.path,
            &key,
            &config.subprotocols,
            offers.as_deref(),
            &request.headers,
        );
        let reader = HeadReader::new(config.handshake_limits);
        (Handshake::ClientReading { reader, key }, bytes)
    }
}

impl Connection {
    /// Bytes that arrived while the handshake is in progress.
    pub(super) fn receive_handshake(&mut self, data: &[u8]) {
        let limits = self.config.handshake_limits;
        let Phase::Connecting(handshake) = &mut self.phase else {
            return;
        };
        match &mut **handshake {
            Handshake::ServerReading(reader) => {
                let end = match reader.feed(data) {
                    Ok(None) => return,
                    Ok(Some(end)) => end,
                    Err(e) => return self.handshake_failed(e),
                };
                let request = match handshake::parse_request(reader.head(), &limits) {
                    Ok(r) if self.config.plain_http && is_plain_get(&r) => {
                        self.events.push_back(Event::HttpRequest(Box::new(r)));
                        self.phase = Phase::Connecting(Box::new(Handshake::ServerHttpPending));
                        return;
                    }
                    parsed => parsed
                        .and_then(|r| handshake::validate_request(r, self.config.path.as_deref())),
                };
                match request {
                    Ok(request) => {
                        // Pipelined bytes wait for accept/reject within the same bound as
                        // those of later reads (see `receive`).
                        if data.len() - end > limits.max_head {
                            return self.handshake_failed(HandshakeError::HeadTooLarge);
                        }
                        self.early_input.extend_from_slice(&data[end..]);
                        self.events
                            .push_back(Event::Request(Box::new(request.clone())));
                        self.phase = Phase::Connecting(Box::new(Handshake::ServerPending(
                            Box::new(request),
                        )));
                    }
                    Err(e) => self.handshake_failed(e),
                }
            }
            Handshake::ClientReading { reader, key } => {
                let end = match reader.feed(data) {
                    Ok(None) => return,
                    Ok(Some(end)) => end,
                    Err(e) => return self.handshake_failed(e),
                };
                let response = handshake::parse_response(reader.head(), &limits)
                    .and_then(|r| handshake::validate_response(r, key, &self.config.subprotocols));
                let response = match response {
                    Ok(r) => r,
                    Err(e) => return self.handshake_failed(e),
                };
                if let Err(e) = self.confirm_extensions(&response.extensions) {
                    return self.handshake_failed(e);
                }
                self.open(Negotiated {
                    subprotocol: response.subprotocol,
                    extensions: response.extensions,
                    headers: response.headers,
                });
                self.receive_frames(&data[end..]);
            }
            Handshake::ServerPending(_) => {
                // Pipelined frames before the application decided: keep them, within bounds.
                if self.early_input.len() + data.len() > limits.max_head {
                    self.handshake_failed(HandshakeError::HeadTooLarge);
                } else {
                    self.early_input.extend_from_slice(data);
                }
            }
            Handshake::ServerHttpPending => {}
        }
    }

    /// Client: the extensions the server's response selected, each one we offered.
    fn confirm_extensions(&mut self, answers: &[ExtensionOffer]) -> Result<(), HandshakeError> {
        for answer in answers {
            let factory = self
                .config
                .extensions
                .iter()
                .find(|f| f.name() == answer.name)
                .ok_or(HandshakeError::UnexpectedExtension)?;
            let ext = factory
                .confirm(answer)
                .map_err(HandshakeError::ExtensionRefused)?;
            self.add_extension(ext)
                .ok_or(HandshakeError::UnexpectedExtension)?;
        }
        Ok(())
    }

    /// Adds a negotiated extension unless its RSV bits clash with one already in effect.
    fn add_extension(&mut self, ext: Box<dyn Extension>) -> Option<()> {
        let bits = ext.rsv_bits();
        if bits & self.extension_rsv != 0 {
            return None;
        }
        self.extension_rsv |= bits;
        if let Some(after) = ext.hibernate_after() {
            self.hibernate_after = Some(self.hibernate_after.map_or(after, |a| a.min(after)));
        }
        self.extensions.push(ext);
        Some(())
    }

    fn handshake_failed(&mut self, error: HandshakeError) {
        if self.role == Role::Server {
            if let Some(response) = error.to_response() {
                self.out.push_vec(response);
            }
        }
        self.events.push_back(Event::Error(Error::Handshake(error)));
        self.end_handshake_unsuccessfully();
        if self.role == Role::Client {
            // Nothing to say to a server that broke the handshake: just close.
            self.terminate();
        }
    }

    /// The handshake ends without a connection (an error response was queued, or nothing):
    /// the close timer bounds the wait for the peer's EOF after our shutdown.
    pub(super) fn end_handshake_unsuccessfully(&mut self) {
        self.phase = Phase::Closed {
            end: End::Failed(crate::close::CloseFrame {
                code: crate::close::CloseCode::ABNORMAL,
                reason: String::new(),
            }),
            terminated: false,
        };
        self.early_input = Vec::new();
        self.rx = super::recv::Rx::Discard;
        self.start_close_timer();
    }

    /// Whether an upgrade request waits for [`accept`](Self::accept) or
    /// [`reject`](Self::reject).
    fn awaits_answer(&self) -> bool {
        matches!(&self.phase, Phase::Connecting(h) if matches!(**h, Handshake::ServerPending(_)))
    }

    fn open(&mut self, negotiated: Negotiated) {
        self.phase = Phase::Open;
        self.out.release_kept_once_drained();
        self.timers.stop(Timer::Handshake);
        if let Some(interval) = self.keepalive_interval() {
            self.timers.start(Timer::Ping, self.now, interval);
        }
        self.events.push_back(Event::Open(Box::new(negotiated)));
    }

    // ----------------------------------------------------------------------------------------
    // The server's decision
    // ----------------------------------------------------------------------------------------

    /// Server: accepts the pending upgrade request at `now`, queues the `101` response and
    /// opens the connection (keepalive starts counting from `now`). Extensions are negotiated
    /// from [`Config::extensions`]; frames the client sent right after its request are
    /// processed now.
    ///
    /// Errors: [`AnswerError::NoPendingRequest`] when no [`Event::Request`] waits for an answer.
    pub fn accept(&mut self, accept: super::Accept, now: Instant) -> Result<(), AnswerError> {
        if !self.awaits_answer() {
            return Err(AnswerError::NoPendingRequest);
        }
        let Phase::Connecting(handshake) = std::mem::replace(&mut self.phase, Phase::Open) else {
            unreachable!("checked by awaits_answer");
        };
        let Handshake::ServerPending(request) = *handshake else {
            unreachable!("checked by awaits_answer");
        };
        self.advance_clock(now);
        let offered = |p: &String| request.subprotocols.contains(p);
        let subprotocol = accept.subprotocol.filter(offered).or_else(|| {
            self.config
                .subprotocols
                .iter()
                .find(|p| request.subprotocols.contains(p))
                .cloned()
        });
        let mut answers = Vec::new();
        let factories = self.config.extensions.clone();
        for factory in &factories {
            let accepted = request
                .extensions
                .iter()
                .filter(|offer| offer.name == factory.name())
                .find_map(|offer| factory.accept(offer));
            if let Some((ext, answer)) = accepted {
                if self.add_extension(ext).is_some() {
                    answers.push(answer);
                }
            }
        }
        let header = answers
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        let response = handshake::response_101(
            &request.key,
            subprotocol.as_deref(),
            (!header.is_empty()).then_some(header.as_str()),
            &accept.headers,
        );
        self.out.push_vec(response);
        let request = *request;
        self.open(Negotiated {
            subprotocol,
            extensions: answers,
            headers: request.headers,
        });
        let early = std::mem::take(&mut self.early_input);
        self.receive_frames(&early);
        Ok(())
    }

    /// Server: refuses the pending upgrade request at `now` with an HTTP error response (e.g.
    /// 403 for a disallowed Origin); the connection then closes. `status` must be 300–599:
    /// anything else (a 101 or a 200 above all) would not refuse the request.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_proto::{AnswerError, Config, Connection, Event};
    /// let now = Instant::now();
    /// let mut server = Connection::server(Config::default(), now);
    /// server.receive(b"GET /chat HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n\
    ///     Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    ///     Sec-WebSocket-Version: 13\r\nOrigin: http://evil.example\r\n\r\n", now);
    /// let Some(Event::Request(request)) = server.poll_event() else { panic!() };
    /// assert_eq!(request.origin.as_deref(), Some("http://evil.example"));
    /// assert_eq!(server.reject(101, "", now), Err(AnswerError::InvalidStatus(101)));
    /// server.reject(403, "origin not allowed", now).unwrap();
    /// assert!(server.pending_output().starts_with(b"HTTP/1.1 403 Forbidden\r\n"));
    /// ```
    pub fn reject(&mut self, status: u16, body: &str, now: Instant) -> Result<(), AnswerError> {
        if !self.awaits_answer() {
            return Err(AnswerError::NoPendingRequest);
        }
        if !(300..=599).contains(&status) {
            return Err(AnswerError::InvalidStatus(status));
        }
        self.advance_clock(now);
        self.out
            .push_vec(handshake::error_response(status, &[], body));
        self.end_handshake_unsuccessfully();
        Ok(())
    }

    /// Server: answers a plain HTTP request ([`Event::HttpRequest`]) at `now` with a complete
    /// response (`Connection: close`); the connection then closes.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_proto::{Config, Connection, Event};
    /// let now = Instant::now();
    /// let mut config = Config::default();
    /// config.plain_http = true;
    /// let mut server = Connection::server(config, now);
    /// server.receive(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n", now);
    /// assert!(matches!(server.poll_event(), Some(Event::HttpRequest(r)) if r.path == "/"));
    /// server.respond(200, "text/html; charset=utf-8", b"<h1>hi</h1>", now).unwrap();
    /// assert!(server.pending_output().starts_with(b"HTTP/1.1 200 OK\r\n"));
    /// ```
    pub fn respond(
        &mut self,
        status: u16,
        content_type: &str,
        body: &[u8],
        now: Instant,
    ) -> Result<(), AnswerError> {
        if !matches!(&self.phase, Phase::Connecting(h) if matches!(**h, Handshake::ServerHttpPending))
        {
            return Err(AnswerError::NoPendingRequest);
        }
        self.advance_clock(now);
        self.out
            .push_vec(handshake::http_response(status, content_type, &[], body));
        self.end_handshake_unsuccessfully();
        Ok(())
    }
}

/// A GET request that does not ask for a WebSocket upgrade.
fn is_plain_get(request: &Request) -> bool {
    request.method == Method::Get
        && !request
            .headers
            .get("upgrade")
            .is_some_and(|v| handshake::has_token(v, "websocket"))
}
