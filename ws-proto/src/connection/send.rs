//! Frames out: messages split into frames of [`Config::fragment_size`], masked on a client
//! (§5.3), transformed by negotiated extensions; control frames; prepared broadcast messages.

use std::sync::{Arc, Mutex};

use rand::RngCore;

use super::{Connection, Phase, Role};
use crate::error::SendError;
use crate::extension::Prepared;
use crate::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD};
use crate::mask::apply_mask;
use crate::output::{fits_output_limit, ZERO_COPY_THRESHOLD};

#[cfg(doc)]
use crate::Config;

/// A message encoded once, to be queued on many server connections without copying its bytes
/// (broadcast). Server frames are unmasked, so the bytes are the same for every client.
///
/// ```
/// use ws_proto::PreparedMessage;
/// let msg = PreparedMessage::text("hello everyone");
/// assert_eq!(msg.wire_len(), 2 + 14);
/// ```
#[derive(Debug, Clone)]
pub struct PreparedMessage {
    wire: Arc<Vec<u8>>,
    opcode: OpCode,
    payload_start: usize,
    /// Transformed payloads shared by connections with the same extension settings (see
    /// [`shared_encoding`](Self::shared_encoding)), shared by the clones of this message.
    encodings: Arc<Mutex<Vec<SharedEncoding>>>,
}

/// An extension's settings key and its transformed payload (`None`: sent untransformed).
type SharedEncoding = (u64, Option<Arc<Vec<u8>>>);

impl PreparedMessage {
    /// A text message.
    pub fn text(text: impl Into<String>) -> Self {
        Self::new(OpCode::Text, text.into().into_bytes())
    }

    /// A binary message.
    pub fn binary(data: impl Into<Vec<u8>>) -> Self {
        Self::new(OpCode::Binary, data.into())
    }

    fn new(opcode: OpCode, payload: Vec<u8>) -> Self {
        let header = FrameHeader {
            fin: true,
            rsv: 0,
            opcode,
            mask: None,
            payload_len: payload.len() as u64,
        };
        let (bytes, n) = header.encode();
        let mut wire = Vec::with_capacity(n + payload.len());
        wire.extend_from_slice(&bytes[..n]);
        wire.extend_from_slice(&payload);
        PreparedMessage {
            wire: Arc::new(wire),
            opcode,
            payload_start: n,
            encodings: Arc::default(),
        }
    }

    /// Bytes on the wire (header and payload), untransformed.
    pub fn wire_len(&self) -> usize {
        self.wire.len()
    }

    /// [`OpCode::Text`] or [`OpCode::Binary`].
    pub fn opcode(&self) -> OpCode {
        self.opcode
    }

    /// The message's payload.
    pub fn payload(&self) -> &[u8] {
        &self.wire[self.payload_start..]
    }

    /// The payload as transformed by an extension with the settings identified by `key`:
    /// `encode` runs once per key (on the first connection that asks), and every later call
    /// with that key, from any clone of this message, gets the same bytes. `encode` returns
    /// `None` when the message is better sent untransformed.
    ///
    /// ```
    /// use ws_proto::PreparedMessage;
    /// let message = PreparedMessage::text("hello");
    /// let upper = message.shared_encoding(1, |p| Some(p.to_ascii_uppercase()));
    /// let again = message.clone().shared_encoding(1, |_| unreachable!("encoded once"));
    /// assert_eq!((upper.as_deref(), again.as_deref()), (Some(&b"HELLO".to_vec()), Some(&b"HELLO".to_vec())));
    /// ```
    pub fn shared_encoding(
        &self,
        key: u64,
        encode: impl FnOnce(&[u8]) -> Option<Vec<u8>>,
    ) -> Option<Arc<Vec<u8>>> {
        // A panic in another connection's `encode` leaves the list as it was: still usable.
        let mut encodings = self
            .encodings
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some((_, encoded)) = encodings.iter().find(|(k, _)| *k == key) {
            return encoded.clone();
        }
        let encoded = encode(self.payload()).map(Arc::new);
        encodings.push((key, encoded.clone()));
        encoded
    }
}

