//! RFC 6455 conformance of the client role: the `echo_client --reflect URL` example (built
//! in release mode) connects to a raw server written in this test (`raw/mod.rs` on a std
//! `TcpListener` on 127.0.0.1:0), which checks its upgrade request, answers `101`, then sends
//! unmasked frames; the client echoes every message until the server closes, then prints
//! `closed: <code> <reason>` and exits.
//!
//! Every case runs against a client process of its own and asserts: the exact bytes echoed
//! (every client frame masked, §5.1, checked by the raw peer's decoder), the exact close code,
//! which side closes TCP (after failing, the client; after a closing handshake, the server,
//! the client waiting for it, §7.1.1), and what the client reports.
//! `docs/conformance.md` lists the cases by RFC section.

mod raw;

use std::net::TcpListener;
use std::time::Duration;

use raw::{
    binary_data, close_payload, encode_frame, encode_header, example, fail_fast_prefixes,
    invalid_utf8, op, utf8_text, Cases, Proc, RawPeer, QUIET, RSV1, RSV2, RSV3, VALID_UTF8, WAIT,
};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const MS: Duration = Duration::from_millis(1);

/// One `echo_client --reflect` process and the raw server connection it opened.
struct Session {
    proc: Proc,
    peer: RawPeer,
}

impl Session {
    /// Starts the client against a fresh listener and completes the handshake.
    fn start() -> Session {
        Session::start_then(&[])
    }

    /// The same, with `trailing` bytes sent in the same write as the `101` response.
    fn start_then(trailing: &[u8]) -> Session {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        let url = format!("ws://127.0.0.1:{port}/reflect?q=1");
        let proc = Proc::spawn(&example("echo_client"), &["--reflect", &url]);
        let (peer, request) = raw::within(&format!("handshake ({})", proc.report()), || {
            RawPeer::accept_then(&listener, &format!("127.0.0.1:{port}"), trailing)
        });
        assert_eq!(request.request_line, "GET /reflect?q=1 HTTP/1.1");
        Session { proc, peer }
    }

    /// After the client failed the connection: its close frame with `code`, then it closes
    /// TCP first (§7.1.7); once we close too, it reports `code` and exits.
    fn expect_failed(mut self, code: u16) {
        self.peer.expect_close(code);
        self.peer.shutdown();
        self.expect_report(&format!("closed: {code} "));
    }

    /// Server-initiated closing handshake: the client echoes the code, then waits for the
    /// server to close TCP (§7.1.1: the server closes first); then it reports and exits.
    fn close_normally(mut self, code: u16, reason: &str) {
        self.peer.send_close(code, reason.as_bytes());
        self.expect_close_echo(code, reason);
    }

    /// After we sent a close with `code`: the echo, the client keeping TCP open, our close,
    /// the client's report.
    fn expect_close_echo(mut self, code: u16, reason: &str) {
        self.peer.expect_close_frame(code);
        self.peer.expect_no_frame_within(QUIET);
        self.peer.shutdown();
        self.expect_report(&format!("closed: {code} {reason}"));
    }

    /// The client's last stdout line and a successful exit.
    fn expect_report(&mut self, line: &str) {
        let got = self.proc.next_line(WAIT);
        assert_eq!(got.as_deref(), Some(line), "{}", self.proc.report());
        let status = self.proc.wait_exit(WAIT);
        assert!(
            status.is_some_and(|s| s.success()),
            "exit status {status:?}: {}",
            self.proc.report()
        );
    }
}

/// The message lengths of Autobahn 1.1.x/1.2.x.
const LENGTHS: [usize; 7] = [0, 125, 126, 127, 128, 65535, 65536];

// ------------------------------------------------------------------------------------------
// Opening handshake (§4.1) and 1 framing (§5.1-5.3)
// ------------------------------------------------------------------------------------------

