//! What one node knows of the others: a pure state machine. Envelopes and the time go in;
//! what to deliver and which [`ClusterEvent`]s to report come out. No thread, socket or clock.

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use super::envelope::{Body, Envelope};
use super::{ClusterEvent, LeaveCause};

/// Another node, by incarnation.
#[derive(Debug)]
struct Remote {
    name: String,
    /// The highest sequence number received.
    last_seq: u64,
    /// When anything was last received from it.
    last_seen: Instant,
    sessions: BTreeSet<String>,
}

/// What to do with a received envelope.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Received {
    /// One of ours, back from the bus: the link works, nothing else to do.
    Own,
    /// Already seen (or older than what was): dropped, so nothing arrives twice.
    Duplicate,
    /// A broadcast for this node's sessions.
    Deliver(Body),
    /// A node asks for every node's sessions: publish a snapshot now.
    SnapshotRequested,
    /// Presence, applied (its events, if any, are in the list given).
    Applied,
}

/// Every other node heard from and not gone.
#[derive(Debug)]
pub(crate) struct Nodes {
    own_incarnation: u64,
    node_timeout: Duration,
    remotes: HashMap<u64, Remote>,
    /// Sessions of all remotes.
    sessions: usize,
}

impl Nodes {
    pub(crate) fn new(own_incarnation: u64, node_timeout: Duration) -> Nodes {
        Nodes {
            own_incarnation,
            node_timeout,
            remotes: HashMap::new(),
            sessions: 0,
        }
    }

    /// Other nodes known.
    pub(crate) fn count(&self) -> usize {
        self.remotes.len()
    }

    /// Sessions open on other nodes.
    pub(crate) fn sessions(&self) -> usize {
        self.sessions
    }

    /// Takes in one envelope received at `now`; events it causes are pushed on `events`.
    pub(crate) fn receive(
        &mut self,
        envelope: Envelope,
        now: Instant,
        events: &mut Vec<ClusterEvent>,
    ) -> Received {
        let origin = envelope.origin;
        if origin.incarnation == self.own_incarnation {
            return Received::Own;
        }
        if matches!(envelope.body, Body::Bye) {
            if let Some(remote) = self.remotes.remove(&origin.incarnation) {
                self.gone(remote, LeaveCause::NodeStopped, events);
            }
            return Received::Applied;
        }
        let remote = self.remotes.entry(origin.incarnation).or_insert_with(|| {
            events.push(ClusterEvent::NodeUp {
                node: origin.node.clone(),
            });
            // First heard of now: what it sent before is not a loss.
            Remote {
                name: origin.node.clone(),
                last_seq: origin.seq.saturating_sub(1),
                last_seen: now,
                sessions: BTreeSet::new(),
            }
        });
        if origin.seq <= remote.last_seq {
            return Received::Duplicate;
        }
        if origin.seq > remote.last_seq + 1 {
            events.push(ClusterEvent::Lost {
                node: remote.name.clone(),
                count: origin.seq - remote.last_seq - 1,
            });
        }
        remote.last_seq = origin.seq;
        remote.last_seen = now;
        let name = &remote.name;
        let before = remote.sessions.len();
        let received = match envelope.body {
            body @ (Body::Text(_) | Body::Binary(_)) => Received::Deliver(body),
            Body::SyncRequest => Received::SnapshotRequested,
            Body::Join(id) => {
                if remote.sessions.insert(id.clone()) {
                    events.push(ClusterEvent::Joined {
                        node: name.clone(),
                        id,
                    });
                }
                Received::Applied
            }
            Body::Leave(id) => {
                if remote.sessions.remove(&id) {
                    events.push(ClusterEvent::Left {
                        node: name.clone(),
                        id,
                        cause: LeaveCause::Disconnected,
                    });
                }
                Received::Applied
            }
            Body::Snapshot(ids) => {
                let now_open: BTreeSet<String> = ids.into_iter().collect();
                for id in remote.sessions.difference(&now_open) {
                    events.push(ClusterEvent::Left {
                        node: name.clone(),
                        id: id.clone(),
                        cause: LeaveCause::Disconnected,
                    });
                }
                for id in now_open.difference(&remote.sessions) {
                    events.push(ClusterEvent::Joined {
                        node: name.clone(),
                        id: id.clone(),
                    });
                }
                remote.sessions = now_open;
                Received::Applied
            }
            Body::Bye => unreachable!("handled above"),
        };
        let after = remote.sessions.len();
        self.sessions = self.sessions + after - before;
        received
    }

