//! The opening handshake through a whole `Connection` (RFC 6455 §1.3, §4): the server's decision,
//! bytes pipelined around the handshake, errors answered over HTTP, subprotocols and
//! extensions (§9).

mod common;

use std::sync::Arc;

use common::*;
use ws_proto::extension::{Extension, ExtensionError, ExtensionFactory, RSV3};
use ws_proto::frame::OpCode;
use ws_proto::handshake::{ExtensionOffer, HandshakeError};
use ws_proto::{
    Accept, AnswerError, ClientRequest, Config, Connection, Error, Event, ProtocolError, SendError,
    State,
};

/// The request of RFC 6455 §1.2.
const RFC_REQUEST: &[u8] = b"GET /chat HTTP/1.1\r\n\
    Host: server.example.com\r\n\
    Upgrade: websocket\r\n\
    Connection: Upgrade\r\n\
    Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
    Origin: http://example.com\r\n\
    Sec-WebSocket-Protocol: chat, superchat\r\n\
    Sec-WebSocket-Version: 13\r\n\r\n";

fn new_client(config: Config) -> Connection {
    Connection::client(config, ClientRequest::new("example.com", "/chat"), t0())
}

/// Asserts `response` is a complete HTTP response with `status`: a head, then exactly
/// `Content-Length` bytes of body.
fn assert_http_error(response: &[u8], status: &str) -> String {
    let text = String::from_utf8(response.to_vec()).unwrap();
    assert!(
        text.starts_with(&format!("HTTP/1.1 {status}\r\n")),
        "{text}"
    );
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete head");
    let length: usize = header_value(head.as_bytes(), "Content-Length")
        .expect("Content-Length")
        .parse()
        .unwrap();
    assert_eq!(body.len(), length, "{text}");
    text
}

/// §1.3 Opening Handshake.
///
/// > the server has to take the value (as present in the header field, e.g., the base64-encoded
/// > version minus any leading and trailing whitespace) and concatenate this with the Globally
/// > Unique Identifier (GUID, [RFC4122]) "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" [...] If the
/// > value of this header field is "dGhlIHNhbXBsZSBub25jZQ==", the server would concatenate the
/// > string "258EAFA5-E914-47DA-95CA-C5AB0DC85B11" [...] the value "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
/// > [...] would then be echoed in the |Sec-WebSocket-Accept| header field.
mod rfc_example {
    use super::*;

    #[test]
    fn server_answers_the_rfc_request_byte_for_byte() {
        let mut server = Connection::server(
            {
                let mut config = Config::default();
                config.subprotocols = vec!["chat".into()];
                config
            },
            t0(),
        );
        server.receive(RFC_REQUEST, t0());
        let Some(Event::Request(request)) = server.poll_event() else {
            panic!("expected a request")
        };
        assert_eq!(request.path, "/chat");
        assert_eq!(request.host, "server.example.com");
        assert_eq!(request.key, RFC_KEY);
        assert_eq!(request.origin.as_deref(), Some("http://example.com"));
        assert_eq!(request.subprotocols, ["chat", "superchat"]);
        assert_eq!(server.state(), State::Connecting);
        assert_eq!(
            drain(&mut server),
            b"",
            "nothing is sent before the decision"
        );

        server.accept(Accept::default(), t0()).unwrap();
        let Some(Event::Open(negotiated)) = server.poll_event() else {
            panic!("expected open")
        };
        assert_eq!(negotiated.subprotocol.as_deref(), Some("chat"));
        assert_eq!(negotiated.extensions, []);
        assert_eq!(
            negotiated.headers.get("origin"),
            Some(&b"http://example.com"[..])
        );
        assert_eq!(
            drain(&mut server),
            b"HTTP/1.1 101 Switching Protocols\r\n\
              Upgrade: websocket\r\n\
              Connection: Upgrade\r\n\
              Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\
              Sec-WebSocket-Protocol: chat\r\n\r\n"
        );
        assert_eq!(server.state(), State::Open);
    }