#[test]
fn c0_upgrade_request() {
    let mut cases = Cases::new("client handshake");
    cases.case(
        "0.1 upgrade request: GET, Host, Upgrade, Connection, key, version",
        || {
            let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
            let port = listener.local_addr().expect("local_addr").port();
            let url = format!("ws://127.0.0.1:{port}/a/b?x=y&z");
            let proc = Proc::spawn(&example("echo_client"), &["--reflect", &url]);
            let (peer, request) = RawPeer::accept(&listener, &format!("127.0.0.1:{port}"));
            assert_eq!(request.request_line, "GET /a/b?x=y&z HTTP/1.1");
            // Nothing offered that the client cannot handle.
            assert!(!request.headers.contains_key("sec-websocket-extensions"));
            assert!(!request.headers.contains_key("sec-websocket-protocol"));
            Session { proc, peer }.close_normally(1000, "");
        },
    );
    cases.case(
        "0.2 two connections use different keys (§4.1: random per connection)",
        || {
            let mut keys = Vec::new();
            for _ in 0..2 {
                let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
                let port = listener.local_addr().expect("local_addr").port();
                let url = format!("ws://127.0.0.1:{port}/");
                let proc = Proc::spawn(&example("echo_client"), &["--reflect", &url]);
                let (peer, request) = RawPeer::accept(&listener, &format!("127.0.0.1:{port}"));
                keys.push(request.headers["sec-websocket-key"].clone());
                Session { proc, peer }.close_normally(1000, "");
            }
            assert_ne!(keys[0], keys[1]);
        },
    );
    cases.case("0.3 frames in the same write as the 101 response", || {
        // (A pong may overtake the echo of an earlier message: the RFC orders neither.)
        let mut wire = encode_frame(true, 0, op::TEXT, None, b"right after");
        wire.extend(encode_frame(true, 0, op::BINARY, None, b"then this"));
        let mut s = Session::start_then(&wire);
        s.peer.expect_text(b"right after");
        s.peer.expect_binary(b"then this");
        s.close_normally(1000, "done");
    });
    cases.finish();
}

#[test]
fn c1_framing() {
    let mut cases = Cases::new("client 1 framing");
    for (i, &len) in LENGTHS.iter().enumerate() {
        cases.case(&format!("1.1.{} text of {len} bytes", i + 1), || {
            let mut s = Session::start();
            let text = utf8_text(len);
            s.peer.send_text(&text);
            assert_eq!(s.peer.expect_text(&text), [len], "echoed as one frame");
            s.close_normally(1000, "");
        });
        cases.case(&format!("1.2.{} binary of {len} bytes", i + 1), || {
            let mut s = Session::start();
            let data = binary_data(len, len as u32 + 1);
            s.peer.send_binary(&data);
            assert_eq!(s.peer.expect_binary(&data), [len], "echoed as one frame");
            s.close_normally(1000, "");
        });
    }
    cases.case("1.1.8 text of 65536 bytes written in chops of 997", || {
        let mut s = Session::start();
        let text = utf8_text(65536);
        let wire = s.peer.frame(true, 0, op::TEXT, &text);
        s.peer.send_chopped(&wire, 997, MS);
        s.peer.expect_text(&text);
        s.close_normally(1000, "");
    });
    cases.case("1.3.1 frame written one byte at a time", || {
        let mut s = Session::start();
        let data = binary_data(300, 31);
        let wire = s.peer.frame(true, 0, op::BINARY, &data);
        s.peer.send_chopped(&wire, 1, Duration::ZERO);
        s.peer.expect_binary(&data);
        s.close_normally(1000, "");
    });
    cases.case("1.3.2 two messages in one write, echoed in order", || {
        let mut s = Session::start();
        let mut wire = s.peer.frame(true, 0, op::TEXT, b"first");
        wire.extend(s.peer.frame(true, 0, op::BINARY, &[1, 2, 3]));
        s.peer.send_raw(&wire);
        s.peer.expect_text(b"first");
        s.peer.expect_binary(&[1, 2, 3]);
        s.close_normally(1000, "");
    });
    cases.case("1.3.4 masked frame from the server -> 1002 (§5.1)", || {
        let mut s = Session::start();
        s.peer.send_raw(&encode_frame(
            true,
            0,
            op::TEXT,
            Some([1, 2, 3, 4]),
            b"Hello",
        ));
        s.expect_failed(1002);
    });
    cases.case("1.3.5 masked frame after a valid echo -> 1002", || {
        let mut s = Session::start();
        s.peer.send_text(b"valid");
        s.peer.expect_text(b"valid");
        s.peer.send_raw(&encode_frame(
            true,
            0,
            op::PING,
            Some([0; 4]),
            b"masked ping",
        ));
        s.expect_failed(1002);
    });
    cases.case(
        "1.3.6 64-bit length with its top bit set -> 1002 (§5.2)",
        || {
            let mut s = Session::start();
            s.peer
                .send_raw(&encode_header(true, 0, op::BINARY, None, (1 << 63) | 5));
            s.expect_failed(1002);
        },
    );
    cases.finish();
}

