//! The threads that serve a server's event loops: threads follow the work, loops own the
//! connections.
//!
//! A server has one event loop per core, and each loop owns its connections for their whole
//! life (no connection state is shared between threads). What moves is the thread: any
//! thread of the crew may take a turn of any loop, one thread per loop at a time.
//!
//! Every loop's poller is registered in one more poller, the crew's. One thread at a time,
//! the leader, waits on it; the others sleep. When the leader wakes, it takes the turns of
//! the loops that have events itself. It wakes a sleeping thread for another waiting loop
//! only when the crew has had work without a pause for longer than a wake-up takes (both
//! measured as it runs): a crew that still pauses keeps up. So under light load one thread
//! serves every loop and finds the next message already waiting when it looks, instead of
//! every loop sleeping and being woken for each message. Under heavy load every thread is
//! busy, each with its own loop: the same parallelism as a thread per loop. This is the leader/followers pattern (Schmidt et al.,
//! *Pattern-Oriented Software Architecture*, vol. 2); tokio's scheduler works the same way
//! with its I/O driver.
//!
//! Unix only: it registers pollers in a poller (epoll in epoll, kqueue in kqueue). Elsewhere
//! each loop runs on a thread of its own ([`EventLoop::run`]).

use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, TryLockError};
use std::time::{Duration, Instant};

use log::error;
use mio::unix::SourceFd;
use mio::{Events, Interest, Poll, Token, Waker};

use super::EventLoop;
use crate::handler::Factory;
use crate::session::LoopHandle;

/// The crew's own waker (the loops' pollers have tokens 0..n).
const CREW_WAKER: Token = Token(usize::MAX);
/// "No deadline" in [`Slot::deadline`].
const NO_DEADLINE: u64 = u64::MAX;
/// What waking a sleeping thread is assumed to cost until the first one is measured: a
/// futex wake and a context switch, tens of µs on a virtual machine.
const INITIAL_WAKE_COST_NS: u64 = 20_000;

/// One loop and what the crew knows about it without taking its lock.
struct Slot<F: Factory> {
    /// The loop and its event storage; `None` once finished.
    event_loop: Mutex<Option<(EventLoop<F>, Events)>>,
    /// Its poller has reported events (or its deadline passed) and no turn has taken them yet.
    ready: AtomicBool,
    /// A thread is taking a turn of it.
    running: AtomicBool,
    /// When it needs a turn even without I/O, in µs after [`Crew::epoch`].
    deadline: AtomicU64,
}

/// A server's loops and the threads serving them.
pub(crate) struct Crew<F: Factory> {
    slots: Vec<Slot<F>>,
    /// The poller every loop's poller is registered in; whoever holds it is the leader.
    leader: Mutex<(Poll, Events)>,
    /// Wakes the leader: when a turn needs it sooner than it planned to wake, and when the
    /// last loop finishes.
    waker: Waker,
    /// Threads sleeping as followers, and their bell.
    sleepers: Mutex<usize>,
    bell: Condvar,
    /// When the bell last rang, in µs after `epoch`, and how long a woken follower takes to
    /// start working, in ns (a moving average, measured on each wake-up).
    rang_at: AtomicU64,
    wake_cost: AtomicU64,
    /// When the leader last came back from waiting for work, in µs after `epoch`: the crew
    /// has had work without a pause since then.
    resumed_at: AtomicU64,
    /// Loops not finished yet.
    live: AtomicUsize,
    /// When the leader's wait ends by itself, in µs after `epoch`, while it is about to wait
    /// or waiting (0 otherwise: it will look at every deadline before it waits). A turn that
    /// needs the leader sooner wakes it. With the deadlines, the one pair of atomics that
    /// needs `SeqCst`: each side stores, then loads the other's.
    leader_until: AtomicU64,
    epoch: Instant,
}

