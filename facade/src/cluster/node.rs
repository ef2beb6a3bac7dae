//! A running member of a cluster: two threads of its own beside the server's event loops.
//!
//! * The **publisher** takes what the server hands to the [`Outbox`] (broadcasts, joins,
//!   leaves), numbers each envelope, adds a heartbeat snapshot every heartbeat interval and
//!   publishes them in batches on one connection (so in order). While the bus is
//!   unreachable it drops broadcasts (counted) and retries with backoff.
//! * The **subscriber** reads the room's channel, keeps [`Nodes`] up to date, hands other
//!   nodes' broadcasts to the server's sessions and reports [`ClusterEvent`]s. It resubscribes
//!   with backoff when the link fails or goes silent.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use log::{debug, info, warn};

use super::bus::{Bus, Incoming, Publisher};
use super::envelope::{Body, Envelope, Origin};
use super::nodes::{Nodes, Received};
use super::{BusError, ClusterConfig, ClusterEvent, ClusterStats};

/// The first wait before retrying the bus; it doubles up to the configured maximum.
const FIRST_RETRY_DELAY: Duration = Duration::from_millis(50);
/// How often the subscriber looks at the clock when nothing arrives.
const POLL: Duration = Duration::from_millis(100);
/// Envelopes published per round trip at most.
const MAX_BATCH: usize = 256;

/// What the server hands to the publisher.
enum Outgoing {
    Broadcast(Body),
    Join(String),
    Leave(String),
    /// Another node asked for every node's sessions.
    Snapshot,
    /// This node just subscribed: ask every node for its sessions, and give ours.
    Sync,
    Stop,
}

/// The node's counters, shared by its threads and read by [`ClusterNode::stats`].
#[derive(Default)]
struct Counters {
    connected: AtomicBool,
    nodes: AtomicUsize,
    remote_sessions: AtomicUsize,
    published: AtomicU64,
    dropped: AtomicU64,
    delivered: AtomicU64,
    lost: AtomicU64,
    malformed: AtomicU64,
    reconnects: AtomicU64,
}

/// Where the server puts what the cluster must hear of. Cheap to clone; never blocks.
#[derive(Clone)]
pub(crate) struct Outbox {
    sender: mpsc::Sender<Outgoing>,
    /// Broadcasts waiting in the channel.
    queued: Arc<AtomicUsize>,
    max_queued: usize,
    counters: Arc<Counters>,
}

