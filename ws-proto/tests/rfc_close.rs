//! Closing the connection (RFC 6455 §5.5.1, §7): the closing handshake from either side, close
//! frame payloads and status codes, closing TCP, and failing the connection.

mod common;

use common::*;
use ws_proto::CloseCode;
use ws_proto::{CloseFrame, Config, Error, Event, ProtocolError, Role, SendError, State};

fn close_event(code: u16, reason: &str) -> Event {
    Event::Close(CloseFrame {
        code: CloseCode::try_from(code)
            .ok()
            .unwrap_or(CloseCode::NO_STATUS),
        reason: reason.into(),
    })
}

/// §5.5.1 Close.
///
/// > If there is a body, the first two bytes of the body MUST be a 2-byte unsigned integer (in
/// > network byte order) representing a status code with value /code/ defined in Section 7.4.
/// > Following the 2-byte integer, the body MAY contain UTF-8-encoded data with value /reason/.
///
/// > If an endpoint receives a Close frame and did not previously send a Close frame, the
/// > endpoint MUST send a Close frame in response. (When sending a Close frame in response, the
/// > endpoint typically echos the status code it received.)
mod close_frames {
    use super::*;

    #[test]
    fn close_with_code_and_reason_is_reported_and_its_code_echoed() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(&incoming(role, Frame::close(1001, "going away")), t0());
            assert_eq!(events(&mut conn), [close_event(1001, "going away")]);
            assert_sent(&mut conn, &[Frame::close(1001, "")]);
            assert_eq!(conn.state(), State::Closed);
            assert_eq!(
                conn.close_status(),
                Some(&CloseFrame {
                    code: CloseCode::GOING_AWAY,
                    reason: "going away".into()
                })
            );
        }
    }

    #[test]
    fn every_valid_code_is_echoed() {
        for role in ROLES {
            for code in [
                1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
                4000, 4999,
            ] {
                let mut conn = open(role, Config::default());
                conn.receive(&incoming(role, Frame::close(code, "")), t0());
                assert_eq!(events(&mut conn), [close_event(code, "")], "{code}");
                assert_sent(&mut conn, &[Frame::close(code, "")]);
            }
        }
    }

    /// §7.1.5: "If this Close control frame contains no status code, _The WebSocket Connection
    /// Close Code_ is considered to be 1005."
    #[test]
    fn empty_close_is_reported_as_1005_and_echoed_empty() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(&incoming(role, Frame::close_empty()), t0());
            assert_eq!(
                events(&mut conn),
                [close_event(CloseCode::NO_STATUS.as_u16(), "")]
            );
            assert_sent(&mut conn, &[Frame::close_empty()]);
            assert_eq!(conn.close_status().map(|c| c.code.as_u16()), Some(1005));
        }
    }

    #[test]
    fn close_with_one_byte_payload_fails_with_1002() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(&incoming(role, Frame::new(CLOSE, [0x03])), t0());
            assert_failed(&mut conn, ProtocolError::InvalidClosePayload, 1002);
        }
    }

    /// §7.4.1/§7.4.2: 1004 is reserved, 1005, 1006 and 1015 "MUST NOT be set as a status code in
    /// a Close control frame by an endpoint", 0-999 are "not used", 1016-2999 are reserved for
    /// future revisions of the protocol, and nothing above 4999 is defined.
    #[test]
    fn invalid_close_codes_fail_with_1002() {
        for role in ROLES {
            for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
                let mut conn = open(role, Config::default());
                conn.receive(&incoming(role, Frame::close(code, "")), t0());
                assert_failed(&mut conn, ProtocolError::InvalidCloseCode(code), 1002);
            }
        }
    }

    /// §5.5.1: the reason is "UTF-8-encoded data"; §8.1: invalid UTF-8 fails the connection, and
    /// §7.4.1 assigns 1007 to data inconsistent with its type.
    #[test]
    fn close_reason_with_invalid_utf8_fails_with_1007() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(
                &incoming(role, Frame::new(CLOSE, [0x03, 0xe8, b'o', 0xff])),
                t0(),
            );
            assert_failed(&mut conn, ProtocolError::InvalidUtf8, 1007);
        }
    }

    #[test]
    fn close_reason_of_123_bytes_is_received() {
        for role in ROLES {
            let reason = "r".repeat(123);
            let mut conn = open(role, Config::default());
            conn.receive(&incoming(role, Frame::close(4000, &reason)), t0());
            assert_eq!(events(&mut conn), [close_event(4000, &reason)]);
        }
    }

    #[test]
    fn close_codes_the_application_may_not_send_are_refused() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            // Numbers that are no close code cannot be made into one...
            for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000] {
                assert_eq!(CloseCode::new(code), None, "{code}");
            }
            // ...and the two codes that exist only to be reported are refused.
            for code in [CloseCode::NO_STATUS, CloseCode::ABNORMAL] {
                let refused = Err(SendError::InvalidCloseCode(code.as_u16()));
                assert_eq!(conn.close(code, "", t0()), refused);
                assert_eq!(conn.fail(code, t0()), refused);
            }
            assert_eq!(drain(&mut conn), b"");
            assert_eq!(conn.state(), State::Open);
        }
    }

    /// §5.5: control frame payloads are at most 125 bytes, so a reason at most 123.
    #[test]
    fn reason_over_123_bytes_is_refused() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            assert_eq!(
                conn.close(CloseCode::NORMAL, &"r".repeat(124), t0()),
                Err(SendError::ControlTooLong(126))
            );
            assert_eq!(conn.state(), State::Open);
            assert_eq!(drain(&mut conn), b"");
            conn.close(CloseCode::NORMAL, &"r".repeat(123), t0())
                .unwrap();
            assert_sent(&mut conn, &[Frame::close(1000, &"r".repeat(123))]);
        }
    }

    #[test]
    fn close_before_the_handshake_is_refused() {
        let mut server = ws_proto::Connection::server(Config::default(), t0());
        assert_eq!(
            server.close(CloseCode::NORMAL, "", t0()),
            Err(SendError::NotOpen)
        );
        assert_eq!(server.send_text("x"), Err(SendError::NotOpen));
    }
}