// ------------------------------------------------------------------------------------------
// 2 Pings and pongs
// ------------------------------------------------------------------------------------------

#[test]
fn c2_pings_and_pongs() {
    let mut cases = Cases::new("client 2 ping/pong");
    let payloads: [(&str, Vec<u8>); 4] = [
        ("2.1 ping without payload", Vec::new()),
        ("2.2 ping with text payload", b"Hello, world!".to_vec()),
        (
            "2.3 ping with binary payload",
            vec![0x00, 0xff, 0xfe, 0xfd, 0x00],
        ),
        ("2.4 ping with 125-byte payload", binary_data(125, 24)),
    ];
    for (id, payload) in payloads {
        cases.case(id, || {
            let mut s = Session::start();
            s.peer.send_ping(&payload);
            s.peer.expect_pong(&payload);
            s.close_normally(1000, "");
        });
    }
    cases.case("2.5 ping with 126-byte payload -> 1002, no pong", || {
        let mut s = Session::start();
        s.peer.send_ping(&binary_data(126, 25));
        s.expect_failed(1002);
    });
    cases.case("2.6 125-byte ping written one byte at a time", || {
        let mut s = Session::start();
        let payload = binary_data(125, 26);
        let wire = s.peer.frame(true, 0, op::PING, &payload);
        s.peer.send_chopped(&wire, 1, MS);
        s.peer.expect_pong(&payload);
        s.close_normally(1000, "");
    });
    cases.case("2.7 unsolicited pong is ignored", || {
        let mut s = Session::start();
        s.peer.send_pong(b"unsolicited");
        s.peer.send_ping(b"sentinel");
        s.peer.expect_pong(b"sentinel");
        s.close_normally(1000, "");
    });
    cases.case("2.10 ten pings in one write: ten pongs in order", || {
        let mut s = Session::start();
        let mut wire = Vec::new();
        for i in 0..10 {
            wire.extend(
                s.peer
                    .frame(true, 0, op::PING, format!("payload-{i}").as_bytes()),
            );
        }
        s.peer.send_raw(&wire);
        for i in 0..10 {
            s.peer.expect_pong(format!("payload-{i}").as_bytes());
        }
        s.close_normally(1000, "");
    });
    cases.case("2.12 pong with 126-byte payload -> 1002", || {
        let mut s = Session::start();
        s.peer.send_pong(&binary_data(126, 212));
        s.expect_failed(1002);
    });
    cases.finish();
}

// ------------------------------------------------------------------------------------------
// 3 Reserved bits, 4 reserved opcodes
// ------------------------------------------------------------------------------------------

