//! Scaling out: servers on several machines (or processes) that share one room through a
//! pub/sub bus, Redis today (cargo feature `redis`).
//!
//! Set [`ServerConfig::cluster`](crate::ServerConfig::cluster) and every server started with
//! the same bus URL, channel prefix and path is one room:
//!
//! * [`broadcast_text`](crate::WebSocketServer::broadcast_text) and
//!   [`broadcast_binary`](crate::WebSocketServer::broadcast_binary) reach this server's
//!   sessions at once, as without a cluster, and every other node's sessions through the bus
//!   (each node encodes the frame once for all of its sessions). A node never delivers its own
//!   broadcast twice.
//! * Each node announces its sessions' joins and leaves, and every heartbeat carries the list
//!   of its open sessions. [`online_count`](crate::WebSocketServer::online_count) is the
//!   cluster's, and the [cluster callback](../trait.WebSocketServer.html#method.set_cluster_callback)
//!   reports other nodes' sessions joining and leaving ([`ClusterEvent`]).
//!
//! # What is guaranteed
//!
//! * **Per-publisher order.** One node's broadcasts reach every other node in the order it
//!   made them (one publishing connection per node, numbered envelopes); a session's messages
//!   come from one node, so every participant sees each sender's messages in order.
//! * **At most once.** Nothing is delivered twice. Nothing is replayed either: the bus keeps
//!   no history, so a broadcast is lost for a node that is not subscribed when it is
//!   published. Losses that a node can see (a gap in a sender's numbers) are reported as
//!   [`ClusterEvent::Lost`] and counted in [`ClusterStats::lost`].
//! * **The bus unreachable.** Local chat goes on: this node's sessions still get every
//!   broadcast made on this node. Broadcasts made meanwhile do not reach other nodes and are
//!   not sent later ([`ClusterStats::dropped`]); other nodes' broadcasts do not reach this one.
//!   The node reports [`ClusterEvent::Disconnected`] (and logs it), retries with an
//!   exponential backoff from 50 ms up to
//!   [`ClusterConfig::max_reconnect_delay`] (1 s by default), and on success reports
//!   [`ClusterEvent::Connected`], asks every node for its sessions and resumes. Other nodes'
//!   presence is frozen while this node is cut off, not expired.
//! * **A node that dies** (killed, machine lost) stops sending heartbeats: within
//!   [`ClusterConfig::node_timeout`] (3 s by default) plus one heartbeat interval of its last
//!   heartbeat, every other node drops its sessions and
//!   reports each as [`ClusterEvent::Left`] with [`LeaveCause::NodeLost`]. A node that stops
//!   normally closes its sessions (each leave is announced) and says goodbye.
//! * **A slow node never slows the others.** Publishing never waits for a subscriber: Redis
//!   buffers what a slow subscriber has not read, up to its `client-output-buffer-limit
//!   pubsub` (32 MiB hard, 8 MiB for 60 s by default), then disconnects it; that node
//!   reconnects and reports what it lost. On each node, broadcasts wait for the bus in a
//!   bounded queue ([`ClusterConfig::max_queued`]; beyond it they reach this node only), and
//!   delivery to sessions is the driver's bounded, non-blocking broadcast.
//!
//! # Example
//!
//! ```
//! use ws_facade::cluster::ClusterConfig;
//! use ws_facade::ServerConfig;
//!
//! let mut config = ServerConfig::default();
//! config.port = 9001;
//! config.path = "/chat".into();
//! let mut cluster = ClusterConfig::new("redis://127.0.0.1:6379");
//! cluster.node_id = "node-a".into();
//! config.cluster = Some(cluster);
//! // With the `redis` feature, create_server accepts it; without, it says which feature is
//! // missing.
//! let created = ws_facade::WebSocketFacade::create_server(&config);
//! assert_eq!(created.is_ok(), cfg!(feature = "redis"));
//! ```

mod bus;
pub(crate) mod envelope;
pub(crate) mod node;
mod nodes;
#[cfg(feature = "redis")]
mod redis;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

pub use envelope::EnvelopeError;

use crate::error::ConfigError;

/// The bus a cluster URL names, checked (not connected yet).
pub(crate) fn bus_for(url: &str) -> Result<Arc<dyn bus::Bus>, ConfigError> {
    let scheme = url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        #[cfg(feature = "redis")]
        Some("redis") => match redis::RedisBus::new(url) {
            Ok(bus) => Ok(Arc::new(bus)),
            Err(_) => Err(ConfigError::ClusterUrl),
        },
        #[cfg(not(feature = "redis"))]
        Some("redis") => Err(ConfigError::ClusterFeature("redis")),
        _ => Err(ConfigError::ClusterUrl),
    }
}

/// Checks a cluster configuration: its URL and its timings.
pub(crate) fn validate(config: &ClusterConfig) -> Result<(), ConfigError> {
    if config.heartbeat_interval.is_zero()
        || config.node_timeout <= config.heartbeat_interval
        || config.max_reconnect_delay.is_zero()
    {
        return Err(ConfigError::ClusterTiming);
    }
    bus_for(&config.url).map(drop)
}

