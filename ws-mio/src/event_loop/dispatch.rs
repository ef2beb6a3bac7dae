//! Delivering a connection's protocol events to the application: the factory decides on
//! requests, the connection's handler gets everything after the handshake.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use ws_proto::handshake::{Request, UpgradeRequest};
use ws_proto::{CloseCode, Event, Negotiated};

use super::conn::Conn;
use super::{guarded, EventLoop, NEXT_SESSION_ID};
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
                    answer_request(&*self.factory, conn, &request, now);
                    Some(())
                }
                Event::HttpRequest(request) => {
                    answer_http(&*self.factory, conn, &request, now);
                    Some(())
                }
                Event::Open(negotiated) => self.open(key, *negotiated),
                Event::Text(text) => with_handler(conn, |h, s| {
                    h.on_message(s, Message::Text(text));
                }),
                Event::Binary(data) => with_handler(conn, |h, s| {
                    h.on_message(s, Message::Binary(data));
                }),
                Event::Ping(payload) => with_handler(conn, |h, s| h.on_ping(s, &payload)),
                Event::Pong(payload) => with_handler(conn, |h, s| h.on_pong(s, &payload)),
                Event::Close(_) => {
                    if let Some(s) = &conn.session {
                        s.shared.open.store(false, Ordering::Release);
                    }
                    Some(())
                }
                Event::Error(error) if conn.error.is_none() => {
                    let reported = DriverError::Protocol(error.clone());
                    // A peer vanishing is reported by on_close (1006), not as an error.
                    let returned = if error == ws_proto::Error::ConnectionReset {
                        Some(())
                    } else if conn.session.is_some() {
                        with_handler(conn, |h, s| h.on_error(s, &reported))
                    } else {
                        let peer = conn.peer;
                        guarded(|| self.factory.on_error(Some(peer), &reported))
                    };
                    if let Some(conn) = self.conns.get_mut(key) {
                        conn.error = Some(reported);
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
                open: AtomicBool::new(true),
                pending: AtomicUsize::new(0),
                limit: self.config.protocol.max_buffered_output,
                policy: self.config.backpressure,
                refused: AtomicBool::new(false),
                handle: Arc::clone(&self.handle),
            }),
        };
        conn.session = Some(session.clone());
        let returned = with_handler(conn, |h, s| h.on_open(s));
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
        conn.error = Some(DriverError::HandlerPanicked);
        let _ = conn.proto.fail(CloseCode::INTERNAL_ERROR, now);
        // A failed connection processes nothing more (§7.1.7): what was received behind the
        // message that panicked is not delivered.
        while conn.proto.poll_event().is_some() {}
        with_handler(conn, |h, s| h.on_error(s, &DriverError::HandlerPanicked));
    }
}

/// Runs a callback of the connection's handler with its session, catching a panic. Without
/// a handler or a session (not open yet) there is nothing to call.
pub(super) fn with_handler<H: Handler>(
    conn: &mut Conn<H>,
    callback: impl FnOnce(&mut H, &Session),
) -> Returned {
    match (&mut conn.handler, &conn.session) {
        (Some(handler), Some(session)) => guarded(|| callback(handler, session)),
        _ => Some(()),
    }
}

/// The factory decides on an upgrade request; a panic there is answered with 500.
fn answer_request<F: Factory>(
    factory: &F,
    conn: &mut Conn<F::Handler>,
    request: &UpgradeRequest,
    now: Instant,
) {
    let peer: SocketAddr = conn.peer;
    let decision =
        guarded(|| factory.on_request(request, peer)).unwrap_or_else(|| Decision::reject(500, ""));
    let _ = match decision {
        Decision::Accept(accept, handler) => {
            conn.handler = Some(handler);
            conn.proto.accept(accept, now)
        }
        Decision::Reject { status, body } => conn
            .proto
            .reject(status, &body, now)
            .or_else(|_| conn.proto.reject(500, &body, now)),
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
    let response = guarded(|| factory.on_http_request(request, peer))
        .unwrap_or_else(|| HttpResponse::new(500, "text/plain; charset=utf-8", Vec::new()));
    let _ = conn
        .proto
        .respond(response.status, &response.content_type, &response.body, now);
}