impl<F: Factory> Crew<F> {
    /// A crew for these loops.
    pub(crate) fn new(loops: Vec<EventLoop<F>>) -> std::io::Result<Arc<Crew<F>>> {
        let poll = Poll::new()?;
        let waker = Waker::new(poll.registry(), CREW_WAKER)?;
        let mut slots = Vec::with_capacity(loops.len());
        for (index, event_loop) in loops.into_iter().enumerate() {
            let fd = event_loop.poll.as_raw_fd();
            poll.registry()
                .register(&mut SourceFd(&fd), Token(index), Interest::READABLE)?;
            slots.push(Slot {
                event_loop: Mutex::new(Some((event_loop, Events::with_capacity(1024)))),
                // A first turn for each: a listener may have connections waiting already.
                ready: AtomicBool::new(true),
                running: AtomicBool::new(false),
                deadline: AtomicU64::new(NO_DEADLINE),
            });
        }
        Ok(Arc::new(Crew {
            live: AtomicUsize::new(slots.len()),
            leader_until: AtomicU64::new(0),
            slots,
            leader: Mutex::new((poll, Events::with_capacity(64))),
            waker,
            sleepers: Mutex::new(0),
            bell: Condvar::new(),
            rang_at: AtomicU64::new(0),
            wake_cost: AtomicU64::new(INITIAL_WAKE_COST_NS),
            resumed_at: AtomicU64::new(0),
            epoch: Instant::now(),
        }))
    }

    /// A crew thread's life: take turns of ready loops, lead when nobody does, sleep
    /// otherwise; return once every loop has finished.
    pub(crate) fn serve(&self, worker: usize) {
        let mut next = worker;
        while self.live.load(Ordering::Acquire) > 0 {
            if let Some(index) = self.claim(&mut next) {
                self.take_turn(index);
                continue;
            }
            match self.leader.try_lock() {
                Ok(mut leader) => {
                    let (poll, events) = &mut *leader;
                    self.lead(poll, events);
                }
                Err(TryLockError::WouldBlock) => self.sleep(),
                Err(TryLockError::Poisoned(_)) => {
                    error!("the event-loop crew's poller was poisoned by a panic: thread {worker} stops");
                    return;
                }
            }
        }
        // Whoever is still asleep or waiting has nothing left to do either.
        let _ = self.waker.wake();
        self.ring(true);
    }

    /// A loop with events that no thread is running, marked as running; starts looking at
    /// `next` (rotated, so that threads do not all favour loop 0).
    fn claim(&self, next: &mut usize) -> Option<usize> {
        let n = self.slots.len();
        for i in 0..n {
            let index = (*next + i) % n;
            let slot = &self.slots[index];
            if slot.ready.load(Ordering::Acquire)
                && slot
                    .running
                    .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
            {
                slot.ready.store(false, Ordering::Release);
                *next = index + 1;
                return Some(index);
            }
        }
        None
    }

    /// Whether some loop has events and no thread on it.
    fn has_work(&self) -> bool {
        self.slots
            .iter()
            .any(|s| s.ready.load(Ordering::Acquire) && !s.running.load(Ordering::Acquire))
    }

    /// One turn of loop `index` (claimed by this thread).
    fn take_turn(&self, index: usize) {
        let slot = &self.slots[index];
        // Another loop waits for this turn to end: wake a follower for it only if the crew
        // has had work without a pause for longer than a wake-up takes. A crew that still
        // pauses keeps up: its work is cheaper to take turn after turn on the threads already
        // awake than to hand to a thread that must be woken (and will soon sleep again).
        if self.has_work() && self.busy_for() > self.wake_cost.load(Ordering::Relaxed) {
            self.ring(false);
        }
        let mut guard = slot.event_loop.lock().unwrap_or_else(|e| e.into_inner());
        let Some((event_loop, events)) = guard.as_mut() else {
            slot.running.store(false, Ordering::Release);
            return;
        };
        LoopHandle::enter(event_loop.id());
        // The crew waited already: take only what is ready.
        let alive = event_loop.turn(events, Some(Duration::ZERO));
        let full = events.iter().count() == events.capacity();
        if alive {
            let next = event_loop.next_turn();
            let now = Instant::now();
            // Still events in its poller (the storage was full) or connections to read again.
            if full || next.is_some_and(|at| at <= now) {
                slot.ready.store(true, Ordering::Release);
            }
            let deadline = next.map_or(NO_DEADLINE, |at| self.micros(at));
            slot.deadline.store(deadline, Ordering::SeqCst);
            // A leader waiting longer than this loop can wait must look again.
            if deadline < self.leader_until.load(Ordering::SeqCst) {
                let _ = self.waker.wake();
            }
        } else {
            *guard = None;
            slot.deadline.store(NO_DEADLINE, Ordering::Release);
            self.live.fetch_sub(1, Ordering::AcqRel);
        }
        drop(guard);
        slot.running.store(false, Ordering::Release);
    }

