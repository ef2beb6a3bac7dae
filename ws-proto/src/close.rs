//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use crate::error::ProtocolError;

/// 1000: normal closure.
pub const NORMAL: u16 = 1000;
/// 1001: the endpoint is going away (server shutdown, page navigation).
pub const GOING_AWAY: u16 = 1001;
/// 1002: protocol error.
pub const PROTOCOL_ERROR: u16 = 1002;
/// 1003: a data type the endpoint cannot accept.
pub const UNSUPPORTED_DATA: u16 = 1003;
/// 1005: no status code was present. Reported locally, never sent.
pub const NO_STATUS: u16 = 1005;
/// 1006: closed without a close frame. Reported locally, never sent.
pub const ABNORMAL: u16 = 1006;
/// 1007: message data inconsistent with its type (invalid UTF-8 in text).
pub const INVALID_PAYLOAD: u16 = 1007;
/// 1008: policy violation.
pub const POLICY_VIOLATION: u16 = 1008;
/// 1009: message too big to process.
pub const MESSAGE_TOO_BIG: u16 = 1009;
/// 1010: the client expected an extension the server did not negotiate.
pub const MANDATORY_EXTENSION: u16 = 1010;
/// 1011: unexpected condition on the server (also used for keepalive timeouts).
pub const INTERNAL_ERROR: u16 = 1011;
/// 1013: try again later (server overloaded).
pub const TRY_AGAIN_LATER: u16 = 1013;

/// Whether `code` may appear in a close frame on the wire (§7.4.1, §7.4.2 and the IANA
/// registry): 1000–1003, 1007–1014, and 3000–4999. 1004–1006 and 1015 are reserved or local
/// only, everything below 1000 and in 1016–2999 is invalid.
///
/// ```
/// use ws_proto::close::is_valid_code;
/// assert!(is_valid_code(1000) && is_valid_code(4999));
/// assert!(!is_valid_code(1005) && !is_valid_code(1006) && !is_valid_code(999));
/// ```
pub fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// The code and reason of a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code; [`NO_STATUS`] (1005) when the frame carried none.
    pub code: u16,
    /// The UTF-8 reason, possibly empty.
    pub reason: String,
}

impl CloseFrame {
    /// Parses a received close payload: empty, or a valid 2-byte code followed by a UTF-8 reason.
    /// A 1-byte payload, an invalid code or an invalid reason is a protocol error.
    ///
    /// ```
    /// use ws_proto::close::CloseFrame;
    /// let frame = CloseFrame::parse(&[0x03, 0xe8, b'b', b'y', b'e']).unwrap();
    /// assert_eq!((frame.code, frame.reason.as_str()), (1000, "bye"));
    /// assert_eq!(CloseFrame::parse(&[]).unwrap().code, 1005);
    /// assert!(CloseFrame::parse(&[0x03]).is_err());
    /// ```
    pub fn parse(payload: &[u8]) -> Result<CloseFrame, ProtocolError> {
        match payload {
            [] => Ok(CloseFrame {
                code: NO_STATUS,
                reason: String::new(),
            }),
            [_] => Err(ProtocolError::InvalidClosePayload),
            [hi, lo, reason @ ..] => {
                let code = u16::from_be_bytes([*hi, *lo]);
                if !is_valid_code(code) {
                    return Err(ProtocolError::InvalidCloseCode(code));
                }
                let reason = std::str::from_utf8(reason)
                    .map_err(|_| ProtocolError::InvalidUtf8)?
                    .to_owned();
                Ok(CloseFrame { code, reason })
            }
        }
    }

    /// The wire payload: nothing for 1005, else the code and the reason.
    pub fn payload(&self) -> Vec<u8> {
        if self.code == NO_STATUS {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(2 + self.reason.len());
        out.extend_from_slice(&self.code.to_be_bytes());
        out.extend_from_slice(self.reason.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_classes() {
        // The codes Autobahn case 7.7 expects to be echoed, and those of 7.9 that must fail.
        for ok in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
        ] {
            assert!(is_valid_code(ok), "{ok}");
        }
        for bad in [
            0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert!(!is_valid_code(bad), "{bad}");
        }
    }

    #[test]
    fn parse_rejects_bad_payloads() {
        assert_eq!(
            CloseFrame::parse(&[0x03]),
            Err(ProtocolError::InvalidClosePayload)
        );
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xed]),
            Err(ProtocolError::InvalidCloseCode(1005))
        );
        assert_eq!(
            CloseFrame::parse(&[0x03, 0xe8, 0xff]),
            Err(ProtocolError::InvalidUtf8)
        );
    }

    #[test]
    fn payload_roundtrip() {
        let frame = CloseFrame {
            code: 4000,
            reason: "ünïcode".into(),
        };
        assert_eq!(CloseFrame::parse(&frame.payload()).unwrap(), frame);
        let empty = CloseFrame {
            code: NO_STATUS,
            reason: String::new(),
        };
        assert!(empty.payload().is_empty());
    }
}