/// §7.1.2 Start the WebSocket Closing Handshake, §7.1.3 The WebSocket Closing Handshake is
/// Started, §7.1.4 The WebSocket Connection is Closed.
///
/// > after sending a Close frame, the endpoint MUST NOT send any more data frames.
///
/// §7.1.1: "the underlying TCP connection, in most normal cases, SHOULD be closed first by the
/// server [...] the client SHOULD wait for the server to close the connection".
mod closing_handshake {
    use super::*;

    #[test]
    fn server_initiated() {
        let mut server = open_server(Config::default());
        server.close(CloseCode::NORMAL, "bye", t0()).unwrap();
        assert_eq!(server.state(), State::Closing);
        assert_eq!(
            drain(&mut server),
            [0x88, 0x05, 0x03, 0xe8, b'b', b'y', b'e']
        );
        assert!(!server.should_shutdown());

        // The client's echo completes the handshake; the server closes TCP first.
        server.receive(&Frame::close(1000, "").masked(MASK).encode(), t0());
        assert_eq!(events(&mut server), [close_event(1000, "")]);
        assert_eq!(server.state(), State::Closed);
        assert_eq!(drain(&mut server), b"", "no second close frame");
        assert!(server.should_shutdown());
        assert!(!server.is_terminated());
        server.receive_eof(t0());
        assert_eq!(events(&mut server), []);
        assert!(server.is_terminated());
    }