    /// As the leader: waits for any loop's events or the earliest deadline of the loops no
    /// thread is running, and marks the loops that need a turn.
    fn lead(&self, poll: &mut Poll, events: &mut Events) {
        // From here on, a turn publishing an earlier deadline wakes us.
        self.leader_until.store(NO_DEADLINE, Ordering::SeqCst);
        let now = Instant::now();
        let timeout = if self.has_work() {
            Some(Duration::ZERO)
        } else {
            self.slots
                .iter()
                .filter(|s| !s.running.load(Ordering::Acquire))
                .map(|s| s.deadline.load(Ordering::SeqCst))
                .min()
                .filter(|&d| d != NO_DEADLINE)
                .map(|d| (self.epoch + Duration::from_micros(d)).saturating_duration_since(now))
        };
        let until = timeout.map_or(NO_DEADLINE, |t| self.micros(now + t));
        self.leader_until.store(until, Ordering::SeqCst);
        let polled = poll.poll(events, timeout);
        self.leader_until.store(0, Ordering::SeqCst);
        if timeout != Some(Duration::ZERO) {
            // The crew had nothing to do until now.
            self.resumed_at
                .store(self.micros(Instant::now()), Ordering::Relaxed);
        }
        if let Err(e) = polled {
            if e.kind() != std::io::ErrorKind::Interrupted {
                error!("the event-loop crew's poll failed: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
            return;
        }
        for event in events.iter() {
            if let Some(slot) = self.slots.get(event.token().0) {
                slot.ready.store(true, Ordering::Release);
            }
        }
        let now = self.micros(Instant::now());
        for slot in &self.slots {
            if slot.deadline.load(Ordering::Acquire) <= now {
                slot.ready.store(true, Ordering::Release);
            }
        }
    }

    /// How long the crew has had work without the leader waiting for any, in ns.
    fn busy_for(&self) -> u64 {
        let resumed = self.resumed_at.load(Ordering::Relaxed);
        self.micros(Instant::now()).saturating_sub(resumed) * 1000
    }

    /// Sleeps as a follower until woken for work (or the end).
    fn sleep(&self) {
        let mut sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        // Checked under the lock a waker takes too: no wake-up is lost in between.
        if self.has_work() || self.live.load(Ordering::Acquire) == 0 {
            return;
        }
        *sleepers += 1;
        // Bounded: a leader that leaves while everyone sleeps is replaced within this time.
        let (mut sleepers, waited) = self
            .bell
            .wait_timeout(sleepers, Duration::from_millis(100))
            .unwrap_or_else(|e| e.into_inner());
        *sleepers -= 1;
        drop(sleepers);
        if !waited.timed_out() {
            let rang_at = self.epoch + Duration::from_micros(self.rang_at.load(Ordering::Relaxed));
            average(&self.wake_cost, rang_at.elapsed());
        }
    }

    /// Wakes one sleeping follower (all of them at the end).
    fn ring(&self, all: bool) {
        let sleepers = self.sleepers.lock().unwrap_or_else(|e| e.into_inner());
        if *sleepers > 0 {
            self.rang_at
                .store(self.micros(Instant::now()), Ordering::Relaxed);
            if all {
                self.bell.notify_all();
            } else {
                self.bell.notify_one();
            }
        }
    }

    /// `at` in µs after the epoch, rounded up (a deadline is never seen as due early).
    fn micros(&self, at: Instant) -> u64 {
        at.saturating_duration_since(self.epoch)
            .as_nanos()
            .div_ceil(1000) as u64
    }
}

/// Folds `sample` into the moving average `average` (ns): an eighth of the way each time.
fn average(average: &AtomicU64, sample: Duration) {
    let sample = sample.as_nanos().min(u64::MAX as u128) as u64;
    let old = average.load(Ordering::Relaxed);
    let new = if old == 0 {
        sample
    } else {
        old - old / 8 + sample / 8
    };
    average.store(new, Ordering::Relaxed);
}
