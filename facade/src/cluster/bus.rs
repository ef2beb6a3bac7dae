//! The seam between a node and its pub/sub engine. A node needs two things of a bus: a
//! connection that publishes batches of bytes on a channel, in order, and a subscription
//! that hands over what arrives on that channel. Redis is the one implementation
//! ([`super::redis`]); another engine (NATS, say) is another implementation of these traits.

use std::ops::ControlFlow;
use std::time::Duration;

use super::BusError;

/// A pub/sub engine.
pub(crate) trait Bus: Send + Sync + 'static {
    /// A new publishing connection.
    fn publisher(&self) -> Result<Box<dyn Publisher>, BusError>;

    /// Subscribes to `channel` and calls `on` with what happens until `on` breaks (`Ok`
    /// when it breaks with `None`) or the subscription fails. `on` gets
    /// [`Incoming::Idle`] after each `poll` during which nothing arrived.
    fn subscribe(
        &self,
        channel: &str,
        poll: Duration,
        on: &mut dyn FnMut(Incoming<'_>) -> ControlFlow<Option<BusError>>,
    ) -> Result<(), BusError>;
}

/// One publishing connection.
pub(crate) trait Publisher: Send {
    /// Publishes `messages` on `channel`, in order, in as few round trips as the engine
    /// allows.
    fn publish(&mut self, channel: &str, messages: &[Vec<u8>]) -> Result<(), BusError>;

    /// Waits until the engine has taken everything published so far, and checks that the
    /// connection works (a round trip).
    fn check(&mut self) -> Result<(), BusError>;
}

/// What a subscription hands over.
#[derive(Debug)]
// Made by the buses, each behind its feature; with none built in, only matched on.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) enum Incoming<'a> {
    /// The subscription is in place: from now on, everything published arrives.
    Subscribed,
    /// One message published on the channel (by any node, this one included).
    Message(&'a [u8]),
    /// Nothing arrived for the poll interval.
    Idle,
}

/// What a subscription does after its callback: `None` to go on, or how it ends.
#[cfg_attr(not(feature = "redis"), allow(dead_code))]
pub(crate) fn ended(flow: ControlFlow<Option<BusError>>) -> Option<Result<(), BusError>> {
    match flow {
        ControlFlow::Continue(()) => None,
        ControlFlow::Break(None) => Some(Ok(())),
        ControlFlow::Break(Some(e)) => Some(Err(e)),
    }
}
