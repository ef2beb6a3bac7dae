//! UTF-8 in text messages (RFC 6455 §5.6, §8.1): validation across frames and reads, and
//! failing fast on the first invalid byte.

mod common;

use common::*;
use ws_proto::{Config, Connection, Event, ProtocolError, Role};

/// "κόσμε" with the Greek small letter omicron with oxia (U+1F79), as in the Autobahn suite:
/// 2-, 3-, 2-, 2- and 2-byte sequences.
const KOSME: &[u8] = &[
    0xce, 0xba, 0xe1, 0xbd, 0xb9, 0xcf, 0x83, 0xce, 0xbc, 0xce, 0xb5,
];

/// Feeds `wire` one byte at a time and returns the index of the byte after which the first
/// event appeared (and the events), or `None`.
fn first_event_at(conn: &mut Connection, wire: &[u8]) -> Option<(usize, Vec<Event>)> {
    for (i, byte) in wire.iter().enumerate() {
        conn.receive(std::slice::from_ref(byte), t0());
        let got = events(conn);
        if !got.is_empty() {
            return Some((i, got));
        }
    }
    None
}

/// §5.6 Data Frames: "The "Payload data" is text data encoded as UTF-8."
///
/// §8.1 Handling Errors in UTF-8-Encoded Data: "When an endpoint is to interpret a byte stream as
/// UTF-8 but finds that the byte stream is not, in fact, a valid UTF-8 stream, that endpoint
/// MUST _Fail the WebSocket Connection_."
///
/// §7.4.1: "1007 indicates that an endpoint is terminating the connection because it has
/// received data within a message that was not consistent with the type of the message (e.g.,
/// non-UTF-8 [RFC3629] data within a text message)."
mod validation {
    use super::*;

