//! Frame headers (RFC 6455 §5.2): decoding from any prefix of the input and encoding.
//!
//! ```text
//!  0                   1                   2                   3
//!  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//! +-+-+-+-+-------+-+-------------+-------------------------------+
//! |F|R|R|R| opcode|M| Payload len |    Extended payload length    |
//! |I|S|S|S|  (4)  |A|     (7)     |             (16/64)           |
//! |N|V|V|V|       |S|             |   (if payload len==126/127)   |
//! | |1|2|3|       |K|             |                               |
//! +-+-+-+-+-------+-+-------------+ - - - - - - - - - - - - - - - +
//! ```
//!
//! Only the header is handled here; payloads are streamed by the connection without ever being
//! buffered whole before the size limits are checked.

use crate::error::ProtocolError;

/// The largest possible header: 2 bytes, 8 of extended length, 4 of masking key.
pub const MAX_HEADER_LEN: usize = 14;

/// The largest payload of a control frame (ping, pong, close). §5.5: "All control frames MUST
/// have a payload length of 125 bytes or less and MUST NOT be fragmented."
pub const MAX_CONTROL_PAYLOAD: usize = 125;

/// Frame opcodes defined by RFC 6455 §5.2. Reserved opcodes are rejected while decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OpCode {
    /// 0x0: continues a fragmented message.
    Continuation,
    /// 0x1: first frame of a text message.
    Text,
    /// 0x2: first frame of a binary message.
    Binary,
    /// 0x8: close.
    Close,
    /// 0x9: ping.
    Ping,
    /// 0xA: pong.
    Pong,
}

impl OpCode {
    /// The 4-bit wire value.
    pub fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xa,
        }
    }

    /// Parses a 4-bit wire value; reserved values (0x3–0x7, 0xB–0xF) give an error.
    ///
    /// ```
    /// use ws_proto::frame::OpCode;
    /// assert_eq!(OpCode::from_u8(0x9).unwrap(), OpCode::Ping);
    /// assert!(OpCode::from_u8(0x3).is_err());
    /// ```
    pub fn from_u8(value: u8) -> Result<OpCode, ProtocolError> {
        Ok(match value {
            0x0 => OpCode::Continuation,
            0x1 => OpCode::Text,
            0x2 => OpCode::Binary,
            0x8 => OpCode::Close,
            0x9 => OpCode::Ping,
            0xa => OpCode::Pong,
            other => return Err(ProtocolError::ReservedOpcode(other)),
        })
    }

    /// Close, ping and pong are control frames (§5.5).
    pub fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// A decoded frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// Final fragment of a message.
    pub fin: bool,
    /// The three reserved bits as `0bRSV1_RSV2_RSV3` (RSV1 = `0b100`).
    pub rsv: u8,
    /// The opcode.
    pub opcode: OpCode,
    /// The masking key, present on every client-to-server frame.
    pub mask: Option<[u8; 4]>,
    /// Payload length in bytes.
    pub payload_len: u64,
}

impl FrameHeader {
    /// Decodes a header from the start of `buf`.
    ///
    /// Returns `Ok(None)` when `buf` is too short to hold the whole header (feed more bytes and
    /// call again), or the header and the number of bytes it took. Never allocates.
    ///
    /// ```
    /// use ws_proto::frame::{FrameHeader, OpCode};
    /// // RFC 6455 §5.7: a single-frame masked text message "Hello".
    /// let wire = [0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58];
    /// let (header, len) = FrameHeader::decode(&wire).unwrap().unwrap();
    /// assert_eq!(len, 6);
    /// assert!(header.fin);
    /// assert_eq!(header.opcode, OpCode::Text);
    /// assert_eq!(header.mask, Some([0x37, 0xfa, 0x21, 0x3d]));
    /// assert_eq!(header.payload_len, 5);
    /// assert_eq!(FrameHeader::decode(&wire[..3]).unwrap(), None);
    /// ```
    pub fn decode(buf: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
        let [b0, b1, ..] = *buf else {
            return Ok(None);
        };
        let fin = b0 & 0x80 != 0;
        let rsv = (b0 >> 4) & 0x7;
        let opcode = OpCode::from_u8(b0 & 0x0f)?;
        let masked = b1 & 0x80 != 0;
        let (payload_len, mut pos) = match b1 & 0x7f {
            126 => {
                let Some(ext) = buf.get(2..4) else {
                    return Ok(None);
                };
                (u64::from(u16::from_be_bytes([ext[0], ext[1]])), 4)
            }
            127 => {
                let Some(ext) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut bytes = [0u8; 8];
                bytes.copy_from_slice(ext);
                let len = u64::from_be_bytes(bytes);
                // §5.2: "the most significant bit MUST be 0".
                if len >> 63 != 0 {
                    return Err(ProtocolError::InvalidPayloadLength);
                }
                (len, 10)
            }
            len => (u64::from(len), 2),
        };
        let mask = if masked {
            let Some(key) = buf.get(pos..pos + 4) else {
                return Ok(None);
            };
            pos += 4;
            Some([key[0], key[1], key[2], key[3]])
        } else {
            None
        };
        Ok(Some((
            FrameHeader {
                fin,
                rsv,
                opcode,
                mask,
                payload_len,
            },
            pos,
        )))
    }