    #[test]
    fn client_initiated() {
        let mut client = open_client(Config::default());
        client.close(CloseCode::GOING_AWAY, "", t0()).unwrap();
        assert_eq!(client.state(), State::Closing);
        assert_sent(&mut client, &[Frame::close(1001, "")]);

        client.receive(&Frame::close(1001, "").encode(), t0());
        assert_eq!(events(&mut client), [close_event(1001, "")]);
        assert_eq!(client.state(), State::Closed);
        assert_eq!(drain(&mut client), b"");
        // The client waits for the server to close TCP.
        assert!(!client.should_shutdown());
        assert!(!client.is_terminated());
        client.receive_eof(t0());
        assert_eq!(events(&mut client), [], "EOF after the handshake is normal");
        assert!(client.is_terminated());
        assert!(client.should_shutdown());
        assert_eq!(client.close_status().map(|c| c.code.as_u16()), Some(1001));
    }

    #[test]
    fn server_echoes_a_client_close_and_closes_tcp_first() {
        let mut server = open_server(Config::default());
        server.receive(&Frame::close(1000, "done").masked(MASK).encode(), t0());
        assert_eq!(events(&mut server), [close_event(1000, "done")]);
        assert!(!server.should_shutdown(), "the echo is not written yet");
        assert_sent(&mut server, &[Frame::close(1000, "")]);
        assert!(server.should_shutdown());
    }

    #[test]
    fn client_echoes_a_server_close_and_waits_for_eof() {
        let mut client = open_client(Config::default());
        client.receive(&Frame::close(1000, "done").encode(), t0());
        assert_eq!(events(&mut client), [close_event(1000, "done")]);
        assert_sent(&mut client, &[Frame::close(1000, "")]);
        assert_eq!(client.state(), State::Closed);
        assert!(!client.should_shutdown());
        client.receive_eof(t0());
        assert!(client.is_terminated());
    }

    #[test]
    fn sending_after_close_is_refused() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.close(CloseCode::NORMAL, "", t0()).unwrap();
            drain(&mut conn);
            assert_eq!(conn.send_text("late"), Err(SendError::Closed));
            assert_eq!(conn.send_binary(vec![1]), Err(SendError::Closed));
            assert_eq!(
                conn.close(CloseCode::NORMAL, "", t0()),
                Err(SendError::Closed)
            );
            assert_eq!(drain(&mut conn), b"");
        }
    }

    #[test]
    fn sending_after_receiving_close_is_refused() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(&incoming(role, Frame::close(1000, "")), t0());
            drain(&mut conn);
            assert_eq!(conn.send_text("late"), Err(SendError::Closed));
            assert_eq!(conn.ping(b""), Err(SendError::Closed));
            assert_eq!(
                conn.close(CloseCode::NORMAL, "", t0()),
                Err(SendError::Closed)
            );
            assert_eq!(drain(&mut conn), b"");
        }
    }

    /// §1.4: after sending a Close frame an endpoint keeps receiving until the peer's Close frame.
    #[test]
    fn messages_received_while_closing_are_delivered() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.close(CloseCode::NORMAL, "", t0()).unwrap();
            drain(&mut conn);
            conn.receive(
                &incoming_all(role, [Frame::text("in flight"), Frame::close(1000, "")]),
                t0(),
            );
            assert_eq!(
                events(&mut conn),
                [Event::Text("in flight".into()), close_event(1000, "")]
            );
            assert_eq!(drain(&mut conn), b"");
        }
    }

    /// §5.5.2: "Upon receipt of a Ping frame, an endpoint MUST send a Pong frame in response,
    /// unless it already received a Close frame." Having *sent* one is no exception.
    #[test]
    fn ping_received_while_closing_is_answered() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.close(CloseCode::NORMAL, "", t0()).unwrap();
            drain(&mut conn);
            conn.receive(&incoming(role, Frame::ping("still there?")), t0());
            assert_eq!(events(&mut conn), [Event::Ping(b"still there?".to_vec())]);
            assert_sent(&mut conn, &[Frame::pong("still there?")]);
        }
    }

    /// §1.4: "After sending a control frame indicating the connection should be closed, a peer
    /// does not send any further data; after receiving a control frame indicating the
    /// connection should be closed, a peer discards any further data received."
    #[test]
    fn frames_after_the_peers_close_are_ignored() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(
                &incoming_all(
                    role,
                    [
                        Frame::close(1000, ""),
                        Frame::text("after"),
                        Frame::ping("after"),
                        Frame::new(0x3, "reserved"),
                    ],
                ),
                t0(),
            );
            assert_eq!(events(&mut conn), [close_event(1000, "")]);
            assert_sent(&mut conn, &[Frame::close(1000, "")]);
            conn.receive(&incoming(role, Frame::ping("later")), t0());
            assert_eq!(events(&mut conn), []);
            assert_eq!(drain(&mut conn), b"");
        }
    }

    #[test]
    fn close_interrupts_a_fragmented_message() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(
                &incoming_all(
                    role,
                    [Frame::text("part").fin(false), Frame::close(1000, "")],
                ),
                t0(),
            );
            assert_eq!(events(&mut conn), [close_event(1000, "")]);
        }
    }
}

