//! Framing (RFC 6455 §5): the §5.7 examples byte for byte, the base framing rules of §5.2,
//! masking (§5.1, §5.3), control frames (§5.5), the implementation limits of §10.4, and the
//! bound on our own output.

mod common;

use common::*;
use ws_proto::CloseCode;
use ws_proto::{Config, Connection, Event, ProtocolError, Role, SendError};

/// §5.7 Examples.
///
/// > A single-frame unmasked text message `0x81 0x05 0x48 0x65 0x6c 0x6c 0x6f` (contains "Hello")
/// > A single-frame masked text message `0x81 0x85 0x37 0xfa 0x21 0x3d 0x7f 0x9f 0x4d 0x51 0x58`
/// > A fragmented unmasked text message `0x01 0x03 0x48 0x65 0x6c` (contains "Hel")
/// > `0x80 0x02 0x6c 0x6f` (contains "lo")
/// > Unmasked Ping request and masked Ping response
/// > 256 bytes binary message in a single unmasked frame `0x82 0x7E 0x0100 [256 bytes of binary data]`
/// > 64KiB binary message in a single unmasked frame `0x82 0x7F 0x0000000000010000 [65536 bytes]`
mod examples {
    use super::*;

    const UNMASKED_HELLO: [u8; 7] = [0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f];
    const MASKED_HELLO: [u8; 11] = [
        0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
    ];
    const HEL: [u8; 5] = [0x01, 0x03, 0x48, 0x65, 0x6c];
    const LO: [u8; 4] = [0x80, 0x02, 0x6c, 0x6f];

    #[test]
    fn our_frame_encoder_reproduces_the_rfc_bytes() {
        // The helpers the other tests rely on agree with the RFC.
        assert_eq!(Frame::text("Hello").encode(), UNMASKED_HELLO);
        assert_eq!(Frame::text("Hello").masked(MASK).encode(), MASKED_HELLO);
        assert_eq!(
            decode_frames(&MASKED_HELLO),
            [Frame::text("Hello").masked(MASK)]
        );
        let mut fragmented = HEL.to_vec();
        fragmented.extend_from_slice(&LO);
        assert_eq!(
            decode_frames(&fragmented),
            [Frame::text("Hel").fin(false), Frame::cont("lo")]
        );
    }

    #[test]
    fn client_receives_single_frame_unmasked_text() {
        let mut client = open_client(Config::default());
        client.receive(&UNMASKED_HELLO, t0());
        assert_eq!(events(&mut client), [Event::Text("Hello".into())]);
        assert_eq!(drain(&mut client), b"");
    }

    #[test]
    fn server_receives_single_frame_masked_text() {
        let mut server = open_server(Config::default());
        server.receive(&MASKED_HELLO, t0());
        assert_eq!(events(&mut server), [Event::Text("Hello".into())]);
        assert_eq!(drain(&mut server), b"");
    }

    #[test]
    fn server_sends_single_frame_unmasked_text() {
        let mut server = open_server(Config::default());
        server.send_text("Hello").unwrap();
        assert_eq!(drain(&mut server), UNMASKED_HELLO);
    }

    #[test]
    fn client_sends_single_frame_masked_text() {
        let mut client = open_client(Config::default());
        client.send_text("Hello").unwrap();
        let wire = drain(&mut client);
        // Same layout as the RFC's masked example, with the client's own random key.
        assert_eq!(wire.len(), MASKED_HELLO.len());
        assert_eq!(wire[..2], [0x81, 0x85]);
        let key = [wire[2], wire[3], wire[4], wire[5]];
        assert_eq!(wire, Frame::text("Hello").masked(key).encode());
    }

    #[test]
    fn client_receives_fragmented_unmasked_text() {
        let mut client = open_client(Config::default());
        client.receive(&HEL, t0());
        assert_eq!(events(&mut client), []);
        client.receive(&LO, t0());
        assert_eq!(events(&mut client), [Event::Text("Hello".into())]);
    }

