//! permessage-deflate (RFC 7692): messages compressed with DEFLATE, negotiated in the handshake.
//!
//! Add a [`PerMessageDeflate`] to [`Config::extensions`](crate::Config::extensions) in either
//! role. A client offers it; a server accepts the first acceptable offer and declines the others
//! (RFC 7692 §5). Received messages are inflated as their frames arrive and never beyond
//! [`Config::max_message_size`](crate::Config::max_message_size): a message that would inflate
//! to more fails the connection with 1009 without the excess ever being produced.
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Instant;
//! use ws_proto::extension::deflate::{DeflateConfig, PerMessageDeflate};
//! use ws_proto::{Accept, ClientRequest, Config, Connection, Event};
//!
//! let deflate = Arc::new(PerMessageDeflate::new(DeflateConfig::default()));
//! let mut config = Config::default();
//! config.extensions.push(deflate);
//! let now = Instant::now();
//! let mut client = Connection::client(config.clone(), ClientRequest::new("example.com", "/"), now);
//! let mut server = Connection::server(config, now);
//! # fn pump(from: &mut Connection, to: &mut Connection, now: Instant) {
//! #     while !from.pending_output().is_empty() {
//! #         let n = from.pending_output().len();
//! #         to.receive(from.pending_output(), now);
//! #         from.advance_output(n);
//! #     }
//! # }
//! pump(&mut client, &mut server, now);
//! let Some(Event::Request(request)) = server.poll_event() else { panic!() };
//! assert_eq!(request.extensions[0].to_string(),
//!     "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12");
//! server.accept(Accept::default(), now).unwrap();
//! let Some(Event::Open(negotiated)) = server.poll_event() else { panic!() };
//! assert_eq!(negotiated.extensions[0].name, "permessage-deflate");
//! pump(&mut server, &mut client, now);
//! assert!(matches!(client.poll_event(), Some(Event::Open(_))));
//!
//! let text = "a chat message, a chat message, a chat message, a chat message, a chat message";
//! client.send_text(text).unwrap();
//! assert!(client.pending_output().len() < text.len()); // compressed on the wire
//! pump(&mut client, &mut server, now);
//! assert_eq!(server.poll_event(), Some(Event::Text(text.into())));
//! ```

mod codec;
mod negotiation;

use std::time::Duration;

use codec::{Compressor, Decompressor, Settings};
use negotiation::{Agreement, NAME};

use super::{Extension, ExtensionError, ExtensionFactory, Prepared, RSV1};
use crate::connection::PreparedMessage;
use crate::frame::OpCode;
use crate::handshake::ExtensionOffer;