    #[test]
    fn valid_multibyte_text_is_delivered() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            let text = "κόσμε €𝄞 ascii";
            conn.receive(&incoming(role, Frame::text(text)), t0());
            assert_eq!(events(&mut conn), [Event::Text(text.into())]);
            let mut kosme = KOSME.to_vec();
            kosme.extend_from_slice(&[0xf4, 0x8f, 0xbf, 0xbf]); // U+10FFFF, the last code point
            conn.receive(&incoming(role, Frame::new(TEXT, kosme.clone())), t0());
            assert_eq!(
                events(&mut conn),
                [Event::Text(String::from_utf8(kosme).unwrap())]
            );
        }
    }

    #[test]
    fn code_points_split_across_frames_are_valid() {
        // Every way of cutting "€𝄞" (3 + 4 bytes) into two fragments.
        let bytes = "€𝄞".as_bytes();
        for role in ROLES {
            for cut in 0..=bytes.len() {
                let mut conn = open(role, Config::default());
                conn.receive(
                    &incoming_all(
                        role,
                        [
                            Frame::new(TEXT, &bytes[..cut]).fin(false),
                            Frame::cont(&bytes[cut..]),
                        ],
                    ),
                    t0(),
                );
                assert_eq!(events(&mut conn), [Event::Text("€𝄞".into())], "cut {cut}");
            }
        }
    }

    #[test]
    fn one_byte_per_frame_is_valid() {
        for role in ROLES {
            let mut frames: Vec<Frame> = KOSME
                .iter()
                .map(|b| Frame::cont(vec![*b]).fin(false))
                .collect();
            frames[0].opcode = TEXT;
            frames.last_mut().unwrap().fin = true;
            let mut conn = open(role, Config::default());
            conn.receive(&incoming_all(role, frames), t0());
            assert_eq!(
                events(&mut conn),
                [Event::Text(String::from_utf8(KOSME.to_vec()).unwrap())]
            );
        }
    }

    #[test]
    fn invalid_text_fails_with_1007() {
        let invalid: [&[u8]; 8] = [
            b"\xff",
            b"abc\xc0\xafdef",           // overlong '/'
            b"\xed\xa0\x80",             // surrogate U+D800
            b"\xf4\x90\x80\x80",         // above U+10FFFF
            b"\x80",                     // lone continuation byte
            b"\xe2\x82",                 // truncated at the end of the message
            b"\xce\xba\xe1\xbd\xb9\xc0", // valid prefix, then invalid
            b"\xf8\x88\x80\x80\x80",     // 5-byte form
        ];
        for role in ROLES {
            for payload in invalid {
                let mut conn = open(role, Config::default());
                conn.receive(&incoming(role, Frame::new(TEXT, payload)), t0());
                assert_failed(&mut conn, ProtocolError::InvalidUtf8, 1007);
            }
        }
    }

    #[test]
    fn invalid_continuation_fragment_fails_with_1007() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(&incoming(role, Frame::text("valid ").fin(false)), t0());
            conn.receive(&incoming(role, Frame::cont(&b"\xce"[..]).fin(false)), t0());
            assert_eq!(events(&mut conn), []);
            conn.receive(&incoming(role, Frame::cont(&b"A"[..])), t0());
            assert_failed(&mut conn, ProtocolError::InvalidUtf8, 1007);
        }
    }

    #[test]
    fn message_ending_inside_a_code_point_fails_with_1007() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(
                &incoming_all(
                    role,
                    [
                        Frame::new(TEXT, &b"\xf0\x9f"[..]).fin(false),
                        Frame::cont(&b"\x98"[..]),
                    ],
                ),
                t0(),
            );
            assert_failed(&mut conn, ProtocolError::InvalidUtf8, 1007);
        }
    }

    /// "é" is the 2-byte sequence C3 A9. Cut between its two bytes by the reads of one text
    /// frame's payload, or by the two fragments of one message, read separately, it is
    /// still "é".
    #[test]
    fn two_byte_sequence_split_across_reads_and_fragments() {
        assert_eq!("café".as_bytes(), b"caf\xc3\xa9");
        for role in ROLES {
            // One frame, its payload cut after C3.
            let wire = incoming(role, Frame::text("café"));
            let cut = header_len(role, 5) + 4;
            let mut conn = open(role, Config::default());
            conn.receive(&wire[..cut], t0());
            assert_eq!(
                events(&mut conn),
                [],
                "{role:?}: C3 alone is not an error yet"
            );
            conn.receive(&wire[cut..], t0());
            assert_eq!(events(&mut conn), [Event::Text("café".into())], "{role:?}");

            // Two fragments, C3 ending the first, A9 starting the second, one read each.
            let mut conn = open(role, Config::default());
            conn.receive(
                &incoming(role, Frame::new(TEXT, &b"caf\xc3"[..]).fin(false)),
                t0(),
            );
            assert_eq!(events(&mut conn), [], "{role:?}");
            conn.receive(&incoming(role, Frame::cont(&b"\xa9!"[..])), t0());
            assert_eq!(events(&mut conn), [Event::Text("café!".into())], "{role:?}");
            assert_eq!(drain(&mut conn), b"");
        }
    }

    /// A message that ends after C3, the first byte of a 2-byte sequence, is not UTF-8: 1007,
    /// whether the frame arrives whole, C3 arrives in a read of its own, or C3 is the last
    /// fragment.
    #[test]
    fn message_ending_after_the_first_byte_of_a_two_byte_sequence_fails_with_1007() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(&incoming(role, Frame::new(TEXT, &b"caf\xc3"[..])), t0());
            assert_failed(&mut conn, ProtocolError::InvalidUtf8, 1007);

            let wire = incoming(role, Frame::new(TEXT, &b"caf\xc3"[..]));
            let cut = wire.len() - 1;
            let mut conn = open(role, Config::default());
            conn.receive(&wire[..cut], t0());
            assert_eq!(events(&mut conn), []);
            conn.receive(&wire[cut..], t0());
            assert_failed(&mut conn, ProtocolError::InvalidUtf8, 1007);

            let mut conn = open(role, Config::default());
            conn.receive(&incoming(role, Frame::text("caf").fin(false)), t0());
            assert_eq!(events(&mut conn), []);
            conn.receive(&incoming(role, Frame::cont(&b"\xc3"[..])), t0());
            assert_failed(&mut conn, ProtocolError::InvalidUtf8, 1007);
        }
    }

    #[test]
    fn binary_messages_are_not_validated() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(
                &incoming(role, Frame::binary(&b"\xff\xed\xa0\x80"[..])),
                t0(),
            );
            assert_eq!(
                events(&mut conn),
                [Event::Binary(b"\xff\xed\xa0\x80".to_vec())]
            );
        }
    }

    #[test]
    fn a_ping_between_fragments_does_not_disturb_validation() {
        // The ping's payload is not UTF-8 and sits between the two halves of a code point.
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(
                &incoming_all(
                    role,
                    [
                        Frame::new(TEXT, &b"\xe2\x82"[..]).fin(false),
                        Frame::ping(&b"\xff\xfe"[..]),
                        Frame::cont(&b"\xac"[..]),
                    ],
                ),
                t0(),
            );
            assert_eq!(
                events(&mut conn),
                [Event::Ping(b"\xff\xfe".to_vec()), Event::Text("€".into())]
            );
        }
    }
}