/// §7.1.5 The WebSocket Connection Close Code: "If _The WebSocket Connection is Closed_ and no
/// Close control frame was received by the endpoint (such as could occur if the underlying
/// transport connection is lost), _The WebSocket Connection Close Code_ is considered to be
/// 1006."
mod abnormal_closure {
    use super::*;

    #[test]
    fn eof_without_close_is_a_reset_with_1006() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive_eof(t0());
            assert_eq!(events(&mut conn), [Event::Error(Error::ConnectionReset)]);
            assert_eq!(
                conn.close_status().map(|c| c.code.as_u16()),
                Some(CloseCode::ABNORMAL.as_u16())
            );
            assert_eq!(conn.state(), State::Closed);
            assert!(conn.is_terminated());
            assert_eq!(drain(&mut conn), b"", "nothing to say to a closed socket");
            conn.receive(&incoming(role, Frame::text("x")), t0());
            assert_eq!(events(&mut conn), []);
        }
    }

    #[test]
    fn eof_while_closing_is_a_reset_with_1006() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.close(CloseCode::NORMAL, "", t0()).unwrap();
            drain(&mut conn);
            conn.receive_eof(t0());
            assert_eq!(events(&mut conn), [Event::Error(Error::ConnectionReset)]);
            assert_eq!(conn.close_status().map(|c| c.code.as_u16()), Some(1006));
            assert!(conn.is_terminated());
        }
    }

    /// A close frame (or a violation) that arrived behind still-queued messages, then EOF
    /// before the application polled: the close (or the error) is the one ending reported, in
    /// its place after the messages, not followed by a reset.
    #[test]
    fn eof_after_a_close_still_queued_reports_only_the_close() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(
                &incoming_all(role, [Frame::text("last words"), Frame::close(1001, "bye")]),
                t0(),
            );
            conn.receive_eof(t0());
            assert_eq!(
                events(&mut conn),
                [Event::Text("last words".into()), close_event(1001, "bye")],
                "{role:?}"
            );
            assert_eq!(conn.close_status().map(|c| c.code.as_u16()), Some(1001));
            assert!(conn.is_terminated());

            let mut conn = open(role, Config::default());
            conn.receive(
                &incoming_all(role, [Frame::text("ok"), Frame::text("bad").rsv(0b100)]),
                t0(),
            );
            conn.receive_eof(t0());
            assert_eq!(
                events(&mut conn),
                [
                    Event::Text("ok".into()),
                    Event::Error(Error::Protocol(ProtocolError::ReservedBits(0b100)))
                ],
                "{role:?}"
            );
            assert_eq!(conn.close_status().map(|c| c.code.as_u16()), Some(1002));
        }
    }

    #[test]
    fn eof_in_the_middle_of_a_frame_is_a_reset() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            let wire = incoming(role, Frame::text("truncated"));
            conn.receive(&wire[..wire.len() - 2], t0());
            conn.receive_eof(t0());
            assert_eq!(events(&mut conn), [Event::Error(Error::ConnectionReset)]);
            assert_eq!(conn.close_status().map(|c| c.code.as_u16()), Some(1006));
        }
    }

    #[test]
    fn eof_during_the_handshake_is_a_reset() {
        let mut server = ws_proto::Connection::server(Config::default(), t0());
        server.receive(b"GET /chat HTTP/1.1\r\n", t0());
        server.receive_eof(t0());
        assert_eq!(events(&mut server), [Event::Error(Error::ConnectionReset)]);
        assert!(server.is_terminated());
    }
}