impl Outbox {
    /// A broadcast this node made, for the other nodes; dropped (and counted) when
    /// `max_queued` broadcasts are already waiting.
    pub(crate) fn broadcast(&self, body: Body) {
        if self.queued.fetch_add(1, Ordering::AcqRel) >= self.max_queued {
            self.queued.fetch_sub(1, Ordering::AcqRel);
            self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        if self.sender.send(Outgoing::Broadcast(body)).is_err() {
            self.queued.fetch_sub(1, Ordering::AcqRel);
        }
    }

    /// A session of this node opened.
    pub(crate) fn joined(&self, id: &str) {
        let _ = self.sender.send(Outgoing::Join(id.to_owned()));
    }

    /// A session of this node ended.
    pub(crate) fn left(&self, id: &str) {
        let _ = self.sender.send(Outgoing::Leave(id.to_owned()));
    }

    /// Sessions open on other nodes.
    pub(crate) fn remote_sessions(&self) -> usize {
        self.counters.remote_sessions.load(Ordering::Acquire)
    }

    /// The node's counters now.
    pub(crate) fn stats(&self) -> ClusterStats {
        let c = &self.counters;
        ClusterStats {
            connected: c.connected.load(Ordering::Acquire),
            nodes: c.nodes.load(Ordering::Acquire),
            remote_sessions: c.remote_sessions.load(Ordering::Acquire),
            published: c.published.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            delivered: c.delivered.load(Ordering::Relaxed),
            lost: c.lost.load(Ordering::Relaxed),
            malformed: c.malformed.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
        }
    }
}

/// What the node needs from its server.
pub(crate) struct Hooks {
    /// Delivers another node's broadcast to this node's sessions.
    pub deliver: Box<dyn Fn(Body) + Send>,
    /// Reports an event to the application.
    pub report: Box<dyn Fn(&ClusterEvent) + Send>,
    /// The ids of this node's open sessions (for heartbeats).
    pub sessions: Box<dyn Fn() -> Vec<String> + Send>,
}

/// A running cluster member. [`stop`](Self::stop) (or dropping it) says goodbye and joins its
/// threads.
pub(crate) struct ClusterNode {
    outbox: Outbox,
    stopping: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

/// What both threads know of the node.
struct Identity {
    name: String,
    incarnation: u64,
    channel: String,
}

impl ClusterNode {
    /// Joins the cluster on `bus` as `name`, for the room at `path`. Returns at once: the bus
    /// is reached (and retried) by the node's threads.
    pub(crate) fn start(
        bus: Arc<dyn Bus>,
        config: &ClusterConfig,
        name: String,
        path: &str,
        hooks: Hooks,
    ) -> std::io::Result<ClusterNode> {
        let identity = Arc::new(Identity {
            name,
            incarnation: random_u64(),
            channel: config.channel(path),
        });
        let (sender, receiver) = mpsc::channel();
        let outbox = Outbox {
            sender,
            queued: Arc::default(),
            max_queued: config.max_queued,
            counters: Arc::default(),
        };
        let stopping = Arc::new(AtomicBool::new(false));
        let Hooks {
            deliver,
            report,
            sessions,
        } = hooks;
        let publisher = {
            let publishing = Publishing {
                bus: Arc::clone(&bus),
                identity: Arc::clone(&identity),
                heartbeat: config.heartbeat_interval,
                max_delay: config.max_reconnect_delay,
                queued: Arc::clone(&outbox.queued),
                counters: Arc::clone(&outbox.counters),
                sessions,
            };
            std::thread::Builder::new()
                .name("ws-cluster-publish".into())
                .spawn(move || publishing.run(receiver))?
        };
        let subscribing = Subscribing {
            bus,
            identity,
            node_timeout: config.node_timeout,
            max_delay: config.max_reconnect_delay,
            outbox: outbox.clone(),
            stopping: Arc::clone(&stopping),
            deliver,
            report,
        };
        let subscriber = std::thread::Builder::new()
            .name("ws-cluster-subscribe".into())
            .spawn(move || subscribing.run());
        let subscriber = match subscriber {
            Ok(thread) => thread,
            Err(e) => {
                let _ = outbox.sender.send(Outgoing::Stop);
                let _ = publisher.join();
                return Err(e);
            }
        };
        Ok(ClusterNode {
            outbox,
            stopping,
            threads: vec![publisher, subscriber],
        })
    }

    /// The node's outbox.
    pub(crate) fn outbox(&self) -> Outbox {
        self.outbox.clone()
    }

    /// Publishes what is queued and a goodbye, unsubscribes, and joins both threads (within
    /// a few seconds when the bus hangs: each step waits at most a second for it).
    pub(crate) fn stop(mut self) {
        self.stop_threads();
    }