    /// Number of bytes [`encode`](Self::encode) writes for this header.
    pub fn encoded_len(&self) -> usize {
        let ext = match self.payload_len {
            0..=125 => 0,
            126..=0xffff => 2,
            _ => 8,
        };
        2 + ext + if self.mask.is_some() { 4 } else { 0 }
    }

    /// Encodes the header with the shortest length form (§5.2 requires the minimal encoding),
    /// returning the bytes and how many of them are used.
    ///
    /// ```
    /// use ws_proto::frame::{FrameHeader, OpCode};
    /// let header = FrameHeader { fin: true, rsv: 0, opcode: OpCode::Binary, mask: None, payload_len: 256 };
    /// let (bytes, len) = header.encode();
    /// assert_eq!(&bytes[..len], &[0x82, 0x7e, 0x01, 0x00]); // RFC 6455 §5.7, 256-byte binary
    /// ```
    pub fn encode(&self) -> ([u8; MAX_HEADER_LEN], usize) {
        let mut out = [0u8; MAX_HEADER_LEN];
        out[0] = (u8::from(self.fin) << 7) | ((self.rsv & 0x7) << 4) | self.opcode.as_u8();
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        let mut pos = match self.payload_len {
            len @ 0..=125 => {
                out[1] = mask_bit | len as u8;
                2
            }
            len @ 126..=0xffff => {
                out[1] = mask_bit | 126;
                out[2..4].copy_from_slice(&(len as u16).to_be_bytes());
                4
            }
            len => {
                out[1] = mask_bit | 127;
                out[2..10].copy_from_slice(&len.to_be_bytes());
                10
            }
        };
        if let Some(key) = self.mask {
            out[pos..pos + 4].copy_from_slice(&key);
            pos += 4;
        }
        (out, pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_len_counts_the_masking_key_and_each_length_form() {
        for (payload_len, unmasked) in [(0, 2), (125, 2), (126, 4), (0xffff, 4), (0x10000, 10)] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let header = FrameHeader {
                    fin: true,
                    rsv: 0,
                    opcode: OpCode::Binary,
                    mask,
                    payload_len,
                };
                let expected = unmasked + if mask.is_some() { 4 } else { 0 };
                assert_eq!(header.encoded_len(), expected, "{payload_len} {mask:?}");
                assert_eq!(header.encode().1, expected);
            }
        }
    }
    use proptest::prelude::*;

    fn opcode() -> impl Strategy<Value = OpCode> {
        prop_oneof![
            Just(OpCode::Continuation),
            Just(OpCode::Text),
            Just(OpCode::Binary),
            Just(OpCode::Close),
            Just(OpCode::Ping),
            Just(OpCode::Pong),
        ]
    }

    #[test]
    fn rfc_examples() {
        // §5.7 unmasked "Hello".
        let (h, n) = FrameHeader::decode(&[0x01, 0x03, b'H', b'e', b'l'])
            .unwrap()
            .unwrap();
        assert_eq!(
            (h.fin, h.opcode, h.payload_len, n),
            (false, OpCode::Text, 3, 2)
        );
        // §5.7 64 KiB binary: 0x82 0x7F 0x0000000000010000.
        let wire = [0x82, 0x7f, 0, 0, 0, 0, 0, 1, 0, 0];
        let (h, n) = FrameHeader::decode(&wire).unwrap().unwrap();
        assert_eq!((h.payload_len, n), (65536, 10));
        assert_eq!(&h.encode().0[..h.encode().1], &wire);
    }

    #[test]
    fn length_boundaries_use_minimal_forms() {
        for (len, header_len) in [(0, 2), (125, 2), (126, 4), (65535, 4), (65536, 10)] {
            let h = FrameHeader {
                fin: true,
                rsv: 0,
                opcode: OpCode::Binary,
                mask: None,
                payload_len: len,
            };
            assert_eq!(h.encode().1, header_len);
            assert_eq!(h.encoded_len(), header_len);
        }
    }