    #[test]
    fn client_accepts_the_accept_value_computed_from_its_key() {
        let mut client = new_client(Config::default());
        assert_eq!(client.state(), State::Connecting);
        let request = drain(&mut client);
        let text = String::from_utf8(request.clone()).unwrap();
        assert!(text.starts_with("GET /chat HTTP/1.1\r\n"), "{text}");
        assert!(text.ends_with("\r\n\r\n"));
        assert_eq!(
            header_value(&request, "Host").as_deref(),
            Some("example.com")
        );
        assert_eq!(
            header_value(&request, "Upgrade").as_deref(),
            Some("websocket")
        );
        assert_eq!(
            header_value(&request, "Connection").as_deref(),
            Some("Upgrade")
        );
        assert_eq!(
            header_value(&request, "Sec-WebSocket-Version").as_deref(),
            Some("13")
        );
        // §4.1: "a randomly selected 16-byte value that has been base64-encoded".
        let key = header_value(&request, "Sec-WebSocket-Key").unwrap();
        assert_eq!(key.len(), 24);
        assert!(key.ends_with("=="));

        client.receive(&response_for(&request, &[]), t0());
        let Some(Event::Open(negotiated)) = client.poll_event() else {
            panic!("expected open")
        };
        assert_eq!(negotiated.subprotocol, None);
        assert_eq!(client.state(), State::Open);
        assert_eq!(drain(&mut client), b"");
    }

    #[test]
    fn client_refuses_an_accept_value_for_another_key() {
        let mut client = new_client(Config::default());
        drain(&mut client);
        // The RFC's accept value belongs to the RFC's key, not to the client's random one.
        client.receive(
            format!(
                "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Accept: {RFC_ACCEPT}\r\n\r\n"
            )
            .as_bytes(),
            t0(),
        );
        assert_eq!(
            events(&mut client),
            [Event::Error(Error::Handshake(
                HandshakeError::AcceptMismatch
            ))]
        );
        assert!(client.is_terminated());
        assert_eq!(client.state(), State::Closed);
        assert_eq!(drain(&mut client), b"");
        assert_eq!(client.send_text("x"), Err(SendError::Closed));
    }

    #[test]
    fn client_refuses_a_status_other_than_101() {
        let mut client = new_client(Config::default());
        drain(&mut client);
        client.receive(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\n\r\n", t0());
        assert_eq!(
            events(&mut client),
            [Event::Error(Error::Handshake(
                HandshakeError::UnexpectedStatus(403)
            ))]
        );
        assert!(client.is_terminated());
    }

    #[test]
    fn handshake_fed_one_byte_at_a_time() {
        let mut server = Connection::server(Config::default(), t0());
        for byte in RFC_REQUEST {
            assert_eq!(events(&mut server), []);
            server.receive(std::slice::from_ref(byte), t0());
        }
        assert!(matches!(server.poll_event(), Some(Event::Request(_))));
        server.accept(Accept::default(), t0()).unwrap();
        let response = drain(&mut server);

        let mut client = new_client(Config::default());
        let request = drain(&mut client);
        let response_to_client = response_for(&request, &[]);
        for byte in &response_to_client {
            assert_eq!(events(&mut client), []);
            client.receive(std::slice::from_ref(byte), t0());
        }
        assert!(matches!(client.poll_event(), Some(Event::Open(_))));
        assert!(response.ends_with(b"\r\n\r\n"));
    }
}

/// §4.2.1 and §4.1: what follows the handshake's blank line is WebSocket frames, possibly in the
/// same read.
mod pipelining {
    use super::*;

    #[test]
    fn server_keeps_frames_sent_right_after_the_request() {
        let mut server = Connection::server(Config::default(), t0());
        let mut input = upgrade_request("/chat", &[]);
        input.extend(incoming_all(
            ws_proto::Role::Server,
            [Frame::text("early"), Frame::ping("p")],
        ));
        server.receive(&input, t0());
        assert!(matches!(server.poll_event(), Some(Event::Request(_))));
        assert_eq!(server.poll_event(), None, "frames wait for the decision");
        assert_eq!(drain(&mut server), b"");

        server.accept(Accept::default(), t0()).unwrap();
        let got = events(&mut server);
        assert!(matches!(got[0], Event::Open(_)));
        assert_eq!(
            got[1..],
            [Event::Text("early".into()), Event::Ping(b"p".to_vec())]
        );
        // The 101 goes out first, then the pong.
        let output = drain(&mut server);
        let end = output.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
        assert!(output.starts_with(b"HTTP/1.1 101 "));
        assert_eq!(decode_frames(&output[end..]), [Frame::pong("p")]);
    }

