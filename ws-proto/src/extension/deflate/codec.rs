//! The compressed-data transform of RFC 7692 §7.2: DEFLATE (RFC 1951) with a sync flush per
//! message, the `00 00 ff ff` tail removed on send and put back on receive, and the LZ77
//! window kept or reset between messages as negotiated. The DEFLATE engine is `zlib-rs`.

use zlib_rs::{Deflate, DeflateConfig, DeflateFlush, Inflate, InflateFlush, Status};

use crate::extension::ExtensionError;

/// The four bytes a sync flush ends with (an empty stored block's `LEN`/`NLEN`).
pub(super) const SYNC_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Output grows in steps of at least this many bytes.
const MIN_STEP: usize = 1024;

/// The sending side: one DEFLATE stream per connection (context takeover) or per message.
#[derive(Debug)]
pub(super) struct Compressor {
    settings: Settings,
    /// `false` when the peer asked us to reset the window after each message.
    takeover: bool,
    /// Created on the first compressed message; dropped after each message when `takeover`
    /// is off, so that an idle connection holds no compression state, and when hibernating.
    stream: Option<Stream>,
    /// With context takeover and hibernation: the last `2^window_bits` bytes compressed. A
    /// stream rebuilt after hibernating starts with them as its dictionary, so the peer's
    /// window (which holds the same bytes) still decodes what it refers to.
    history: Option<Vec<u8>>,
}

/// What a compressed stream is made with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Settings {
    pub(super) level: u8,
    pub(super) mem_level: u8,
    /// 9..=15. A negotiated 8 is `None` on the compressor: zlib's raw DEFLATE turns a window of
    /// 8 bits into 9, so messages are then sent uncompressed (RFC 7692 §6 lets a sender leave
    /// any message uncompressed).
    pub(super) window_bits: u8,
}

impl Settings {
    /// A number identifying these settings among shared encodings of a broadcast message.
    pub(super) fn key(self) -> u64 {
        0xDEF1_A7E0_0000_0000
            | u64::from(self.level) << 16
            | u64::from(self.mem_level) << 8
            | u64::from(self.window_bits)
    }
}

/// `zlib_rs::Deflate` is not `Debug`.
struct Stream(Deflate);

impl std::fmt::Debug for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deflate")
    }
}

impl Compressor {
    /// `hibernates`: [`hibernate`](Self::hibernate) may be called (the history is kept).
    pub(super) fn new(settings: Settings, takeover: bool, hibernates: bool) -> Compressor {
        Compressor {
            settings,
            takeover,
            stream: None,
            history: (takeover && hibernates).then(Vec::new),
        }
    }

    /// Compresses one whole message: the DEFLATE blocks of a sync flush, without the final
    /// `00 00 ff ff` (§7.2.1: "Remove 4 octets (that are 0x00 0x00 0xff 0xff) from the tail
    /// end").
    pub(super) fn compress(&mut self, input: &[u8]) -> Vec<u8> {
        if input.is_empty() {
            // An empty message is one empty stored block (§7.2.3.6), whatever came before:
            // zlib writes nothing at all for a sync flush right after another one, and the
            // peer cannot inflate nothing followed by the tail it appends.
            return vec![0x00];
        }
        let settings = self.settings;
        let history = &self.history;
        let stream = self.stream.get_or_insert_with(|| {
            let mut deflate = new_deflate(settings);
            if let Some(history) = history.as_deref().filter(|h| !h.is_empty()) {
                // Cannot fail on a raw stream that has compressed nothing yet.
                let _ = deflate.set_dictionary(history);
            }
            Stream(deflate)
        });
        let out = deflate_message(&mut stream.0, input);
        if !self.takeover {
            // §7.1.1.1/§7.1.1.2 (no context takeover): the next message starts from an empty
            // window; dropping the stream does that and frees its memory until then.
            self.stream = None;
        }
        if let Some(history) = &mut self.history {
            remember(history, input, 1 << settings.window_bits);
        }
        out
    }

    /// Frees the stream (about 150 KiB: zlib-rs sizes its hash table for the largest memory
    /// level whatever the one asked for); the next message rebuilds it from the history.
    pub(super) fn hibernate(&mut self) {
        if self.history.is_some() {
            self.stream = None;
        }
    }

    /// Whether the window is kept between messages.
    pub(super) fn takes_over(&self) -> bool {
        self.takeover
    }

    pub(super) fn settings(&self) -> Settings {
        self.settings
    }
}

fn new_deflate(settings: Settings) -> Deflate {
    Deflate::new_with_config(DeflateConfig {
        level: i32::from(settings.level),
        // Negative: raw DEFLATE, no zlib header (§7.2.1).
        window_bits: -i32::from(settings.window_bits),
        mem_level: i32::from(settings.mem_level),
        ..DeflateConfig::default()
    })
}

