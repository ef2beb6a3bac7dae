//! What nodes say to each other on the bus: one [`Envelope`] per bus message, in a small
//! binary format of our own (versioned, so a future change can be told apart).
//!
//! ```text
//! byte 0       format version (1)
//! byte 1       kind: 1 text, 2 binary, 3 join, 4 leave, 5 snapshot, 6 sync request, 7 bye
//! bytes 2..10  the sending node's incarnation (random per start), big-endian
//! bytes 10..18 its sequence number (1, 2, ... per incarnation), big-endian
//! byte 18      n, the length of the node's name; then n bytes of UTF-8
//! then, by kind:
//!   text / binary  the message (text: UTF-8)
//!   join / leave   the session id (UTF-8)
//!   snapshot       u32 count, then count × (u16 length, session id)
//!   sync, bye      nothing
//! ```
//!
//! Decoding never panics: anything malformed is an [`EnvelopeError`].

use std::fmt;

/// The format version written in byte 0.
const VERSION: u8 = 1;
/// Bytes before the node's name.
const FIXED_HEADER: usize = 19;

/// Who sent an envelope and where it falls in that sender's sequence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Origin {
    /// The node's name (`--node-id`); a label, not unique by construction.
    pub node: String,
    /// Random per start of a node: what tells two nodes (or two runs) of one name apart.
    pub incarnation: u64,
    /// 1 for the first envelope of an incarnation, then +1 per envelope.
    pub seq: u64,
}

/// What an envelope carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// A broadcast text message, for every session of every other node.
    Text(String),
    /// A broadcast binary message.
    Binary(Vec<u8>),
    /// A session opened on the sending node.
    Join(String),
    /// A session ended on the sending node.
    Leave(String),
    /// Every session open on the sending node (its heartbeat, and its answer to a sync).
    Snapshot(Vec<String>),
    /// A node that just subscribed asks every node for a snapshot now.
    SyncRequest,
    /// The sending node is stopping: its sessions are gone.
    Bye,
}

impl Body {
    fn kind(&self) -> u8 {
        match self {
            Body::Text(_) => 1,
            Body::Binary(_) => 2,
            Body::Join(_) => 3,
            Body::Leave(_) => 4,
            Body::Snapshot(_) => 5,
            Body::SyncRequest => 6,
            Body::Bye => 7,
        }
    }
}

/// One bus message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Envelope {
    pub origin: Origin,
    pub body: Body,
}

/// Why bytes from the bus are not an envelope.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum EnvelopeError {
    /// Fewer bytes than the header or a length inside says.
    Truncated,
    /// A format version this build does not know (a newer node?).
    Version(u8),
    /// An unknown kind byte.
    Kind(u8),
    /// A node name, session id or text message that is not UTF-8.
    Utf8,
    /// Bytes after the end of a snapshot, sync request or bye.
    TrailingBytes,
}

impl fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EnvelopeError::Truncated => f.write_str("truncated cluster message"),
            EnvelopeError::Version(v) => write!(f, "unknown cluster message version {v}"),
            EnvelopeError::Kind(k) => write!(f, "unknown cluster message kind {k}"),
            EnvelopeError::Utf8 => f.write_str("cluster message text is not UTF-8"),
            EnvelopeError::TrailingBytes => f.write_str("bytes after the end of a cluster message"),
        }
    }
}

impl std::error::Error for EnvelopeError {}