    #[test]
    fn server_keeps_frames_arriving_before_the_decision() {
        let mut server = Connection::server(Config::default(), t0());
        let request = upgrade_request("/chat", &[]);
        let frame = Frame::text("split").masked(MASK).encode();
        let mut first = request.clone();
        first.extend_from_slice(&frame[..3]);
        server.receive(&first, t0());
        assert!(matches!(server.poll_event(), Some(Event::Request(_))));
        server.receive(&frame[3..], t0());
        assert_eq!(server.poll_event(), None);
        server.accept(Accept::default(), t0()).unwrap();
        let got = events(&mut server);
        assert_eq!(got.len(), 2);
        assert_eq!(got[1], Event::Text("split".into()));
    }

    #[test]
    fn rejected_server_drops_pipelined_frames() {
        let mut server = Connection::server(Config::default(), t0());
        let mut input = upgrade_request("/chat", &[]);
        input.extend(Frame::ping("p").masked(MASK).encode());
        server.receive(&input, t0());
        assert!(matches!(server.poll_event(), Some(Event::Request(_))));
        server.reject(403, "no", t0()).unwrap();
        assert_eq!(events(&mut server), []);
        assert_http_error(&drain(&mut server), "403 Forbidden");
    }

    /// Bytes pipelined before accept/reject are held within `max_head`, whether they came in
    /// the read that ended the head or in later ones; beyond, the request fails with 431.
    #[test]
    fn pipelined_bytes_are_bounded_by_max_head() {
        let max_head = Config::default().handshake_limits.max_head;
        let request = upgrade_request("/chat", &[]);
        for in_head_read in [true, false] {
            for extra in [max_head, max_head + 1] {
                let mut server = Connection::server(Config::default(), t0());
                let early = vec![0x82; extra];
                if in_head_read {
                    server.receive(&[request.as_slice(), &early].concat(), t0());
                } else {
                    server.receive(&request, t0());
                    server.receive(&early[..extra / 2], t0());
                    server.receive(&early[extra / 2..], t0());
                }
                let got = events(&mut server);
                let case = format!("{extra} bytes, in the head's read: {in_head_read}");
                if extra <= max_head {
                    assert!(matches!(got[..], [Event::Request(_)]), "{case}: {got:?}");
                } else {
                    assert!(
                        got.contains(&Event::Error(Error::Handshake(
                            HandshakeError::HeadTooLarge
                        ))),
                        "{case}: {got:?}"
                    );
                    assert_http_error(&drain(&mut server), "431 Request Header Fields Too Large");
                    assert!(server.should_shutdown(), "{case}");
                }
            }
        }
    }

    #[test]
    fn client_delivers_frames_that_came_with_the_101() {
        let mut client = new_client(Config::default());
        let request = drain(&mut client);
        let mut input = response_for(&request, &[]);
        input.extend(Frame::text("welcome").encode());
        input.extend(Frame::ping("p").encode());
        client.receive(&input, t0());
        let got = events(&mut client);
        assert!(matches!(got[0], Event::Open(_)));
        assert_eq!(
            got[1..],
            [Event::Text("welcome".into()), Event::Ping(b"p".to_vec())]
        );
        assert_sent(&mut client, &[Frame::pong("p")]);
    }

    #[test]
    fn client_delivers_frames_that_came_with_the_end_of_a_split_101() {
        let mut client = new_client(Config::default());
        let request = drain(&mut client);
        let response = response_for(&request, &[]);
        let frame = Frame::binary(vec![5; 200]).encode();
        client.receive(&response[..response.len() - 3], t0());
        assert_eq!(events(&mut client), []);
        let mut rest = response[response.len() - 3..].to_vec();
        rest.extend_from_slice(&frame[..100]);
        client.receive(&rest, t0());
        assert!(matches!(client.poll_event(), Some(Event::Open(_))));
        assert_eq!(client.poll_event(), None);
        client.receive(&frame[100..], t0());
        assert_eq!(events(&mut client), [Event::Binary(vec![5; 200])]);
    }
}

/// §4.2.2: "If the server chooses not to accept the connection, it MUST return an appropriate
/// HTTP error code (e.g., 403 Forbidden) and abort the WebSocket handshake". §4.2.1: a request
/// that does not follow the rules gets "an appropriate HTTP error code (such as 400 Bad
/// Request)"; a version the server does not speak gets 426 with `Sec-WebSocket-Version`.
mod refusals {
    use super::*;

