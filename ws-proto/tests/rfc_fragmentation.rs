//! Fragmentation (RFC 6455 §5.4): reassembly of received messages, the ordering rules, control
//! frames in the middle of a message, the message size limit, and fragmentation on send.

mod common;

use common::*;
use ws_proto::{Config, Event, ProtocolError, Role};

/// §5.4 Fragmentation, receiving.
///
/// > A fragmented message consists of a single frame with the FIN bit clear and an opcode other
/// > than 0, followed by zero or more frames with the FIN bit clear and the opcode set to 0, and
/// > terminated by a single frame with the FIN bit set and an opcode of 0.
///
/// > Control frames (see Section 5.5) MAY be injected in the middle of a fragmented message.
///
/// > The fragments of one message MUST NOT be interleaved between the fragments of another
/// > message unless an extension has been negotiated that can interpret the interleaving.
mod receiving {
    use super::*;

    #[test]
    fn fragments_are_reassembled() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(
                &incoming_all(
                    role,
                    [
                        Frame::text("frag").fin(false),
                        Frame::cont("men").fin(false),
                        Frame::cont("").fin(false),
                        Frame::cont("ted"),
                        Frame::binary([1, 2]).fin(false),
                        Frame::cont([3]),
                    ],
                ),
                t0(),
            );
            assert_eq!(
                events(&mut conn),
                [
                    Event::Text("fragmented".into()),
                    Event::Binary(vec![1, 2, 3])
                ]
            );
            assert_eq!(drain(&mut conn), b"");
        }
    }

    #[test]
    fn nothing_is_delivered_before_the_final_fragment() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(&incoming(role, Frame::binary([1]).fin(false)), t0());
            conn.receive(&incoming(role, Frame::cont([2]).fin(false)), t0());
            assert_eq!(events(&mut conn), []);
            conn.receive(&incoming(role, Frame::cont([3])), t0());
            assert_eq!(events(&mut conn), [Event::Binary(vec![1, 2, 3])]);
        }
    }

    #[test]
    fn continuation_without_a_message_fails_with_1002() {
        for role in ROLES {
            for fin in [true, false] {
                let mut conn = open(role, Config::default());
                conn.receive(&incoming(role, Frame::cont("x").fin(fin)), t0());
                assert_failed(&mut conn, ProtocolError::UnexpectedContinuation, 1002);
            }
        }
    }

    #[test]
    fn continuation_after_a_complete_message_fails_with_1002() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(&incoming(role, Frame::text("done")), t0());
            assert_eq!(events(&mut conn), [Event::Text("done".into())]);
            conn.receive(&incoming(role, Frame::cont("more")), t0());
            assert_failed(&mut conn, ProtocolError::UnexpectedContinuation, 1002);
        }
    }

    #[test]
    fn new_data_frame_inside_a_fragmented_message_fails_with_1002() {
        for role in ROLES {
            for first in [Frame::text("a"), Frame::binary("a")] {
                for second in [Frame::text("b"), Frame::binary("b")] {
                    let mut conn = open(role, Config::default());
                    conn.receive(&incoming(role, first.clone().fin(false)), t0());
                    conn.receive(&incoming(role, second.clone().fin(false)), t0());
                    assert_failed(&mut conn, ProtocolError::ExpectedContinuation, 1002);
                }
            }
        }
    }

    #[test]
    fn control_frames_interleaved_in_a_fragmented_message() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(&incoming(role, Frame::text("Spam").fin(false)), t0());
            assert_eq!(events(&mut conn), []);
            conn.receive(&incoming(role, Frame::ping("Ping")), t0());
            assert_eq!(events(&mut conn), [Event::Ping(b"Ping".to_vec())]);
            // The pong goes out right away, in the middle of the peer's message.
            assert_sent(&mut conn, &[Frame::pong("Ping")]);
            conn.receive(&incoming(role, Frame::cont("Ham").fin(false)), t0());
            conn.receive(&incoming(role, Frame::pong("Pong")), t0());
            assert_eq!(events(&mut conn), [Event::Pong(b"Pong".to_vec())]);
            conn.receive(&incoming(role, Frame::cont("Eggs")), t0());
            assert_eq!(events(&mut conn), [Event::Text("SpamHamEggs".into())]);
            assert_eq!(drain(&mut conn), b"");
        }
    }

    #[test]
    fn control_frame_split_across_reads_inside_a_fragmented_message() {
        for role in ROLES {
            let wire = incoming_all(
                role,
                [
                    Frame::binary(vec![1; 300]).fin(false),
                    Frame::ping(vec![9; 100]),
                    Frame::cont(vec![2; 300]),
                ],
            );
            let mut conn = open(role, Config::default());
            let mut got = Vec::new();
            for piece in wire.chunks(13) {
                conn.receive(piece, t0());
                got.extend(events(&mut conn));
            }
            let mut message = vec![1; 300];
            message.extend(vec![2; 300]);
            assert_eq!(got, [Event::Ping(vec![9; 100]), Event::Binary(message)]);
        }
    }

    /// §10.4: "limit [...] the total message size after reassembly from multiple frames."
    #[test]
    fn message_over_max_message_size_across_fragments_fails_with_1009() {
        for role in ROLES {
            let mut config = Config::default();
            config.max_message_size = 10;
            let mut conn = open(role, config);
            conn.receive(&incoming(role, Frame::binary([0; 6]).fin(false)), t0());
            conn.receive(&incoming(role, Frame::cont([0; 4]).fin(false)), t0());
            assert_eq!(events(&mut conn), []);
            let wire = incoming(role, Frame::cont([0; 1]));
            // 11 > 10 is known from the header: the payload is not waited for.
            let header_len = if role == Role::Server { 6 } else { 2 };
            conn.receive(&wire[..header_len], t0());
            assert_failed(
                &mut conn,
                ProtocolError::MessageTooLarge { size: 11, max: 10 },
                1009,
            );
        }
    }

    #[test]
    fn message_of_exactly_max_message_size_is_accepted() {
        for role in ROLES {
            let mut config = Config::default();
            config.max_message_size = 10;
            let mut conn = open(role, config);
            conn.receive(
                &incoming_all(
                    role,
                    [Frame::text("01234").fin(false), Frame::cont("56789")],
                ),
                t0(),
            );
            assert_eq!(events(&mut conn), [Event::Text("0123456789".into())]);
            // The limit applies per message: the next one starts from zero.
            conn.receive(&incoming(role, Frame::text("0123456789")), t0());
            assert_eq!(events(&mut conn), [Event::Text("0123456789".into())]);
        }
    }

    /// The message size check on fragments whose payloads arrive over several reads, each
    /// header alone first: a message of exactly `max_message_size` is accepted; one byte more
    /// fails with 1009 on the header of the fragment that would pass the limit.
    #[test]
    fn message_of_exactly_max_message_size_is_accepted_when_streamed() {
        let config = || {
            let mut config = Config::default();
            config.max_message_size = 300;
            config
        };
        for role in ROLES {
            let mut conn = open(role, config());
            let mut got = Vec::new();
            for frame in [
                Frame::binary(vec![1; 100]).fin(false),
                Frame::cont(vec![2; 150]).fin(false),
                Frame::cont(vec![3; 50]),
            ] {
                got.extend(receive_streamed(&mut conn, frame, 40).concat());
            }
            let mut message = vec![1; 100];
            message.extend(vec![2; 150]);
            message.extend(vec![3; 50]);
            assert_eq!(got, [Event::Binary(message)], "{role:?}");
            assert_eq!(drain(&mut conn), b"");

            let mut conn = open(role, config());
            for frame in [
                Frame::binary(vec![1; 100]).fin(false),
                Frame::cont(vec![2; 150]).fin(false),
            ] {
                assert!(receive_streamed(&mut conn, frame, 40).concat().is_empty());
            }
            let wire = incoming(role, Frame::cont(vec![3; 51]));
            conn.receive(&wire[..header_len(role, 51)], t0());
            assert_failed(
                &mut conn,
                ProtocolError::MessageTooLarge {
                    size: 301,
                    max: 300,
                },
                1009,
            );
        }
    }

    /// An unfragmented message is a message too: a single frame over `max_message_size` (but
    /// within `max_frame_size`) fails with 1009, when it arrives whole in one read as when its
    /// header comes alone.
    #[test]
    fn single_frame_over_max_message_size_fails_with_1009() {
        let config = || {
            let mut config = Config::default();
            config.max_message_size = 300;
            config
        };
        for role in ROLES {
            for text in [false, true] {
                let frame = if text {
                    Frame::text(&"a".repeat(301))
                } else {
                    Frame::binary(vec![0; 301])
                };
                let wire = incoming(role, frame);
                let error = ProtocolError::MessageTooLarge {
                    size: 301,
                    max: 300,
                };
                let mut conn = open(role, config());
                conn.receive(&wire, t0());
                assert_failed(&mut conn, error.clone(), 1009);
                let mut conn = open(role, config());
                conn.receive(&wire[..header_len(role, 301)], t0());
                assert_failed(&mut conn, error, 1009);
            }
        }
    }

    #[test]
    fn control_frames_do_not_count_towards_the_message_size() {
        for role in ROLES {
            let mut config = Config::default();
            config.max_message_size = 10;
            let mut conn = open(role, config);
            conn.receive(
                &incoming_all(
                    role,
                    [
                        Frame::binary([0; 8]).fin(false),
                        Frame::ping(vec![0; 100]),
                        Frame::cont([0; 2]),
                    ],
                ),
                t0(),
            );
            assert_eq!(
                events(&mut conn),
                [Event::Ping(vec![0; 100]), Event::Binary(vec![0; 10])]
            );
        }
    }
}