/// How a server joins a cluster. [`new`](Self::new) takes the bus URL; every other field
/// has a default.
///
/// ```
/// use std::time::Duration;
/// use ws_facade::cluster::ClusterConfig;
/// let config = ClusterConfig::new("redis://127.0.0.1:6379");
/// assert_eq!(config.channel_prefix, "ws-facade");
/// assert_eq!(config.heartbeat_interval, Duration::from_secs(1));
/// assert_eq!(config.node_timeout, Duration::from_secs(3));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterConfig {
    /// The bus: `redis://HOST:PORT` (also `redis://:PASSWORD@HOST:PORT/DB`), with the cargo
    /// feature `redis`.
    pub url: String,
    /// This node's name in logs and in [`ClusterEvent`]s; empty means a generated
    /// `node-XXXXXXXX`. Names are labels: two nodes of one name are still told apart.
    pub node_id: String,
    /// Nodes share a room when they use the same prefix and path: the Redis channel is
    /// `PREFIX:PATH` (`ws-facade:/chat`). Default `ws-facade`.
    pub channel_prefix: String,
    /// How often a node publishes its heartbeat (the list of its sessions). Default 1 s.
    pub heartbeat_interval: Duration,
    /// A node not heard from for this long is gone: its sessions leave. Default 3 s; must be
    /// longer than the heartbeat interval. This node also reconnects when it has not heard
    /// even its own heartbeat for this long.
    pub node_timeout: Duration,
    /// Longest wait between two attempts to reach the bus. Default 1 s.
    pub max_reconnect_delay: Duration,
    /// Broadcasts waiting to be published; beyond, a broadcast reaches this node only (and
    /// is counted in [`ClusterStats::dropped`]). Joins and leaves are not refused by this
    /// bound; like broadcasts, they are lost while the bus is unreachable, and the next
    /// heartbeat repairs presence. Default 4096.
    pub max_queued: usize,
}

impl ClusterConfig {
    /// A cluster on the bus at `url`, with every other setting at its default.
    pub fn new(url: impl Into<String>) -> ClusterConfig {
        ClusterConfig {
            url: url.into(),
            node_id: String::new(),
            channel_prefix: "ws-facade".into(),
            heartbeat_interval: Duration::from_secs(1),
            node_timeout: Duration::from_secs(3),
            max_reconnect_delay: Duration::from_secs(1),
            max_queued: 4096,
        }
    }

    /// The bus channel of the room at `path`.
    pub fn channel(&self, path: &str) -> String {
        format!("{}:{}", self.channel_prefix, path)
    }
}

/// What a cluster callback is told
/// ([`set_cluster_callback`](../trait.WebSocketServer.html#method.set_cluster_callback)). It runs on the
/// node's bus thread; keep it short.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum ClusterEvent {
    /// This node is subscribed to the bus: after starting, and after each reconnection.
    Connected {
        /// This node's name.
        node: String,
    },
    /// This node lost the bus (or could not reach it at start). Local chat goes on; it
    /// retries with backoff. Reported once per outage.
    Disconnected {
        /// Why.
        error: BusError,
    },
    /// Another node was heard from for the first time.
    NodeUp {
        /// Its name.
        node: String,
    },
    /// Another node is gone (its sessions' [`Left`](Self::Left) events come first).
    NodeDown {
        /// Its name.
        node: String,
        /// Stopped normally, or not heard from for the node timeout.
        cause: LeaveCause,
    },
    /// A session opened on another node.
    Joined {
        /// The node it is on.
        node: String,
        /// Its session id there.
        id: String,
    },
    /// A session of another node ended.
    Left {
        /// The node it was on.
        node: String,
        /// Its session id there.
        id: String,
        /// Why.
        cause: LeaveCause,
    },
    /// Envelopes from `node` that never reached this node (a gap in its numbering): lost
    /// while this node was cut off from the bus, or while `node` was.
    Lost {
        /// The node they came from.
        node: String,
        /// How many.
        count: u64,
    },
}

/// Why another node's session left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaveCause {
    /// The session ended on its node.
    Disconnected,
    /// Its node stopped normally.
    NodeStopped,
    /// Its node was not heard from for the node timeout (killed, cut off, machine lost).
    NodeLost,
}

impl fmt::Display for LeaveCause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LeaveCause::Disconnected => "disconnected",
            LeaveCause::NodeStopped => "node stopped",
            LeaveCause::NodeLost => "node lost",
        })
    }
}

/// Why the link to the bus failed.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum BusError {
    /// The bus could not be reached, or the connection failed (the client's error).
    Link(Arc<dyn std::error::Error + Send + Sync>),
    /// Nothing came from the bus, not even this node's own heartbeat, for this long.
    Silent(Duration),
}

impl fmt::Display for BusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BusError::Link(e) => write!(f, "bus unreachable: {e}"),
            BusError::Silent(d) => write!(f, "nothing heard from the bus for {d:?}"),
        }
    }
}

impl std::error::Error for BusError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BusError::Link(e) => Some(&**e as &(dyn std::error::Error + 'static)),
            BusError::Silent(_) => None,
        }
    }
}

/// Counters of a node's traffic on the bus, since it started
/// ([`cluster_stats`](crate::WebSocketServer::cluster_stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClusterStats {
    /// Whether the node is subscribed to the bus now.
    pub connected: bool,
    /// Other nodes heard from and not gone.
    pub nodes: usize,
    /// Sessions open on those nodes.
    pub remote_sessions: usize,
    /// Broadcasts published.
    pub published: u64,
    /// Broadcasts that reached this node only: the bus was unreachable or the queue full.
    pub dropped: u64,
    /// Broadcasts from other nodes delivered to this node's sessions.
    pub delivered: u64,
    /// Envelopes from other nodes seen missing (gaps in their numbering).
    pub lost: u64,
    /// Envelopes from the bus that were not ours to read (malformed, unknown version).
    pub malformed: u64,
    /// Successful subscriptions after the first.
    pub reconnects: u64,
}

/// Called with each [`ClusterEvent`].
pub type ClusterCallback = Arc<dyn Fn(&ClusterEvent) + Send + Sync>;