    #[test]
    fn reject_refuses_a_status_that_would_not_refuse() {
        let mut server = Connection::server(Config::default(), t0());
        server.receive(&upgrade_request("/chat", &[]), t0());
        assert!(matches!(server.poll_event(), Some(Event::Request(_))));
        for status in [0, 101, 200, 299, 600] {
            assert_eq!(
                server.reject(status, "", t0()),
                Err(AnswerError::InvalidStatus(status))
            );
        }
        assert_eq!(drain(&mut server), b"", "nothing queued");
        assert_eq!(
            server.state(),
            State::Connecting,
            "still waiting for a decision"
        );
        server.reject(307, "", t0()).unwrap();
        assert_http_error(&drain(&mut server), "307 Temporary Redirect");
    }

    /// §4.2.1 item 1: the Request-URI may be an absolute http(s) URI holding the resource name.
    #[test]
    fn absolute_uri_target_is_matched_on_its_path() {
        let config = || {
            let mut config = Config::default();
            config.path = Some("/chat".into());
            config
        };
        for target in ["http://server.example.com/chat", "HTTPS://h:443/chat?x=/y"] {
            let mut server = Connection::server(config(), t0());
            server.receive(&upgrade_request(target, &[]), t0());
            assert!(
                matches!(server.poll_event(), Some(Event::Request(r)) if r.path == target),
                "{target}"
            );
        }
        for target in [
            "http://server.example.com/other",
            "http://chat",
            "http://h?/chat",
        ] {
            let mut server = Connection::server(config(), t0());
            server.receive(&upgrade_request(target, &[]), t0());
            assert_eq!(
                server.poll_event(),
                Some(Event::Error(Error::Handshake(HandshakeError::PathNotFound))),
                "{target}"
            );
        }
    }

    #[test]
    fn reject_sends_a_complete_http_response_and_shuts_down() {
        let mut server = Connection::server(Config::default(), t0());
        server.receive(&upgrade_request("/chat", &[]), t0());
        assert!(matches!(server.poll_event(), Some(Event::Request(_))));
        server.reject(403, "forbidden", t0()).unwrap();
        assert_eq!(events(&mut server), []);
        assert_eq!(server.state(), State::Closed);
        assert!(!server.should_shutdown(), "the response is not written yet");
        assert_eq!(
            drain(&mut server),
            b"HTTP/1.1 403 Forbidden\r\n\
              Content-Type: text/plain; charset=utf-8\r\n\
              Content-Length: 9\r\n\
              Connection: close\r\n\r\n\
              forbidden"
        );
        assert!(server.should_shutdown());
        assert_eq!(
            server.accept(Accept::default(), t0()),
            Err(AnswerError::NoPendingRequest)
        );
        assert_eq!(
            server.reject(403, "", t0()),
            Err(AnswerError::NoPendingRequest)
        );
        assert_eq!(server.send_text("x"), Err(SendError::Closed));
        server.receive(&Frame::text("ignored").masked(MASK).encode(), t0());
        assert_eq!(events(&mut server), []);
        assert_eq!(drain(&mut server), b"");
    }

    #[test]
    fn wrong_path_gets_404_and_a_handshake_error() {
        let mut config = Config::default();
        config.path = Some("/chat".into());
        let mut server = Connection::server(config.clone(), t0());
        server.receive(&upgrade_request("/other", &[]), t0());
        assert_eq!(
            events(&mut server),
            [Event::Error(Error::Handshake(HandshakeError::PathNotFound))]
        );
        assert_eq!(server.state(), State::Closed);
        assert_http_error(&drain(&mut server), "404 Not Found");
        assert!(server.should_shutdown());
        assert_eq!(
            server.accept(Accept::default(), t0()),
            Err(AnswerError::NoPendingRequest)
        );

        // The query string is not part of the path.
        let mut server = Connection::server(config, t0());
        server.receive(&upgrade_request("/chat?room=1", &[]), t0());
        let Some(Event::Request(request)) = server.poll_event() else {
            panic!("expected a request")
        };
        assert_eq!(request.path, "/chat?room=1");
    }

    #[test]
    fn unsupported_version_gets_426_naming_version_13() {
        let mut server = Connection::server(Config::default(), t0());
        let request = String::from_utf8(upgrade_request("/", &[]))
            .unwrap()
            .replace("Sec-WebSocket-Version: 13", "Sec-WebSocket-Version: 8");
        server.receive(request.as_bytes(), t0());
        assert_eq!(
            events(&mut server),
            [Event::Error(Error::Handshake(
                HandshakeError::UnsupportedVersion
            ))]
        );
        let text = assert_http_error(&drain(&mut server), "426 Upgrade Required");
        assert_eq!(
            header_value(text.as_bytes(), "Sec-WebSocket-Version").as_deref(),
            Some("13")
        );
        assert!(server.should_shutdown());
    }

