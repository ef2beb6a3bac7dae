//! Incremental, fail-fast UTF-8 validation (RFC 6455 §8.1).
//!
//! A text message may arrive split anywhere: across frames, and inside one frame across reads.
//! [`Utf8Validator`] checks each piece as it arrives and reports an invalid sequence as soon as
//! its bytes are seen, so the connection can be failed with 1007 without waiting for the end of
//! the frame or message. Only an incomplete code point at the end of a piece (at most 3 bytes)
//! is carried over to the next one.

/// The input is not valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Utf8Error;

impl std::fmt::Display for Utf8Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("invalid UTF-8")
    }
}

impl std::error::Error for Utf8Error {}

/// Streaming UTF-8 validator.
///
/// ```
/// use ws_proto::utf8::Utf8Validator;
/// let mut v = Utf8Validator::default();
/// let euro = "€".as_bytes(); // e2 82 ac
/// assert!(v.feed(&euro[..1]).is_ok());
/// assert!(v.feed(&euro[1..]).is_ok());
/// assert!(v.finish().is_ok());
/// // A surrogate lead is rejected on its second byte, before the sequence is complete.
/// let mut v = Utf8Validator::default();
/// assert!(v.feed(&[0xed]).is_ok());
/// assert!(v.feed(&[0xa0]).is_err());
/// ```
#[derive(Debug, Clone, Default)]
pub struct Utf8Validator {
    partial: [u8; 4],
    partial_len: u8,
}

impl Utf8Validator {
    /// Validates the next piece of the stream.
    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<(), Utf8Error> {
        if self.partial_len > 0 {
            let have = usize::from(self.partial_len);
            let need = sequence_len(self.partial[0]);
            let take = (need - have).min(bytes.len());
            self.partial[have..have + take].copy_from_slice(&bytes[..take]);
            let len = have + take;
            match std::str::from_utf8(&self.partial[..len]) {
                Ok(_) => self.partial_len = 0,
                Err(e) if e.error_len().is_some() => return Err(Utf8Error),
                Err(_) => {
                    // Still incomplete: all of `bytes` was consumed into the partial sequence.
                    self.partial_len = len as u8;
                    return Ok(());
                }
            }
            bytes = &bytes[take..];
        }
        match std::str::from_utf8(bytes) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(Utf8Error),
            Err(e) => {
                let tail = &bytes[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.partial_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Checks that the stream did not end inside a code point.
    pub fn finish(&self) -> Result<(), Utf8Error> {
        if self.partial_len == 0 {
            Ok(())
        } else {
            Err(Utf8Error)
        }
    }

    /// Forgets any carried-over bytes, ready for a new message.
    pub fn reset(&mut self) {
        self.partial_len = 0;
    }
}

/// Length of the sequence a lead byte starts. Only called on bytes that `from_utf8` accepted as
/// the start of an incomplete sequence, so it is always 2, 3 or 4 there.
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn validate_split(bytes: &[u8], splits: &[usize]) -> Result<(), Utf8Error> {
        let mut v = Utf8Validator::default();
        let mut start = 0;
        for &s in splits {
            let s = s.clamp(start, bytes.len());
            v.feed(&bytes[start..s])?;
            start = s;
        }
        v.feed(&bytes[start..])?;
        v.finish()
    }

    #[test]
    fn rejects_overlongs_surrogates_and_out_of_range() {
        for bad in [
            &[0xc0, 0x80][..],               // overlong NUL
            &[0xe0, 0x80, 0x80],             // overlong
            &[0xed, 0xa0, 0x80],             // U+D800
            &[0xf4, 0x90, 0x80, 0x80],       // > U+10FFFF
            &[0xf8, 0x88, 0x80, 0x80, 0x80], // 5-byte form
            &[0x80],                         // lone continuation
        ] {
            assert_eq!(validate_split(bad, &[]), Err(Utf8Error), "{bad:02x?}");
            for s in 0..bad.len() {
                assert_eq!(
                    validate_split(bad, &[s]),
                    Err(Utf8Error),
                    "{bad:02x?} split {s}"
                );
            }
        }
    }

    #[test]
    fn fails_fast_on_the_first_bad_byte() {
        // Autobahn 6.4.x: "κόσμε" followed by 0xf4 0x90 ...; the error must appear at 0x90.
        let mut v = Utf8Validator::default();
        v.feed("κόσμε".as_bytes()).unwrap();
        v.feed(&[0xf4]).unwrap();
        assert_eq!(v.feed(&[0x90]), Err(Utf8Error));
    }

    #[test]
    fn truncated_sequence_fails_at_finish() {
        let mut v = Utf8Validator::default();
        v.feed(&[0xe2, 0x82]).unwrap();
        assert_eq!(v.finish(), Err(Utf8Error));
    }

    proptest! {
        /// Any split of a byte string gives the same verdict as std's validator on the whole.
        #[test]
        fn split_verdict_matches_std(bytes in proptest::collection::vec(any::<u8>(), 0..64),
                                     splits in proptest::collection::vec(0usize..64, 0..6)) {
            let mut splits = splits;
            splits.sort_unstable();
            let expected = std::str::from_utf8(&bytes).is_ok();
            prop_assert_eq!(validate_split(&bytes, &splits).is_ok(), expected);
        }

        #[test]
        fn valid_strings_pass_in_any_split(s in "\\PC{0,40}", splits in proptest::collection::vec(0usize..200, 0..6)) {
            let mut splits = splits;
            splits.sort_unstable();
            prop_assert!(validate_split(s.as_bytes(), &splits).is_ok());
        }
    }
}