    #[test]
    fn server_sends_fragmented_text_like_the_rfc() {
        let mut server = open_server({
            let mut config = Config::default();
            config.fragment_size = 3;
            config
        });
        server.send_text("Hello").unwrap();
        let mut expected = HEL.to_vec();
        expected.extend_from_slice(&LO);
        assert_eq!(drain(&mut server), expected);
    }

    #[test]
    fn client_answers_unmasked_ping_with_masked_pong() {
        let mut client = open_client(Config::default());
        client.receive(&[0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f], t0());
        assert_eq!(events(&mut client), [Event::Ping(b"Hello".to_vec())]);
        let wire = drain(&mut client);
        // 0x8a 0x85 <key> <"Hello" masked>: the RFC's response with the client's key.
        assert_eq!(wire[..2], [0x8a, 0x85]);
        let key = [wire[2], wire[3], wire[4], wire[5]];
        assert_eq!(wire, Frame::pong("Hello").masked(key).encode());
    }

    #[test]
    fn server_answers_masked_ping_with_unmasked_pong() {
        let mut server = open_server(Config::default());
        server.receive(&Frame::ping("Hello").masked(MASK).encode(), t0());
        assert_eq!(events(&mut server), [Event::Ping(b"Hello".to_vec())]);
        assert_eq!(
            drain(&mut server),
            [0x8a, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f]
        );
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 % 251) as u8).collect()
    }

    #[test]
    fn server_sends_256_byte_binary_with_16_bit_length() {
        let mut server = open_server(Config::default());
        server.send_binary(pattern(256)).unwrap();
        let wire = drain(&mut server);
        assert_eq!(wire[..4], [0x82, 0x7e, 0x01, 0x00]);
        assert_eq!(wire[4..], pattern(256));
    }

    #[test]
    fn server_sends_64_kib_binary_with_64_bit_length() {
        let mut server = open_server(Config::default());
        server.send_binary(pattern(65536)).unwrap();
        let wire = drain(&mut server);
        assert_eq!(
            wire[..10],
            [0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]
        );
        assert_eq!(wire.len(), 10 + 65536);
        assert_eq!(wire[10..], pattern(65536));
    }

    #[test]
    fn client_receives_256_byte_and_64_kib_binary() {
        let mut client = open_client(Config::default());
        let mut wire = vec![0x82, 0x7e, 0x01, 0x00];
        wire.extend(pattern(256));
        wire.extend([0x82, 0x7f, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00]);
        wire.extend(pattern(65536));
        client.receive(&wire, t0());
        assert_eq!(
            events(&mut client),
            [Event::Binary(pattern(256)), Event::Binary(pattern(65536))]
        );
    }

    #[test]
    fn header_lengths_at_the_encoding_boundaries() {
        // 125 fits in 7 bits, 126 needs 16, 65535 is the largest 16-bit one, 65536 needs 64.
        for (len, header) in [
            (125usize, vec![0x82, 125]),
            (126, vec![0x82, 126, 0x00, 0x7e]),
            (65535, vec![0x82, 126, 0xff, 0xff]),
            (65536, vec![0x82, 127, 0, 0, 0, 0, 0, 1, 0, 0]),
        ] {
            let mut server = open_server(Config::default());
            server.send_binary(pattern(len)).unwrap();
            let wire = drain(&mut server);
            assert_eq!(wire[..header.len()], header[..], "{len} bytes");
            assert_eq!(wire.len(), header.len() + len);
        }
    }
}

/// §5.2 Base Framing Protocol.
///
/// > RSV1, RSV2, RSV3: 1 bit each. MUST be 0 unless an extension is negotiated that defines
/// > meanings for non-zero values. If a nonzero value is received and none of the negotiated
/// > extensions defines the meaning of such a nonzero value, the receiving endpoint MUST _Fail
/// > the WebSocket Connection_.
///
/// > Opcode: 4 bits. [...] %x3-7 are reserved for further non-control frames [...] %xB-F are
/// > reserved for further control frames. If an unknown opcode is received, the receiving
/// > endpoint MUST _Fail the WebSocket Connection_.
mod base_framing {
    use super::*;

