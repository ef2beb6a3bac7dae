//! Ending a connection (§7): the closing handshake from either side, failing the connection,
//! the peer's EOF, and how the connection ended.

use std::time::Instant;

use super::recv::Rx;
use super::timers::Timer;
use super::{Connection, Event, Phase};
use crate::close::{check_close, CloseCode, CloseFrame};
use crate::error::{Error, SendError};
use crate::frame::OpCode;

/// How a closed connection ended.
#[derive(Debug)]
pub(super) enum End {
    /// The closing handshake: the peer's close frame (ours was sent before it or echoed).
    Closed(CloseFrame),
    /// We failed the connection (§7.1.7) with this code: a protocol violation, the
    /// application's `fail`, a keepalive timeout; 1006 for a failed or refused handshake.
    /// We close TCP first whatever our role.
    Failed(CloseFrame),
    /// TCP closed, or the close timer expired, before the closing handshake (1006, §7.1.5).
    Abnormal,
}

/// The close status reported for [`End::Abnormal`].
static ABNORMAL: CloseFrame = CloseFrame {
    code: CloseCode::ABNORMAL,
    reason: String::new(),
};

impl End {
    /// The status [`Connection::close_status`] reports.
    pub(super) fn close_frame(&self) -> &CloseFrame {
        match self {
            End::Closed(frame) | End::Failed(frame) => frame,
            End::Abnormal => &ABNORMAL,
        }
    }

    pub(super) fn is_failure(&self) -> bool {
        matches!(self, End::Failed(_))
    }
}

/// How the peer ended the connection: a protocol violation, or its close frame.
#[derive(Debug)]
pub(super) enum Ending {
    Failure(Error),
    PeerClose(CloseFrame),
}

/// An [`Ending`] found while `ahead` events were still queued before it.
#[derive(Debug)]
pub(super) struct Deferred {
    pub(super) ahead: usize,
    pub(super) ending: Ending,
}

impl Connection {
    /// Starts the closing handshake (§7.1.2) with a code and a reason of at most 123 bytes.
    /// The connection moves to [`State::Closing`](crate::State::Closing) and waits, up to
    /// [`Config::close_timeout`](crate::Config::close_timeout) from `now`, for the peer's close
    /// frame.
    ///
    /// ```
    /// use std::time::Instant;
    /// use ws_proto::{ClientRequest, CloseCode, Config, Connection, SendError};
    /// let now = Instant::now();
    /// let mut client = Connection::client(Config::default(), ClientRequest::new("h", "/"), now);
    /// assert_eq!(client.close(CloseCode::NORMAL, "", now), Err(SendError::NotOpen));
    /// ```
    pub fn close(&mut self, code: CloseCode, reason: &str, now: Instant) -> Result<(), SendError> {
        check_close(code, reason)?;
        match self.phase {
            Phase::Connecting(_) => return Err(SendError::NotOpen),
            Phase::Closing | Phase::Closed { .. } => return Err(SendError::Closed),
            Phase::Open => {}
        }
        self.advance_clock(now);
        let frame = CloseFrame {
            code,
            reason: reason.to_owned(),
        };
        self.queue_frame(OpCode::Close, 0, &frame.payload());
        self.phase = Phase::Closing;
        self.start_close_timer();
        Ok(())
    }

    /// Fails the connection (§7.1.7): sends a close frame with `code` (if none was sent yet) and
    /// closes TCP without waiting for the peer's close frame. During the handshake it just
    /// closes. Use it when the application finds the peer misbehaving (e.g. 1008).
    pub fn fail(&mut self, code: CloseCode, now: Instant) -> Result<(), SendError> {
        if !code.is_sendable() {
            return Err(SendError::InvalidCloseCode(code.as_u16()));
        }
        self.advance_clock(now);
        match self.phase {
            Phase::Closed { .. } => Err(SendError::Closed),
            Phase::Connecting(_) => {
                self.end_handshake_unsuccessfully();
                Ok(())
            }
            Phase::Open | Phase::Closing => {
                // The application's failure supersedes an ending still waiting behind events.
                self.deferred = None;
                self.fail_connection(code);
                Ok(())
            }
        }
    }