/// What a [`PerMessageDeflate`] offers (client) or accepts (server), and how it compresses.
///
/// Memory: a connection that has not exchanged a compressed message holds no compression
/// state. While it does, zlib-rs holds about 161 KiB for a compressor at the defaults (12-bit
/// window, memory level 5; 371 KiB at 15/8: its hash table has the same size at any memory
/// level) and 46 KiB for a decompressor. Without context takeover the state lives only
/// during a message; with it, [`hibernate_after`](Self::hibernate_after) frees it on an idle
/// connection, which then keeps the last `2^window_bits` bytes of each direction (4 KiB each
/// at the defaults).
///
/// ```
/// use ws_proto::extension::deflate::DeflateConfig;
/// let mut config = DeflateConfig::default();
/// config.server_no_context_takeover = true; // broadcast servers: compress once for everyone
/// config.min_size = 128;
/// assert_eq!((config.server_max_window_bits, config.mem_level), (12, 5));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct DeflateConfig {
    /// DEFLATE compression level, 0 (store) to 9 (smallest). Default 6, zlib's default.
    pub level: u8,
    /// zlib's memory level, 1 to 9: the size of the compressor's hash table
    /// (`2^(mem_level + 9)` bytes in all). Default 5.
    pub mem_level: u8,
    /// The server's LZ77 window, 8 to 15 (a window of `2^bits` bytes). Server: the largest
    /// window it compresses with (`server_max_window_bits` in its response when below 15 or
    /// asked for). Client: asked of the server when below 15. Default 12.
    ///
    /// A window of 8 bits is accepted in negotiation, but messages are then sent uncompressed:
    /// zlib's raw DEFLATE cannot compress with a window that small.
    pub server_max_window_bits: u8,
    /// The client's LZ77 window, 8 to 15. Server: the largest window it lets a client compress
    /// with, when the client offers `client_max_window_bits`. Client: the window it compresses
    /// with and offers as a hint. Default 12.
    pub client_max_window_bits: u8,
    /// Server: reset the compressor after each message (sent in the response). Client: ask the
    /// server for that. Without context takeover a broadcast is compressed once for every such
    /// connection, and a connection keeps no compressor between messages; with it, small
    /// similar messages compress much better. Default `false`.
    pub server_no_context_takeover: bool,
    /// Server: ask clients to reset their compressor after each message (so their messages
    /// inflate without keeping a window). Client: reset ours and say so. Default `false`.
    pub client_no_context_takeover: bool,
    /// Messages shorter than this many bytes are sent uncompressed (RFC 7692 §6 lets each
    /// message choose). Default 64.
    pub min_size: usize,
    /// With context takeover, a connection that has exchanged no message for this long (and at
    /// most twice this) frees its compressor and decompressor (zlib-rs allocates about 160 KiB and 46 KiB whatever
    /// the memory level and window) and keeps only the last `2^window_bits` bytes of each
    /// direction; the next message rebuilds them from those (about 10 µs at the default
    /// window). `None` keeps them. Default 1 s.
    pub hibernate_after: Option<Duration>,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            level: 6,
            mem_level: 5,
            server_max_window_bits: 12,
            client_max_window_bits: 12,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            min_size: 64,
            hibernate_after: Some(Duration::from_secs(1)),
        }
    }
}

impl DeflateConfig {
    /// The configuration with every value clamped to its valid range.
    fn clamped(mut self) -> DeflateConfig {
        self.level = self.level.min(9);
        self.mem_level = self.mem_level.clamp(1, 9);
        self.server_max_window_bits = self.server_max_window_bits.clamp(8, 15);
        self.client_max_window_bits = self.client_max_window_bits.clamp(8, 15);
        self
    }
}

/// The permessage-deflate extension factory (RFC 7692), for [`Config::extensions`].
///
/// [`Config::extensions`]: crate::Config::extensions
///
/// ```
/// use ws_proto::extension::ExtensionFactory;
/// use ws_proto::extension::deflate::{DeflateConfig, PerMessageDeflate};
/// use ws_proto::handshake::parse_extensions;
///
/// let deflate = PerMessageDeflate::new(DeflateConfig::default());
/// // A server's answer to Chromium's offer:
/// let offer = &parse_extensions(b"permessage-deflate; client_max_window_bits").unwrap()[0];
/// let (_extension, answer) = deflate.accept(offer).unwrap();
/// assert_eq!(answer.to_string(),
///     "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12");
/// // An offer with an unknown parameter is declined (RFC 7692 §5):
/// let bad = &parse_extensions(b"permessage-deflate; x_max_window_bits=10").unwrap()[0];
/// assert!(deflate.accept(bad).is_none());
/// ```
#[derive(Debug, Clone)]
pub struct PerMessageDeflate {
    config: DeflateConfig,
}