impl Connection {
    /// Queues one complete frame whose payload is copied (control frames, small messages).
    pub(super) fn queue_frame(&mut self, opcode: OpCode, rsv: u8, payload: &[u8]) {
        let header = self.whole_frame_header(opcode, rsv, payload.len());
        self.queue_header_and_copy(header, payload);
    }

    /// The header of a whole frame (FIN set) of `len` bytes, with a fresh mask on a client.
    fn whole_frame_header(&mut self, opcode: OpCode, rsv: u8, len: usize) -> FrameHeader {
        FrameHeader {
            fin: true,
            rsv,
            opcode,
            mask: self.next_mask(),
            payload_len: len as u64,
        }
    }

    pub(super) fn queue_header_and_copy(&mut self, header: FrameHeader, payload: &[u8]) {
        let (bytes, n) = header.encode();
        let tail = self.out.tail(n + payload.len());
        tail.extend_from_slice(&bytes[..n]);
        let start = tail.len();
        tail.extend_from_slice(payload);
        if let Some(key) = header.mask {
            apply_mask(&mut tail[start..], key, 0);
        }
        self.out.commit_tail(n + payload.len());
    }

    fn next_mask(&self) -> Option<[u8; 4]> {
        // §5.3: the masking key "MUST be derived from a strong source of entropy".
        (self.role == Role::Client).then(|| {
            let mut key = [0u8; 4];
            rand::rng().fill_bytes(&mut key);
            key
        })
    }

    /// Whether a message of `len` payload bytes may be queued now: the connection is open and
    /// the output has room for it ([`fits_output_limit`]).
    fn check_can_send(&self, len: usize) -> Result<(), SendError> {
        match self.phase {
            Phase::Connecting(_) => return Err(SendError::NotOpen),
            Phase::Closing | Phase::Closed { .. } => return Err(SendError::Closed),
            Phase::Open => {}
        }
        let buffered = self.out.len();
        if !fits_output_limit(buffered, len, self.config.max_buffered_output) {
            return Err(SendError::BufferFull {
                buffered,
                limit: self.config.max_buffered_output,
            });
        }
        Ok(())
    }

    /// Queues a text message (split into frames of [`Config::fragment_size`] if longer).
    ///
    /// Errors: [`SendError::NotOpen`], [`SendError::Closed`], [`SendError::BufferFull`].
    pub fn send_text(&mut self, text: impl Into<String>) -> Result<(), SendError> {
        self.send_message(OpCode::Text, text.into().into_bytes())
    }

    /// Queues a binary message (split into frames of [`Config::fragment_size`] if longer).
    /// The buffer is moved into the output queue without a copy when it is large.
    pub fn send_binary(&mut self, data: impl Into<Vec<u8>>) -> Result<(), SendError> {
        self.send_message(OpCode::Binary, data.into())
    }

    fn send_message(&mut self, opcode: OpCode, payload: Vec<u8>) -> Result<(), SendError> {
        self.check_can_send(payload.len())?;
        let mut payload = payload;
        let mut rsv = 0;
        for ext in &mut self.extensions {
            let (bits, encoded) = ext.encode(opcode, payload).map_err(SendError::Extension)?;
            rsv |= bits & ext.rsv_bits();
            payload = encoded;
        }
        if !self.extensions.is_empty() {
            self.note_extension_activity();
        }
        self.queue_message(opcode, rsv, payload)
    }