    fn stop_threads(&mut self) {
        self.stopping.store(true, Ordering::Release);
        let _ = self.outbox.sender.send(Outgoing::Stop);
        let current = std::thread::current().id();
        for thread in self.threads.drain(..) {
            // Stopped from a cluster callback, on the subscriber thread: that thread cannot
            // wait for itself; it ends by itself once the callback returns.
            if thread.thread().id() != current {
                let _ = thread.join();
            }
        }
    }
}

impl Drop for ClusterNode {
    fn drop(&mut self) {
        self.stop_threads();
    }
}

/// The publisher thread's state.
struct Publishing {
    bus: Arc<dyn Bus>,
    identity: Arc<Identity>,
    heartbeat: Duration,
    max_delay: Duration,
    queued: Arc<AtomicUsize>,
    counters: Arc<Counters>,
    sessions: Box<dyn Fn() -> Vec<String> + Send>,
}

impl Publishing {
    fn run(self, receiver: mpsc::Receiver<Outgoing>) {
        let mut seq = 0u64;
        let mut link: Option<Box<dyn Publisher>> = None;
        let mut retry = Backoff::new(self.max_delay);
        let mut next_heartbeat = Instant::now();
        let mut batch: Vec<Vec<u8>> = Vec::new();
        loop {
            let wait = next_heartbeat.saturating_duration_since(Instant::now());
            let first = match receiver.recv_timeout(wait) {
                Ok(item) => Some(item),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => Some(Outgoing::Stop),
            };
            let mut envelope = |body| {
                seq += 1;
                Envelope {
                    origin: Origin {
                        node: self.identity.name.clone(),
                        incarnation: self.identity.incarnation,
                        seq,
                    },
                    body,
                }
                .encode()
            };
            let (mut broadcasts, mut snapshot, mut stopping) = (0u64, false, false);
            for item in first.into_iter().chain(receiver.try_iter().take(MAX_BATCH)) {
                match item {
                    Outgoing::Broadcast(body) => {
                        self.queued.fetch_sub(1, Ordering::AcqRel);
                        broadcasts += 1;
                        batch.push(envelope(body));
                    }
                    Outgoing::Join(id) => batch.push(envelope(Body::Join(id))),
                    Outgoing::Leave(id) => batch.push(envelope(Body::Leave(id))),
                    Outgoing::Snapshot => snapshot = true,
                    Outgoing::Sync => {
                        // The subscriber just reached the bus: so can we, without waiting
                        // out the backoff. The current connection is checked first (one
                        // round trip): it may be to a Redis that restarted, which only a
                        // read would tell, and what the application sends from now on must
                        // not be written into a dead connection.
                        if let Some(publisher) = &mut link {
                            if let Err(e) = publisher.check() {
                                debug!("cluster: publishing connection broken: {e}");
                                link = None;
                            }
                        }
                        retry.reset();
                        batch.push(envelope(Body::SyncRequest));
                        snapshot = true;
                    }
                    Outgoing::Stop => {
                        stopping = true;
                        break;
                    }
                }
            }
            let now = Instant::now();
            if snapshot || now >= next_heartbeat {
                batch.push(envelope(Body::Snapshot((self.sessions)())));
                next_heartbeat = now + self.heartbeat;
            }
            if stopping {
                batch.push(envelope(Body::Bye));
            }
            if link.is_none() && (retry.due(now) || stopping) {
                match self.bus.publisher() {
                    Ok(connected) => {
                        debug!("cluster: publishing on {:?}", self.identity.channel);
                        link = Some(connected);
                        retry.reset();
                    }
                    Err(e) => {
                        debug!("cluster: cannot publish: {e}");
                        retry.failed(now);
                    }
                }
            }
            let sent = match &mut link {
                Some(publisher) => match publisher.publish(&self.identity.channel, &batch) {
                    Ok(()) => true,
                    Err(e) => {
                        debug!("cluster: publishing failed: {e}");
                        link = None;
                        retry.failed(now);
                        false
                    }
                },
                None => false,
            };
            let counter = match sent {
                true => &self.counters.published,
                false => &self.counters.dropped,
            };
            counter.fetch_add(broadcasts, Ordering::Relaxed);
            batch.clear();
            if stopping {
                // The last batch (leaves, goodbye) taken before the connection closes.
                if let Some(publisher) = &mut link {
                    if let Err(e) = publisher.check() {
                        debug!("cluster: the goodbye may not have reached the bus: {e}");
                    }
                }
                return;
            }
        }
    }
}

/// The subscriber thread's state.
struct Subscribing {
    bus: Arc<dyn Bus>,
    identity: Arc<Identity>,
    node_timeout: Duration,
    max_delay: Duration,
    outbox: Outbox,
    stopping: Arc<AtomicBool>,
    deliver: Box<dyn Fn(Body) + Send>,
    report: Box<dyn Fn(&ClusterEvent) + Send>,
}

impl Subscribing {
    fn run(self) {
        let counters = Arc::clone(&self.outbox.counters);
        let mut nodes = Nodes::new(self.identity.incarnation, self.node_timeout);
        let mut retry = Backoff::new(self.max_delay);
        let mut events = Vec::new();
        let mut subscribed_before = false;
        // Whether the current outage was reported yet (once per outage).
        let mut outage_reported = false;
        while !self.stopping.load(Ordering::Acquire) {
            let mut last_heard = Instant::now();
            let ended = self
                .bus
                .subscribe(&self.identity.channel, POLL, &mut |incoming| {
                    if self.stopping.load(Ordering::Acquire) {
                        return ControlFlow::Break(None);
                    }
                    let now = Instant::now();
                    match incoming {
                        Incoming::Subscribed => {
                            if subscribed_before {
                                counters.reconnects.fetch_add(1, Ordering::Relaxed);
                            }
                            subscribed_before = true;
                            outage_reported = false;
                            retry.reset();
                            counters.connected.store(true, Ordering::Release);
                            info!(
                                "cluster: node {:?} subscribed to {:?}",
                                self.identity.name, self.identity.channel
                            );
                            nodes.forgive_silence(now);
                            let _ = self.outbox.sender.send(Outgoing::Sync);
                            events.push(ClusterEvent::Connected {
                                node: self.identity.name.clone(),
                            });
                            last_heard = now;
                        }
                        Incoming::Message(bytes) => {
                            last_heard = now;
                            self.receive(bytes, now, &mut nodes, &mut events);
                        }
                        Incoming::Idle => {}
                    }
                    // A node that hears nothing at all is the one cut off. It must not
                    // expire the others for it: they are timed against the last moment the
                    // bus was heard (this node's own heartbeats come back at least every
                    // interval while the link works), not against the clock.
                    if now.saturating_duration_since(last_heard) > self.node_timeout {
                        return ControlFlow::Break(Some(BusError::Silent(self.node_timeout)));
                    }
                    nodes.expire(last_heard, &mut events);
                    counters.nodes.store(nodes.count(), Ordering::Release);
                    counters
                        .remote_sessions
                        .store(nodes.sessions(), Ordering::Release);
                    for event in events.drain(..) {
                        if let ClusterEvent::Lost { count, .. } = event {
                            counters.lost.fetch_add(count, Ordering::Relaxed);
                        }
                        (self.report)(&event);
                    }
                    ControlFlow::Continue(())
                });
            counters.connected.store(false, Ordering::Release);
            let Err(error) = ended else { break };
            if outage_reported {
                debug!("cluster: bus still unreachable: {error}");
            } else {
                warn!(
                    "cluster: node {:?}: {error}; local delivery goes on, retrying",
                    self.identity.name
                );
                (self.report)(&ClusterEvent::Disconnected { error });
                outage_reported = true;
            }
            retry.failed(Instant::now());
            // Waits in short steps, so a stop is not held up by the backoff.
            while !self.stopping.load(Ordering::Acquire) && !retry.due(Instant::now()) {
                std::thread::sleep(POLL.min(retry.remaining(Instant::now())));
            }
        }
    }

