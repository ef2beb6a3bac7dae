//! Close codes and close frame payloads (RFC 6455 §5.5.1, §7.4).

use crate::error::{ProtocolError, SendError};
use crate::frame::MAX_CONTROL_PAYLOAD;

/// A close status code (§7.4): a code that may be sent in a close frame, or one of the two
/// codes reported locally and never sent ([`NO_STATUS`](Self::NO_STATUS),
/// [`ABNORMAL`](Self::ABNORMAL)).
///
/// Codes are checked once, when made from a number ([`CloseCode::new`] or `TryFrom<u16>`);
/// the registered ones are named constants.
///
/// ```
/// use ws_proto::CloseCode;
/// assert_eq!(CloseCode::new(1000), Some(CloseCode::NORMAL));
/// assert_eq!(CloseCode::new(4000).map(CloseCode::as_u16), Some(4000)); // application codes
/// assert_eq!(CloseCode::new(1005), None); // may not be sent
/// assert!(CloseCode::try_from(999).is_err());
/// assert!(CloseCode::NORMAL == 1000);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: normal closure.
    pub const NORMAL: CloseCode = CloseCode(1000);
    /// 1001: the endpoint is going away (server shutdown, page navigation).
    pub const GOING_AWAY: CloseCode = CloseCode(1001);
    /// 1002: protocol error.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(1002);
    /// 1003: a data type the endpoint cannot accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1005: no status code was present. Reported locally, never sent.
    pub const NO_STATUS: CloseCode = CloseCode(1005);
    /// 1006: closed without a close frame. Reported locally, never sent.
    pub const ABNORMAL: CloseCode = CloseCode(1006);
    /// 1007: message data inconsistent with its type (invalid UTF-8 in text).
    pub const INVALID_PAYLOAD: CloseCode = CloseCode(1007);
    /// 1008: policy violation.
    pub const POLICY_VIOLATION: CloseCode = CloseCode(1008);
    /// 1009: message too big to process.
    pub const MESSAGE_TOO_BIG: CloseCode = CloseCode(1009);
    /// 1010: the client expected an extension the server did not negotiate.
    pub const MANDATORY_EXTENSION: CloseCode = CloseCode(1010);
    /// 1011: unexpected condition on the server (also used for keepalive timeouts).
    pub const INTERNAL_ERROR: CloseCode = CloseCode(1011);
    /// 1012: the server is restarting.
    pub const SERVICE_RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (server overloaded).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// The code `code`, if it may be sent in a close frame ([`is_valid_code`]).
    pub const fn new(code: u16) -> Option<CloseCode> {
        if is_valid_code(code) {
            Some(CloseCode(code))
        } else {
            None
        }
    }

    /// The number.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether this code may go on the wire: every code but the two local-only ones.
    pub const fn is_sendable(self) -> bool {
        is_valid_code(self.0)
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

impl PartialEq<u16> for CloseCode {
    fn eq(&self, other: &u16) -> bool {
        self.0 == *other
    }
}

impl std::fmt::Display for CloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// A number that is not a close code that may be sent; see [`CloseCode::new`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidCloseCode(pub u16);

impl std::fmt::Display for InvalidCloseCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "close code {} may not be sent", self.0)
    }
}

impl std::error::Error for InvalidCloseCode {}

impl TryFrom<u16> for CloseCode {
    type Error = InvalidCloseCode;

    fn try_from(code: u16) -> Result<CloseCode, InvalidCloseCode> {
        CloseCode::new(code).ok_or(InvalidCloseCode(code))
    }
}

/// Whether `code` may appear in a close frame on the wire (§7.4.1, §7.4.2 and the IANA
/// registry): 1000–1003, 1007–1014, and 3000–4999. 1004–1006 and 1015 are reserved or local
/// only, everything below 1000 and in 1016–2999 is invalid.
///
/// ```
/// use ws_proto::close::is_valid_code;
/// assert!(is_valid_code(1000) && is_valid_code(4999));
/// assert!(!is_valid_code(1005) && !is_valid_code(1006) && !is_valid_code(999));
/// ```
pub const fn is_valid_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// Checks what [`Connection::close`](crate::Connection::close) (or a driver's session) is asked
/// to send: a code that may go on the wire, and a reason that fits a control frame with it
/// (§5.5: "All control frames MUST have a payload length of 125 bytes or less", so the reason
/// gets the 123 bytes the 2-byte code leaves).
///
/// ```
/// use ws_proto::{close::check_close, CloseCode, SendError};
/// assert_eq!(check_close(CloseCode::NORMAL, "bye"), Ok(()));
/// assert_eq!(check_close(CloseCode::ABNORMAL, ""), Err(SendError::InvalidCloseCode(1006)));
/// assert_eq!(check_close(CloseCode::NORMAL, &"x".repeat(124)), Err(SendError::ControlTooLong(126)));
/// ```
pub fn check_close(code: CloseCode, reason: &str) -> Result<(), SendError> {
    if !code.is_sendable() {
        return Err(SendError::InvalidCloseCode(code.as_u16()));
    }
    if reason.len() > MAX_CONTROL_PAYLOAD - 2 {
        return Err(SendError::ControlTooLong(reason.len() + 2));
    }
    Ok(())
}

/// The code and reason of a close frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code; [`CloseCode::NO_STATUS`] (1005) when the frame carried none.
    pub code: CloseCode,
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
    /// assert_eq!((frame.code.as_u16(), frame.reason.as_str()), (1000, "bye"));
    /// assert_eq!(CloseFrame::parse(&[]).unwrap().code, 1005);
    /// assert!(CloseFrame::parse(&[0x03]).is_err());
    /// ```
    pub fn parse(payload: &[u8]) -> Result<CloseFrame, ProtocolError> {
        match payload {
            [] => Ok(CloseFrame {
                code: CloseCode::NO_STATUS,
                reason: String::new(),
            }),
            [_] => Err(ProtocolError::InvalidClosePayload),
            [hi, lo, reason @ ..] => {
                let code = u16::from_be_bytes([*hi, *lo]);
                let code = CloseCode::new(code).ok_or(ProtocolError::InvalidCloseCode(code))?;
                let reason = std::str::from_utf8(reason)
                    .map_err(|_| ProtocolError::InvalidUtf8)?
                    .to_owned();
                Ok(CloseFrame { code, reason })
            }
        }
    }

    /// The wire payload: nothing for 1005, else the code and the reason.
    pub fn payload(&self) -> Vec<u8> {
        if self.code == CloseCode::NO_STATUS {
            return Vec::new();
        }
        let mut out = Vec::with_capacity(2 + self.reason.len());
        out.extend_from_slice(&self.code.as_u16().to_be_bytes());
        out.extend_from_slice(self.reason.as_bytes());
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_code_converts_compares_and_prints_as_its_number() {
        let code = CloseCode::new(4321).unwrap();
        assert_eq!(u16::from(code), 4321);
        assert!(code == 4321 && code != 4322);
        assert_eq!(code.to_string(), "4321");
        assert_eq!(CloseCode::try_from(999), Err(InvalidCloseCode(999)));
        assert_eq!(
            InvalidCloseCode(999).to_string(),
            "close code 999 may not be sent"
        );
    }

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
            code: CloseCode::new(4000).unwrap(),
            reason: "ünïcode".into(),
        };
        assert_eq!(CloseFrame::parse(&frame.payload()).unwrap(), frame);
        let empty = CloseFrame {
            code: CloseCode::NO_STATUS,
            reason: String::new(),
        };
        assert!(empty.payload().is_empty());
    }
}