    /// Queues a (transformed) message in frames of [`Config::fragment_size`], `rsv` on the
    /// first.
    fn queue_message(
        &mut self,
        opcode: OpCode,
        rsv: u8,
        payload: Vec<u8>,
    ) -> Result<(), SendError> {
        let mut payload = payload;
        let fragment = self.config.fragment_size.max(1);
        if payload.len() < ZERO_COPY_THRESHOLD {
            // Small: header and payload copied into the coalescing buffer.
            let mut first = true;
            let mut chunks = payload.chunks(fragment).peekable();
            if chunks.peek().is_none() {
                self.queue_frame(opcode, rsv, &[]);
            }
            while let Some(chunk) = chunks.next() {
                let header = FrameHeader {
                    fin: chunks.peek().is_none(),
                    rsv: if first { rsv } else { 0 },
                    opcode: if first { opcode } else { OpCode::Continuation },
                    mask: self.next_mask(),
                    payload_len: chunk.len() as u64,
                };
                self.queue_header_and_copy(header, chunk);
                first = false;
            }
            self.out.keep(payload);
            return Ok(());
        }
        // Large: the payload buffer itself goes into the queue (masked in place on a client).
        if payload.len() <= fragment {
            let header = self.whole_frame_header(opcode, rsv, payload.len());
            if let Some(key) = header.mask {
                apply_mask(&mut payload, key, 0);
            }
            let (bytes, n) = header.encode();
            self.out.push_slice(&bytes[..n]);
            self.out.push_vec(payload);
            return Ok(());
        }
        let frames = payload.len().div_ceil(fragment);
        let mut headers = Vec::with_capacity(frames);
        for (i, start) in (0..payload.len()).step_by(fragment).enumerate() {
            let end = (start + fragment).min(payload.len());
            let mask = self.next_mask();
            if let Some(key) = mask {
                apply_mask(&mut payload[start..end], key, 0);
            }
            headers.push(FrameHeader {
                fin: i + 1 == frames,
                rsv: if i == 0 { rsv } else { 0 },
                opcode: if i == 0 { opcode } else { OpCode::Continuation },
                mask,
                payload_len: (end - start) as u64,
            });
        }
        let shared = Arc::new(payload);
        for (header, start) in headers.iter().zip((0..shared.len()).step_by(fragment)) {
            let (bytes, n) = header.encode();
            self.out.push_slice(&bytes[..n]);
            self.out
                .push_shared(&shared, start, start + header.payload_len as usize);
        }
        Ok(())
    }

    /// Queues a message encoded once for many connections (see [`PreparedMessage`]). On a
    /// server its bytes are shared, not copied; a client (which must mask) copies and masks.
    pub fn send_prepared(&mut self, message: &PreparedMessage) -> Result<(), SendError> {
        self.check_can_send(message.wire.len())?;
        if let [extension] = &mut self.extensions[..] {
            if self.role == Role::Server {
                let prepared = extension
                    .encode_prepared(message)
                    .map_err(SendError::Extension)?;
                self.note_extension_activity();
                match prepared {
                    Prepared::Shared { rsv, payload } => {
                        let header = FrameHeader {
                            fin: true,
                            rsv,
                            opcode: message.opcode,
                            mask: None,
                            payload_len: payload.len() as u64,
                        };
                        let (bytes, n) = header.encode();
                        self.out.push_slice(&bytes[..n]);
                        self.out.push_shared(&payload, 0, payload.len());
                        return Ok(());
                    }
                    Prepared::Encoded { rsv, payload } => {
                        return self.queue_message(message.opcode, rsv, payload);
                    }
                    Prepared::Unchanged => {}
                }
            }
        }
        if !self.extensions.is_empty() && (self.role == Role::Client || self.extensions.len() > 1) {
            // Masked per connection anyway, or several transforms in a row: the normal path.
            return self.send_message(message.opcode, message.payload().to_vec());
        }
        match self.role {
            Role::Server => self.out.push_shared(&message.wire, 0, message.wire.len()),
            Role::Client => {
                let payload = &message.wire[message.payload_start..];
                let mask = self.next_mask();
                let header = FrameHeader {
                    fin: true,
                    rsv: 0,
                    opcode: message.opcode,
                    mask,
                    payload_len: payload.len() as u64,
                };
                self.queue_header_and_copy(header, payload);
            }
        }
        Ok(())
    }

    /// Queues a ping (payload at most 125 bytes).
    pub fn ping(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Ping, payload)
    }

    /// Queues an unsolicited pong (a unidirectional heartbeat, §5.5.3).
    pub fn pong(&mut self, payload: &[u8]) -> Result<(), SendError> {
        self.send_control(OpCode::Pong, payload)
    }

    fn send_control(&mut self, opcode: OpCode, payload: &[u8]) -> Result<(), SendError> {
        // §5.5: "All control frames MUST have a payload length of 125 bytes or less".
        if payload.len() > MAX_CONTROL_PAYLOAD {
            return Err(SendError::ControlTooLong(payload.len()));
        }
        self.check_can_send(payload.len())?;
        self.queue_frame(opcode, 0, payload);
        Ok(())
    }
}