#[test]
fn c3_reserved_bits() {
    let mut cases = Cases::new("client 3 reserved bits");
    for rsv in 1..=7u8 {
        cases.case(
            &format!("3.2.{rsv} text echoed, then text with RSV={rsv:03b} -> 1002"),
            || {
                let mut s = Session::start();
                s.peer.send_text(b"Hello");
                s.peer.expect_text(b"Hello");
                let mut wire = s.peer.frame(true, rsv, op::TEXT, b"Hello");
                wire.extend(s.peer.frame(true, 0, op::PING, b""));
                s.peer.send_raw(&wire);
                s.expect_failed(1002);
            },
        );
    }
    cases.case("3.5 binary with RSV1|RSV3 -> 1002", || {
        let mut s = Session::start();
        s.peer.send_frame(true, RSV1 | RSV3, op::BINARY, &[1, 2, 3]);
        s.expect_failed(1002);
    });
    cases.case("3.6 ping with RSV2 -> 1002, no pong", || {
        let mut s = Session::start();
        s.peer.send_frame(true, RSV2, op::PING, b"Hello");
        s.expect_failed(1002);
    });
    cases.case("3.7 close with RSV3 -> 1002", || {
        let mut s = Session::start();
        s.peer
            .send_frame(true, RSV3, op::CLOSE, &close_payload(1000, b""));
        s.expect_failed(1002);
    });
    cases.case("3.9 continuation frame with RSV1 -> 1002", || {
        let mut s = Session::start();
        let mut wire = s.peer.frame(false, 0, op::TEXT, b"frag");
        wire.extend(s.peer.frame(true, RSV1, op::CONT, b"ment"));
        s.peer.send_raw(&wire);
        s.expect_failed(1002);
    });
    cases.finish();
}

#[test]
fn c4_reserved_opcodes() {
    let mut cases = Cases::new("client 4 opcodes");
    for opcode in (3..=7u8).chain(11..=15) {
        cases.case(
            &format!("4.a opcode {opcode:#x} without payload -> 1002"),
            || {
                let mut s = Session::start();
                s.peer.send_frame(true, 0, opcode, b"");
                s.expect_failed(1002);
            },
        );
        cases.case(
            &format!("4.b text echoed, then opcode {opcode:#x} with payload -> 1002"),
            || {
                let mut s = Session::start();
                s.peer.send_text(b"Hello");
                s.peer.expect_text(b"Hello");
                let mut wire = s.peer.frame(true, 0, opcode, b"reserved opcode");
                wire.extend(s.peer.frame(true, 0, op::PING, b""));
                s.peer.send_raw(&wire);
                s.expect_failed(1002);
            },
        );
    }
    cases.finish();
}

// ------------------------------------------------------------------------------------------
// 5 Fragmentation
// ------------------------------------------------------------------------------------------

