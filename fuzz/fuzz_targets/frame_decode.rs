//! Arbitrary bytes into the frame header decoder, checked against what RFC 6455 §5.2 says the
//! header is, and into an open connection of either role, split at an arbitrary chunk size:
//! the first header the connection reads is the one the decoder saw, so a header the decoder
//! or the role refuses is the connection's one and only event; every byte the connection
//! writes back must be well-formed.
#![no_main]

use std::time::Instant;

use libfuzzer_sys::fuzz_target;
use ws_fuzz::{drain, open_client, open_server, WireChecker};
use ws_proto::frame::{FrameHeader, OpCode, MAX_HEADER_LEN};
use ws_proto::{Error, Event, ProtocolError, Role, State};

/// The header length its second byte announces: 2, plus 2 or 8 bytes of extended length
/// (payload length 126 or 127), plus 4 bytes of masking key when the MASK bit is set.
fn announced_len(b1: u8) -> usize {
    let extended = match b1 & 0x7f {
        126 => 2,
        127 => 8,
        _ => 0,
    };
    2 + extended + if b1 & 0x80 != 0 { 4 } else { 0 }
}

/// What `FrameHeader::decode` must answer for `input`, and the answer.
fn check_decode(input: &[u8]) -> Result<Option<(FrameHeader, usize)>, ProtocolError> {
    let decoded = FrameHeader::decode(input);
    match &decoded {
        Ok(Some((header, used))) => {
            let (header, used) = (*header, *used);
            let (b0, b1) = (input[0], input[1]);
            // The length is the one the header states: 7 bits, or the 16 or 64 bits after.
            let stated = match b1 & 0x7f {
                126 => u64::from(u16::from_be_bytes([input[2], input[3]])),
                127 => u64::from_be_bytes(input[2..10].try_into().unwrap()),
                len => u64::from(len),
            };
            assert_eq!(header.payload_len, stated);
            // The header takes exactly the bytes it announces, all of them within the input.
            assert_eq!(used, announced_len(b1), "{input:02x?}");
            assert!(used <= input.len() && used <= MAX_HEADER_LEN);
            assert_eq!(header.fin, b0 & 0x80 != 0);
            assert_eq!(header.rsv, (b0 >> 4) & 0x7);
            assert_eq!(header.opcode.as_u8(), b0 & 0x0f);
            assert_eq!(header.mask.is_some(), b1 & 0x80 != 0);
            if let Some(key) = header.mask {
                assert_eq!(key[..], input[used - 4..used], "the key ends the header");
            }
            // §5.2: "the most significant bit MUST be 0".
            assert_eq!(header.payload_len >> 63, 0);
            // Only the header's own bytes count, and every shorter prefix asks for more.
            assert_eq!(FrameHeader::decode(&input[..used]), decoded);
            for cut in 0..used {
                assert_eq!(
                    FrameHeader::decode(&input[..cut]),
                    Ok(None),
                    "prefix of {cut} of {used} header bytes"
                );
            }
            // The encoder always writes the minimal length form. Where the input used it too,
            // re-encoding gives the input's bytes back; where it did not (the decoder accepts
            // such headers, see ws-proto's rfc_frames tests), the encoding is shorter and
            // decodes to the same header.
            let minimal = match b1 & 0x7f {
                126 => header.payload_len > 125,
                127 => header.payload_len > 0xffff,
                _ => true,
            };
            let (bytes, n) = header.encode();
            assert_eq!(n, header.encoded_len());
            if minimal {
                assert_eq!(&bytes[..n], &input[..used], "{header:?}");
            } else {
                assert!(n < used, "{header:?}");
                assert_eq!(FrameHeader::decode(&bytes[..n]), Ok(Some((header, n))));
            }
        }
        Ok(None) => {
            // Too short for the header the first two bytes announce (or for those two).
            assert!(input.len() < 2 || input.len() < announced_len(input[1]));
            if input.len() >= 2 {
                assert!(OpCode::from_u8(input[0] & 0x0f).is_ok(), "{input:02x?}");
            }
        }
        Err(ProtocolError::ReservedOpcode(op)) => {
            // Decided from the first two bytes: a reserved opcode (0x3-0x7, 0xB-0xF).
            assert!(input.len() >= 2);
            assert_eq!(*op, input[0] & 0x0f);
            assert!(matches!(op, 0x3..=0x7 | 0xb..=0xf));
            assert_eq!(FrameHeader::decode(&input[..2]), decoded);
        }
        Err(ProtocolError::InvalidPayloadLength) => {
            // Decided from the first ten bytes: a 64-bit length with its top bit set.
            assert!(input.len() >= 10 && input[1] & 0x7f == 127 && input[2] & 0x80 != 0);
            assert_eq!(FrameHeader::decode(&input[..10]), decoded);
        }
        Err(other) => panic!("a frame header cannot fail with {other:?}"),
    }
    decoded
}

fuzz_target!(|data: &[u8]| {
    let Some((&control, input)) = data.split_first() else {
        return;
    };
    let decoded = check_decode(input);
    let role = if control & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let chunk = usize::from(control >> 1).max(1);
    let now = Instant::now();
    let mut conn = match role {
        Role::Server => open_server(now),
        Role::Client => open_client(now),
    };
    let mut wire = WireChecker::new(role);
    let mut got = Vec::new();
    for piece in input.chunks(chunk) {
        conn.receive(piece, now);
        got.extend(std::iter::from_fn(|| conn.poll_event()));
        let n = conn.buffered_amount();
        wire.feed(&drain(&mut conn, n));
    }
    // The connection's end (a failure or the peer's close) is its last event.
    if let Some(i) = got
        .iter()
        .position(|e| matches!(e, Event::Error(_) | Event::Close(_)))
    {
        assert_eq!(i + 1, got.len(), "events after the end: {got:?}");
        assert_eq!(conn.state(), State::Closed);
    }
    // A first header refused by the decoder, or by the rules of this role (§5.2: no RSV bit
    // without an extension; §5.1: masked towards a server, unmasked towards a client), fails
    // the connection before anything else happens.
    let refused = match decoded {
        Err(e) => Some(e),
        Ok(Some((header, _))) if header.rsv != 0 => Some(ProtocolError::ReservedBits(header.rsv)),
        Ok(Some((header, _))) if header.mask.is_none() && role == Role::Server => {
            Some(ProtocolError::UnmaskedFrame)
        }
        Ok(Some((header, _))) if header.mask.is_some() && role == Role::Client => {
            Some(ProtocolError::MaskedFrame)
        }
        _ => None,
    };
    if let Some(error) = refused {
        let code = error.close_code();
        assert_eq!(got, [Event::Error(Error::Protocol(error))]);
        assert_eq!(conn.close_status().map(|c| c.code), Some(code));
    }
});