    #[test]
    fn rejects_reserved_opcodes_and_huge_lengths() {
        for op in (0x3..=0x7).chain(0xb..=0xf) {
            assert_eq!(
                FrameHeader::decode(&[0x80 | op, 0]),
                Err(ProtocolError::ReservedOpcode(op))
            );
        }
        let wire = [0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            FrameHeader::decode(&wire),
            Err(ProtocolError::InvalidPayloadLength)
        );
    }

    /// §5.2: "the minimal number of bytes MUST be used to encode the length, for example, the
    /// length of a 124-byte-long string can't be encoded as the sequence 126, 0, 124". A rule
    /// for the sender: the decoder takes a longer form for the length it states (the
    /// connection accepts such frames, see `non_minimal_length_encodings_are_accepted` in
    /// tests/rfc_frames.rs) and the encoder always writes the minimal one.
    #[test]
    fn non_minimal_lengths_are_decoded() {
        for (wire, len) in [
            (&[0x81, 0x7e, 0, 5][..], 5),
            (&[0x81, 0x7f, 0, 0, 0, 0, 0, 0, 0, 5], 5),
            (&[0x82, 0x7e, 0, 124], 124),
            (&[0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff], 0xffff),
        ] {
            let (h, n) = FrameHeader::decode(wire).unwrap().unwrap();
            assert_eq!((h.payload_len, n), (len, wire.len()));
            assert!(h.encoded_len() < wire.len());
            assert_eq!(h.encode().1, h.encoded_len());
        }
    }

    proptest! {
        /// encode → decode is the identity, and every strict prefix asks for more bytes.
        #[test]
        fn roundtrip(fin: bool, rsv in 0u8..8, op in opcode(), mask: Option<[u8; 4]>, len in prop_oneof![0u64..300, 65000u64..70000, 0u64..(1 << 63)]) {
            let h = FrameHeader { fin, rsv, opcode: op, mask, payload_len: len };
            let (bytes, n) = h.encode();
            prop_assert_eq!(FrameHeader::decode(&bytes[..n]).unwrap(), Some((h, n)));
            for cut in 0..n {
                prop_assert_eq!(FrameHeader::decode(&bytes[..cut]).unwrap(), None);
            }
        }

        /// Whatever the bytes, a decoded header takes no byte beyond its own (the length the
        /// second byte announces, within the input), every shorter prefix asks for more, and
        /// a header that used the minimal length form re-encodes to the same bytes. An error
        /// is decided by the first 2 (opcode) or 10 (64-bit length) bytes.
        #[test]
        fn arbitrary_bytes_decode_consistently(bytes in proptest::collection::vec(any::<u8>(), 0..20)) {
            match FrameHeader::decode(&bytes) {
                Ok(Some((h, used))) => {
                    let (stated, extended) = match bytes[1] & 0x7f {
                        126 => (u64::from(u16::from_be_bytes([bytes[2], bytes[3]])), 2),
                        127 => (u64::from_be_bytes(bytes[2..10].try_into().unwrap()), 8),
                        len => (u64::from(len), 0),
                    };
                    prop_assert_eq!(h.payload_len, stated);
                    prop_assert_eq!(used, 2 + extended + if h.mask.is_some() { 4 } else { 0 });
                    prop_assert!(used <= bytes.len());
                    prop_assert_eq!(FrameHeader::decode(&bytes[..used]), Ok(Some((h, used))));
                    for cut in 0..used {
                        prop_assert_eq!(FrameHeader::decode(&bytes[..cut]), Ok(None));
                    }
                    let minimal = match extended {
                        2 => stated > 125,
                        8 => stated > 0xffff,
                        _ => true,
                    };
                    let (encoded, n) = h.encode();
                    if minimal {
                        prop_assert_eq!(&encoded[..n], &bytes[..used]);
                    } else {
                        // A longer length form than needed (see `non_minimal_lengths_are_decoded`).
                        prop_assert!(n < used);
                        prop_assert_eq!(FrameHeader::decode(&encoded[..n]), Ok(Some((h, n))));
                    }
                }
                Ok(None) => prop_assert!(bytes.len() < MAX_HEADER_LEN),
                Err(ProtocolError::ReservedOpcode(op)) => {
                    prop_assert_eq!(op, bytes[0] & 0x0f);
                    prop_assert_eq!(FrameHeader::decode(&bytes[..2]), Err(ProtocolError::ReservedOpcode(op)));
                }
                Err(e) => {
                    prop_assert_eq!(&e, &ProtocolError::InvalidPayloadLength);
                    prop_assert_eq!(FrameHeader::decode(&bytes[..10]), Err(e));
                }
            }
        }
    }
}
