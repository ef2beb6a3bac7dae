//! Frames in (§5): header decoding, unmasking, the checks of §5.1–§5.5, reassembly of
//! fragmented messages (§5.4), UTF-8 validation of text as it arrives (§8.1), and the
//! control frames (pings answered, pongs matched, the peer's close).

use std::time::{Duration, Instant};

use super::closing::Ending;
use super::timers::Timer;
use super::{Connection, Event, Phase, Role};
use crate::close::CloseFrame;
use crate::error::{Error, ProtocolError};
use crate::extension::Extension;
use crate::frame::{FrameHeader, OpCode, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};
use crate::mask::extend_masked;
use crate::output::fits_output_limit;
use crate::utf8::Utf8Validator;

/// Where the frame reader is.
#[derive(Debug)]
pub(super) enum Rx {
    /// Collecting a frame header; `len` bytes of it are in `buf`.
    Header {
        buf: [u8; MAX_HEADER_LEN],
        len: usize,
    },
    /// Streaming a payload.
    Payload {
        header: FrameHeader,
        remaining: u64,
        mask_offset: usize,
    },
    /// Ignoring input: a close was received or the connection failed.
    Discard,
}

impl Rx {
    /// Waiting for the first byte of a frame header.
    pub(super) fn new() -> Rx {
        Rx::Header {
            buf: [0; MAX_HEADER_LEN],
            len: 0,
        }
    }
}

/// A data message being reassembled.
#[derive(Debug)]
pub(super) struct Incoming {
    opcode: OpCode,
    rsv: u8,
    /// The message so far (decoded by the extensions when `transformed`).
    pub(super) buf: Vec<u8>,
    /// Payload bytes received so far, as sent (before any extension decodes them).
    wire_len: u64,
    /// Some of `rsv` belong to a negotiated extension, which decodes the payload as it comes.
    transformed: bool,
    /// `Some` for text, validated as it arrives (after decoding).
    utf8: Option<Utf8Validator>,
}

/// Payload of a transformed message is unmasked through a buffer of this size on the stack.
const UNMASK_CHUNK: usize = 4096;

/// Never read more than this many bytes ahead of the message buffer's actual content.
const MAX_PREALLOCATION: u64 = 1 << 20;

impl Connection {
    /// Feeds bytes read from the transport at `now`. Never fails and never panics: protocol
    /// violations become an [`Event::Error`] plus the right close frame in the output. `now`
    /// is the time of the read: it counts the peer's pings per second, and starts the timers
    /// this input may start (keepalive on a client's open, the close timer on the peer's close).
    pub fn receive(&mut self, data: &[u8], now: Instant) {
        if self.is_terminated() {
            return;
        }
        self.advance_clock(now);
        match self.phase {
            Phase::Connecting(_) => self.receive_handshake(data),
            _ => self.receive_frames(data),
        }
    }