#[test]
fn c5_fragmentation() {
    let mut cases = Cases::new("client 5 fragmentation");
    cases.case("5.1 ping in two fragments -> 1002", || {
        let mut s = Session::start();
        let mut wire = s.peer.frame(false, 0, op::PING, b"fragment1");
        wire.extend(s.peer.frame(true, 0, op::CONT, b"fragment2"));
        s.peer.send_raw(&wire);
        s.expect_failed(1002);
    });
    cases.case("5.3 text in two fragments", || {
        let mut s = Session::start();
        let mut wire = s.peer.frame(false, 0, op::TEXT, b"fragment1");
        wire.extend(s.peer.frame(true, 0, op::CONT, b"fragment2"));
        s.peer.send_raw(&wire);
        s.peer.expect_text(b"fragment1fragment2");
        s.close_normally(1000, "");
    });
    cases.case(
        "5.6 text in two fragments, ping between: pong first",
        || {
            let mut s = Session::start();
            let mut wire = s.peer.frame(false, 0, op::TEXT, b"fragment1");
            wire.extend(s.peer.frame(true, 0, op::PING, b"ping payload"));
            wire.extend(s.peer.frame(true, 0, op::CONT, b"fragment2"));
            s.peer.send_chopped(&wire, 1, Duration::ZERO);
            s.peer.expect_pong(b"ping payload");
            s.peer.expect_text(b"fragment1fragment2");
            s.close_normally(1000, "");
        },
    );
    cases.case("5.9 continuation with nothing to continue -> 1002", || {
        let mut s = Session::start();
        let mut wire = s.peer.frame(true, 0, op::CONT, b"non-continuation payload");
        wire.extend(s.peer.frame(true, 0, op::TEXT, b"Hello, world!"));
        s.peer.send_raw(&wire);
        s.expect_failed(1002);
    });
    cases.case(
        "5.12 continuation (no FIN) with nothing to continue -> 1002",
        || {
            let mut s = Session::start();
            s.peer
                .send_frame(false, 0, op::CONT, b"non-continuation payload");
            s.expect_failed(1002);
        },
    );
    cases.case(
        "5.18 text, then text instead of continuation -> 1002",
        || {
            let mut s = Session::start();
            let mut wire = s.peer.frame(false, 0, op::TEXT, b"fragment1");
            wire.extend(s.peer.frame(true, 0, op::TEXT, b"fragment2"));
            s.peer.send_raw(&wire);
            s.expect_failed(1002);
        },
    );
    cases.case(
        "5.19 text in 5 fragments, pings between: pongs as they come",
        || {
            let mut s = Session::start();
            let mut wire = s.peer.frame(false, 0, op::TEXT, b"fragment1");
            wire.extend(s.peer.frame(false, 0, op::CONT, b"fragment2"));
            wire.extend(s.peer.frame(true, 0, op::PING, b"pongme 1!"));
            s.peer.send_raw(&wire);
            s.peer.expect_pong(b"pongme 1!");
            let mut wire = s.peer.frame(false, 0, op::CONT, b"fragment3");
            wire.extend(s.peer.frame(false, 0, op::CONT, b"fragment4"));
            wire.extend(s.peer.frame(true, 0, op::PING, b"pongme 2!"));
            wire.extend(s.peer.frame(true, 0, op::CONT, b"fragment5"));
            s.peer.send_raw(&wire);
            s.peer.expect_pong(b"pongme 2!");
            s.peer
                .expect_text(b"fragment1fragment2fragment3fragment4fragment5");
            s.close_normally(1000, "");
        },
    );
    cases.case("5.22 text in 1-byte fragments", || {
        let mut s = Session::start();
        let text = "Hello, κόσμε €𝄞".as_bytes();
        s.peer.send_fragmented(op::TEXT, text, 1);
        s.peer.expect_text(text);
        s.close_normally(1000, "");
    });
    cases.case("5.24 text of three empty fragments -> empty text", || {
        let mut s = Session::start();
        let mut wire = s.peer.frame(false, 0, op::TEXT, b"");
        wire.extend(s.peer.frame(false, 0, op::CONT, b""));
        wire.extend(s.peer.frame(true, 0, op::CONT, b""));
        s.peer.send_raw(&wire);
        s.peer.expect_text(b"");
        s.close_normally(1000, "");
    });
    cases.case(
        "5.25 empty first and last fragments of a binary message",
        || {
            let mut s = Session::start();
            let mut wire = s.peer.frame(false, 0, op::BINARY, b"");
            wire.extend(s.peer.frame(false, 0, op::CONT, &[7, 8, 9]));
            wire.extend(s.peer.frame(true, 0, op::CONT, b""));
            s.peer.send_raw(&wire);
            s.peer.expect_binary(&[7, 8, 9]);
            s.close_normally(1000, "");
        },
    );
    cases.finish();
}

// ------------------------------------------------------------------------------------------
// 6 UTF-8
// ------------------------------------------------------------------------------------------

#[test]
fn c6_utf8_valid() {
    let mut cases = Cases::new("client 6 valid UTF-8");
    cases.case(
        "6.2 every valid sample, in one frame and in 1-byte fragments",
        || {
            let mut s = Session::start();
            for &(id, text) in VALID_UTF8 {
                raw::within(id, || {
                    s.peer.send_text(text.as_bytes());
                    s.peer.expect_text(text.as_bytes());
                    s.peer.send_fragmented(op::TEXT, text.as_bytes(), 1);
                    s.peer.expect_text(text.as_bytes());
                });
            }
            s.close_normally(1000, "");
        },
    );
    cases.case("6.22.1 two fragments split at every byte position", || {
        let mut s = Session::start();
        let text = "aµ€𝄞\u{10ffff}\u{d7ff}\u{e000}κόσμε".as_bytes();
        for i in 0..=text.len() {
            let mut wire = s.peer.frame(false, 0, op::TEXT, &text[..i]);
            wire.extend(s.peer.frame(true, 0, op::CONT, &text[i..]));
            s.peer.send_raw(&wire);
            raw::within(&format!("split at byte {i}"), || s.peer.expect_text(text));
        }
        s.close_normally(1000, "");
    });
    cases.finish();
}