    #[test]
    fn missing_key_gets_400() {
        let mut server = Connection::server(Config::default(), t0());
        server.receive(
            b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Version: 13\r\n\r\n",
            t0(),
        );
        assert_eq!(
            events(&mut server),
            [Event::Error(Error::Handshake(
                HandshakeError::MissingHeader("Sec-WebSocket-Key")
            ))]
        );
        assert_http_error(&drain(&mut server), "400 Bad Request");
    }

    #[test]
    fn post_gets_405() {
        let mut server = Connection::server(Config::default(), t0());
        let request = String::from_utf8(upgrade_request("/", &[]))
            .unwrap()
            .replacen("GET", "POST", 1);
        server.receive(request.as_bytes(), t0());
        assert_eq!(
            events(&mut server),
            [Event::Error(Error::Handshake(
                HandshakeError::MethodNotAllowed
            ))]
        );
        assert_http_error(&drain(&mut server), "405 Method Not Allowed");
    }

    #[test]
    fn decisions_without_a_request_are_refused() {
        let mut server = Connection::server(Config::default(), t0());
        assert_eq!(
            server.accept(Accept::default(), t0()),
            Err(AnswerError::NoPendingRequest)
        );
        assert_eq!(
            server.reject(403, "", t0()),
            Err(AnswerError::NoPendingRequest)
        );
        let mut open = open_server(Config::default());
        assert_eq!(
            open.accept(Accept::default(), t0()),
            Err(AnswerError::NoPendingRequest)
        );
        let mut client = new_client(Config::default());
        assert_eq!(
            client.accept(Accept::default(), t0()),
            Err(AnswerError::NoPendingRequest)
        );
    }

    #[test]
    fn sending_before_open_is_refused() {
        let mut client = new_client(Config::default());
        assert_eq!(client.send_text("x"), Err(SendError::NotOpen));
        assert_eq!(client.ping(b""), Err(SendError::NotOpen));
        let mut server = Connection::server(Config::default(), t0());
        server.receive(&upgrade_request("/", &[]), t0());
        assert_eq!(server.send_binary(vec![1]), Err(SendError::NotOpen));
    }

    #[test]
    fn extra_headers_go_both_ways() {
        let mut client = Connection::client(
            Config::default(),
            ClientRequest {
                host: "example.com".into(),
                path: "/chat".into(),
                headers: vec![("Origin".into(), "https://example.com".into())],
            },
            t0(),
        );
        let mut server = Connection::server(Config::default(), t0());
        pump(&mut client, &mut server);
        let Some(Event::Request(request)) = server.poll_event() else {
            panic!("expected a request")
        };
        assert_eq!(request.origin.as_deref(), Some("https://example.com"));
        server
            .accept(
                Accept {
                    subprotocol: None,
                    headers: vec![("Set-Cookie".into(), "id=1".into())],
                },
                t0(),
            )
            .unwrap();
        pump(&mut server, &mut client);
        let Some(Event::Open(negotiated)) = client.poll_event() else {
            panic!("expected open")
        };
        assert_eq!(negotiated.headers.get("set-cookie"), Some(&b"id=1"[..]));
    }
}

/// §1.9 Subprotocols Using the WebSocket Protocol, §4.2.2: "/subprotocol/ [...] Either a single
/// value representing the subprotocol the server is ready to use or null. The value chosen MUST
/// be derived from the client's handshake, specifically by selecting one of the values from the
/// |Sec-WebSocket-Protocol| field". §4.1: the client fails the connection if the server selects
/// a subprotocol that was not offered.
mod subprotocols {
    use super::*;

    fn negotiate(
        offered: &[&str],
        supported: &[&str],
        choice: Option<&str>,
    ) -> (Option<String>, Option<String>) {
        let mut client_config = Config::default();
        client_config.subprotocols = offered.iter().map(|s| s.to_string()).collect();
        let mut server_config = Config::default();
        server_config.subprotocols = supported.iter().map(|s| s.to_string()).collect();
        let mut client = new_client(client_config);
        let mut server = Connection::server(server_config, t0());
        pump(&mut client, &mut server);
        let Some(Event::Request(request)) = server.poll_event() else {
            panic!("expected a request")
        };
        assert_eq!(request.subprotocols, offered);
        server
            .accept(
                Accept {
                    subprotocol: choice.map(str::to_string),
                    headers: Vec::new(),
                },
                t0(),
            )
            .unwrap();
        let Some(Event::Open(on_server)) = server.poll_event() else {
            panic!("expected open")
        };
        pump(&mut server, &mut client);
        let Some(Event::Open(on_client)) = client.poll_event() else {
            panic!("expected open, got {:?}", events(&mut client))
        };
        (on_server.subprotocol, on_client.subprotocol)
    }

