//! Delivering a connection's protocol events to the application: the factory decides on
//! requests, the connection's handler gets everything after the handshake.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use log::{debug, error, trace};
use ws_proto::handshake::{Request, UpgradeRequest};
use ws_proto::{CloseCode, Event, Negotiated};

use super::conn::{role_name, Closer, Conn, Quoted};
use super::{factory_on_error, guarded, EventLoop, NEXT_SESSION_ID};
use crate::handler::{Decision, DriverError, Factory, Handler, HttpResponse, Message};
use crate::session::{Session, Shared};
use crate::slab::Key;

/// Whether a callback returned (`Some`) or panicked (`None`).
type Returned = Option<()>;

impl<F: Factory> EventLoop<F> {
    /// Delivers the connection's events, applying what each callback sent before taking the
    /// next event. A callback that panics fails its connection with 1011.
    pub(super) fn dispatch(&mut self, key: Key, now: Instant) {
        while let Some(conn) = self.conns.get_mut(key) {
            let Some(event) = conn.proto.poll_event() else {
                break;
            };
            let returned = match event {
                Event::Request(request) => {
                    answer_request(&*self.factory, conn, *request, now);
                    Some(())
                }
                Event::HttpRequest(request) => {
                    answer_http(&*self.factory, conn, &request, now);
                    Some(())
                }
                Event::Open(negotiated) => self.open(key, *negotiated),
                // Per message: trace only, and never the content.
                Event::Text(text) => {
                    trace!("text message: peer={} bytes={}", conn.peer, text.len());
                    with_handler(conn, "on_message", |h, s| {
                        h.on_message(s, Message::Text(text));
                    })
                }
                Event::Binary(data) => {
                    trace!("binary message: peer={} bytes={}", conn.peer, data.len());
                    with_handler(conn, "on_message", |h, s| {
                        h.on_message(s, Message::Binary(data));
                    })
                }
                Event::Ping(payload) => {
                    trace!("ping: peer={} bytes={}", conn.peer, payload.len());
                    with_handler(conn, "on_ping", |h, s| h.on_ping(s, &payload))
                }
                Event::Pong(payload) => {
                    trace!("pong: peer={} bytes={}", conn.peer, payload.len());
                    with_handler(conn, "on_pong", |h, s| h.on_pong(s, &payload))
                }
                Event::Close(frame) => {
                    trace!(
                        "close frame: peer={} code={} reason={:?}",
                        conn.peer,
                        frame.code,
                        frame.reason
                    );
                    conn.closed_by(Closer::Peer);
                    if let Some(s) = &conn.session {
                        s.shared.open.store(false, Ordering::Release);
                    }
                    Some(())
                }
                Event::Error(error) if conn.error.is_none() => {
                    let reported = DriverError::Protocol(error.clone());
                    if conn.session.is_some() && error.close_code() != CloseCode::ABNORMAL {
                        // The protocol layer failed the open connection with a close code (a
                        // violation by the peer, a keepalive timeout).
                        conn.closed_by(Closer::Failing);
                    }
                    if conn.session.is_none() && conn.notify.is_none() {
                        log_refusal(conn, &error);
                    }
                    // A peer vanishing is reported by on_close (1006), not as an error.
                    let returned = if error == ws_proto::Error::ConnectionReset {
                        Some(())
                    } else if conn.session.is_some() {
                        with_handler(conn, "on_error", |h, s| h.on_error(s, &reported))
                    } else {
                        factory_on_error(&*self.factory, Some(conn.peer), &reported)
                    };
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.error.set(reported);
                    }
                    returned
                }
                _ => Some(()),
            };
            if returned.is_none() {
                self.handler_panicked(key, now);
            }
            // What the callback sent goes to the connection before the next event is taken:
            // a reply to a message must precede a failure that follows the message.
            self.apply_local(now);
        }
    }

    /// The handshake completed: the session is made and the handler told.
    fn open(&mut self, key: Key, negotiated: Negotiated) -> Returned {
        let conn = self.conns.get_mut(key)?;
        let session = Session {
            shared: Arc::new(Shared {
                id: NEXT_SESSION_ID.fetch_add(1, Ordering::Relaxed),
                key,
                peer: conn.peer,
                subprotocol: negotiated.subprotocol,
                extensions: negotiated.extensions.into_boxed_slice(),
                open: AtomicBool::new(true),
                pending: AtomicUsize::new(0),
                limit: self.config.protocol.max_buffered_output,
                policy: self.config.backpressure,
                refused: AtomicBool::new(false),
                handle: Arc::clone(&self.handle),
            }),
        };
        debug!(
            "{} connection open: peer={} path={} subprotocol={} extensions={}",
            role_name(conn.proto.role()),
            conn.peer,
            conn.path(),
            Quoted(session.subprotocol()),
            Extensions(session.extensions()),
        );
        conn.session = Some(session.clone());
        let returned = with_handler(conn, "on_open", |h, s| h.on_open(s));
        if let Some(notify) = conn.notify.take() {
            // A client whose `on_open` panicked is failing: `connect` says so.
            let outcome = returned
                .map(|()| session)
                .ok_or(DriverError::HandlerPanicked);
            let _ = notify.send(outcome);
        }
        returned
    }

    fn handler_panicked(&mut self, key: Key, now: Instant) {
        let Some(conn) = self.conns.get_mut(key) else {
            return;
        };
        if conn.error.is_some() {
            return;
        }
        conn.error.set(DriverError::HandlerPanicked);
        if conn.proto.fail(CloseCode::INTERNAL_ERROR, now).is_ok() {
            conn.closed_by(Closer::Failing);
        }
        // A failed connection processes nothing more (§7.1.7): what was received behind the
        // message that panicked is not delivered.
        while conn.proto.poll_event().is_some() {}
        with_handler(conn, "on_error", |h, s| {
            h.on_error(s, &DriverError::HandlerPanicked);
        });
    }
}