    fn receive(
        &self,
        bytes: &[u8],
        now: Instant,
        nodes: &mut Nodes,
        events: &mut Vec<ClusterEvent>,
    ) {
        let counters = &self.outbox.counters;
        let envelope = match Envelope::decode(bytes) {
            Ok(envelope) => envelope,
            Err(e) => {
                let seen = counters.malformed.fetch_add(1, Ordering::Relaxed);
                if seen == 0 {
                    warn!(
                        "cluster: ignoring a message on {:?}: {e}",
                        self.identity.channel
                    );
                } else {
                    debug!("cluster: ignoring a message: {e}");
                }
                return;
            }
        };
        match nodes.receive(envelope, now, events) {
            Received::Deliver(body) => {
                (self.deliver)(body);
                counters.delivered.fetch_add(1, Ordering::Relaxed);
            }
            Received::SnapshotRequested => {
                let _ = self.outbox.sender.send(Outgoing::Snapshot);
            }
            Received::Own | Received::Duplicate | Received::Applied => {}
        }
    }
}

/// Exponential backoff between attempts to reach the bus.
struct Backoff {
    next_delay: Duration,
    max: Duration,
    retry_at: Option<Instant>,
}

impl Backoff {
    fn new(max: Duration) -> Backoff {
        Backoff {
            next_delay: FIRST_RETRY_DELAY.min(max),
            max,
            retry_at: None,
        }
    }