    #[test]
    fn reserved_bits_fail_with_1002() {
        for role in ROLES {
            for rsv in 1..8u8 {
                for frame in [Frame::text("x"), Frame::binary("x"), Frame::ping("x")] {
                    let mut conn = open(role, Config::default());
                    conn.receive(&incoming(role, frame.clone().rsv(rsv)), t0());
                    assert_failed(&mut conn, ProtocolError::ReservedBits(rsv), 1002);
                }
            }
        }
    }

    #[test]
    fn reserved_bits_on_a_continuation_fail_with_1002() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(&incoming(role, Frame::text("a").fin(false)), t0());
            conn.receive(&incoming(role, Frame::cont("b").rsv(0b100)), t0());
            assert_failed(&mut conn, ProtocolError::ReservedBits(0b100), 1002);
        }
    }

    #[test]
    fn reserved_opcodes_fail_with_1002() {
        for role in ROLES {
            for opcode in (0x3..=0x7).chain(0xb..=0xf) {
                let mut conn = open(role, Config::default());
                conn.receive(&incoming(role, Frame::new(opcode, "")), t0());
                assert_failed(&mut conn, ProtocolError::ReservedOpcode(opcode), 1002);
            }
        }
    }

    #[test]
    fn reserved_opcode_fails_as_soon_as_the_second_byte_arrives() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            let wire = incoming(role, Frame::new(0x3, "payload"));
            conn.receive(&wire[..1], t0());
            assert_eq!(events(&mut conn), []);
            conn.receive(&wire[1..2], t0());
            assert_failed(&mut conn, ProtocolError::ReservedOpcode(0x3), 1002);
        }
    }

    /// > If 127, the following 8 bytes interpreted as a 64-bit unsigned integer (the most
    /// > significant bit MUST be 0) are the payload length.
    #[test]
    fn length_with_top_bit_set_fails_with_1002() {
        let mut server = open_server(Config::default());
        let mut wire = vec![0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 1];
        wire.extend_from_slice(&MASK);
        server.receive(&wire, t0());
        assert_failed(&mut server, ProtocolError::InvalidPayloadLength, 1002);

        let mut client = open_client(Config::default());
        client.receive(
            &[0x82, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff],
            t0(),
        );
        assert_failed(&mut client, ProtocolError::InvalidPayloadLength, 1002);
    }

    /// A frame for `receiver` whose length takes the 16-bit (`form` 126) or 64-bit (127) form,
    /// whatever the payload's length.
    fn with_length_form(receiver: Role, opcode: u8, payload: &[u8], form: u8) -> Vec<u8> {
        let masked = receiver == Role::Server;
        let mut out = vec![0x80 | opcode, (u8::from(masked) << 7) | form];
        match form {
            126 => out.extend_from_slice(&(payload.len() as u16).to_be_bytes()),
            127 => out.extend_from_slice(&(payload.len() as u64).to_be_bytes()),
            _ => unreachable!("only the extended forms"),
        }
        if masked {
            out.extend_from_slice(&MASK);
            out.extend(payload.iter().enumerate().map(|(i, b)| b ^ MASK[i % 4]));
        } else {
            out.extend_from_slice(payload);
        }
        out
    }

    /// > Payload length: 7 bits, 7+16 bits, or 7+64 bits [...] Multibyte length quantities are
    /// > expressed in network byte order. Note that in all cases, the minimal number of bytes
    /// > MUST be used to encode the length, for example, the length of a 124-byte-long string
    /// > can't be encoded as the sequence 126, 0, 124.
    ///
    /// That MUST binds the sender; unlike the RSV bits and opcodes above, §5.2 does not tell
    /// the receiver to _Fail the WebSocket Connection_ over it. We go the liberal way: a frame
    /// whose length takes a longer form than needed is accepted, with the length it states,
    /// data and control frames alike. (We never write one: `decode_frames` refuses every
    /// non-minimal length in what the connection writes.)
    #[test]
    fn non_minimal_length_encodings_are_accepted() {
        for role in ROLES {
            let cases = [
                (TEXT, b"Hello".to_vec(), 126, Event::Text("Hello".into())),
                (TEXT, b"Hello".to_vec(), 127, Event::Text("Hello".into())),
                (BINARY, Vec::new(), 126, Event::Binary(Vec::new())),
                (BINARY, vec![7; 124], 126, Event::Binary(vec![7; 124])),
                (BINARY, vec![7; 300], 127, Event::Binary(vec![7; 300])),
                (PING, b"Hi".to_vec(), 126, Event::Ping(b"Hi".to_vec())),
            ];
            for (opcode, payload, form, event) in cases {
                let wire = with_length_form(role, opcode, &payload, form);
                // Whole, then one byte at a time.
                let mut conn = open(role, Config::default());
                conn.receive(&wire, t0());
                assert_eq!(
                    events(&mut conn),
                    std::slice::from_ref(&event),
                    "{role:?} {wire:02x?}"
                );
                let mut conn = open(role, Config::default());
                let mut got = Vec::new();
                for byte in &wire {
                    conn.receive(std::slice::from_ref(byte), t0());
                    got.extend(events(&mut conn));
                }
                assert_eq!(got, [event], "{role:?} byte by byte");
                let answer: &[Frame] = if opcode == PING {
                    &[Frame::pong("Hi")]
                } else {
                    &[]
                };
                assert_sent(&mut conn, answer);
                assert_eq!(conn.state(), ws_proto::State::Open);
            }
        }
    }

    #[test]
    fn frames_split_anywhere_are_reassembled() {
        // Every header form (7, 16 and 64-bit lengths, masked or not), fed one byte at a time.
        for role in ROLES {
            let messages = [vec![1u8; 3], vec![2u8; 300], vec![3u8; 70_000]];
            let wire = incoming_all(role, messages.iter().map(|m| Frame::binary(m.clone())));
            let mut conn = open(role, Config::default());
            let mut got = Vec::new();
            for byte in &wire {
                conn.receive(std::slice::from_ref(byte), t0());
                got.extend(events(&mut conn));
            }
            let expected: Vec<Event> = messages.iter().cloned().map(Event::Binary).collect();
            assert_eq!(got, expected);
        }
    }

    #[test]
    fn empty_messages() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(
                &incoming_all(role, [Frame::text(""), Frame::binary("")]),
                t0(),
            );
            assert_eq!(
                events(&mut conn),
                [Event::Text(String::new()), Event::Binary(Vec::new())]
            );
            conn.send_text("").unwrap();
            conn.send_binary(Vec::new()).unwrap();
            assert_sent(&mut conn, &[Frame::text(""), Frame::binary("")]);
        }
    }
}

