//! The extension seam (RFC 6455 §9): negotiation in the handshake, ownership of RSV bits, and
//! message transforms in both directions. permessage-deflate (RFC 7692) plugs in here, in
//! the `deflate` module (cargo feature `deflate`).
//!
//! An [`ExtensionFactory`] is configured on a connection. The client asks it for an offer; the
//! server asks it to accept one of the client's offers; the client then confirms the server's
//! answer. Each side ends up with an [`Extension`] per negotiated factory. The connection lets
//! frames through with the RSV bits the negotiated extensions own, streams the payload of each
//! received message that has any of those bits through [`Extension::decode`] as it arrives, and
//! passes each outgoing data message through [`Extension::encode`].

#[cfg(feature = "deflate")]
pub mod deflate;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::close::CloseCode;
use crate::connection::PreparedMessage;
use crate::frame::OpCode;
use crate::handshake::ExtensionOffer;

/// RSV1 in the bit layout of [`FrameHeader::rsv`](crate::frame::FrameHeader::rsv).
pub const RSV1: u8 = 0b100;
/// RSV2.
pub const RSV2: u8 = 0b010;
/// RSV3.
pub const RSV3: u8 = 0b001;

/// Why an extension could not negotiate or transform a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExtensionError {
    /// The peer's negotiation parameters are unacceptable (1002).
    Negotiation(&'static str),
    /// The data could not be transformed, e.g. corrupt compressed data (1007).
    InvalidData(&'static str),
    /// The transformed message would exceed the message size limit (1009).
    TooLarge,
}

impl ExtensionError {
    /// The close code for a received message this error rejected.
    pub fn close_code(&self) -> CloseCode {
        match self {
            ExtensionError::TooLarge => CloseCode::MESSAGE_TOO_BIG,
            ExtensionError::InvalidData(_) => CloseCode::INVALID_PAYLOAD,
            ExtensionError::Negotiation(_) => CloseCode::PROTOCOL_ERROR,
        }
    }
}

impl fmt::Display for ExtensionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExtensionError::Negotiation(why) => write!(f, "negotiation failed: {why}"),
            ExtensionError::InvalidData(why) => write!(f, "invalid data: {why}"),
            ExtensionError::TooLarge => f.write_str("message too large after transform"),
        }
    }
}

impl std::error::Error for ExtensionError {}

/// A negotiated extension instance, owned by one connection.
pub trait Extension: fmt::Debug + Send {
    /// The RSV bits this extension owns ([`RSV1`], [`RSV2`], [`RSV3`]); frames with these bits
    /// set are not protocol errors once it is negotiated.
    fn rsv_bits(&self) -> u8;

    /// Transforms the next piece of a received message whose first frame carried `rsv` (which
    /// includes some of this extension's bits), appending the result to `out`. The connection
    /// calls it with each piece of payload as it arrives, then once with `last` set (and
    /// possibly no input) when the message is complete.
    ///
    /// `out` must never grow beyond `max_size` bytes (the message size limit): return
    /// [`ExtensionError::TooLarge`] as soon as the output would, without producing it.
    fn decode(
        &mut self,
        rsv: u8,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
        max_size: usize,
    ) -> Result<(), ExtensionError>;

    /// Transforms an outgoing text or binary message. Returns the RSV bits to set on its first
    /// frame (only bits from [`rsv_bits`](Self::rsv_bits)) and the bytes to send.
    fn encode(&mut self, opcode: OpCode, payload: Vec<u8>)
        -> Result<(u8, Vec<u8>), ExtensionError>;

    /// Transforms a broadcast message ([`PreparedMessage`]). An extension whose output is the
    /// same for every connection with the same settings (no state carried between messages)
    /// returns [`Prepared::Shared`], encoded once per message and settings with
    /// [`PreparedMessage::shared_encoding`]; the default encodes per connection with
    /// [`encode`](Self::encode).
    fn encode_prepared(&mut self, message: &PreparedMessage) -> Result<Prepared, ExtensionError> {
        let (rsv, payload) = self.encode(message.opcode(), message.payload().to_vec())?;
        Ok(Prepared::Encoded { rsv, payload })
    }

    /// How long without a data message through the extensions before
    /// [`hibernate`](Self::hibernate) is called (between once and twice this long after the
    /// last one); `None` (the default) never calls it.
    fn hibernate_after(&self) -> Option<Duration> {
        None
    }