#[test]
fn c6_utf8_invalid() {
    let mut cases = Cases::new("client 6 invalid UTF-8");
    for (id, bytes) in invalid_utf8() {
        cases.case(&format!("{id}: one frame -> 1007"), || {
            let mut s = Session::start();
            s.peer.send_text(&bytes);
            s.expect_failed(1007);
        });
    }
    for (id, bytes) in invalid_utf8().into_iter().step_by(4) {
        cases.case(&format!("{id}: 1-byte fragments -> 1007"), || {
            let mut s = Session::start();
            s.peer.send_fragmented(op::TEXT, &bytes, 1);
            s.expect_failed(1007);
        });
    }
    for (id, prefix) in fail_fast_prefixes() {
        cases.case(
            &format!("{id}: fail fast, rest of the frame never sent"),
            || {
                let mut s = Session::start();
                let declared = (prefix.len() + 64 * KIB) as u64;
                let wire = s.peer.partial_frame(true, op::TEXT, declared, &prefix);
                s.peer.send_raw(&wire);
                s.expect_failed(1007);
            },
        );
    }
    cases.case(
        "6.23.2 message ends inside a code point at a fragment border",
        || {
            let mut s = Session::start();
            let mut wire = s.peer.frame(false, 0, op::TEXT, b"abc\xe2\x82");
            wire.extend(s.peer.frame(true, 0, op::CONT, b""));
            s.peer.send_raw(&wire);
            s.expect_failed(1007);
        },
    );
    cases.finish();
}

// ------------------------------------------------------------------------------------------
// 7 Close
// ------------------------------------------------------------------------------------------

#[test]
fn c7_close() {
    let mut cases = Cases::new("client 7 close");
    cases.case("7.1.1 text echoed, then close 1000 with a reason", || {
        let mut s = Session::start();
        s.peer.send_text(b"Hello World!");
        s.peer.expect_text(b"Hello World!");
        s.close_normally(1000, "bye");
    });
    cases.case("7.1.3 close, then ping in one write: no pong", || {
        let mut s = Session::start();
        let mut wire = s.peer.frame(true, 0, op::CLOSE, &close_payload(1000, b""));
        wire.extend(s.peer.frame(true, 0, op::PING, b"Hello"));
        s.peer.send_raw(&wire);
        s.expect_close_echo(1000, "");
    });
    cases.case("7.1.4 close, then text in one write: no echo", || {
        let mut s = Session::start();
        let mut wire = s.peer.frame(true, 0, op::CLOSE, &close_payload(1000, b""));
        wire.extend(s.peer.frame(true, 0, op::TEXT, b"Hello"));
        s.peer.send_raw(&wire);
        s.expect_close_echo(1000, "");
    });
    cases.case(
        "7.1.5 text fragment, close, continuation: no message",
        || {
            let mut s = Session::start();
            let mut wire = s.peer.frame(false, 0, op::TEXT, b"fragment1");
            wire.extend(s.peer.frame(true, 0, op::CLOSE, &close_payload(1000, b"")));
            wire.extend(s.peer.frame(true, 0, op::CONT, b"fragment2"));
            s.peer.send_raw(&wire);
            s.expect_close_echo(1000, "");
        },
    );
    cases.case(
        "7.3.1 close without payload: empty close echoed, reported as 1005",
        || {
            let mut s = Session::start();
            s.peer.send_frame(true, 0, op::CLOSE, b"");
            s.peer.expect_frame(true, op::CLOSE, b"");
            s.peer.expect_no_frame_within(QUIET);
            s.peer.shutdown();
            s.expect_report("closed: 1005 ");
        },
    );
    cases.case("7.3.2 close with a 1-byte payload -> 1002", || {
        let mut s = Session::start();
        s.peer.send_frame(true, 0, op::CLOSE, b"a");
        s.expect_failed(1002);
    });
    cases.case("7.3.5 close 1000 with a 123-byte reason", || {
        let s = Session::start();
        s.close_normally(1000, &"*".repeat(123));
    });
    cases.case("7.3.6 close with a 124-byte reason -> 1002", || {
        let mut s = Session::start();
        s.peer.send_close(1000, &[b'*'; 124]);
        s.expect_failed(1002);
    });
    cases.case("7.5.1 close reason with invalid UTF-8 -> 1007", || {
        let mut s = Session::start();
        s.peer.send_close(
            1000,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
        );
        s.expect_failed(1007);
    });
    let valid = [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999,
    ];
    for code in valid {
        cases.case(
            &format!("7.7 valid code {code} echoed and reported"),
            || {
                let s = Session::start();
                s.close_normally(code, "reason");
            },
        );
    }
    let invalid = [
        0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ];
    for code in invalid {
        cases.case(&format!("7.9 invalid code {code} -> 1002"), || {
            let mut s = Session::start();
            s.peer.send_close(code, b"");
            s.expect_failed(1002);
        });
    }
    cases.finish();
}