/// §5.1 Overview and §5.3 Client-to-Server Masking.
///
/// > a client MUST mask all frames that it sends to the server [...] A server MUST NOT mask any
/// > frames that it sends to the client. [...] a server MUST close the connection upon receiving
/// > a frame that is not masked. [...] A client MUST close a connection if it detects a masked
/// > frame. [...] it MAY use the status code 1002 (protocol error) as defined in Section 7.4.1.
mod masking {
    use super::*;

    #[test]
    fn server_fails_on_unmasked_frame() {
        for frame in [
            Frame::text("Hello"),
            Frame::ping(""),
            Frame::close(1000, ""),
        ] {
            let mut server = open_server(Config::default());
            server.receive(&frame.encode(), t0());
            assert_failed(&mut server, ProtocolError::UnmaskedFrame, 1002);
        }
    }

    #[test]
    fn client_fails_on_masked_frame() {
        for frame in [
            Frame::text("Hello"),
            Frame::ping(""),
            Frame::close(1000, ""),
        ] {
            let mut client = open_client(Config::default());
            client.receive(&frame.masked(MASK).encode(), t0());
            assert_failed(&mut client, ProtocolError::MaskedFrame, 1002);
        }
    }

    /// > The masking key is a 32-bit value chosen at random by the client. When sending a frame,
    /// > the client MUST pick a fresh masking key from the set of allowed 32-bit values.
    #[test]
    fn client_masks_every_frame_with_a_fresh_key() {
        let mut client = open_client(Config::default());
        for i in 0..8u8 {
            client.send_binary(vec![i; 16]).unwrap();
        }
        client.ping(b"p").unwrap();
        client.close(CloseCode::NORMAL, "", t0()).unwrap();
        let frames = sent(&mut client);
        assert_eq!(frames.len(), 10);
        let keys: Vec<[u8; 4]> = frames.iter().map(|f| f.mask.unwrap()).collect();
        // Ten random 32-bit keys are all equal with probability 2^-288.
        assert!(keys.iter().any(|k| *k != keys[0]), "{keys:02x?}");
        for (i, frame) in frames[..8].iter().enumerate() {
            assert_eq!(frame.payload, vec![i as u8; 16]);
        }
    }