    fn reset(&mut self) {
        self.next_delay = FIRST_RETRY_DELAY.min(self.max);
        self.retry_at = None;
    }

    fn failed(&mut self, now: Instant) {
        self.retry_at = Some(now + self.next_delay);
        self.next_delay = (self.next_delay * 2).min(self.max);
    }

    fn due(&self, now: Instant) -> bool {
        self.retry_at.is_none_or(|at| now >= at)
    }

    fn remaining(&self, now: Instant) -> Duration {
        self.retry_at
            .map_or(Duration::ZERO, |at| at.saturating_duration_since(now))
    }
}

/// A random number without a dependency: std's randomly keyed hasher, fed the time and
/// the process id. Enough to tell two runs of a node apart; not for secrets.
pub(crate) fn random_u64() -> u64 {
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    hasher.write_u32(std::process::id());
    hasher.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::bus::ended;
    use crate::cluster::LeaveCause;
    use std::sync::{Condvar, Mutex};

    /// A bus in memory: every subscriber sees every message published after it subscribed.
    /// It can be taken down (every link fails, nothing connects) and brought back.
    #[derive(Default)]
    struct MemoryBus {
        state: Mutex<BusState>,
        changed: Condvar,
    }

    #[derive(Default)]
    struct BusState {
        down: bool,
        /// Bumped when the bus goes down: links of an older epoch are broken.
        epoch: u64,
        log: Vec<Vec<u8>>,
    }

    fn broken() -> BusError {
        BusError::Link(Arc::new(std::io::Error::other("memory bus down")))
    }

    impl MemoryBus {
        fn set_down(&self, down: bool) {
            let mut state = self.state.lock().unwrap();
            state.down = down;
            state.epoch += 1;
            self.changed.notify_all();
        }
    }

    struct MemoryPublisher {
        bus: Arc<MemoryBus>,
        epoch: u64,
        cut: Arc<AtomicBool>,
    }

    impl Publisher for MemoryPublisher {
        fn publish(&mut self, _channel: &str, messages: &[Vec<u8>]) -> Result<(), BusError> {
            let mut state = self.bus.state.lock().unwrap();
            if state.down || state.epoch != self.epoch || self.cut.load(Ordering::Acquire) {
                return Err(broken());
            }
            state.log.extend(messages.iter().cloned());
            self.bus.changed.notify_all();
            Ok(())
        }
        fn check(&mut self) -> Result<(), BusError> {
            let state = self.bus.state.lock().unwrap();
            match state.down || state.epoch != self.epoch || self.cut.load(Ordering::Acquire) {
                true => Err(broken()),
                false => Ok(()),
            }
        }
    }

    /// One node's view of the bus: it can be cut off alone (`cut`), as a node whose network
    /// fails or whose process is gone.
    struct Shared(Arc<MemoryBus>, Arc<AtomicBool>);

    impl Bus for Shared {
        fn publisher(&self) -> Result<Box<dyn Publisher>, BusError> {
            let state = self.0.state.lock().unwrap();
            if state.down || self.1.load(Ordering::Acquire) {
                return Err(broken());
            }
            Ok(Box::new(MemoryPublisher {
                bus: Arc::clone(&self.0),
                epoch: state.epoch,
                cut: Arc::clone(&self.1),
            }))
        }

        fn subscribe(
            &self,
            _channel: &str,
            poll: Duration,
            on: &mut dyn FnMut(Incoming<'_>) -> ControlFlow<Option<BusError>>,
        ) -> Result<(), BusError> {
            let (epoch, mut next) = {
                let state = self.0.state.lock().unwrap();
                if state.down || self.1.load(Ordering::Acquire) {
                    return Err(broken());
                }
                (state.epoch, state.log.len())
            };
            let mut flow = on(Incoming::Subscribed);
            loop {
                if let Some(end) = ended(flow) {
                    return end;
                }
                let message = {
                    let state = self.0.state.lock().unwrap();
                    let (state, _) = self
                        .0
                        .changed
                        .wait_timeout_while(state, poll, |s| {
                            s.epoch == epoch && s.log.len() == next
                        })
                        .unwrap();
                    if state.epoch != epoch {
                        return Err(broken());
                    }
                    if self.1.load(Ordering::Acquire) {
                        // Cut off: nothing arrives any more (the node finds out by itself).
                        drop(state);
                        flow = on(Incoming::Idle);
                        continue;
                    }
                    state.log.get(next).cloned()
                };
                flow = match message {
                    Some(bytes) => {
                        next += 1;
                        on(Incoming::Message(&bytes))
                    }
                    None => on(Incoming::Idle),
                };
            }
        }
    }

    /// A node on `bus` whose deliveries and events land in channels, with its sessions.
    struct TestNode {
        node: Option<ClusterNode>,
        delivered: mpsc::Receiver<Body>,
        events: mpsc::Receiver<ClusterEvent>,
        sessions: Arc<Mutex<Vec<String>>>,
        cut: Arc<AtomicBool>,
    }

    const WAIT: Duration = Duration::from_secs(10);

    fn fast_config() -> ClusterConfig {
        let mut config = ClusterConfig::new("memory://");
        config.heartbeat_interval = Duration::from_millis(50);
        config.node_timeout = Duration::from_millis(300);
        config.max_reconnect_delay = Duration::from_millis(100);
        config
    }

    impl TestNode {
        fn start(bus: &Arc<MemoryBus>, name: &str) -> TestNode {
            let (deliver, delivered) = mpsc::channel();
            let (report, events) = mpsc::channel();
            let sessions: Arc<Mutex<Vec<String>>> = Arc::default();
            let listed = Arc::clone(&sessions);
            let deliver = Mutex::new(deliver);
            let report = Mutex::new(report);
            let hooks = Hooks {
                deliver: Box::new(move |body| {
                    let _ = deliver.lock().unwrap().send(body);
                }),
                report: Box::new(move |event| {
                    let _ = report.lock().unwrap().send(event.clone());
                }),
                sessions: Box::new(move || listed.lock().unwrap().clone()),
            };
            let cut = Arc::new(AtomicBool::new(false));
            let bus: Arc<dyn Bus> = Arc::new(Shared(Arc::clone(bus), Arc::clone(&cut)));
            let node = ClusterNode::start(bus, &fast_config(), name.into(), "/chat", hooks)
                .expect("threads start");
            TestNode {
                node: Some(node),
                delivered,
                events,
                sessions,
                cut,
            }
        }

        fn outbox(&self) -> Outbox {
            self.node.as_ref().expect("running").outbox()
        }

        fn join(&self, id: &str) {
            self.sessions.lock().unwrap().push(id.into());
            self.outbox().joined(id);
        }

        /// Waits for an event that `matches`, skipping others; panics after `WAIT`.
        fn expect(&self, what: &str, matches: impl Fn(&ClusterEvent) -> bool) -> ClusterEvent {
            let deadline = Instant::now() + WAIT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                match self.events.recv_timeout(left) {
                    Ok(event) if matches(&event) => return event,
                    Ok(_) => {}
                    Err(_) => panic!("no {what} within {WAIT:?}"),
                }
            }
        }
    }

    #[test]
    fn nodes_share_broadcasts_and_presence_and_a_stopping_node_says_goodbye() {
        let bus = Arc::new(MemoryBus::default());
        let a = TestNode::start(&bus, "a");
        let mut b = TestNode::start(&bus, "b");
        for node in [&a, &b] {
            node.expect("connected", |e| matches!(e, ClusterEvent::Connected { .. }));
        }
        b.join("bob");
        a.expect(
            "bob's join",
            |e| matches!(e, ClusterEvent::Joined { node, id } if node == "b" && id == "bob"),
        );
        assert_eq!(a.outbox().remote_sessions(), 1);

        for i in 0..100 {
            b.outbox().broadcast(Body::Text(format!("m{i}")));
        }
        for i in 0..100 {
            let body = a.delivered.recv_timeout(WAIT).expect("a broadcast of b");
            assert_eq!(body, Body::Text(format!("m{i}")), "in b's order");
        }
        assert!(
            b.delivered
                .recv_timeout(Duration::from_millis(200))
                .is_err(),
            "a node does not deliver its own broadcasts again"
        );
        assert_eq!(b.outbox().stats().published, 100);

        b.node.take().expect("running").stop();
        a.expect("bob's leave", |e| {
            matches!(e, ClusterEvent::Left { id, cause: LeaveCause::NodeStopped, .. } if id == "bob")
        });
        a.expect("b down", |e| {
            matches!(e, ClusterEvent::NodeDown { node, cause: LeaveCause::NodeStopped } if node == "b")
        });
        assert_eq!(a.outbox().remote_sessions(), 0);
    }

    #[test]
    fn a_node_keeps_going_while_the_bus_is_down_reports_it_once_and_resumes() {
        let bus = Arc::new(MemoryBus::default());
        bus.set_down(true);
        let a = TestNode::start(&bus, "a");
        a.expect("disconnected", |e| {
            matches!(e, ClusterEvent::Disconnected { .. })
        });
        a.outbox().broadcast(Body::Text("lost".into()));
        // Several retries happen meanwhile; the outage is reported once.
        std::thread::sleep(Duration::from_millis(400));
        bus.set_down(false);
        a.expect("connected", |e| matches!(e, ClusterEvent::Connected { .. }));
        let b = TestNode::start(&bus, "b");
        b.expect("connected", |e| matches!(e, ClusterEvent::Connected { .. }));
        a.join("ann");
        b.expect(
            "ann's join",
            |e| matches!(e, ClusterEvent::Joined { id, .. } if id == "ann"),
        );
        a.outbox().broadcast(Body::Text("kept".into()));
        assert_eq!(
            b.delivered.recv_timeout(WAIT).expect("a's broadcast"),
            Body::Text("kept".into())
        );
        let disconnections = a
            .events
            .try_iter()
            .filter(|e| matches!(e, ClusterEvent::Disconnected { .. }))
            .count();
        assert_eq!(disconnections, 0, "reported once, before");
        let stats = a.outbox().stats();
        assert_eq!((stats.dropped, stats.published), (1, 1));
        assert!(stats.connected);
    }

    #[test]
    fn a_node_cut_off_expires_on_the_others_but_does_not_expire_them() {
        let bus = Arc::new(MemoryBus::default());
        let a = TestNode::start(&bus, "a");
        let b = TestNode::start(&bus, "b");
        a.join("ann");
        b.join("bob");
        a.expect(
            "bob's join",
            |e| matches!(e, ClusterEvent::Joined { id, .. } if id == "bob"),
        );
        b.expect(
            "ann's join",
            |e| matches!(e, ClusterEvent::Joined { id, .. } if id == "ann"),
        );
        // b's link fails without a goodbye (a cable pulled, a process frozen).
        b.cut.store(true, Ordering::Release);
        a.expect("bob's leave", |e| {
            matches!(e, ClusterEvent::Left { id, cause: LeaveCause::NodeLost, .. } if id == "bob")
        });
        // b hears nothing, not even itself: it is the one cut off, and keeps a's sessions.
        b.expect("b's outage", |e| {
            matches!(
                e,
                ClusterEvent::Disconnected {
                    error: BusError::Silent(_)
                }
            )
        });
        std::thread::sleep(fast_config().node_timeout * 2);
        let expired = b
            .events
            .try_iter()
            .any(|e| matches!(e, ClusterEvent::Left { .. }));
        assert!(!expired, "b expired a while b was the one cut off");
        assert_eq!(b.outbox().remote_sessions(), 1);
    }

    #[test]
    fn the_backoff_doubles_up_to_its_maximum_and_starts_over_after_a_success() {
        let mut backoff = Backoff::new(Duration::from_millis(300));
        let now = Instant::now();
        assert!(backoff.due(now));
        let mut delays = Vec::new();
        for _ in 0..5 {
            backoff.failed(now);
            delays.push(backoff.remaining(now).as_millis());
        }
        assert_eq!(delays, [50, 100, 200, 300, 300]);
        assert!(!backoff.due(now));
        backoff.reset();
        assert!(backoff.due(now));
        backoff.failed(now);
        assert_eq!(backoff.remaining(now).as_millis(), 50);
    }

    #[test]
    fn random_numbers_differ() {
        assert_ne!(random_u64(), random_u64());
    }
}