// ------------------------------------------------------------------------------------------
// 9 Large messages, 10 automatic fragmentation, limits
// ------------------------------------------------------------------------------------------

#[test]
fn c9_large_messages() {
    let mut cases = Cases::new("client 9 large messages");
    for len in [MIB, 16 * MIB] {
        for (kind, opcode) in [("text", op::TEXT), ("binary", op::BINARY)] {
            cases.case(
                &format!("9 {kind} of {} KiB in one frame", len / KIB),
                || {
                    let mut s = Session::start();
                    let payload = match opcode {
                        op::TEXT => utf8_text(len),
                        _ => binary_data(len, 9),
                    };
                    s.peer.send_frame(true, 0, opcode, &payload);
                    let sizes = s.peer.expect_message(opcode, &payload);
                    // 10: the client splits what it sends into frames of 64 KiB (fragment_size).
                    assert_eq!(sizes, vec![64 * KIB; len / (64 * KIB)], "echo frame sizes");
                    // §5.3: a fresh key per frame; a fixed key would repeat 16 times or more.
                    let mut keys = s.peer.keys_seen.clone();
                    keys.sort_unstable();
                    keys.dedup();
                    assert!(
                        keys.len() * 2 > sizes.len(),
                        "{} distinct masking keys over {} frames",
                        keys.len(),
                        sizes.len()
                    );
                    s.close_normally(1000, "");
                },
            );
        }
    }
    cases.case("9 4 MiB text in 4 KiB fragments", || {
        let mut s = Session::start();
        let text = utf8_text(4 * MIB);
        s.peer.send_fragmented(op::TEXT, &text, 4 * KIB);
        s.peer.expect_text(&text);
        s.close_normally(1000, "");
    });
    cases.finish();
}

#[test]
fn c_limits_1009() {
    let mut cases = Cases::new("client limits");
    cases.case(
        "L.1 frame declaring 2^40 bytes -> 1009 before any payload",
        || {
            let mut s = Session::start();
            s.peer
                .send_raw(&encode_header(true, 0, op::BINARY, None, 1 << 40));
            s.expect_failed(1009);
        },
    );
    cases.case("L.3 frame declaring 16 MiB + 1 -> 1009", || {
        let mut s = Session::start();
        s.peer.send_raw(&encode_header(
            true,
            0,
            op::TEXT,
            None,
            (16 * MIB + 1) as u64,
        ));
        s.expect_failed(1009);
    });
    cases.finish();
}