/// §7.1.7 Fail the WebSocket Connection: "the endpoint MUST _Close the WebSocket Connection_,
/// and MAY report the problem to the user [...] An endpoint MAY send a Close frame before
/// closing the connection [...] After sending a Close frame, the endpoint MUST NOT send any more
/// data and MUST NOT process any more data received."
mod failing {
    use super::*;

    #[test]
    fn application_fails_the_connection() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.fail(CloseCode::POLICY_VIOLATION, t0()).unwrap();
            assert_eq!(events(&mut conn), []);
            // Either side closes TCP right after a failure, the client too.
            assert_failed_quietly(&mut conn, 1008);
            assert_eq!(
                conn.fail(CloseCode::POLICY_VIOLATION, t0()),
                Err(SendError::Closed)
            );
            assert_eq!(conn.send_text("x"), Err(SendError::Closed));
        }
    }

    /// The peer's close arrived behind a message still queued; the application fails the
    /// connection before polling further: its failure is the ending, the close is not applied.
    #[test]
    fn failing_supersedes_a_close_queued_behind_a_message() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(
                &incoming_all(role, [Frame::text("x"), Frame::close(1001, "")]),
                t0(),
            );
            assert_eq!(conn.poll_event(), Some(Event::Text("x".into())));
            conn.fail(CloseCode::INTERNAL_ERROR, t0()).unwrap();
            assert_eq!(events(&mut conn), [], "{role:?}");
            assert_failed_quietly(&mut conn, 1011);
            assert_eq!(conn.close_status().map(|c| c.code.as_u16()), Some(1011));
        }
    }

    #[test]
    fn failing_while_closing_sends_no_second_close() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.close(CloseCode::NORMAL, "", t0()).unwrap();
            assert_sent(&mut conn, &[Frame::close(1000, "")]);
            conn.fail(CloseCode::INTERNAL_ERROR, t0()).unwrap();
            assert_eq!(drain(&mut conn), b"");
            assert_eq!(conn.state(), State::Closed);
            assert!(conn.should_shutdown());
        }
    }

    #[test]
    fn protocol_error_while_closing_sends_no_second_close() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.close(CloseCode::NORMAL, "", t0()).unwrap();
            drain(&mut conn);
            conn.receive(&incoming(role, Frame::new(0x4, "")), t0());
            assert_eq!(
                events(&mut conn),
                [Event::Error(Error::Protocol(
                    ProtocolError::ReservedOpcode(4)
                ))]
            );
            assert_eq!(drain(&mut conn), b"");
            assert_eq!(conn.state(), State::Closed);
            assert!(conn.should_shutdown());
        }
    }

    #[test]
    fn failure_drops_the_message_in_progress() {
        for role in ROLES {
            let mut conn = open(role, Config::default());
            conn.receive(
                &incoming_all(
                    role,
                    [Frame::text("first half ").fin(false), Frame::new(0xb, "")],
                ),
                t0(),
            );
            assert_failed(&mut conn, ProtocolError::ReservedOpcode(0xb), 1002);
        }
    }

    #[test]
    fn client_closes_tcp_itself_after_a_failure() {
        let mut client = open_client(Config::default());
        client.receive(&Frame::text("x").masked(MASK).encode(), t0());
        assert_eq!(client.role(), Role::Client);
        assert_failed(&mut client, ProtocolError::MaskedFrame, 1002);
        // `assert_failed` checked should_shutdown() for the client as well.
        assert!(!client.is_terminated());
        client.receive_eof(t0());
        assert!(client.is_terminated());
        assert_eq!(events(&mut client), []);
    }
}