/// Compresses `input` with a fresh stream of `settings` (a broadcast message's shared encoding).
pub(super) fn compress_once(settings: Settings, input: &[u8]) -> Vec<u8> {
    Compressor::new(settings, false, false).compress(input)
}

/// Keeps the last `window` bytes of everything passed here in `history`.
fn remember(history: &mut Vec<u8>, data: &[u8], window: usize) {
    if data.len() >= window {
        history.clear();
        history.extend_from_slice(&data[data.len() - window..]);
        return;
    }
    let excess = (history.len() + data.len()).saturating_sub(window);
    history.drain(..excess);
    history.extend_from_slice(data);
}

fn deflate_message(stream: &mut Deflate, mut input: &[u8]) -> Vec<u8> {
    let mut out: Vec<u8> = Vec::with_capacity(input.len() / 2 + 64);
    loop {
        if out.len() == out.capacity() {
            out.reserve(out.capacity().max(MIN_STEP));
        }
        let start = out.len();
        out.resize(out.capacity(), 0);
        let (in_before, out_before) = (stream.total_in(), stream.total_out());
        let status = stream.compress(input, &mut out[start..], DeflateFlush::SyncFlush);
        let consumed = (stream.total_in() - in_before) as usize;
        let produced = (stream.total_out() - out_before) as usize;
        out.truncate(start + produced);
        input = &input[consumed..];
        // A stream built from validated settings with in-memory buffers cannot fail; a
        // `BufError` only says no progress was possible.
        debug_assert!(status.is_ok(), "deflate failed: {status:?}");
        // zlib: after a flush, "If deflate returns with avail_out == 0, this function must be
        // called again with the same value of the flush parameter and more output space".
        if input.is_empty() && out.len() < out.capacity() {
            break;
        }
        if status.is_err() {
            break;
        }
    }
    // A sync flush always ends with an empty stored block: `00 00 ff ff` after alignment.
    if out.ends_with(&SYNC_TAIL) {
        out.truncate(out.len() - SYNC_TAIL.len());
    }
    out
}

/// The receiving side: inflates a message's payload as it arrives, stopping at the size limit.
#[derive(Debug)]
pub(super) struct Decompressor {
    /// 9..=15 (a negotiated 8 inflates with 9: a larger window decodes any smaller one's data).
    window_bits: u8,
    takeover: bool,
    /// Whether [`hibernate`](Self::hibernate) frees the stream between messages.
    hibernates: bool,
    /// Created on the first compressed message; dropped after each message without context
    /// takeover, and when hibernating.
    stream: Option<InflateStream>,
    /// With context takeover: the last `2^window_bits` bytes inflated, the dictionary of a
    /// stream started afresh (after hibernating, or after a final block), since the peer may
    /// refer to any of them (§7.2.2).
    history: Option<Vec<u8>>,
    /// Payload bytes of the message in progress (a message is being inflated when not zero or
    /// when `in_message`).
    in_message: bool,
    message_input: usize,
}

struct InflateStream {
    inflate: Inflate,
    /// The DEFLATE stream ended (a block with BFINAL set).
    ended: bool,
}

impl std::fmt::Debug for InflateStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inflate")
            .field("ended", &self.ended)
            .finish()
    }
}

impl Decompressor {
    /// `hibernates`: [`hibernate`](Self::hibernate) may free the stream between messages.
    pub(super) fn new(window_bits: u8, takeover: bool, hibernates: bool) -> Decompressor {
        Decompressor {
            window_bits: window_bits.max(9),
            takeover,
            hibernates,
            stream: None,
            history: takeover.then(Vec::new),
            in_message: false,
            message_input: 0,
        }
    }

    /// Frees the stream (about 46 KiB: zlib-rs allocates the largest window whatever the one
    /// negotiated), between messages only; the next message rebuilds it from the history.
    pub(super) fn hibernate(&mut self) {
        if self.hibernates && self.takeover && !self.in_message {
            self.stream = None;
        }
    }

    /// Whether the window is kept between messages.
    pub(super) fn takes_over(&self) -> bool {
        self.takeover
    }

    /// A fresh stream whose window holds `dictionary`.
    fn new_stream(window_bits: u8, dictionary: &[u8]) -> InflateStream {
        let mut inflate = Inflate::new(false, window_bits);
        if !dictionary.is_empty() {
            // Cannot fail on a raw stream (zlib allows it at any time).
            let _ = inflate.set_dictionary(dictionary);
        }
        InflateStream {
            inflate,
            ended: false,
        }
    }