/// Runs callback `what` of the connection's handler with its session, catching (and
/// logging) a panic. Without a handler or a session (not open yet) there is nothing to call.
pub(super) fn with_handler<H: Handler>(
    conn: &mut Conn<H>,
    what: &'static str,
    callback: impl FnOnce(&mut H, &Session),
) -> Returned {
    let returned = match (&mut conn.handler, &conn.session) {
        (Some(handler), Some(session)) => guarded(|| callback(handler, session)),
        _ => Some(()),
    };
    if returned.is_none() {
        error!(
            "Handler::{what} panicked: peer={} path={}",
            conn.peer,
            conn.path()
        );
    }
    returned
}

/// Logs why a server connection without a session failed: its upgrade request was invalid
/// (refused with a 4xx by the protocol layer), the handshake timed out, the peer left.
fn log_refusal<H>(conn: &Conn<H>, error: &ws_proto::Error) {
    match error {
        ws_proto::Error::Handshake(e) => match e.http_status() {
            Some(status) => debug!(
                "upgrade refused: peer={} path={} status={status} error=\"{e}\"",
                conn.peer,
                conn.path(),
            ),
            None => debug!(
                "upgrade refused: peer={} path={} error=\"{e}\"",
                conn.peer,
                conn.path(),
            ),
        },
        ws_proto::Error::ConnectionReset => trace!(
            "connection closed before its handshake completed: peer={}",
            conn.peer
        ),
        other => debug!(
            "connection failed before its handshake completed: peer={} error=\"{other}\"",
            conn.peer
        ),
    }
}

/// The factory decides on an upgrade request; a panic there is answered with 500.
fn answer_request<F: Factory>(
    factory: &F,
    conn: &mut Conn<F::Handler>,
    mut request: UpgradeRequest,
    now: Instant,
) {
    let peer: SocketAddr = conn.peer;
    let who = conn.who();
    let decision = guarded(|| factory.on_request(&request, &who));
    // Kept for the log lines of the connection (moved, not copied).
    conn.path = Some(std::mem::take(&mut request.path));
    let decision = decision.unwrap_or_else(|| {
        error!(
            "Factory::on_request panicked: peer={peer} path={}; answered 500",
            conn.path()
        );
        Decision::reject(500, "")
    });
    let _ = match decision {
        Decision::Accept(accept, handler) => {
            conn.handler = Some(handler);
            conn.proto.accept(accept, now)
        }
        Decision::Reject { status, body } => {
            debug!(
                "upgrade rejected by the factory: peer={peer} path={} status={status} reason={:?}",
                conn.path(),
                body.trim_end(),
            );
            conn.proto
                .reject(status, &body, now)
                .or_else(|_| conn.proto.reject(500, &body, now))
        }
    };
}

/// The factory answers a plain HTTP request; a panic there is answered with 500.
fn answer_http<F: Factory>(
    factory: &F,
    conn: &mut Conn<F::Handler>,
    request: &Request,
    now: Instant,
) {
    let peer = conn.peer;
    let who = conn.who();
    let response = guarded(|| factory.on_http_request(request, &who)).unwrap_or_else(|| {
        error!(
            "Factory::on_http_request panicked: peer={peer} path={:?}; answered 500",
            request.path
        );
        HttpResponse::new(500, "text/plain; charset=utf-8", Vec::new())
    });
    debug!(
        "plain HTTP request answered: peer={peer} path={:?} status={}",
        request.path, response.status
    );
    let _ = conn
        .proto
        .respond(response.status, &response.content_type, &response.body, now);
}

/// The extensions in effect, as in the response header (`-` for none).
struct Extensions<'a>(&'a [ws_proto::handshake::ExtensionOffer]);

impl std::fmt::Display for Extensions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0.is_empty() {
            return f.write_str("-");
        }
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "\"{e}\"")?;
        }
        Ok(())
    }
}