    /// Tells the connection the peer closed its side of TCP (a read returned 0), at `now`.
    pub fn receive_eof(&mut self, now: Instant) {
        if self.is_terminated() {
            return;
        }
        self.advance_clock(now);
        // An ending still waiting behind queued messages (the peer's close, or its violation)
        // came before the EOF: it takes effect now, in its place in the event order, and is
        // the one ending reported.
        if let Some(deferred) = self.deferred.take() {
            let event = self.apply_ending(deferred.ending);
            self.events.insert(deferred.ahead, event);
        }
        if !matches!(self.phase, Phase::Closed { .. }) {
            self.events.push_back(Event::Error(Error::ConnectionReset));
            self.phase = Phase::Closed {
                end: End::Abnormal,
                terminated: false,
            };
        }
        self.terminate();
    }

    /// The connection is over for the driver too: it drops the socket. No timer runs any more.
    pub(super) fn terminate(&mut self) {
        self.rx = Rx::Discard;
        self.message = None;
        self.timers.stop_all();
        match &mut self.phase {
            Phase::Closed { terminated, .. } => *terminated = true,
            _ => {
                self.phase = Phase::Closed {
                    end: End::Abnormal,
                    terminated: true,
                }
            }
        }
    }

    /// Starts the close timer: from now on only the peer's close frame or EOF is awaited.
    /// Keepalive and the handshake timer end here.
    pub(super) fn start_close_timer(&mut self) {
        self.timers
            .start(Timer::Close, self.now, self.config.close_timeout);
        self.timers.stop(Timer::Handshake);
        self.timers.stop(Timer::Ping);
        self.timers.stop(Timer::Pong);
        self.ping_payload = None;
    }

    pub(super) fn fail_with(&mut self, error: Error) {
        self.apply_or_defer(Ending::Failure(error));
    }

    /// Ends the connection now, or, if messages received before the ending are still queued,
    /// once the application has polled them: what it sends in reply to them then goes out
    /// before the close frame. Reading stops at once either way.
    pub(super) fn apply_or_defer(&mut self, ending: Ending) {
        if self.deferred.is_some() {
            return;
        }
        if self.events.is_empty() {
            let event = self.apply_ending(ending);
            self.events.push_back(event);
        } else {
            self.rx = Rx::Discard;
            self.message = None;
            self.deferred = Some(Deferred {
                ahead: self.events.len(),
                ending,
            });
        }
    }

    pub(super) fn apply_ending(&mut self, ending: Ending) -> Event {
        match ending {
            Ending::Failure(error) => {
                self.fail_connection(error.close_code());
                Event::Error(error)
            }
            Ending::PeerClose(frame) => self.peer_closed(frame),
        }
    }

    /// The peer's close frame takes effect.
    fn peer_closed(&mut self, frame: CloseFrame) -> Event {
        // §5.5.1: "If an endpoint receives a Close frame and did not previously send a Close
        // frame, the endpoint MUST send a Close frame in response." It echoes the code.
        if matches!(self.phase, Phase::Open) {
            let echo = CloseFrame {
                code: frame.code,
                reason: String::new(),
            };
            self.queue_frame(OpCode::Close, 0, &echo.payload());
        }
        if let Phase::Closed { terminated, .. } = self.phase {
            // Terminated in the meantime (the close timer): the frame is only reported.
            self.phase = Phase::Closed {
                end: End::Closed(frame.clone()),
                terminated,
            };
            return Event::Close(frame);
        }
        self.phase = Phase::Closed {
            end: End::Closed(frame.clone()),
            terminated: false,
        };
        self.rx = Rx::Discard;
        self.message = None;
        self.start_close_timer();
        Event::Close(frame)
    }

    fn fail_connection(&mut self, code: CloseCode) {
        // §7.1.7: "the endpoint MUST _Close the WebSocket Connection_, and MAY report the
        // problem": a close frame first unless one was already sent.
        let frame = CloseFrame {
            code,
            reason: String::new(),
        };
        if matches!(self.phase, Phase::Open) {
            self.queue_frame(OpCode::Close, 0, &frame.payload());
        }
        self.phase = Phase::Closed {
            end: End::Failed(frame),
            terminated: self.is_terminated(),
        };
        self.rx = Rx::Discard;
        self.message = None;
        if !self.is_terminated() {
            self.start_close_timer();
        }
    }
}