    #[test]
    fn server_selects_its_most_preferred_offered_protocol() {
        let chosen = negotiate(&["chat", "superchat"], &["superchat", "chat"], None);
        assert_eq!(chosen, (Some("superchat".into()), Some("superchat".into())));
        let chosen = negotiate(&["v1", "v2"], &["v3", "v2"], None);
        assert_eq!(chosen, (Some("v2".into()), Some("v2".into())));
    }

    #[test]
    fn no_common_protocol_selects_none() {
        assert_eq!(negotiate(&["chat"], &["other"], None), (None, None));
        assert_eq!(negotiate(&[], &["chat"], None), (None, None));
        assert_eq!(negotiate(&["chat"], &[], None), (None, None));
    }

    #[test]
    fn application_choice_overrides_the_preference() {
        let chosen = negotiate(&["chat", "superchat"], &["superchat"], Some("chat"));
        assert_eq!(chosen, (Some("chat".into()), Some("chat".into())));
    }

    #[test]
    fn application_choice_the_client_did_not_offer_is_ignored() {
        let chosen = negotiate(&["chat", "superchat"], &["superchat"], Some("mqtt"));
        assert_eq!(chosen, (Some("superchat".into()), Some("superchat".into())));
        assert_eq!(negotiate(&["chat"], &[], Some("mqtt")), (None, None));
    }

    #[test]
    fn client_fails_on_a_protocol_it_did_not_offer() {
        let mut client = new_client({
            let mut config = Config::default();
            config.subprotocols = vec!["chat".into()];
            config
        });
        let request = drain(&mut client);
        client.receive(
            &response_for(&request, &[("Sec-WebSocket-Protocol", "superchat")]),
            t0(),
        );
        assert_eq!(
            events(&mut client),
            [Event::Error(Error::Handshake(
                HandshakeError::UnexpectedSubprotocol
            ))]
        );
        assert!(client.is_terminated());
    }
}

/// §9 Extensions and §5.2: "RSV1, RSV2, RSV3 [...] MUST be 0 unless an extension is negotiated
/// that defines meanings for non-zero values." §9.1: the server's response lists the extensions
/// it accepted; the client "MUST _Fail the WebSocket Connection_" if the server uses an
/// extension the client did not request.
mod extensions {
    use super::*;

    /// A test extension claiming RSV3: inverts every payload byte; decoding a message that
    /// inverts to "boom" fails as invalid data.
    #[derive(Debug)]
    struct Invert;

    fn invert(mut data: Vec<u8>) -> Vec<u8> {
        data.iter_mut().for_each(|b| *b = !*b);
        data
    }

    impl Extension for Invert {
        fn rsv_bits(&self) -> u8 {
            RSV3
        }

        fn decode(
            &mut self,
            rsv: u8,
            input: &[u8],
            last: bool,
            out: &mut Vec<u8>,
            max_size: usize,
        ) -> Result<(), ExtensionError> {
            assert_eq!(rsv & RSV3, RSV3);
            if out.len() + input.len() > max_size {
                return Err(ExtensionError::TooLarge);
            }
            out.extend(input.iter().map(|b| !*b));
            if last && out == b"boom" {
                return Err(ExtensionError::InvalidData("boom"));
            }
            Ok(())
        }

        fn encode(
            &mut self,
            _opcode: OpCode,
            payload: Vec<u8>,
        ) -> Result<(u8, Vec<u8>), ExtensionError> {
            Ok((RSV3, invert(payload)))
        }
    }

    #[derive(Debug)]
    struct InvertFactory;

    impl ExtensionFactory for InvertFactory {
        fn name(&self) -> &str {
            "x-invert"
        }

        fn offer(&self) -> ExtensionOffer {
            ExtensionOffer {
                name: "x-invert".into(),
                params: vec![("strength".into(), Some("1".into()))],
            }
        }