impl PerMessageDeflate {
    /// A factory with this configuration (values out of range are clamped to it).
    pub fn new(config: DeflateConfig) -> PerMessageDeflate {
        PerMessageDeflate {
            config: config.clamped(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &DeflateConfig {
        &self.config
    }

    fn extension(&self, agreement: Agreement) -> Box<dyn Extension> {
        let send = (agreement.send_window_bits >= 9).then(|| {
            Compressor::new(
                Settings {
                    level: self.config.level,
                    mem_level: self.config.mem_level,
                    window_bits: agreement.send_window_bits,
                },
                !agreement.send_no_context_takeover,
                self.config.hibernate_after.is_some(),
            )
        });
        Box::new(Deflate {
            hibernate_after: self.config.hibernate_after,
            send,
            receive: Decompressor::new(
                agreement.receive_window_bits,
                !agreement.receive_no_context_takeover,
                self.config.hibernate_after.is_some(),
            ),
            min_size: self.config.min_size,
        })
    }
}

impl Default for PerMessageDeflate {
    fn default() -> Self {
        PerMessageDeflate::new(DeflateConfig::default())
    }
}

impl ExtensionFactory for PerMessageDeflate {
    fn name(&self) -> &str {
        NAME
    }

    fn offer(&self) -> ExtensionOffer {
        negotiation::offer(&self.config).to_element()
    }

    fn accept(&self, offer: &ExtensionOffer) -> Option<(Box<dyn Extension>, ExtensionOffer)> {
        // §5: "A server MUST decline an extension negotiation offer for this extension if"
        // its parameters are unknown, repeated or invalid: `answer_offer` fails, the offer is
        // declined and the next one (if any) considered.
        let (agreement, answer) = negotiation::answer_offer(offer, &self.config).ok()?;
        Some((self.extension(agreement), answer.to_element()))
    }

    fn confirm(&self, response: &ExtensionOffer) -> Result<Box<dyn Extension>, ExtensionError> {
        let agreement = negotiation::check_response(response, &self.config)?;
        Ok(self.extension(agreement))
    }
}

/// One connection's negotiated permessage-deflate.
#[derive(Debug)]
struct Deflate {
    /// `None` when the negotiated window is too small to compress with (8 bits).
    send: Option<Compressor>,
    receive: Decompressor,
    min_size: usize,
    hibernate_after: Option<Duration>,
}

impl Extension for Deflate {
    fn rsv_bits(&self) -> u8 {
        // §6: "This extension uses the RSV1 bit of the WebSocket frame header to indicate
        // whether a message is compressed or not".
        RSV1
    }

    fn decode(
        &mut self,
        _rsv: u8,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
        max_size: usize,
    ) -> Result<(), ExtensionError> {
        self.receive.decompress(input, last, out, max_size)
    }

    fn encode(
        &mut self,
        _opcode: OpCode,
        payload: Vec<u8>,
    ) -> Result<(u8, Vec<u8>), ExtensionError> {
        match &mut self.send {
            Some(compressor) if payload.len() >= self.min_size => {
                // §6.1: "An endpoint MUST set the RSV1 bit of the first frame" of a compressed
                // message; the connection sets it on the first frame only.
                Ok((RSV1, compressor.compress(&payload)))
            }
            _ => Ok((0, payload)),
        }
    }

    fn encode_prepared(&mut self, message: &PreparedMessage) -> Result<Prepared, ExtensionError> {
        let payload = message.payload();
        match &mut self.send {
            Some(compressor) if payload.len() >= self.min_size => {
                if compressor.takes_over() {
                    // Our window carries over: this connection's encoding is its own.
                    let compressed = compressor.compress(payload);
                    return Ok(Prepared::Encoded {
                        rsv: RSV1,
                        payload: compressed,
                    });
                }
                // No context takeover: the same bytes for every connection with these
                // settings, compressed once. Sent plain when that is no smaller.
                let settings = compressor.settings();
                let shared = message.shared_encoding(settings.key(), |payload| {
                    let compressed = codec::compress_once(settings, payload);
                    (compressed.len() < payload.len()).then_some(compressed)
                });
                Ok(match shared {
                    Some(payload) => Prepared::Shared { rsv: RSV1, payload },
                    None => Prepared::Unchanged,
                })
            }
            _ => Ok(Prepared::Unchanged),
        }
    }

    fn hibernate_after(&self) -> Option<Duration> {
        // Only state kept between messages (context takeover) is worth freeing.
        let keeps =
            self.send.as_ref().is_some_and(Compressor::takes_over) || self.receive.takes_over();
        self.hibernate_after.filter(|_| keeps)
    }

    fn hibernate(&mut self) {
        if let Some(compressor) = &mut self.send {
            compressor.hibernate();
        }
        self.receive.hibernate();
    }
}

#[cfg(test)]
mod tests;
