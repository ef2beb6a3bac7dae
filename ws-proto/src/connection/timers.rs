//! The connection's timers: one deadline per kind in one table.
//!
//! Every input carries the time, so a timer starts at the moment of the event that starts it
//! and [`TimerTable::next`] is always a real deadline.

use std::time::{Duration, Instant};

use rand::RngCore;

use super::closing::End;
use super::{Connection, Event, Phase};
use crate::error::{Error, TimeoutKind};
use crate::frame::OpCode;

/// The timers a connection runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    /// The opening handshake must complete by then ([`crate::Config::handshake_timeout`]).
    Handshake,
    /// The closing handshake (or the peer's TCP close) must complete by then
    /// ([`crate::Config::close_timeout`]).
    Close,
    /// The next keepalive ping is due ([`crate::Config::ping_interval`]).
    Ping,
    /// The pong to the outstanding keepalive ping must arrive by then
    /// ([`crate::Config::ping_timeout`]).
    Pong,
    /// No data message for a while: the extensions free what they can rebuild
    /// ([`crate::extension::Extension::hibernate`]).
    Hibernate,
}

const TIMERS: usize = 5;

impl Timer {
    fn index(self) -> usize {
        match self {
            Timer::Handshake => 0,
            Timer::Close => 1,
            Timer::Ping => 2,
            Timer::Pong => 3,
            Timer::Hibernate => 4,
        }
    }
}

/// One optional deadline per [`Timer`].
#[derive(Debug, Default, Clone)]
pub(super) struct TimerTable {
    deadlines: [Option<Instant>; TIMERS],
}

impl TimerTable {
    /// Starts (or restarts) `timer` to expire `after` from `now`. A duration too large for
    /// `Instant` (e.g. `Duration::MAX`) means "never": the timer is stopped.
    pub(super) fn start(&mut self, timer: Timer, now: Instant, after: Duration) {
        self.deadlines[timer.index()] = now.checked_add(after);
    }

    pub(super) fn is_running(&self, timer: Timer) -> bool {
        self.deadlines[timer.index()].is_some()
    }

    pub(super) fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    pub(super) fn stop_all(&mut self) {
        self.deadlines = [None; TIMERS];
    }

    /// Whether `timer` is running and its deadline is reached; stops it if so.
    pub(super) fn expire(&mut self, timer: Timer, now: Instant) -> bool {
        let slot = &mut self.deadlines[timer.index()];
        if slot.is_some_and(|at| now >= at) {
            *slot = None;
            true
        } else {
            false
        }
    }

    /// The earliest deadline, if any timer runs.
    pub(super) fn next(&self) -> Option<Instant> {
        self.deadlines.iter().flatten().min().copied()
    }
}

impl Connection {
    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout) has work to do;
    /// `None` when no timer runs. Always a real deadline: every input that starts a timer
    /// carries the time, so nothing waits for a later call to start.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.next()
    }

    /// A data message went out or came in through the extensions. The hibernate timer, when
    /// it expires, sees this and waits another period instead of hibernating: the extensions
    /// hibernate after one to two periods without a message. (Sends carry no time, so the
    /// timer is never restarted from them: it would start from a stale `now`.)
    pub(super) fn note_extension_activity(&mut self) {
        if let Some(after) = self.hibernate_after {
            self.extension_activity = true;
            if !self.timers.is_running(Timer::Hibernate) {
                self.timers.start(Timer::Hibernate, self.now, after);
            }
        }
    }

    /// The keepalive ping interval, if keepalive is on (a zero interval is off: it would
    /// leave a deadline that is always due).
    pub(super) fn keepalive_interval(&self) -> Option<Duration> {
        self.config.ping_interval.filter(|i| !i.is_zero())
    }

    /// Tells the connection the time, when [`poll_timeout`](Self::poll_timeout) is reached
    /// (calling it earlier, or more often, is harmless). Expired timers send keepalive pings
    /// or end the connection; poll events and output afterwards.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_terminated() {
            return;
        }
        self.advance_clock(now);
        let now = self.now;
        if self.timers.expire(Timer::Handshake, now) {
            self.events
                .push_back(Event::Error(Error::Timeout(TimeoutKind::Handshake)));
            self.end_handshake_unsuccessfully();
            return self.terminate();
        }
        if self.timers.expire(Timer::Close, now) {
            if !matches!(self.phase, Phase::Closed { .. }) {
                // Our close frame was never answered (§7.1.5: the close code is then 1006).
                self.events
                    .push_back(Event::Error(Error::Timeout(TimeoutKind::Close)));
                self.phase = Phase::Closed {
                    end: End::Abnormal,
                    terminated: false,
                };
            }
            return self.terminate();
        }
        if self.timers.expire(Timer::Pong, now) {
            // Keepalive is over: the failure may wait behind queued events, and no ping may go
            // out meanwhile.
            self.timers.stop(Timer::Ping);
            return self.fail_with(Error::Timeout(TimeoutKind::Pong));
        }
        if self.timers.expire(Timer::Hibernate, now) {
            match (
                std::mem::take(&mut self.extension_activity),
                self.hibernate_after,
            ) {
                (true, Some(after)) => self.timers.start(Timer::Hibernate, now, after),
                _ => {
                    for extension in &mut self.extensions {
                        extension.hibernate();
                    }
                }
            }
        }
        if self.timers.expire(Timer::Ping, now) {
            if let Some(interval) = self.keepalive_interval() {
                self.timers.start(Timer::Ping, now, interval);
            }
            if self.ping_payload.is_none() {
                let mut payload = [0u8; 4];
                rand::rng().fill_bytes(&mut payload);
                self.queue_frame(OpCode::Ping, 0, &payload);
                self.ping_payload = Some(payload);
                self.timers
                    .start(Timer::Pong, now, self.config.ping_timeout);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_is_the_earliest_running_deadline() {
        let now = Instant::now();
        let mut table = TimerTable::default();
        assert_eq!(table.next(), None);
        table.start(Timer::Close, now, Duration::from_secs(10));
        table.start(Timer::Ping, now, Duration::from_secs(3));
        assert_eq!(table.next(), Some(now + Duration::from_secs(3)));
        table.stop(Timer::Ping);
        assert_eq!(table.next(), Some(now + Duration::from_secs(10)));
    }

    #[test]
    fn expire_fires_once_at_or_after_the_deadline() {
        let now = Instant::now();
        let mut table = TimerTable::default();
        table.start(Timer::Pong, now, Duration::from_secs(1));
        assert!(!table.expire(Timer::Pong, now + Duration::from_millis(999)));
        assert!(table.expire(Timer::Pong, now + Duration::from_secs(1)));
        assert!(!table.expire(Timer::Pong, now + Duration::from_secs(2)));
        assert_eq!(table.next(), None);
    }

    #[test]
    fn a_duration_too_large_for_instant_means_never() {
        let now = Instant::now();
        let mut table = TimerTable::default();
        table.start(Timer::Close, now, Duration::MAX);
        assert_eq!(table.next(), None);
    }
}
