//! The bus on Redis pub/sub, with the `redis` crate's blocking client: a node publishes on
//! one connection (a pipeline per batch, so a burst costs one round trip) and subscribes on
//! another, each on a thread of the node's own.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::time::Duration;

use super::bus::{ended, Bus, Incoming, Publisher};
use super::BusError;

/// How long connecting, and each write or read of a command's reply, may take.
const IO_TIMEOUT: Duration = Duration::from_secs(1);

/// A Redis server, by URL.
pub(crate) struct RedisBus {
    client: redis::Client,
}

impl RedisBus {
    /// The bus at `url` (checked here, connected later).
    pub(crate) fn new(url: &str) -> Result<RedisBus, redis::RedisError> {
        Ok(RedisBus {
            client: redis::Client::open(url)?,
        })
    }

    fn connect(&self) -> Result<redis::Connection, BusError> {
        let connection = self
            .client
            .get_connection_with_timeout(IO_TIMEOUT)
            .map_err(link)?;
        connection
            .set_write_timeout(Some(IO_TIMEOUT))
            .map_err(link)?;
        Ok(connection)
    }
}

fn link(e: redis::RedisError) -> BusError {
    BusError::Link(Arc::new(e))
}

impl Bus for RedisBus {
    fn publisher(&self) -> Result<Box<dyn Publisher>, BusError> {
        let connection = self.connect()?;
        connection
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(link)?;
        Ok(Box::new(RedisPublisher {
            connection,
            unread: 0,
        }))
    }

    fn subscribe(
        &self,
        channel: &str,
        poll: Duration,
        on: &mut dyn FnMut(Incoming<'_>) -> ControlFlow<Option<BusError>>,
    ) -> Result<(), BusError> {
        let mut connection = self.connect()?;
        connection
            .set_read_timeout(Some(IO_TIMEOUT))
            .map_err(link)?;
        let mut subscription = connection.as_pubsub();
        subscription.subscribe(channel).map_err(link)?;
        // Redis sends a subscription's messages only after its confirmation, which
        // `subscribe` waited for: from here on, nothing published is missed.
        subscription.set_read_timeout(Some(poll)).map_err(link)?;
        let mut flow = on(Incoming::Subscribed);
        loop {
            if let Some(end) = ended(flow) {
                return end;
            }
            flow = match subscription.get_message() {
                Ok(message) => on(Incoming::Message(message.get_payload_bytes())),
                Err(e) if e.is_timeout() => on(Incoming::Idle),
                Err(e) => return Err(link(e)),
            };
        }
    }
}

impl RedisPublisher {
    /// Reads `count` replies; a Redis error among them fails the link.
    fn read_replies(&mut self, count: usize) -> Result<(), BusError> {
        for _ in 0..count {
            let reply = self.connection.recv_response().map_err(link)?;
            reply.extract_error().map_err(link)?;
        }
        Ok(())
    }
}

/// Publishes without waiting for each batch's replies before the next batch: a batch is
/// written, then the previous batch's replies are read (there by then, as a rule). So a
/// burst is never held back by a round trip, and every reply is still checked, one batch
/// late.
struct RedisPublisher {
    connection: redis::Connection,
    /// Replies of the last batch written, not read yet.
    unread: usize,
}

impl Publisher for RedisPublisher {
    fn publish(&mut self, channel: &str, messages: &[Vec<u8>]) -> Result<(), BusError> {
        let mut pipeline = redis::pipe();
        for message in messages {
            pipeline.publish(channel, message.as_slice());
        }
        self.connection
            .send_packed_command(&pipeline.get_packed_pipeline())
            .map_err(link)?;
        let previous = std::mem::replace(&mut self.unread, messages.len());
        self.read_replies(previous)
    }

    fn check(&mut self) -> Result<(), BusError> {
        let ping = redis::cmd("PING").get_packed_command();
        self.connection.send_packed_command(&ping).map_err(link)?;
        let unread = std::mem::take(&mut self.unread) + 1;
        self.read_replies(unread)
    }
}