    /// Inflates the next piece of a compressed message into `out`, which never grows beyond
    /// `max_size` bytes: [`ExtensionError::TooLarge`] as soon as more output is pending.
    /// `last` marks the end of the message: the sync-flush tail is inflated then (§7.2.2:
    /// "Append 4 octets of 0x00 0x00 0xff 0xff to the tail end of the payload of the message").
    pub(super) fn decompress(
        &mut self,
        input: &[u8],
        last: bool,
        out: &mut Vec<u8>,
        max_size: usize,
    ) -> Result<(), ExtensionError> {
        self.in_message = !last;
        self.message_input += input.len();
        let window_bits = self.window_bits;
        let empty: &[u8] = &[];
        let history = self.history.as_deref().unwrap_or(empty);
        let stream = self
            .stream
            .get_or_insert_with(|| Self::new_stream(window_bits, history));
        let start = out.len();
        let result =
            inflate_into(stream, input, out, max_size, window_bits, history).and_then(|()| {
                // A message with no payload at all is empty: the tail would start a stored
                // block that the next message's data could not complete.
                if last && self.message_input > 0 {
                    inflate_into(stream, &SYNC_TAIL, out, max_size, window_bits, history)
                } else {
                    Ok(())
                }
            });
        if last {
            self.message_input = 0;
        }
        // A failed stream is never used again (the connection fails); a finished message
        // without context takeover, or whose stream ended, starts the next one afresh.
        if result.is_err() || (last && (!self.takeover || stream.ended)) {
            self.stream = None;
        }
        if let (Ok(()), Some(history)) = (&result, &mut self.history) {
            // Every legitimate back reference lands in the last 2^window_bits bytes of output,
            // across a stream that ended and restarted too: keeping them is enough.
            remember(history, &out[start..], 1 << window_bits);
        }
        result
    }
}

/// Inflates `input` into `out`. `history` is the output before this call (its last
/// `2^window_bits` bytes), the dictionary of a stream restarted after a final block.
fn inflate_into(
    stream: &mut InflateStream,
    mut input: &[u8],
    out: &mut Vec<u8>,
    max_size: usize,
    window_bits: u8,
    history: &[u8],
) -> Result<(), ExtensionError> {
    // One byte of room beyond the limit tells "exactly the limit" from "more": output never
    // grows past `limit`, and reaching it fails.
    let limit = max_size.saturating_add(1);
    let call_start = out.len();
    loop {
        if stream.ended {
            // §7.2.3.4: a sender may end a message's data with a block that has BFINAL set,
            // followed by one octet starting an empty stored block so that the tail we append
            // completes it. The tail alone ends the message; other data starts a new stream,
            // whose window still holds what came before (§7.2.2).
            if input.is_empty() || input == SYNC_TAIL {
                return Ok(());
            }
            let window = 1usize << window_bits;
            let produced = &out[call_start..];
            let mut dictionary = Vec::with_capacity(window);
            let from_history = window.saturating_sub(produced.len()).min(history.len());
            dictionary.extend_from_slice(&history[history.len() - from_history..]);
            let from_output = produced.len().min(window);
            dictionary.extend_from_slice(&produced[produced.len() - from_output..]);
            *stream = Decompressor::new_stream(window_bits, &dictionary);
        }
        if out.len() == out.capacity() {
            let room = limit.saturating_sub(out.len());
            out.reserve_exact(out.capacity().max(MIN_STEP).min(room));
        }
        let start = out.len();
        // Room for this call: bounded by the input it has (DEFLATE expands at most ~1032
        // times), so that zero-filling spare capacity never costs more than the output it may
        // hold, whatever the capacity already reserved.
        let step = MIN_STEP.max(input.len().saturating_mul(64));
        let end = out.capacity().min(limit).min(start.saturating_add(step));
        out.resize(end, 0);
        let (in_before, out_before) = (stream.inflate.total_in(), stream.inflate.total_out());
        let status = stream
            .inflate
            .decompress(input, &mut out[start..], InflateFlush::SyncFlush);
        let consumed = (stream.inflate.total_in() - in_before) as usize;
        let produced = (stream.inflate.total_out() - out_before) as usize;
        out.truncate(start + produced);
        input = &input[consumed..];
        if out.len() > max_size {
            out.truncate(max_size);
            return Err(ExtensionError::TooLarge);
        }
        match status {
            Ok(Status::StreamEnd) => stream.ended = true,
            Ok(Status::Ok | Status::BufError) => {}
            Err(_) => return Err(ExtensionError::InvalidData("invalid DEFLATE data")),
        }
        // zlib may keep output back when the room ran out: call again until it did not.
        let filled = out.len() == end;
        if input.is_empty() && !filled {
            return Ok(());
        }
        if consumed == 0 && produced == 0 && !stream.ended {
            // Input left, room left, no progress: cannot happen with valid data.
            return Err(ExtensionError::InvalidData(
                "DEFLATE stream made no progress",
            ));
        }
    }
}