        fn accept(&self, offer: &ExtensionOffer) -> Option<(Box<dyn Extension>, ExtensionOffer)> {
            (offer.param("strength") == Some(Some("1"))).then(|| {
                let answer = ExtensionOffer {
                    name: "x-invert".into(),
                    params: Vec::new(),
                };
                (Box::new(Invert) as Box<dyn Extension>, answer)
            })
        }

        fn confirm(&self, response: &ExtensionOffer) -> Result<Box<dyn Extension>, ExtensionError> {
            if response.params.is_empty() {
                Ok(Box::new(Invert))
            } else {
                Err(ExtensionError::Negotiation("unexpected parameter"))
            }
        }
    }

    fn with_invert() -> Config {
        let mut config = Config::default();
        config.extensions = vec![Arc::new(InvertFactory)];
        config
    }

    fn invert_offer() -> ExtensionOffer {
        ExtensionOffer {
            name: "x-invert".into(),
            params: Vec::new(),
        }
    }

    #[test]
    fn negotiated_through_the_handshake() {
        let mut client = new_client(with_invert());
        let mut server = Connection::server(with_invert(), t0());
        let request = drain(&mut client);
        assert_eq!(
            header_value(&request, "Sec-WebSocket-Extensions").as_deref(),
            Some("x-invert; strength=1")
        );
        server.receive(&request, t0());
        let Some(Event::Request(offer)) = server.poll_event() else {
            panic!("expected a request")
        };
        assert_eq!(offer.extensions, [InvertFactory.offer()]);
        server.accept(Accept::default(), t0()).unwrap();
        let Some(Event::Open(on_server)) = server.poll_event() else {
            panic!("expected open")
        };
        assert_eq!(on_server.extensions, [invert_offer()]);
        let response = drain(&mut server);
        assert_eq!(
            header_value(&response, "Sec-WebSocket-Extensions").as_deref(),
            Some("x-invert")
        );
        client.receive(&response, t0());
        let Some(Event::Open(on_client)) = client.poll_event() else {
            panic!("expected open")
        };
        assert_eq!(on_client.extensions, [invert_offer()]);
    }

    #[test]
    fn transform_applied_both_ways() {
        let (mut client, mut server) = connected_pair(with_invert(), with_invert());

        client.send_text("hi").unwrap();
        let wire = drain(&mut client);
        let frames = decode_frames(&wire);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0].rsv, RSV3);
        assert_eq!(frames[0].payload, invert(b"hi".to_vec()));
        server.receive(&wire, t0());
        // The inverted bytes are not UTF-8: text is validated after the transform.
        assert_eq!(events(&mut server), [Event::Text("hi".into())]);