/// §5.4 Fragmentation, sending.
///
/// > The primary purpose of fragmentation is to allow sending a message that is of unknown size
/// > when the message is started without having to buffer that message. [...] An unfragmented
/// > message consists of a single frame with the FIN bit set and an opcode other than 0.
mod sending {
    use super::*;

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i % 251) as u8).collect()
    }

    /// The frames a message of `data` should go out as with `fragment_size`.
    fn expected_frames(opcode: u8, data: &[u8], fragment_size: usize) -> Vec<Frame> {
        let chunks: Vec<&[u8]> = data.chunks(fragment_size).collect();
        chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| {
                Frame::new(if i == 0 { opcode } else { CONT }, chunk.to_vec())
                    .fin(i + 1 == chunks.len())
            })
            .collect()
    }

    #[test]
    fn small_message_over_fragment_size_goes_out_in_three_frames() {
        for role in ROLES {
            let mut conn = open(role, {
                let mut config = Config::default();
                config.fragment_size = 10;
                config
            });
            let data = pattern(25);
            conn.send_binary(data.clone()).unwrap();
            let frames = sent(&mut conn);
            assert_eq!(
                frames
                    .iter()
                    .cloned()
                    .map(Frame::unmasked)
                    .collect::<Vec<_>>(),
                [
                    Frame::binary(&data[..10]).fin(false),
                    Frame::cont(&data[10..20]).fin(false),
                    Frame::cont(&data[20..]),
                ]
            );
            let text = "abcdefghijklmnopqrstuvwxy";
            conn.send_text(text).unwrap();
            assert_sent(&mut conn, &expected_frames(TEXT, text.as_bytes(), 10));
        }
    }

    #[test]
    fn large_message_over_fragment_size() {
        for role in ROLES {
            let mut conn = open(role, {
                let mut config = Config::default();
                config.fragment_size = 1000;
                config
            });
            let data = pattern(10_000);
            conn.send_binary(data.clone()).unwrap();
            let frames = sent(&mut conn);
            assert_eq!(frames.len(), 10);
            let frames: Vec<Frame> = frames.into_iter().map(Frame::unmasked).collect();
            assert_eq!(frames, expected_frames(BINARY, &data, 1000));
        }
    }

    #[test]
    fn large_message_not_a_multiple_of_fragment_size() {
        for role in ROLES {
            let mut conn = open(role, {
                let mut config = Config::default();
                config.fragment_size = 4096;
                config
            });
            let data = pattern(10_000);
            conn.send_binary(data.clone()).unwrap();
            assert_sent(&mut conn, &expected_frames(BINARY, &data, 4096));
        }
    }

    #[test]
    fn client_masks_each_fragment_with_its_own_key() {
        for (fragment_size, len) in [(10, 25), (1000, 10_000)] {
            let mut client = open_client({
                let mut config = Config::default();
                config.fragment_size = fragment_size;
                config
            });
            let data = pattern(len);
            client.send_binary(data.clone()).unwrap();
            let wire = drain(&mut client);
            let frames = decode_frames(&wire);
            assert_eq!(frames.len(), len.div_ceil(fragment_size));
            // The decoder unmasked every frame with the key in its own header.
            let joined: Vec<u8> = frames.iter().flat_map(|f| f.payload.clone()).collect();
            assert_eq!(joined, data);
            let keys: Vec<[u8; 4]> = frames.iter().map(|f| f.mask.expect("masked")).collect();
            assert!(
                keys.iter().any(|k| *k != keys[0]),
                "{} fragments share one key: {keys:02x?}",
                keys.len()
            );
            // Each frame is exactly its payload masked with the key in its own header.
            let reencoded: Vec<u8> = frames.iter().flat_map(Frame::encode).collect();
            assert_eq!(reencoded, wire);
        }
    }

    #[test]
    fn message_of_exactly_fragment_size_is_one_frame() {
        for role in ROLES {
            for len in [10, 5000] {
                let mut conn = open(role, {
                    let mut config = Config::default();
                    config.fragment_size = len;
                    config
                });
                conn.send_binary(pattern(len)).unwrap();
                assert_sent(&mut conn, &[Frame::binary(pattern(len))]);
            }
        }
    }

    #[test]
    fn text_fragments_may_split_a_code_point() {
        // The sender splits bytes, not characters; the receiver's validator copes (see
        // rfc_utf8.rs).
        let mut server = open_server({
            let mut config = Config::default();
            config.fragment_size = 3;
            config
        });
        let text = "κόσμε"; // 10 bytes of 2-byte sequences
        server.send_text(text).unwrap();
        let frames = sent(&mut server);
        assert_eq!(frames.len(), 4);
        assert_eq!(frames[0].payload, text.as_bytes()[..3]);
        assert_eq!(frames[0].payload[2], 0xcf, "ends with the lead byte of 'ό'");
        let mut client = open_client(Config::default());
        client.receive(
            &frames.iter().flat_map(Frame::encode).collect::<Vec<u8>>(),
            t0(),
        );
        assert_eq!(events(&mut client), [Event::Text(text.into())]);
    }

    #[test]
    fn control_frames_may_go_out_between_messages_of_any_size() {
        for role in ROLES {
            let mut conn = open(role, {
                let mut config = Config::default();
                config.fragment_size = 1000;
                config
            });
            conn.send_binary(pattern(5000)).unwrap();
            conn.ping(b"p").unwrap();
            conn.send_text("after").unwrap();
            let mut expected = expected_frames(BINARY, &pattern(5000), 1000);
            expected.push(Frame::ping("p"));
            expected.push(Frame::text("after"));
            assert_sent(&mut conn, &expected);
        }
    }
}
