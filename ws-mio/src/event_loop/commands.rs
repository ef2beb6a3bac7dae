//! Commands posted to a loop (sends from sessions, broadcasts, sockets handed over by the
//! listener, shutdown), and the hand-over of sends to the protocol core under the output limit.

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use log::debug;
use ws_proto::{fits_output_limit, CloseCode, PreparedMessage, SendError, State};

use super::conn::{Closer, Conn};
use super::{EventLoop, LoopConfig};
use crate::config::BackpressurePolicy;
use crate::handler::{DriverError, Factory};
use crate::session::{Command, LoopHandle, Outgoing};
use crate::slab::Key;

impl<F: Factory> EventLoop<F> {
    /// Applies the commands other threads posted.
    pub(super) fn drain_commands(&mut self, now: Instant) {
        while let Ok(command) = self.rx.try_recv() {
            self.apply(command, now);
        }
    }

    /// Applies the commands callbacks posted on this thread.
    pub(super) fn apply_local(&mut self, now: Instant) {
        loop {
            LoopHandle::take_local(&mut self.local);
            if self.local.is_empty() {
                return;
            }
            let mut local = std::mem::take(&mut self.local);
            for command in local.drain(..) {
                self.apply(command, now);
            }
            self.local = local;
        }
    }

    fn apply(&mut self, command: Command, now: Instant) {
        match command {
            Command::Send(key, outgoing) => {
                let Some(conn) = self.conns.get_mut(key) else {
                    return;
                };
                conn.deferred.push_back(outgoing);
                hand_over(conn, &self.config, now);
                self.mark_dirty(key);
            }
            Command::Broadcast(message) => self.broadcast(&message, now),
            Command::Adopt(stream, peer, tls) => self.add_server_conn(stream, peer, &tls, now),
            Command::Listen(listener) => self.add_listener(*listener),
            Command::Shutdown(code) => self.begin_stop(code, now),
        }
    }

    fn broadcast(&mut self, message: &PreparedMessage, now: Instant) {
        self.handle
            .broadcast_queued
            .fetch_sub(message.wire_len(), Ordering::AcqRel);
        let limit = self.config.protocol.max_buffered_output;
        for key in self.conns.keys() {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            if conn.session.is_none() || conn.proto.state() != State::Open {
                continue;
            }
            let fits = fits_output_limit(conn.proto.buffered_amount(), message.wire_len(), limit);
            if !fits || !conn.deferred.is_empty() {
                if let BackpressurePolicy::Close(code) = self.config.backpressure {
                    let buffered = conn.proto.buffered_amount();
                    let _ =
                        conn.fail_slow_consumer(code, (buffered, message.wire_len(), limit), now);
                    self.mark_dirty(key);
                }
                continue;
            }
            let _ = conn.proto.send_prepared(message);
            self.mark_dirty(key);
        }
    }

    pub(super) fn mark_dirty(&mut self, key: Key) {
        if let Some(conn) = self.conns.get_mut(key) {
            if !conn.dirty {
                conn.dirty = true;
                self.dirty.push(key);
            }
        }
    }

    pub(super) fn flush_dirty(&mut self, now: Instant) {
        while !self.dirty.is_empty() {
            std::mem::swap(&mut self.dirty, &mut self.scratch);
            for i in 0..self.scratch.len() {
                self.update(self.scratch[i], now);
            }
            self.scratch.clear();
        }
    }

    fn begin_stop(&mut self, code: CloseCode, now: Instant) {
        if self.stop_deadline.is_some() {
            return;
        }
        // A timeout too large for `Instant` waits as long as the closing handshakes take.
        let far = now + Duration::from_secs(100 * 365 * 24 * 3600);
        self.stop_deadline = Some(now.checked_add(self.config.stop_timeout).unwrap_or(far));
        for mut l in std::mem::take(&mut self.listeners) {
            let _ = self.poll.registry().deregister(&mut l.listener);
        }
        debug!(
            "event loop {} stopping with {} connections: closing the open ones with {code}",
            self.id,
            self.conns.len()
        );
        for key in self.conns.keys() {
            let Some(conn) = self.conns.get_mut(key) else {
                continue;
            };
            match conn.proto.state() {
                State::Open => {
                    if conn.proto.close(code, "", now).is_ok() {
                        conn.closed_by(Closer::Stopping);
                    }
                    self.mark_dirty(key);
                }
                State::Connecting => {
                    conn.error.get_or_insert(DriverError::Shutdown);
                    self.remove(key);
                }
                State::Closing | State::Closed => {}
            }
        }
    }
}

/// Hands the connection the sends posted for it, in order. With the `Error` policy, a message
/// the connection has no room for yet stays in `deferred` (still counted in the session's
/// `pending`) until writes make room: the session admitted it, so it must not be lost. The
/// session's check can pass what the connection's refuses (sends still in the channel count
/// their payload without frame headers, automatic control frames join the buffer unseen,
/// several threads may send at once), so this does happen.
pub(super) fn hand_over<H>(conn: &mut Conn<H>, config: &LoopConfig, now: Instant) {
    let limit = config.protocol.max_buffered_output;
    while let Some(next) = conn.deferred.front() {
        let fits = fits_output_limit(conn.proto.buffered_amount(), next.len(), limit);
        if config.backpressure == BackpressurePolicy::Error && next.is_limited() && !fits {
            return;
        }
        let Some(outgoing) = conn.deferred.pop_front() else {
            return;
        };
        let len = outgoing.len();
        let result = match outgoing {
            Outgoing::Text(text) => conn.proto.send_text(text),
            Outgoing::Binary(data) => conn.proto.send_binary(data),
            Outgoing::Prepared(message) => conn.proto.send_prepared(&message),
            Outgoing::Ping(payload) => conn.proto.ping(&payload),
            Outgoing::Close(code, reason) => {
                let closed = conn.proto.close(code, &reason, now);
                if closed.is_ok() {
                    conn.closed_by(Closer::Us);
                }
                closed
            }
            Outgoing::Fail {
                code,
                buffered,
                refused,
            } => conn.fail_slow_consumer(code, (buffered, refused, limit), now),
        };
        if let Err(SendError::BufferFull { buffered, .. }) = result {
            if let BackpressurePolicy::Close(code) = config.backpressure {
                let _ = conn.fail_slow_consumer(code, (buffered, len, limit), now);
            }
        }
        sync_pending(conn, len);
    }
}

/// Brings the session's `pending` count in line with the output buffer, `handed` bytes of
/// posted sends having moved into it since the last call.
pub(super) fn sync_pending<H>(conn: &mut Conn<H>, handed: usize) {
    let Some(session) = &conn.session else {
        return;
    };
    let buffered = conn.proto.buffered_amount();
    let gone = conn.reported + handed;
    if buffered >= gone {
        session
            .shared
            .pending
            .fetch_add(buffered - gone, Ordering::AcqRel);
    } else {
        session
            .shared
            .pending
            .fetch_sub(gone - buffered, Ordering::AcqRel);
    }
    conn.reported = buffered;
}