    /// The connection has exchanged no data message for [`hibernate_after`]: free the state
    /// that can be rebuilt when the next message comes.
    ///
    /// [`hibernate_after`]: Self::hibernate_after
    fn hibernate(&mut self) {}
}

/// How an extension transforms a [`PreparedMessage`] for one connection
/// ([`Extension::encode_prepared`]).
#[derive(Debug)]
#[non_exhaustive]
pub enum Prepared {
    /// Sent as it is: the message's own frame, shared with every other such connection.
    Unchanged,
    /// A transformed payload shared between connections (see
    /// [`PreparedMessage::shared_encoding`]), sent in one frame with these RSV bits.
    Shared {
        /// RSV bits of the frame.
        rsv: u8,
        /// The transformed payload.
        payload: Arc<Vec<u8>>,
    },
    /// A payload transformed for this connection only, sent with these RSV bits.
    Encoded {
        /// RSV bits of the first frame.
        rsv: u8,
        /// The transformed payload.
        payload: Vec<u8>,
    },
}

/// Negotiates one extension; configured once and shared by all connections.
///
/// ```
/// use ws_proto::extension::{Extension, ExtensionError, ExtensionFactory, RSV3};
/// use ws_proto::frame::OpCode;
/// use ws_proto::handshake::ExtensionOffer;
///
/// /// A toy extension that flips every payload byte and marks messages with RSV3.
/// #[derive(Debug)]
/// struct Invert;
/// impl Extension for Invert {
///     fn rsv_bits(&self) -> u8 { RSV3 }
///     fn decode(&mut self, _rsv: u8, input: &[u8], _last: bool, out: &mut Vec<u8>, max: usize)
///         -> Result<(), ExtensionError>
///     {
///         if out.len() + input.len() > max {
///             return Err(ExtensionError::TooLarge);
///         }
///         out.extend(input.iter().map(|b| !*b));
///         Ok(())
///     }
///     fn encode(&mut self, _op: OpCode, mut p: Vec<u8>) -> Result<(u8, Vec<u8>), ExtensionError> {
///         p.iter_mut().for_each(|b| *b = !*b);
///         Ok((RSV3, p))
///     }
/// }
/// #[derive(Debug)]
/// struct InvertFactory;
/// impl ExtensionFactory for InvertFactory {
///     fn name(&self) -> &str { "x-invert" }
///     fn offer(&self) -> ExtensionOffer { ExtensionOffer { name: "x-invert".into(), params: vec![] } }
///     fn accept(&self, _offer: &ExtensionOffer) -> Option<(Box<dyn Extension>, ExtensionOffer)> {
///         Some((Box::new(Invert), self.offer()))
///     }
///     fn confirm(&self, _response: &ExtensionOffer) -> Result<Box<dyn Extension>, ExtensionError> {
///         Ok(Box::new(Invert))
///     }
/// }
/// let factory = InvertFactory;
/// let (mut ext, answer) = factory.accept(&factory.offer()).unwrap();
/// assert_eq!(answer.name, "x-invert");
/// let (rsv, wire) = ext.encode(OpCode::Binary, vec![0x00]).unwrap();
/// let mut out = Vec::new();
/// ext.decode(rsv, &wire, true, &mut out, 16).unwrap();
/// assert_eq!((rsv, out), (RSV3, vec![0x00]));
/// ```
pub trait ExtensionFactory: fmt::Debug + Send + Sync {
    /// The extension token, e.g. `permessage-deflate`.
    fn name(&self) -> &str;

    /// Client: the offer sent in `Sec-WebSocket-Extensions`.
    fn offer(&self) -> ExtensionOffer;

    /// Server: accepts one client offer with this name (called for each, in the client's order,
    /// until one is accepted), returning the instance and the response parameters. `None`
    /// declines the offer: RFC 7692 §5 and RFC 6455 §9.1 have a server decline an offer it does
    /// not accept (invalid parameters included) rather than fail the handshake.
    fn accept(&self, offer: &ExtensionOffer) -> Option<(Box<dyn Extension>, ExtensionOffer)>;

    /// Client: checks the server's response for this extension and builds the instance.
    fn confirm(&self, response: &ExtensionOffer) -> Result<Box<dyn Extension>, ExtensionError>;
}