    #[test]
    fn server_never_masks() {
        let mut server = open_server(Config::default());
        server.send_text("a").unwrap();
        server.send_binary(vec![0; 5000]).unwrap();
        server.ping(b"").unwrap();
        server.pong(b"x").unwrap();
        server.close(CloseCode::NORMAL, "", t0()).unwrap();
        // `sent` checks the mask bit of every frame against the role.
        assert_eq!(sent(&mut server).len(), 5);
    }

    #[test]
    fn masked_payload_split_across_reads_unmasks_correctly() {
        let mut server = open_server(Config::default());
        let wire = Frame::binary((0..=255u8).collect::<Vec<u8>>())
            .masked([1, 2, 3, 4])
            .encode();
        for piece in wire.chunks(7) {
            server.receive(piece, t0());
        }
        assert_eq!(events(&mut server), [Event::Binary((0..=255u8).collect())]);
    }
}

/// §5.5 Control Frames.
///
/// > All control frames MUST have a payload length of 125 bytes or less and MUST NOT be
/// > fragmented.
mod control_frames {
    use super::*;

    #[test]
    fn fragmented_control_frame_fails_with_1002() {
        for role in ROLES {
            for frame in [Frame::ping("x"), Frame::pong("x"), Frame::close(1000, "")] {
                let mut conn = open(role, Config::default());
                conn.receive(&incoming(role, frame.fin(false)), t0());
                assert_failed(&mut conn, ProtocolError::FragmentedControlFrame, 1002);
            }
        }
    }

    /// The §5.5 rules come before the size limit: a bad control frame is a protocol error
    /// (1002) even when it is also over a small `max_frame_size`.
    #[test]
    fn bad_control_frame_is_1002_even_over_a_small_max_frame_size() {
        let config = || {
            let mut config = Config::default();
            config.max_frame_size = 100;
            config
        };
        for role in ROLES {
            let mut conn = open(role, config());
            conn.receive(&incoming(role, Frame::ping(vec![0; 126])), t0());
            assert_failed(&mut conn, ProtocolError::ControlFrameTooLong(126), 1002);
            let mut conn = open(role, config());
            conn.receive(&incoming(role, Frame::ping(vec![0; 101]).fin(false)), t0());
            assert_failed(&mut conn, ProtocolError::FragmentedControlFrame, 1002);
        }
    }