    pub(super) fn receive_frames(&mut self, mut data: &[u8]) {
        while !data.is_empty() {
            match &mut self.rx {
                Rx::Discard => return,
                Rx::Header { buf, len } => {
                    let between_frames = *len == 0;
                    let decoded = if between_frames {
                        FrameHeader::decode(data)
                    } else {
                        let old = *len;
                        let take = (MAX_HEADER_LEN - old).min(data.len());
                        buf[old..old + take].copy_from_slice(&data[..take]);
                        FrameHeader::decode(&buf[..old + take])
                            .map(|d| d.map(|(h, n)| (h, n - old)))
                    };
                    match decoded {
                        Ok(Some((header, used))) => {
                            data = &data[used..];
                            if between_frames {
                                if let Some(rest) = self.receive_whole_message(header, data) {
                                    data = rest;
                                    continue;
                                }
                            }
                            if let Err(e) = self.start_frame(header) {
                                return self.fail_with(Error::Protocol(e));
                            }
                        }
                        Ok(None) => {
                            // Too short for a header: keep what we have (at most 13 bytes).
                            let old = *len;
                            let take = (MAX_HEADER_LEN - old).min(data.len());
                            buf[old..old + take].copy_from_slice(&data[..take]);
                            *len = old + take;
                            return;
                        }
                        Err(e) => return self.fail_with(Error::Protocol(e)),
                    }
                }
                Rx::Payload {
                    header,
                    remaining,
                    mask_offset,
                } => {
                    let take = usize::try_from(*remaining)
                        .unwrap_or(usize::MAX)
                        .min(data.len());
                    let (chunk, rest) = data.split_at(take);
                    data = rest;
                    *remaining -= take as u64;
                    let header = *header;
                    let transformed = !header.opcode.is_control()
                        && self.message.as_ref().is_some_and(|m| m.transformed);
                    if transformed {
                        let offset = *mask_offset;
                        *mask_offset = (offset + take) % 4;
                        let frame_done = *remaining == 0;
                        let last = header.fin && frame_done;
                        if let Err(e) = self.decode_payload(chunk, header.mask, offset, last) {
                            return self.fail_with(Error::Protocol(e));
                        }
                        if frame_done {
                            self.finish_frame(header);
                        }
                        continue;
                    }
                    let target = if header.opcode.is_control() {
                        &mut self.control
                    } else {
                        match &mut self.message {
                            Some(m) => &mut m.buf,
                            None => unreachable!("a data payload always has a message"),
                        }
                    };
                    let start = target.len();
                    match header.mask {
                        Some(key) => *mask_offset = extend_masked(target, chunk, key, *mask_offset),
                        None => target.extend_from_slice(chunk),
                    }
                    if let Some(Incoming {
                        utf8: Some(v), buf, ..
                    }) = &mut self.message
                    {
                        if !header.opcode.is_control() && v.feed(&buf[start..]).is_err() {
                            return self.fail_with(Error::Protocol(ProtocolError::InvalidUtf8));
                        }
                    }
                    if *remaining == 0 {
                        self.finish_frame(header);
                    }
                }
            }
        }
    }