    /// Drops the nodes not heard from for the node timeout at `now`.
    pub(crate) fn expire(&mut self, now: Instant, events: &mut Vec<ClusterEvent>) {
        let timeout = self.node_timeout;
        let dead: Vec<u64> = self
            .remotes
            .iter()
            .filter(|(_, r)| now.saturating_duration_since(r.last_seen) > timeout)
            .map(|(incarnation, _)| *incarnation)
            .collect();
        for incarnation in dead {
            if let Some(remote) = self.remotes.remove(&incarnation) {
                self.gone(remote, LeaveCause::NodeLost, events);
            }
        }
    }

    /// After this node was cut off from the bus: every node counts as heard from `now`, so
    /// only those that stay silent for a whole node timeout from here are dropped.
    pub(crate) fn forgive_silence(&mut self, now: Instant) {
        for remote in self.remotes.values_mut() {
            remote.last_seen = now;
        }
    }

    fn gone(&mut self, remote: Remote, cause: LeaveCause, events: &mut Vec<ClusterEvent>) {
        self.sessions -= remote.sessions.len();
        for id in remote.sessions {
            events.push(ClusterEvent::Left {
                node: remote.name.clone(),
                id,
                cause,
            });
        }
        events.push(ClusterEvent::NodeDown {
            node: remote.name,
            cause,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::super::envelope::Origin;
    use super::*;

    const OWN: u64 = 1;
    const B: u64 = 2;
    const TIMEOUT: Duration = Duration::from_secs(3);

    fn from(incarnation: u64, seq: u64, body: Body) -> Envelope {
        Envelope {
            origin: Origin {
                node: format!("node-{incarnation}"),
                incarnation,
                seq,
            },
            body,
        }
    }

    /// Short forms of events, for comparisons.
    fn names(events: &[ClusterEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                ClusterEvent::NodeUp { node } => format!("up {node}"),
                ClusterEvent::NodeDown { node, cause } => format!("down {node} ({cause})"),
                ClusterEvent::Joined { node, id } => format!("join {id}@{node}"),
                ClusterEvent::Left { node, id, cause } => format!("leave {id}@{node} ({cause})"),
                ClusterEvent::Lost { node, count } => format!("lost {count} from {node}"),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn own_envelopes_are_recognised_and_never_delivered() {
        let mut nodes = Nodes::new(OWN, TIMEOUT);
        let mut events = Vec::new();
        let received = nodes.receive(
            from(OWN, 1, Body::Text("hi".into())),
            Instant::now(),
            &mut events,
        );
        assert_eq!(received, Received::Own);
        assert!(events.is_empty());
        assert_eq!(nodes.count(), 0);
    }

    #[test]
    fn broadcasts_are_delivered_once_in_order_and_gaps_are_reported() {
        let mut nodes = Nodes::new(OWN, TIMEOUT);
        let mut events = Vec::new();
        let now = Instant::now();
        // First heard of at seq 7: earlier envelopes are not counted as lost.
        let first = nodes.receive(from(B, 7, Body::Text("a".into())), now, &mut events);
        assert_eq!(first, Received::Deliver(Body::Text("a".into())));
        let again = nodes.receive(from(B, 7, Body::Text("a".into())), now, &mut events);
        assert_eq!(again, Received::Duplicate);
        let older = nodes.receive(from(B, 6, Body::Text("z".into())), now, &mut events);
        assert_eq!(older, Received::Duplicate);
        let after_gap = nodes.receive(from(B, 10, Body::Binary(vec![1])), now, &mut events);
        assert_eq!(after_gap, Received::Deliver(Body::Binary(vec![1])));
        assert_eq!(names(&events), ["up node-2", "lost 2 from node-2"]);
    }

    #[test]
    fn joins_leaves_and_snapshots_keep_the_count_and_report_each_change_once() {
        let mut nodes = Nodes::new(OWN, TIMEOUT);
        let mut events = Vec::new();
        let now = Instant::now();
        nodes.receive(from(B, 1, Body::Join("bob".into())), now, &mut events);
        nodes.receive(from(B, 2, Body::Join("bob".into())), now, &mut events);
        nodes.receive(from(B, 3, Body::Join("eve".into())), now, &mut events);
        assert_eq!(nodes.sessions(), 2);
        let snapshot = Body::Snapshot(vec!["eve".into(), "amy".into()]);
        nodes.receive(from(B, 4, snapshot), now, &mut events);
        assert_eq!(nodes.sessions(), 2);
        nodes.receive(from(B, 5, Body::Leave("amy".into())), now, &mut events);
        nodes.receive(from(B, 6, Body::Leave("amy".into())), now, &mut events);
        assert_eq!(nodes.sessions(), 1);
        assert_eq!(
            names(&events),
            [
                "up node-2",
                "join bob@node-2",
                "join eve@node-2",
                "leave bob@node-2 (disconnected)",
                "join amy@node-2",
                "leave amy@node-2 (disconnected)",
            ]
        );
    }

    #[test]
    fn a_silent_node_expires_with_its_sessions_unless_this_node_was_the_one_cut_off() {
        let mut nodes = Nodes::new(OWN, TIMEOUT);
        let mut events = Vec::new();
        let start = Instant::now();
        nodes.receive(from(B, 1, Body::Join("bob".into())), start, &mut events);
        events.clear();
        nodes.expire(start + TIMEOUT, &mut events);
        assert!(
            events.is_empty(),
            "not silent for longer than the timeout yet"
        );
        // This node was cut off from the bus for a while: B gets a whole timeout from now.
        nodes.forgive_silence(start + 2 * TIMEOUT);
        nodes.expire(start + 2 * TIMEOUT + TIMEOUT / 2, &mut events);
        assert!(events.is_empty());
        nodes.expire(start + 3 * TIMEOUT + Duration::from_millis(1), &mut events);
        assert_eq!(
            names(&events),
            ["leave bob@node-2 (node lost)", "down node-2 (node lost)"]
        );
        assert_eq!((nodes.count(), nodes.sessions()), (0, 0));
    }

    #[test]
    fn a_goodbye_removes_the_node_at_once() {
        let mut nodes = Nodes::new(OWN, TIMEOUT);
        let mut events = Vec::new();
        let now = Instant::now();
        nodes.receive(
            from(B, 1, Body::Snapshot(vec!["bob".into()])),
            now,
            &mut events,
        );
        events.clear();
        assert_eq!(
            nodes.receive(from(B, 2, Body::Bye), now, &mut events),
            Received::Applied
        );
        assert_eq!(
            names(&events),
            [
                "leave bob@node-2 (node stopped)",
                "down node-2 (node stopped)"
            ]
        );
        assert_eq!(nodes.sessions(), 0);
    }

    #[test]
    fn two_runs_of_one_name_are_two_nodes() {
        let mut nodes = Nodes::new(OWN, TIMEOUT);
        let mut events = Vec::new();
        let now = Instant::now();
        let mut restarted = from(3, 1, Body::Join("bob".into()));
        restarted.origin.node = "node-2".into();
        nodes.receive(from(B, 1, Body::Join("bob".into())), now, &mut events);
        nodes.receive(restarted, now, &mut events);
        assert_eq!((nodes.count(), nodes.sessions()), (2, 2));
    }
}