    #[test]
    fn control_payload_of_126_fails_with_1002() {
        for role in ROLES {
            for opcode in [PING, PONG, CLOSE] {
                let mut conn = open(role, Config::default());
                let mut payload = vec![b'a'; 126];
                if opcode == CLOSE {
                    payload[..2].copy_from_slice(&1000u16.to_be_bytes());
                }
                let wire = incoming(role, Frame::new(opcode, payload));
                // Fails on the header, before the payload arrives.
                let header_len = if role == Role::Server { 8 } else { 4 };
                conn.receive(&wire[..header_len], t0());
                assert_failed(&mut conn, ProtocolError::ControlFrameTooLong(126), 1002);
            }
        }
    }

    #[test]
    fn control_payload_of_125_is_accepted() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(&incoming(role, Frame::ping(vec![7u8; 125])), t0());
            assert_eq!(events(&mut conn), [Event::Ping(vec![7u8; 125])]);
            assert_sent(&mut conn, &[Frame::pong(vec![7u8; 125])]);
        }
    }

    #[test]
    fn sending_control_frames_over_125_bytes_is_refused() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            assert_eq!(conn.ping(&[0; 126]), Err(SendError::ControlTooLong(126)));
            assert_eq!(conn.pong(&[0; 200]), Err(SendError::ControlTooLong(200)));
            assert_eq!(conn.ping(&[0; 125]), Ok(()));
            assert_sent(&mut conn, &[Frame::ping(vec![0; 125])]);
        }
    }
}

/// §10.4 Implementation-Specific Limits.
///
/// > Such implementations SHOULD impose a limit on frame sizes and the total message size after
/// > reassembly from multiple frames.
///
/// §7.4.1: 1009 "indicates that an endpoint is terminating the connection because it has
/// received a message that is too big for it to process."
mod limits {
    use super::*;

    #[test]
    fn declared_length_of_2_pow_62_fails_with_1009_without_allocating() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            let mut wire = vec![0x82, 0x7f];
            wire.extend_from_slice(&(1u64 << 62).to_be_bytes());
            if role == Role::Server {
                wire[1] |= 0x80;
                wire.extend_from_slice(&MASK);
            }
            conn.receive(&wire, t0());
            assert_failed(
                &mut conn,
                ProtocolError::FrameTooLarge {
                    size: 1 << 62,
                    max: 16 << 20,
                },
                1009,
            );
        }
    }

    #[test]
    fn frame_one_byte_over_max_frame_size_fails_with_1009() {
        for role in ROLES {
            let mut config = Config::default();
            config.max_frame_size = 100;
            let mut conn = open(role, config.clone());
            conn.receive(&incoming(role, Frame::binary(vec![0; 100])), t0());
            assert_eq!(events(&mut conn), [Event::Binary(vec![0; 100])]);

            let wire = incoming(role, Frame::binary(vec![0; 101]));
            // The header alone is enough to fail.
            let header_len = if role == Role::Server { 8 } else { 4 };
            conn.receive(&wire[..header_len], t0());
            assert_failed(
                &mut conn,
                ProtocolError::FrameTooLarge {
                    size: 101,
                    max: 100,
                },
                CloseCode::MESSAGE_TOO_BIG.as_u16(),
            );
        }
    }

    /// The size check of a frame whose payload arrives over several reads (its header alone
    /// first), not only of one that arrives whole: exactly `max_frame_size` is accepted, one
    /// byte more fails with 1009, both on its header alone and when it arrives whole. With
    /// the limit at every length form: 7, 16 and 64 bits.
    #[test]
    fn frame_of_exactly_max_frame_size_is_accepted_when_streamed() {
        for role in ROLES {
            for max in [125, 126, 70_000] {
                let mut config = Config::default();
                config.max_frame_size = max;
                let payload: Vec<u8> = (0..max).map(|i| i as u8).collect();
                let mut conn = open(role, config.clone());
                let got = receive_streamed(&mut conn, Frame::binary(payload.clone()), max / 3 + 1);
                assert_eq!(got.len(), 4, "the header and three pieces");
                let (last, before) = got.split_last().unwrap();
                assert!(
                    before.iter().all(Vec::is_empty),
                    "{role:?} {max}: {before:?}"
                );
                assert_eq!(last, &[Event::Binary(payload)], "{role:?} {max}");
                assert_eq!(drain(&mut conn), b"");

                let over = Frame::binary(vec![0; max + 1]);
                let error = ProtocolError::FrameTooLarge {
                    size: max as u64 + 1,
                    max,
                };
                let wire = incoming(role, over);
                let mut conn = open(role, config.clone());
                conn.receive(&wire[..header_len(role, max + 1)], t0());
                assert_failed(&mut conn, error.clone(), 1009);
                let mut conn = open(role, config);
                conn.receive(&wire, t0());
                assert_failed(&mut conn, error, 1009);
            }
        }
    }
}