impl Envelope {
    /// The bytes to publish. Names are cut to 255 bytes and session ids to 65 535 (the
    /// facade's ids are at most a few dozen).
    pub(crate) fn encode(&self) -> Vec<u8> {
        let node = truncated(&self.origin.node, u8::MAX as usize);
        let body_len = match &self.body {
            Body::Text(text) => text.len(),
            Body::Binary(data) => data.len(),
            Body::Join(id) | Body::Leave(id) => id.len(),
            Body::Snapshot(ids) => 4 + ids.iter().map(|id| 2 + id.len()).sum::<usize>(),
            Body::SyncRequest | Body::Bye => 0,
        };
        let mut out = Vec::with_capacity(FIXED_HEADER + node.len() + body_len);
        out.push(VERSION);
        out.push(self.body.kind());
        out.extend_from_slice(&self.origin.incarnation.to_be_bytes());
        out.extend_from_slice(&self.origin.seq.to_be_bytes());
        out.push(node.len() as u8);
        out.extend_from_slice(node.as_bytes());
        match &self.body {
            Body::Text(text) => out.extend_from_slice(text.as_bytes()),
            Body::Binary(data) => out.extend_from_slice(data),
            Body::Join(id) | Body::Leave(id) => out.extend_from_slice(id.as_bytes()),
            Body::Snapshot(ids) => {
                let ids: Vec<&str> = ids
                    .iter()
                    .map(|id| truncated(id, u16::MAX as usize))
                    .collect();
                out.extend_from_slice(&(ids.len() as u32).to_be_bytes());
                for id in ids {
                    out.extend_from_slice(&(id.len() as u16).to_be_bytes());
                    out.extend_from_slice(id.as_bytes());
                }
            }
            Body::SyncRequest | Body::Bye => {}
        }
        out
    }

    /// The envelope in `bytes`.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Envelope, EnvelopeError> {
        if bytes.len() < FIXED_HEADER {
            return Err(EnvelopeError::Truncated);
        }
        if bytes[0] != VERSION {
            return Err(EnvelopeError::Version(bytes[0]));
        }
        let kind = bytes[1];
        let incarnation = u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes"));
        let seq = u64::from_be_bytes(bytes[10..18].try_into().expect("8 bytes"));
        let node_len = bytes[18] as usize;
        let rest = &bytes[FIXED_HEADER..];
        if rest.len() < node_len {
            return Err(EnvelopeError::Truncated);
        }
        let (node, body) = rest.split_at(node_len);
        let node = utf8(node)?;
        let body = match kind {
            1 => Body::Text(utf8(body)?),
            2 => Body::Binary(body.to_vec()),
            3 => Body::Join(utf8(body)?),
            4 => Body::Leave(utf8(body)?),
            5 => Body::Snapshot(snapshot(body)?),
            6 | 7 if !body.is_empty() => return Err(EnvelopeError::TrailingBytes),
            6 => Body::SyncRequest,
            7 => Body::Bye,
            other => return Err(EnvelopeError::Kind(other)),
        };
        Ok(Envelope {
            origin: Origin {
                node,
                incarnation,
                seq,
            },
            body,
        })
    }
}

fn snapshot(mut body: &[u8]) -> Result<Vec<String>, EnvelopeError> {
    let count = take(&mut body, 4)?;
    let count = u32::from_be_bytes(count.try_into().expect("4 bytes")) as usize;
    // Each id takes at least its 2 length bytes: a count larger than that is a lie, and must
    // not size an allocation.
    let mut ids = Vec::with_capacity(count.min(body.len() / 2));
    for _ in 0..count {
        let len = take(&mut body, 2)?;
        let len = u16::from_be_bytes(len.try_into().expect("2 bytes")) as usize;
        ids.push(utf8(take(&mut body, len)?)?);
    }
    if !body.is_empty() {
        return Err(EnvelopeError::TrailingBytes);
    }
    Ok(ids)
}

/// The first `n` bytes of `input`, which moves past them.
fn take<'a>(input: &mut &'a [u8], n: usize) -> Result<&'a [u8], EnvelopeError> {
    if input.len() < n {
        return Err(EnvelopeError::Truncated);
    }
    let (head, tail) = input.split_at(n);
    *input = tail;
    Ok(head)
}

fn utf8(bytes: &[u8]) -> Result<String, EnvelopeError> {
    String::from_utf8(bytes.to_vec()).map_err(|_| EnvelopeError::Utf8)
}