    /// The common case, in one step: an unfragmented data frame whose whole payload is in
    /// `data`, with no message in progress and no RSV bit, that passes every check of
    /// [`start_frame`](Self::start_frame). Its message is queued and the input after it
    /// returned. `None` leaves the frame to the general path, which checks it again and reports
    /// what fails (invalid UTF-8 included); nothing has changed then.
    fn receive_whole_message<'a>(
        &mut self,
        header: FrameHeader,
        data: &'a [u8],
    ) -> Option<&'a [u8]> {
        let len = usize::try_from(header.payload_len).ok()?;
        let plain = header.fin
            && header.rsv == 0
            && matches!(header.opcode, OpCode::Text | OpCode::Binary)
            && self.message.is_none()
            && header.mask.is_some() == (self.role == Role::Server)
            && len <= self.config.max_frame_size
            && len <= self.config.max_message_size
            && len <= data.len();
        if !plain {
            return None;
        }
        let (payload, rest) = data.split_at(len);
        let mut buf = self.out.message_buffer(len);
        match header.mask {
            Some(key) => {
                extend_masked(&mut buf, payload, key, 0);
            }
            None => buf.extend_from_slice(payload),
        }
        let event = if header.opcode == OpCode::Text {
            // The whole text is here: validating it at once fails as early as fail-fast can.
            Event::Text(String::from_utf8(buf).ok()?)
        } else {
            Event::Binary(buf)
        };
        self.events.push_back(event);
        Some(rest)
    }

    /// Checks a header against §5 and the limits, and prepares to stream its payload.
    fn start_frame(&mut self, header: FrameHeader) -> Result<(), ProtocolError> {
        // §5.2: RSV bits must be 0 unless an extension defining them was negotiated, and such
        // extensions mark the first frame of a data message only.
        let allowed_rsv = match header.opcode {
            OpCode::Text | OpCode::Binary => self.extension_rsv,
            _ => 0,
        };
        if header.rsv & !allowed_rsv != 0 {
            return Err(ProtocolError::ReservedBits(header.rsv));
        }
        // §5.1: "a server MUST close the connection upon receiving a frame that is not masked";
        // "a client MUST close a connection if it detects a masked frame".
        match (self.role, header.mask) {
            (Role::Server, None) => return Err(ProtocolError::UnmaskedFrame),
            (Role::Client, Some(_)) => return Err(ProtocolError::MaskedFrame),
            _ => {}
        }
        // §5.5 first, so that a bad control frame is a protocol error (1002) whatever the size
        // limit: "All control frames MUST have a payload length of 125 bytes or less and MUST
        // NOT be fragmented."
        if header.opcode.is_control() {
            if !header.fin {
                return Err(ProtocolError::FragmentedControlFrame);
            }
            if header.payload_len > MAX_CONTROL_PAYLOAD as u64 {
                return Err(ProtocolError::ControlFrameTooLong(header.payload_len));
            }
        }
        if header.payload_len > self.config.max_frame_size as u64 {
            return Err(ProtocolError::FrameTooLarge {
                size: header.payload_len,
                max: self.config.max_frame_size,
            });
        }
        if header.opcode.is_control() {
            self.control.clear();
        } else {
            let so_far = match (&mut self.message, header.opcode) {
                (None, OpCode::Continuation) => return Err(ProtocolError::UnexpectedContinuation),
                (Some(_), OpCode::Text | OpCode::Binary) => {
                    return Err(ProtocolError::ExpectedContinuation)
                }
                (Some(m), _) => m.wire_len,
                (None, opcode) => {
                    self.message = Some(Incoming {
                        opcode,
                        rsv: header.rsv,
                        buf: Vec::new(),
                        wire_len: 0,
                        transformed: header.rsv & self.extension_rsv != 0,
                        utf8: (opcode == OpCode::Text).then(Utf8Validator::default),
                    });
                    0
                }
            };
            // The limit holds for the message as sent and, in `decode_payload`, as decoded.
            let size = so_far + header.payload_len;
            if size > self.config.max_message_size as u64 {
                return Err(ProtocolError::MessageTooLarge {
                    size,
                    max: self.config.max_message_size,
                });
            }
            if let Some(m) = &mut self.message {
                m.wire_len = size;
                if m.transformed {
                    // The decoded size is unknown: the extension grows the buffer as it goes.
                    self.rx = Rx::Payload {
                        header,
                        remaining: header.payload_len,
                        mask_offset: 0,
                    };
                    if header.payload_len == 0 {
                        return self.finish_empty_transformed_frame(header);
                    }
                    return Ok(());
                }
                // Reserve what was declared, but not more than 1 MiB ahead of the data.
                let additional = header.payload_len.min(MAX_PREALLOCATION) as usize;
                if m.buf.capacity() == 0 {
                    // A new message: one allocation of the right size, without `reserve`'s
                    // growth path (a measurable share of a small message's cost).
                    m.buf = self.out.message_buffer(additional);
                } else {
                    m.buf.reserve(additional);
                }
            }
        }
        self.rx = Rx::Payload {
            header,
            remaining: header.payload_len,
            mask_offset: 0,
        };
        if header.payload_len == 0 {
            self.finish_frame(header);
        }
        Ok(())
    }

    fn finish_frame(&mut self, header: FrameHeader) {
        self.rx = Rx::new();
        match header.opcode {
            OpCode::Ping => self.on_ping(),
            OpCode::Pong => {
                let payload = std::mem::take(&mut self.control);
                if self.ping_payload.is_some_and(|p| p[..] == payload[..]) {
                    self.ping_payload = None;
                    self.timers.stop(Timer::Pong);
                }
                self.events.push_back(Event::Pong(payload));
            }
            OpCode::Close => self.on_close(),
            _ if header.fin => self.finish_message(),
            _ => {}
        }
    }

    fn on_ping(&mut self) {
        let (start, count) = &mut self.ping_window;
        if self.now.duration_since(*start) >= Duration::from_secs(1) {
            *start = self.now;
            *count = 0;
        }
        *count += 1;
        if *count > self.config.max_pings_per_second {
            return self.fail_with(Error::Protocol(ProtocolError::PingFlood));
        }
        let payload = std::mem::take(&mut self.control);
        // §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response,
        // unless it already received a Close frame." A peer that does not read while pinging
        // cannot make the pongs pile up: over the output limit they are skipped (§5.5.3 allows
        // answering only the most recent ping). Having sent a close (`Closing`) is no exception:
        // only data frames are forbidden after it (§5.5.1).
        let answer = matches!(self.phase, Phase::Open | Phase::Closing);
        let fits = fits_output_limit(
            self.out.len(),
            2 + payload.len(),
            self.config.max_buffered_output,
        );
        if answer && fits {
            self.queue_frame(OpCode::Pong, 0, &payload);
        }
        self.events.push_back(Event::Ping(payload));
    }

    fn on_close(&mut self) {
        match CloseFrame::parse(&self.control) {
            Ok(frame) => self.apply_or_defer(Ending::PeerClose(frame)),
            Err(e) => self.fail_with(Error::Protocol(e)),
        }
    }

    /// An empty frame of a transformed message: nothing to decode, but the message may end.
    fn finish_empty_transformed_frame(&mut self, header: FrameHeader) -> Result<(), ProtocolError> {
        if header.fin {
            self.decode_payload(&[], None, 0, true)?;
        }
        self.finish_frame(header);
        Ok(())
    }

    /// Streams a piece of a transformed message's payload through the extensions that own its
    /// RSV bits (the last negotiated first), into the message buffer, then validates the text
    /// that came out. `last`: the message's final piece.
    fn decode_payload(
        &mut self,
        chunk: &[u8],
        mask: Option<[u8; 4]>,
        mut mask_offset: usize,
        last: bool,
    ) -> Result<(), ProtocolError> {
        let Some(message) = &mut self.message else {
            return Ok(());
        };
        let start = message.buf.len();
        let mut unmasked = [0u8; UNMASK_CHUNK];
        let mut pieces = chunk.chunks(UNMASK_CHUNK).peekable();
        if pieces.peek().is_none() {
            decode_through(
                &mut self.extensions,
                message,
                &[],
                last,
                self.config.max_message_size,
            )?;
        }
        while let Some(piece) = pieces.next() {
            let input = match mask {
                Some(key) => {
                    let buf = &mut unmasked[..piece.len()];
                    buf.copy_from_slice(piece);
                    mask_offset = crate::mask::apply_mask(buf, key, mask_offset);
                    &*buf
                }
                None => piece,
            };
            let last_piece = last && pieces.peek().is_none();
            decode_through(
                &mut self.extensions,
                message,
                input,
                last_piece,
                self.config.max_message_size,
            )?;
        }
        if let Some(v) = &mut message.utf8 {
            v.feed(&message.buf[start..])
                .map_err(|_| ProtocolError::InvalidUtf8)?;
        }
        Ok(())
    }

    fn finish_message(&mut self) {
        let Some(message) = self.message.take() else {
            return;
        };
        if message.transformed {
            self.note_extension_activity();
        }
        let payload = message.buf;
        let event = match message.opcode {
            OpCode::Text => {
                if message.utf8.is_some_and(|v| v.finish().is_err()) {
                    return self.fail_with(Error::Protocol(ProtocolError::InvalidUtf8));
                }
                match String::from_utf8(payload) {
                    Ok(text) => Event::Text(text),
                    Err(_) => return self.fail_with(Error::Protocol(ProtocolError::InvalidUtf8)),
                }
            }
            _ => Event::Binary(payload),
        };
        self.events.push_back(event);
    }
}

/// Decodes `input` through every extension owning some of the message's RSV bits, in reverse
/// order of negotiation, into the message buffer.
fn decode_through(
    extensions: &mut [Box<dyn Extension>],
    message: &mut Incoming,
    input: &[u8],
    last: bool,
    max_size: usize,
) -> Result<(), ProtocolError> {
    let rsv = message.rsv;
    let mut owners = extensions
        .iter_mut()
        .rev()
        .filter(|e| rsv & e.rsv_bits() != 0)
        .peekable();
    let mut carried: Option<Vec<u8>> = None;
    while let Some(ext) = owners.next() {
        let piece = carried.take();
        let input = piece.as_deref().unwrap_or(input);
        let result = if owners.peek().is_none() {
            ext.decode(rsv, input, last, &mut message.buf, max_size)
        } else {
            // Several transforms in a row: each one's output is the next one's input.
            let mut next = Vec::new();
            let result = ext.decode(rsv, input, last, &mut next, max_size);
            carried = Some(next);
            result
        };
        result.map_err(ProtocolError::Extension)?;
    }
    Ok(())
}