/// The bound on our own output ([`Config::max_buffered_output`], the rule of
/// `ws_proto::fits_output_limit`): not an RFC 6455 rule, the sending side of the limits of
/// §10.4. A send that would take the queue over the limit is refused with
/// [`SendError::BufferFull`] and queues nothing, except that an empty queue takes a message
/// of any size.
mod output_limit {
    use super::*;

    /// Header length of a frame of `len` payload bytes written by `sender` (masked by a client).
    fn written_header_len(sender: Role, len: usize) -> usize {
        let receiver = match sender {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        };
        header_len(receiver, len)
    }

    /// Takes `n` bytes of output, as a transport that accepted only that much.
    fn write(conn: &mut Connection, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        while out.len() < n {
            let chunk = conn.pending_output();
            assert!(!chunk.is_empty(), "fewer than {n} bytes queued");
            let take = chunk.len().min(n - out.len());
            out.extend_from_slice(&chunk[..take]);
            conn.advance_output(take);
        }
        out
    }

    #[test]
    fn sends_over_max_buffered_output_are_refused_until_the_output_drains() {
        for role in ROLES {
            let limit = 100;
            let mut config = Config::default();
            config.max_buffered_output = limit;
            let mut conn = open(role, config);
            let mut wire = Vec::new();

            // An empty queue takes a message larger than the limit.
            conn.send_binary(vec![1; 300]).unwrap();
            let big = conn.buffered_amount();
            assert_eq!(big, written_header_len(role, 300) + 300);

            // A queue that is not empty takes nothing that goes beyond it, not even an empty
            // message or a ping; nothing is queued.
            let full = Err(SendError::BufferFull {
                buffered: big,
                limit,
            });
            assert_eq!(conn.send_text("x"), full);
            assert_eq!(conn.send_binary(Vec::new()), full);
            assert_eq!(conn.ping(b""), full);
            assert_eq!(conn.pong(b""), full);
            assert_eq!(conn.buffered_amount(), big, "a refused send queues nothing");

            // Written down to 10 bytes: a 90-byte payload fits (10 + 90 = the limit), 91 bytes
            // do not.
            wire.extend(write(&mut conn, big - 10));
            assert_eq!(
                conn.send_binary(vec![2; 91]),
                Err(SendError::BufferFull {
                    buffered: 10,
                    limit
                })
            );
            assert_eq!(conn.buffered_amount(), 10);
            conn.send_binary(vec![2; 90]).unwrap();
            // The rule counts the payload: with its header the queue is now past the limit.
            let queued = conn.buffered_amount();
            assert_eq!(queued, 10 + written_header_len(role, 90) + 90);
            assert_eq!(
                conn.send_text("x"),
                Err(SendError::BufferFull {
                    buffered: queued,
                    limit
                })
            );

            // Once everything is written the queue is empty and takes the next send again.
            wire.extend(drain(&mut conn));
            conn.send_text("again").unwrap();
            wire.extend(drain(&mut conn));
            let frames: Vec<Frame> = decode_frames(&wire)
                .into_iter()
                .map(Frame::unmasked)
                .collect();
            assert_eq!(
                frames,
                [
                    Frame::binary(vec![1; 300]),
                    Frame::binary(vec![2; 90]),
                    Frame::text("again")
                ]
            );
        }
    }
}