/// `s` cut to at most `max` bytes, on a character boundary.
fn truncated(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn origin() -> Origin {
        Origin {
            node: "node-a".into(),
            incarnation: 0x0102_0304_0506_0708,
            seq: 42,
        }
    }

    #[test]
    fn every_kind_round_trips() {
        let bodies = [
            Body::Text("héllo".into()),
            Body::Binary(vec![0, 255, 7]),
            Body::Join("bob".into()),
            Body::Leave("bob#2".into()),
            Body::Snapshot(vec!["a".into(), String::new(), "ünï".into()]),
            Body::Snapshot(Vec::new()),
            Body::SyncRequest,
            Body::Bye,
        ];
        for body in bodies {
            let envelope = Envelope {
                origin: origin(),
                body,
            };
            assert_eq!(Envelope::decode(&envelope.encode()), Ok(envelope));
        }
    }

    #[test]
    fn the_header_is_laid_out_as_documented() {
        let bytes = Envelope {
            origin: origin(),
            body: Body::Join("bob".into()),
        }
        .encode();
        assert_eq!(bytes[0], 1);
        assert_eq!(bytes[1], 3);
        assert_eq!(&bytes[2..10], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(&bytes[10..18], &42u64.to_be_bytes());
        assert_eq!(bytes[18], 6);
        assert_eq!(&bytes[19..], b"node-abob");
    }

    #[test]
    fn malformed_input_is_named() {
        let good = Envelope {
            origin: origin(),
            body: Body::Snapshot(vec!["abc".into()]),
        }
        .encode();
        assert_eq!(Envelope::decode(&good[..10]), Err(EnvelopeError::Truncated));
        assert_eq!(
            Envelope::decode(&good[..good.len() - 1]),
            Err(EnvelopeError::Truncated)
        );
        let mut bad = good.clone();
        bad[0] = 2;
        assert_eq!(Envelope::decode(&bad), Err(EnvelopeError::Version(2)));
        let mut bad = good.clone();
        bad[1] = 9;
        assert_eq!(Envelope::decode(&bad), Err(EnvelopeError::Kind(9)));
        let mut bad = good.clone();
        bad.push(0);
        assert_eq!(Envelope::decode(&bad), Err(EnvelopeError::TrailingBytes));
        let mut bad = good;
        let last = bad.len() - 1;
        bad[last] = 0xff;
        assert_eq!(Envelope::decode(&bad), Err(EnvelopeError::Utf8));
    }

    #[test]
    fn a_snapshot_count_larger_than_its_bytes_is_refused_without_allocating_it() {
        let mut bytes = Envelope {
            origin: origin(),
            body: Body::Snapshot(Vec::new()),
        }
        .encode();
        let at = bytes.len() - 4;
        bytes[at..].copy_from_slice(&u32::MAX.to_be_bytes());
        assert_eq!(Envelope::decode(&bytes), Err(EnvelopeError::Truncated));
    }

    #[test]
    fn long_names_are_cut_on_a_character_boundary() {
        let envelope = Envelope {
            origin: Origin {
                node: "é".repeat(200),
                ..origin()
            },
            body: Body::Bye,
        };
        let decoded = Envelope::decode(&envelope.encode()).unwrap();
        assert_eq!(decoded.origin.node, "é".repeat(127));
    }

    proptest! {
        /// Whatever arrives on the bus, decoding returns (an envelope or an error).
        #[test]
        fn decoding_any_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = Envelope::decode(&bytes);
        }

        /// Any envelope decodes to itself.
        #[test]
        fn messages_round_trip(
            node in "[a-z0-9-]{0,20}",
            incarnation in any::<u64>(),
            seq in any::<u64>(),
            payload in proptest::collection::vec(any::<u8>(), 0..200),
            ids in proptest::collection::vec("\\PC{0,12}", 0..8),
        ) {
            let origin = Origin { node, incarnation, seq };
            for body in [Body::Binary(payload.clone()), Body::Snapshot(ids.clone())] {
                let envelope = Envelope { origin: origin.clone(), body };
                prop_assert_eq!(Envelope::decode(&envelope.encode()), Ok(envelope));
            }
        }
    }
}