/// Failing fast (§8.1 applied as Autobahn case 6.4 checks it): the connection must fail on the
/// first byte that makes the stream invalid, without waiting for the rest of the frame or message,
/// and not one byte earlier.
mod fail_fast {
    use super::*;

    /// A text frame whose payload is `valid` then `bad` then plenty of ASCII, fed one byte at a
    /// time: the error must come exactly after byte `valid.len() + bad_at` of the payload.
    fn check(role: Role, valid: &[u8], bad: &[u8], bad_at: usize, fin: bool) {
        let mut payload = valid.to_vec();
        payload.extend_from_slice(bad);
        payload.extend_from_slice(&[b'a'; 40]);
        let wire = incoming(role, Frame::new(TEXT, payload).fin(fin));
        let header_len = wire.len() - (valid.len() + bad.len() + 40);
        let mut conn = open(role, Config::default());
        let (at, got) = first_event_at(&mut conn, &wire).expect("an error");
        assert_eq!(
            at - header_len,
            valid.len() + bad_at,
            "{role:?}: error after payload byte {} of {valid:02x?} {bad:02x?}",
            at - header_len
        );
        assert_eq!(
            got,
            [Event::Error(ws_proto::Error::Protocol(
                ProtocolError::InvalidUtf8
            ))]
        );
        assert_failed_quietly(&mut conn, 1007);
        // The rest of the frame is ignored.
        let rest = &wire[at + 1..];
        assert!(first_event_at(&mut conn, rest).is_none());
        assert_eq!(drain(&mut conn), b"");
    }

    #[test]
    fn error_comes_on_the_first_invalid_byte() {
        let cases: [(&[u8], usize); 8] = [
            (b"\xed\xa0\x80", 1),     // surrogate: invalid once 0xa0 follows 0xed
            (b"\xf4\x90\x80\x80", 1), // above U+10FFFF: invalid at 0x90
            (b"\xc0\xaf", 0),         // 0xc0 never starts a valid sequence
            (b"\xff", 0),
            (b"\x80", 0),             // continuation byte without a lead
            (b"\xe2\x82\x41", 2),     // truncated 3-byte sequence, then ASCII
            (b"\xf0\x9f\x98\xf0", 3), // truncated 4-byte sequence, then a lead byte
            (b"\xe0\x80\x80", 1),     // overlong 3-byte form
        ];
        for role in ROLES {
            for fin in [true, false] {
                for (bad, bad_at) in cases {
                    check(role, KOSME, bad, bad_at, fin);
                    check(role, b"", bad, bad_at, fin);
                }
            }
        }
    }

    #[test]
    fn error_in_a_continuation_frame_comes_on_the_first_invalid_byte() {
        for role in ROLES {
            let first = incoming(role, Frame::new(TEXT, &KOSME[..3]).fin(false));
            // Completes the 3-byte sequence started in the first frame, then a surrogate.
            let mut payload = KOSME[3..5].to_vec();
            payload.extend_from_slice(b"\xed\xbf\xbf more");
            let second = incoming(role, Frame::cont(payload));
            let header_len = if role == Role::Server { 6 } else { 2 };
            let mut conn = open(role, Config::default());
            conn.receive(&first, t0());
            assert_eq!(events(&mut conn), []);
            let (at, got) = first_event_at(&mut conn, &second).expect("an error");
            assert_eq!(at - header_len, 3, "{role:?}");
            assert_eq!(
                got,
                [Event::Error(ws_proto::Error::Protocol(
                    ProtocolError::InvalidUtf8
                ))]
            );
            assert_failed_quietly(&mut conn, 1007);
        }
    }

    #[test]
    fn valid_text_fed_byte_by_byte_raises_nothing_until_the_end() {
        for role in ROLES {
            let wire = incoming(role, Frame::new(TEXT, KOSME));
            let mut conn = open(role, Config::default());
            let (at, got) = first_event_at(&mut conn, &wire).expect("the message");
            assert_eq!(at, wire.len() - 1);
            assert_eq!(
                got,
                [Event::Text(String::from_utf8(KOSME.to_vec()).unwrap())]
            );
        }
    }
}