        server.send_binary(vec![1, 2, 3]).unwrap();
        let wire = drain(&mut server);
        assert_eq!(
            decode_frames(&wire),
            [Frame::binary(invert(vec![1, 2, 3])).rsv(RSV3)]
        );
        client.receive(&wire, t0());
        assert_eq!(events(&mut client), [Event::Binary(vec![1, 2, 3])]);
    }

    #[test]
    fn only_the_first_fragment_carries_the_bit() {
        let mut config = with_invert();
        config.fragment_size = 4;
        let (mut client, mut server) = connected_pair(config.clone(), config);
        server.send_text("abcdefghij").unwrap();
        let wire = drain(&mut server);
        let frames = decode_frames(&wire);
        assert_eq!(
            frames.iter().map(|f| (f.rsv, f.opcode)).collect::<Vec<_>>(),
            [(RSV3, TEXT), (0, CONT), (0, CONT)]
        );
        client.receive(&wire, t0());
        assert_eq!(events(&mut client), [Event::Text("abcdefghij".into())]);
    }

    #[test]
    fn frames_without_the_bit_are_not_transformed() {
        let (_, mut server) = connected_pair(with_invert(), with_invert());
        server.receive(&Frame::text("plain").masked(MASK).encode(), t0());
        assert_eq!(events(&mut server), [Event::Text("plain".into())]);
    }

    #[test]
    fn rsv3_is_a_protocol_error_without_negotiation() {
        // Neither side configured the extension.
        let mut server = open_server(Config::default());
        server.receive(
            &Frame::binary(invert(vec![1]))
                .rsv(RSV3)
                .masked(MASK)
                .encode(),
            t0(),
        );
        assert_failed(&mut server, ProtocolError::ReservedBits(RSV3), 1002);

        // The server supports it but the client did not offer it.
        let mut server = open_server(with_invert());
        server.receive(
            &Frame::binary(invert(vec![1]))
                .rsv(RSV3)
                .masked(MASK)
                .encode(),
            t0(),
        );
        assert_failed(&mut server, ProtocolError::ReservedBits(RSV3), 1002);

        // The client offered it but the server did not accept it.
        let (mut client, _) = connected_pair(with_invert(), Config::default());
        client.receive(&Frame::binary(invert(vec![1])).rsv(RSV3).encode(), t0());
        assert_failed(&mut client, ProtocolError::ReservedBits(RSV3), 1002);
    }

    #[test]
    fn bits_the_extension_does_not_own_stay_errors() {
        let (_, mut server) = connected_pair(with_invert(), with_invert());
        server.receive(&Frame::text("x").rsv(0b100).masked(MASK).encode(), t0());
        assert_failed(&mut server, ProtocolError::ReservedBits(0b100), 1002);

        let (_, mut server) = connected_pair(with_invert(), with_invert());
        server.receive(&Frame::ping("x").rsv(RSV3).masked(MASK).encode(), t0());
        assert_failed(&mut server, ProtocolError::ReservedBits(RSV3), 1002);

        let (_, mut server) = connected_pair(with_invert(), with_invert());
        server.receive(
            &Frame::new(TEXT, invert(b"x".to_vec()))
                .fin(false)
                .rsv(RSV3)
                .masked(MASK)
                .encode(),
            t0(),
        );
        server.receive(&Frame::cont("y").rsv(RSV3).masked(MASK).encode(), t0());
        assert_failed(&mut server, ProtocolError::ReservedBits(RSV3), 1002);
    }

    #[test]
    fn decode_failure_fails_with_the_extensions_code() {
        let (_, mut server) = connected_pair(with_invert(), with_invert());
        server.receive(
            &Frame::binary(invert(b"boom".to_vec()))
                .rsv(RSV3)
                .masked(MASK)
                .encode(),
            t0(),
        );
        assert_failed(
            &mut server,
            ProtocolError::Extension(ExtensionError::InvalidData("boom")),
            1007,
        );
    }

    #[test]
    fn transformed_text_that_is_not_utf8_fails_with_1007() {
        let (_, mut server) = connected_pair(with_invert(), with_invert());
        server.receive(
            &Frame::new(TEXT, invert(vec![0xff]))
                .rsv(RSV3)
                .masked(MASK)
                .encode(),
            t0(),
        );
        assert_failed(&mut server, ProtocolError::InvalidUtf8, 1007);
    }

    #[test]
    fn client_fails_on_an_extension_it_did_not_offer() {
        let mut client = new_client(Config::default());
        let request = drain(&mut client);
        client.receive(
            &response_for(&request, &[("Sec-WebSocket-Extensions", "x-invert")]),
            t0(),
        );
        assert_eq!(
            events(&mut client),
            [Event::Error(Error::Handshake(
                HandshakeError::UnexpectedExtension
            ))]
        );
        assert!(client.is_terminated());
    }

    #[test]
    fn client_fails_on_parameters_its_extension_refuses() {
        let mut client = new_client(with_invert());
        let request = drain(&mut client);
        client.receive(
            &response_for(
                &request,
                &[("Sec-WebSocket-Extensions", "x-invert; strength=2")],
            ),
            t0(),
        );
        assert_eq!(
            events(&mut client),
            [Event::Error(Error::Handshake(
                HandshakeError::ExtensionRefused(ExtensionError::Negotiation(
                    "unexpected parameter"
                ))
            ))]
        );
        assert!(client.is_terminated());
    }

    #[test]
    fn server_declines_an_offer_its_factory_refuses() {
        let mut server = Connection::server(with_invert(), t0());
        server.receive(
            &upgrade_request("/", &[("Sec-WebSocket-Extensions", "x-invert; strength=9")]),
            t0(),
        );
        assert!(matches!(server.poll_event(), Some(Event::Request(_))));
        server.accept(Accept::default(), t0()).unwrap();
        let Some(Event::Open(negotiated)) = server.poll_event() else {
            panic!("expected open")
        };
        assert_eq!(negotiated.extensions, []);
        let response = drain(&mut server);
        assert_eq!(header_value(&response, "Sec-WebSocket-Extensions"), None);
        server.receive(&Frame::binary([1]).rsv(RSV3).masked(MASK).encode(), t0());
        assert_failed(&mut server, ProtocolError::ReservedBits(RSV3), 1002);
    }
}
