//! RFC 6455 conformance of the server role: the `echo_server` example (built in release mode
//! and started on a port of its own) driven over real sockets on 127.0.0.1 by the raw client
//! of `raw/mod.rs` (its own handshake, masking encoder and decoder; not our `ws-proto`).
//!
//! The cases cover the ground of the Autobahn TestSuite's groups 1–7, 9 and 10 (numbered like
//! them where they match), written from the RFC. Every case asserts the exact bytes echoed or
//! the exact close code, and that the server then closes TCP (read returns 0). Every case runs
//! on a connection of its own; a table fails once, listing every case that failed.
//! `docs/conformance.md` lists the cases by RFC section.

mod raw;

use std::time::Duration;

use raw::{
    binary_data, close_payload, encode_frame, encode_header, fail_fast_prefixes, invalid_utf8, op,
    utf8_text, Cases, EchoServer, RawPeer, RSV1, RSV2, RSV3, VALID_UTF8,
};

const KIB: usize = 1 << 10;
const MIB: usize = 1 << 20;
const MS: Duration = Duration::from_millis(1);

/// Ends a healthy connection: close 1000 echoed, then the server closes TCP.
fn close_ok(c: &mut RawPeer) {
    c.send_close(1000, b"");
    c.expect_close(1000);
}

/// The message lengths of Autobahn 1.1.x/1.2.x: each side of every length-encoding border.
const LENGTHS: [usize; 7] = [0, 125, 126, 127, 128, 65535, 65536];

// ------------------------------------------------------------------------------------------
// 1 Framing (§5.2, §5.3, §5.6)
// ------------------------------------------------------------------------------------------

#[test]
fn g1_framing_text_and_binary_lengths() {
    let server = EchoServer::start();
    let mut cases = Cases::new("1 framing");
    for (i, &len) in LENGTHS.iter().enumerate() {
        cases.case(&format!("1.1.{} text of {len} bytes", i + 1), || {
            let mut c = server.connect();
            let text = utf8_text(len);
            c.send_text(&text);
            assert_eq!(c.expect_text(&text), [len], "echoed as one frame");
            close_ok(&mut c);
        });
        cases.case(&format!("1.2.{} binary of {len} bytes", i + 1), || {
            let mut c = server.connect();
            let data = binary_data(len, len as u32 + 7);
            c.send_binary(&data);
            assert_eq!(c.expect_binary(&data), [len], "echoed as one frame");
            close_ok(&mut c);
        });
    }
    cases.case("1.1.8 text of 65536 bytes written in chops of 997", || {
        let mut c = server.connect();
        let text = utf8_text(65536);
        let wire = c.frame(true, 0, op::TEXT, &text);
        c.send_chopped(&wire, 997, MS);
        c.expect_text(&text);
        close_ok(&mut c);
    });
    cases.case(
        "1.2.8 binary of 65536 bytes written in chops of 997",
        || {
            let mut c = server.connect();
            let data = binary_data(65536, 18);
            let wire = c.frame(true, 0, op::BINARY, &data);
            c.send_chopped(&wire, 997, MS);
            c.expect_binary(&data);
            close_ok(&mut c);
        },
    );
    cases.case(
        "1.3.1 frame written one byte at a time (16-bit length header)",
        || {
            let mut c = server.connect();
            let data = binary_data(256, 3);
            let wire = c.frame(true, 0, op::BINARY, &data);
            c.send_chopped(&wire, 1, Duration::ZERO);
            c.expect_binary(&data);
            close_ok(&mut c);
        },
    );
    cases.case("1.3.2 two frames in one write are echoed in order", || {
        let mut c = server.connect();
        let mut wire = c.frame(true, 0, op::TEXT, b"first");
        wire.extend(c.frame(true, 0, op::BINARY, &[1, 2, 3]));
        c.send_raw(&wire);
        c.expect_text(b"first");
        c.expect_binary(&[1, 2, 3]);
        close_ok(&mut c);
    });
    cases.case("1.3.3 all-zero masking key is a valid key", || {
        let mut c = server.connect();
        c.send_raw(&encode_frame(true, 0, op::TEXT, Some([0; 4]), b"zero key"));
        c.expect_text(b"zero key");
        close_ok(&mut c);
    });
    cases.case("1.3.4 unmasked client frame -> 1002 (§5.1)", || {
        let mut c = server.connect();
        c.send_raw(&encode_frame(true, 0, op::TEXT, None, b"Hello"));
        c.expect_close(1002);
    });
    cases.case(
        "1.3.5 unmasked frame after a valid echo -> 1002, no later echo",
        || {
            let mut c = server.connect();
            c.send_text(b"valid");
            c.expect_text(b"valid");
            let mut wire = encode_frame(true, 0, op::BINARY, None, b"unmasked");
            wire.extend(c.frame(true, 0, op::PING, b"after"));
            c.send_raw(&wire);
            c.expect_close(1002);
        },
    );
    cases.case(
        "1.3.6 64-bit length with its top bit set -> 1002 (§5.2)",
        || {
            let mut c = server.connect();
            let header = c.header(true, 0, op::BINARY, (1 << 63) | 5);
            c.send_raw(&header);
            c.expect_close(1002);
        },
    );
    cases.finish();
}

// ------------------------------------------------------------------------------------------
// 2 Pings and pongs (§5.5.2, §5.5.3)
// ------------------------------------------------------------------------------------------

#[test]
fn g2_pings_and_pongs() {
    let server = EchoServer::start();
    let mut cases = Cases::new("2 ping/pong");
    let payloads: [(&str, Vec<u8>); 4] = [
        ("2.1 ping without payload", Vec::new()),
        ("2.2 ping with text payload", b"Hello, world!".to_vec()),
        (
            "2.3 ping with binary payload",
            vec![0x00, 0xff, 0xfe, 0xfd, 0xfc, 0xfb, 0x00, 0xff],
        ),
        ("2.4 ping with 125-byte payload", binary_data(125, 24)),
    ];
    for (id, payload) in payloads {
        cases.case(id, || {
            let mut c = server.connect();
            c.send_ping(&payload);
            c.expect_pong(&payload);
            close_ok(&mut c);
        });
    }
    cases.case(
        "2.5 ping with 126-byte payload -> 1002, no pong (§5.5)",
        || {
            let mut c = server.connect();
            c.send_ping(&binary_data(126, 25));
            c.expect_close(1002);
        },
    );
    cases.case("2.6 125-byte ping written one byte at a time", || {
        let mut c = server.connect();
        let payload = binary_data(125, 26);
        let wire = c.frame(true, 0, op::PING, &payload);
        c.send_chopped(&wire, 1, MS);
        c.expect_pong(&payload);
        close_ok(&mut c);
    });
    cases.case("2.7 unsolicited empty pong is ignored", || {
        let mut c = server.connect();
        c.send_pong(b"");
        c.send_ping(b"sentinel");
        c.expect_pong(b"sentinel");
        close_ok(&mut c);
    });
    cases.case("2.8 unsolicited pong with payload is ignored", || {
        let mut c = server.connect();
        c.send_pong(b"unsolicited pong payload");
        c.send_ping(b"sentinel");
        c.expect_pong(b"sentinel");
        close_ok(&mut c);
    });
    cases.case(
        "2.9 unsolicited pong, then ping: one pong, the ping's payload",
        || {
            let mut c = server.connect();
            let mut wire = c.frame(true, 0, op::PONG, b"unsolicited pong payload");
            wire.extend(c.frame(true, 0, op::PING, b"ping payload"));
            c.send_raw(&wire);
            c.expect_pong(b"ping payload");
            close_ok(&mut c);
        },
    );
    cases.case("2.10 ten pings in one write: ten pongs in order", || {
        let mut c = server.connect();
        let mut wire = Vec::new();
        for i in 0..10 {
            wire.extend(c.frame(true, 0, op::PING, format!("payload-{i}").as_bytes()));
        }
        c.send_raw(&wire);
        for i in 0..10 {
            c.expect_pong(format!("payload-{i}").as_bytes());
        }
        close_ok(&mut c);
    });
    cases.case(
        "2.11 ten pings written one byte at a time: ten pongs in order",
        || {
            let mut c = server.connect();
            for i in 0..10 {
                let wire = c.frame(true, 0, op::PING, format!("payload-{i}").as_bytes());
                c.send_chopped(&wire, 1, Duration::ZERO);
            }
            for i in 0..10 {
                c.expect_pong(format!("payload-{i}").as_bytes());
            }
            close_ok(&mut c);
        },
    );
    cases.case("2.12 pong with 126-byte payload -> 1002 (§5.5)", || {
        let mut c = server.connect();
        c.send_pong(&binary_data(126, 212));
        c.expect_close(1002);
    });
    cases.finish();
}

// ------------------------------------------------------------------------------------------
// 3 Reserved bits (§5.2: RSV1-3 MUST be 0 without a negotiated extension)
// ------------------------------------------------------------------------------------------

#[test]
fn g3_reserved_bits() {
    let server = EchoServer::start();
    let mut cases = Cases::new("3 reserved bits");
    cases.case("3.1 text with RSV1 -> 1002", || {
        let mut c = server.connect();
        c.send_frame(true, RSV1, op::TEXT, b"Hello");
        c.expect_close(1002);
    });
    for rsv in 1..=7u8 {
        cases.case(
            &format!(
                "3.2.{rsv} text echoed, then text with RSV={rsv:03b} and ping -> 1002, no pong"
            ),
            || {
                let mut c = server.connect();
                c.send_text(b"Hello");
                c.expect_text(b"Hello");
                let mut wire = c.frame(true, rsv, op::TEXT, b"Hello");
                wire.extend(c.frame(true, 0, op::PING, b""));
                c.send_raw(&wire);
                c.expect_close(1002);
            },
        );
        cases.case(
            &format!("3.2.{rsv}.b text, text with RSV={rsv:03b}, ping in one write -> echo, 1002"),
            || {
                let mut c = server.connect();
                let mut wire = c.frame(true, 0, op::TEXT, b"Hello");
                wire.extend(c.frame(true, rsv, op::TEXT, b"Hello"));
                wire.extend(c.frame(true, 0, op::PING, b""));
                c.send_raw(&wire);
                c.expect_echo_then_close(op::TEXT, b"Hello", 1002);
            },
        );
    }
    cases.case("3.3 RSV3 text, frames written separately", || {
        let mut c = server.connect();
        c.send_text(b"Hello");
        c.expect_text(b"Hello");
        std::thread::sleep(Duration::from_millis(10));
        c.send_frame(true, RSV3, op::TEXT, b"Hello");
        c.send_ping(b"");
        c.expect_close(1002);
    });
    cases.case("3.4 RSV2 text and ping written one byte at a time", || {
        let mut c = server.connect();
        let wire = c.frame(true, 0, op::TEXT, b"Hello");
        c.send_chopped(&wire, 1, Duration::ZERO);
        c.expect_text(b"Hello");
        let mut wire = c.frame(true, RSV2, op::TEXT, b"Hello");
        wire.extend(c.frame(true, 0, op::PING, b""));
        c.send_chopped(&wire, 1, Duration::ZERO);
        c.expect_close(1002);
    });
    cases.case("3.5 binary with RSV1|RSV3 -> 1002", || {
        let mut c = server.connect();
        c.send_frame(true, RSV1 | RSV3, op::BINARY, &[0, 1, 2, 3, 4, 5, 6, 7]);
        c.expect_close(1002);
    });
    cases.case("3.6 ping with RSV1|RSV2 -> 1002, no pong", || {
        let mut c = server.connect();
        c.send_frame(true, RSV1 | RSV2, op::PING, b"Hello");
        c.expect_close(1002);
    });
    cases.case("3.7 close with RSV1|RSV2|RSV3 -> 1002", || {
        let mut c = server.connect();
        c.send_frame(
            true,
            RSV1 | RSV2 | RSV3,
            op::CLOSE,
            &close_payload(1000, b""),
        );
        c.expect_close(1002);
    });
    cases.case("3.8 pong with RSV1 -> 1002", || {
        let mut c = server.connect();
        c.send_frame(true, RSV1, op::PONG, b"");
        c.expect_close(1002);
    });
    cases.case("3.9 continuation frame with RSV1 -> 1002, no echo", || {
        let mut c = server.connect();
        let mut wire = c.frame(false, 0, op::TEXT, b"frag");
        wire.extend(c.frame(true, RSV1, op::CONT, b"ment"));
        c.send_raw(&wire);
        c.expect_close(1002);
    });
    cases.finish();
}

// ------------------------------------------------------------------------------------------
// 4 Opcodes (§5.2: 0x3-0x7 and 0xB-0xF are reserved; an endpoint MUST fail on them)
// ------------------------------------------------------------------------------------------

#[test]
fn g4_reserved_opcodes() {
    let server = EchoServer::start();
    let mut cases = Cases::new("4 opcodes");
    for opcode in (3..=7u8).chain(11..=15) {
        let group = if opcode < 8 { 1 } else { 2 };
        let n = if opcode < 8 { opcode - 2 } else { opcode - 10 };
        cases.case(
            &format!("4.{group}.{n}.a opcode {opcode:#x} without payload -> 1002"),
            || {
                let mut c = server.connect();
                c.send_frame(true, 0, opcode, b"");
                c.expect_close(1002);
            },
        );
        cases.case(
            &format!("4.{group}.{n}.b text echoed, then opcode {opcode:#x} with payload and ping -> 1002"),
            || {
                let mut c = server.connect();
                c.send_text(b"Hello");
                c.expect_text(b"Hello");
                let mut wire = c.frame(true, 0, opcode, b"reserved opcode");
                wire.extend(c.frame(true, 0, op::PING, b""));
                c.send_raw(&wire);
                c.expect_close(1002);
            },
        );
        cases.case(
            &format!("4.{group}.{n}.d text, opcode {opcode:#x}, ping in one write -> echo, 1002"),
            || {
                let mut c = server.connect();
                let mut wire = c.frame(true, 0, op::TEXT, b"Hello");
                wire.extend(c.frame(true, 0, opcode, b"reserved opcode"));
                wire.extend(c.frame(true, 0, op::PING, b""));
                c.send_raw(&wire);
                c.expect_echo_then_close(op::TEXT, b"Hello", 1002);
            },
        );
        cases.case(
            &format!("4.{group}.{n}.c opcode {opcode:#x} inside a fragmented text -> 1002"),
            || {
                let mut c = server.connect();
                let mut wire = c.frame(false, 0, op::TEXT, b"frag");
                wire.extend(c.frame(true, 0, opcode, b"x"));
                wire.extend(c.frame(true, 0, op::CONT, b"ment"));
                c.send_raw(&wire);
                c.expect_close(1002);
            },
        );
    }
    cases.finish();
}

// ------------------------------------------------------------------------------------------
// 5 Fragmentation (§5.4)
// ------------------------------------------------------------------------------------------

/// How a sequence of frames is written.
#[derive(Clone, Copy, Debug)]
enum Write {
    /// All frames in one write.
    Whole,
    /// One byte per write.
    Octets,
    /// One write per frame, 20 ms apart.
    Frames,
}

fn send_frames(c: &mut RawPeer, frames: &[Vec<u8>], how: Write) {
    match how {
        Write::Whole => c.send_raw(&frames.concat()),
        Write::Octets => c.send_chopped(&frames.concat(), 1, Duration::ZERO),
        Write::Frames => {
            for f in frames {
                c.send_raw(f);
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }
}

#[test]
fn g5_fragmentation() {
    let server = EchoServer::start();
    let mut cases = Cases::new("5 fragmentation");
    cases.case("5.1 ping in two fragments -> 1002", || {
        let mut c = server.connect();
        let mut wire = c.frame(false, 0, op::PING, b"fragment1");
        wire.extend(c.frame(true, 0, op::CONT, b"fragment2"));
        c.send_raw(&wire);
        c.expect_close(1002);
    });
    cases.case("5.2 pong in two fragments -> 1002", || {
        let mut c = server.connect();
        let mut wire = c.frame(false, 0, op::PONG, b"fragment1");
        wire.extend(c.frame(true, 0, op::CONT, b"fragment2"));
        c.send_raw(&wire);
        c.expect_close(1002);
    });
    cases.case("5.2.b close with FIN clear -> 1002", || {
        let mut c = server.connect();
        c.send_frame(false, 0, op::CLOSE, &close_payload(1000, b""));
        c.expect_close(1002);
    });
    for (id, how) in [
        ("5.3", Write::Whole),
        ("5.4", Write::Octets),
        ("5.5", Write::Frames),
    ] {
        cases.case(&format!("{id} text in two fragments ({how:?})"), || {
            let mut c = server.connect();
            let frames = [
                c.frame(false, 0, op::TEXT, b"fragment1"),
                c.frame(true, 0, op::CONT, b"fragment2"),
            ];
            send_frames(&mut c, &frames, how);
            c.expect_text(b"fragment1fragment2");
            close_ok(&mut c);
        });
    }
    for (id, how) in [
        ("5.6", Write::Whole),
        ("5.7", Write::Octets),
        ("5.8", Write::Frames),
    ] {
        cases.case(
            &format!("{id} text in two fragments, ping between ({how:?})"),
            || {
                let mut c = server.connect();
                let frames = [
                    c.frame(false, 0, op::TEXT, b"fragment1"),
                    c.frame(true, 0, op::PING, b"ping payload"),
                    c.frame(true, 0, op::CONT, b"fragment2"),
                ];
                send_frames(&mut c, &frames, how);
                c.expect_pong(b"ping payload");
                c.expect_text(b"fragment1fragment2");
                close_ok(&mut c);
            },
        );
    }
    for (id, how) in [
        ("5.9", Write::Whole),
        ("5.10", Write::Octets),
        ("5.11", Write::Frames),
    ] {
        cases.case(
            &format!(
                "{id} continuation (FIN) with nothing to continue, then text -> 1002 ({how:?})"
            ),
            || {
                let mut c = server.connect();
                let frames = [
                    c.frame(true, 0, op::CONT, b"non-continuation payload"),
                    c.frame(true, 0, op::TEXT, b"Hello, world!"),
                ];
                send_frames(&mut c, &frames, how);
                c.expect_close(1002);
            },
        );
    }
    for (id, how) in [
        ("5.12", Write::Whole),
        ("5.13", Write::Octets),
        ("5.14", Write::Frames),
    ] {
        cases.case(
            &format!(
                "{id} continuation (no FIN) with nothing to continue, then text -> 1002 ({how:?})"
            ),
            || {
                let mut c = server.connect();
                let frames = [
                    c.frame(false, 0, op::CONT, b"non-continuation payload"),
                    c.frame(true, 0, op::TEXT, b"Hello, world!"),
                ];
                send_frames(&mut c, &frames, how);
                c.expect_close(1002);
            },
        );
    }
    cases.case(
        "5.15 fragmented text echoed, then stray continuation -> 1002",
        || {
            let mut c = server.connect();
            let frames = [
                c.frame(false, 0, op::TEXT, b"fragment1"),
                c.frame(true, 0, op::CONT, b"fragment2"),
                c.frame(false, 0, op::CONT, b"fragment3"),
                c.frame(true, 0, op::TEXT, b"fragment4"),
            ];
            send_frames(&mut c, &frames[..2], Write::Whole);
            c.expect_text(b"fragment1fragment2");
            send_frames(&mut c, &frames[2..], Write::Whole);
            c.expect_close(1002);
        },
    );
    cases.case("5.15.b the same in one write -> echo, 1002", || {
        let mut c = server.connect();
        let frames = [
            c.frame(false, 0, op::TEXT, b"fragment1"),
            c.frame(true, 0, op::CONT, b"fragment2"),
            c.frame(false, 0, op::CONT, b"fragment3"),
            c.frame(true, 0, op::TEXT, b"fragment4"),
        ];
        send_frames(&mut c, &frames, Write::Whole);
        c.expect_echo_then_close(op::TEXT, b"fragment1fragment2", 1002);
    });
    for (id, first_fin) in [("5.16", false), ("5.17", true)] {
        cases.case(
            &format!("{id} (continuation fin={first_fin}, text, continuation) x2 -> 1002"),
            || {
                let mut c = server.connect();
                let mut frames = Vec::new();
                for _ in 0..2 {
                    frames.push(c.frame(first_fin, 0, op::CONT, b"fragment1"));
                    frames.push(c.frame(false, 0, op::TEXT, b"fragment2"));
                    frames.push(c.frame(true, 0, op::CONT, b"fragment3"));
                }
                send_frames(&mut c, &frames, Write::Whole);
                c.expect_close(1002);
            },
        );
    }
    cases.case(
        "5.18 text, then text instead of continuation -> 1002",
        || {
            let mut c = server.connect();
            let frames = [
                c.frame(false, 0, op::TEXT, b"fragment1"),
                c.frame(true, 0, op::TEXT, b"fragment2"),
            ];
            send_frames(&mut c, &frames, Write::Whole);
            c.expect_close(1002);
        },
    );
    cases.case(
        "5.18.b binary started inside a fragmented text -> 1002",
        || {
            let mut c = server.connect();
            let frames = [
                c.frame(false, 0, op::TEXT, b"fragment1"),
                c.frame(true, 0, op::BINARY, b"fragment2"),
            ];
            send_frames(&mut c, &frames, Write::Whole);
            c.expect_close(1002);
        },
    );
    for (id, how) in [("5.19", Write::Frames), ("5.20", Write::Octets)] {
        cases.case(
            &format!("{id} text in 5 fragments, 2 pings between: pongs as they come ({how:?})"),
            || {
                let mut c = server.connect();
                let frames = [
                    c.frame(false, 0, op::TEXT, b"fragment1"),
                    c.frame(false, 0, op::CONT, b"fragment2"),
                    c.frame(true, 0, op::PING, b"pongme 1!"),
                    c.frame(false, 0, op::CONT, b"fragment3"),
                    c.frame(false, 0, op::CONT, b"fragment4"),
                    c.frame(true, 0, op::PING, b"pongme 2!"),
                    c.frame(true, 0, op::CONT, b"fragment5"),
                ];
                // The first pong must come before the message is complete.
                send_frames(&mut c, &frames[..3], how);
                c.expect_pong(b"pongme 1!");
                send_frames(&mut c, &frames[3..], how);
                c.expect_pong(b"pongme 2!");
                c.expect_text(b"fragment1fragment2fragment3fragment4fragment5");
                close_ok(&mut c);
            },
        );
    }
    cases.case(
        "5.21 unsolicited pongs between fragments are ignored",
        || {
            let mut c = server.connect();
            let frames = [
                c.frame(false, 0, op::BINARY, &[1, 2]),
                c.frame(true, 0, op::PONG, b"a"),
                c.frame(false, 0, op::CONT, &[3]),
                c.frame(true, 0, op::PONG, b""),
                c.frame(true, 0, op::CONT, &[4, 5]),
            ];
            send_frames(&mut c, &frames, Write::Whole);
            c.expect_binary(&[1, 2, 3, 4, 5]);
            close_ok(&mut c);
        },
    );
    cases.case(
        "5.22 text in 1-byte fragments (multibyte characters split)",
        || {
            let mut c = server.connect();
            let text = "Hello, κόσμε €𝄞".as_bytes();
            c.send_fragmented(op::TEXT, text, 1);
            c.expect_text(text);
            close_ok(&mut c);
        },
    );
    cases.case(
        "5.23 binary in 1-byte fragments, a ping between every two",
        || {
            let mut c = server.connect();
            let data = binary_data(40, 523);
            let mut wire = Vec::new();
            for (i, b) in data.iter().enumerate() {
                let opcode = if i == 0 { op::BINARY } else { op::CONT };
                if i > 0 {
                    wire.extend(c.frame(true, 0, op::PING, &[i as u8]));
                }
                wire.extend(c.frame(i + 1 == data.len(), 0, opcode, &[*b]));
            }
            c.send_raw(&wire);
            // Every pong is due before the message is complete.
            for i in 1..data.len() {
                c.expect_pong(&[i as u8]);
            }
            c.expect_binary(&data);
            close_ok(&mut c);
        },
    );
    cases.case(
        "5.24 (6.1.2) text of three empty fragments -> empty text",
        || {
            let mut c = server.connect();
            let frames = [
                c.frame(false, 0, op::TEXT, b""),
                c.frame(false, 0, op::CONT, b""),
                c.frame(true, 0, op::CONT, b""),
            ];
            send_frames(&mut c, &frames, Write::Whole);
            c.expect_text(b"");
            close_ok(&mut c);
        },
    );
    cases.case("5.25 (6.1.3) empty first and last fragments", || {
        let mut c = server.connect();
        let frames = [
            c.frame(false, 0, op::TEXT, b""),
            c.frame(false, 0, op::CONT, b"middle frame payload"),
            c.frame(true, 0, op::CONT, b""),
        ];
        send_frames(&mut c, &frames, Write::Whole);
        c.expect_text(b"middle frame payload");
        close_ok(&mut c);
    });
    cases.case(
        "5.26 binary ending with an empty final continuation",
        || {
            let mut c = server.connect();
            let frames = [
                c.frame(false, 0, op::BINARY, &[9, 8, 7]),
                c.frame(true, 0, op::CONT, b""),
            ];
            send_frames(&mut c, &frames, Write::Whole);
            c.expect_binary(&[9, 8, 7]);
            close_ok(&mut c);
        },
    );
    cases.case(
        "5.27 fragmented text then fragmented binary, back to back",
        || {
            let mut c = server.connect();
            let mut wire = c.fragmented(op::TEXT, b"first message", 4);
            wire.extend(c.fragmented(op::BINARY, &[1, 2, 3, 4, 5, 6, 7], 3));
            wire.extend(c.frame(true, 0, op::TEXT, b"third"));
            c.send_raw(&wire);
            c.expect_text(b"first message");
            c.expect_binary(&[1, 2, 3, 4, 5, 6, 7]);
            c.expect_text(b"third");
            close_ok(&mut c);
        },
    );
    cases.finish();
}

// ------------------------------------------------------------------------------------------
// 6 UTF-8 (§5.6, §8.1: invalid UTF-8 in a text message fails the connection with 1007)
// ------------------------------------------------------------------------------------------

#[test]
fn g6_utf8_valid() {
    let server = EchoServer::start();
    let mut cases = Cases::new("6 valid UTF-8");
    cases.case("6.1.1 empty text frame", || {
        let mut c = server.connect();
        c.send_text(b"");
        c.expect_text(b"");
        close_ok(&mut c);
    });
    for &(id, text) in VALID_UTF8 {
        let text = text.as_bytes();
        cases.case(&format!("{id}: one frame"), || {
            let mut c = server.connect();
            c.send_text(text);
            c.expect_text(text);
            close_ok(&mut c);
        });
        cases.case(&format!("{id}: 1-byte fragments"), || {
            let mut c = server.connect();
            c.send_fragmented(op::TEXT, text, 1);
            c.expect_text(text);
            close_ok(&mut c);
        });
        cases.case(
            &format!("{id}: one frame written one byte at a time"),
            || {
                let mut c = server.connect();
                let wire = c.frame(true, 0, op::TEXT, text);
                c.send_chopped(&wire, 1, Duration::ZERO);
                c.expect_text(text);
                close_ok(&mut c);
            },
        );
    }
    cases.finish();
}

#[test]
fn g6_utf8_valid_split_at_every_position() {
    let server = EchoServer::start();
    let mut cases = Cases::new("6 valid UTF-8 split everywhere");
    // Every character length and the hardest edges, in two and three fragments.
    let text = "aµ€𝄞\u{10ffff}\u{d7ff}\u{e000}κόσμε".as_bytes();
    cases.case("6.22.1 two fragments split at every byte position", || {
        let mut c = server.connect();
        for i in 0..=text.len() {
            let mut wire = c.frame(false, 0, op::TEXT, &text[..i]);
            wire.extend(c.frame(true, 0, op::CONT, &text[i..]));
            c.send_raw(&wire);
            raw::within(&format!("split at byte {i}"), || c.expect_text(text));
        }
        close_ok(&mut c);
    });
    cases.case(
        "6.22.2 three fragments split at every pair of positions",
        || {
            let mut c = server.connect();
            for i in 0..=text.len() {
                for j in i..=text.len() {
                    let mut wire = c.frame(false, 0, op::TEXT, &text[..i]);
                    wire.extend(c.frame(false, 0, op::CONT, &text[i..j]));
                    wire.extend(c.frame(true, 0, op::CONT, &text[j..]));
                    c.send_raw(&wire);
                    raw::within(&format!("splits at bytes {i} and {j}"), || {
                        c.expect_text(text)
                    });
                }
            }
            close_ok(&mut c);
        },
    );
    cases.case(
        "6.22.3 one frame, two writes split at every payload byte",
        || {
            let mut c = server.connect();
            for i in 0..=text.len() {
                let wire = c.frame(true, 0, op::TEXT, text);
                let header = wire.len() - text.len();
                c.send_raw(&wire[..header + i]);
                std::thread::sleep(MS);
                c.send_raw(&wire[header + i..]);
                raw::within(&format!("write split at payload byte {i}"), || {
                    c.expect_text(text)
                });
            }
            close_ok(&mut c);
        },
    );
    cases.finish();
}

#[test]
fn g6_utf8_invalid() {
    let server = EchoServer::start();
    let mut cases = Cases::new("6 invalid UTF-8");
    for (id, bytes) in invalid_utf8() {
        cases.case(&format!("{id}: one frame -> 1007"), || {
            let mut c = server.connect();
            c.send_text(&bytes);
            c.expect_close(1007);
        });
        cases.case(&format!("{id}: 1-byte fragments -> 1007"), || {
            let mut c = server.connect();
            c.send_fragmented(op::TEXT, &bytes, 1);
            c.expect_close(1007);
        });
        cases.case(&format!("{id}: written one byte at a time -> 1007"), || {
            let mut c = server.connect();
            let wire = c.frame(true, 0, op::TEXT, &bytes);
            c.send_chopped(&wire, 1, Duration::ZERO);
            c.expect_close(1007);
        });
    }
    cases.case(
        "6.23.1 valid message echoed, then an invalid one -> 1007",
        || {
            let mut c = server.connect();
            c.send_text("κόσμε".as_bytes());
            c.expect_text("κόσμε".as_bytes());
            c.send_text(b"\xce\xba\xe1\xbd\xff");
            c.expect_close(1007);
        },
    );
    cases.case(
        "6.23.1.b valid and invalid message in one write -> echo, 1007",
        || {
            let mut c = server.connect();
            let mut wire = c.frame(true, 0, op::TEXT, "κόσμε".as_bytes());
            wire.extend(c.frame(true, 0, op::TEXT, b"\xce\xba\xe1\xbd\xff"));
            c.send_raw(&wire);
            c.expect_echo_then_close(op::TEXT, "κόσμε".as_bytes(), 1007);
        },
    );
    cases.case(
        "6.23.2 message ends inside a code point at a fragment border -> 1007",
        || {
            let mut c = server.connect();
            let mut wire = c.frame(false, 0, op::TEXT, b"abc\xe2\x82");
            wire.extend(c.frame(true, 0, op::CONT, b""));
            c.send_raw(&wire);
            c.expect_close(1007);
        },
    );
    cases.case(
        "6.23.3 code point completed by the wrong continuation -> 1007",
        || {
            let mut c = server.connect();
            let mut wire = c.frame(false, 0, op::TEXT, b"abc\xe2\x82");
            wire.extend(c.frame(true, 0, op::CONT, b"a"));
            c.send_raw(&wire);
            c.expect_close(1007);
        },
    );
    cases.case("6.23.4 invalid UTF-8 in a binary message is fine", || {
        let mut c = server.connect();
        c.send_binary(b"\xff\xfe\xed\xa0\x80\xc0\xaf");
        c.expect_binary(b"\xff\xfe\xed\xa0\x80\xc0\xaf");
        close_ok(&mut c);
    });
    cases.finish();
}

/// Fail fast (§8.1 "MUST _Fail the WebSocket Connection_" as soon as invalid data is seen):
/// a text frame declares a long payload; only the header, a valid prefix and the first byte
/// that makes the text invalid are sent, never the rest. The close 1007 must come anyway.
#[test]
fn g6_utf8_fail_fast() {
    let server = EchoServer::start();
    let mut cases = Cases::new("6.4 fail fast");
    let kosme = "κόσμε".as_bytes();
    for (id, prefix) in fail_fast_prefixes() {
        cases.case(&format!("{id}: rest of the frame never sent"), || {
            let mut c = server.connect();
            let declared = (prefix.len() + 64 * KIB) as u64;
            let wire = c.partial_frame(true, op::TEXT, declared, &prefix);
            c.send_raw(&wire);
            c.expect_close(1007);
        });
    }
    cases.case(
        "6.4.9 invalid byte in a later write than the valid prefix",
        || {
            let mut c = server.connect();
            let wire = c.partial_frame(
                true,
                op::TEXT,
                (64 * KIB) as u64,
                &[kosme, b"\xf4\x90"].concat(),
            );
            c.send_raw(&wire[..wire.len() - 1]);
            std::thread::sleep(Duration::from_millis(50));
            c.send_raw(&wire[wire.len() - 1..]);
            c.expect_close(1007);
        },
    );
    cases.case(
        "6.4.10 invalid bytes early in a long second fragment",
        || {
            let mut c = server.connect();
            let mut wire = c.frame(false, 0, op::TEXT, kosme);
            wire.extend(c.partial_frame(true, op::CONT, (64 * KIB) as u64, b"ab\xed\xa0"));
            c.send_raw(&wire);
            c.expect_close(1007);
        },
    );
    cases.case("6.4.11 sequence broken across a fragment border", || {
        let mut c = server.connect();
        let mut wire = c.frame(false, 0, op::TEXT, &[kosme, b"\xf4"].concat());
        wire.extend(c.partial_frame(true, op::CONT, (64 * KIB) as u64, b"\x90"));
        c.send_raw(&wire);
        c.expect_close(1007);
    });
    cases.finish();
}

// ------------------------------------------------------------------------------------------
// 7 Close (§5.5.1, §7.1-7.4)
// ------------------------------------------------------------------------------------------

#[test]
fn g7_close_handshake() {
    let server = EchoServer::start();
    let mut cases = Cases::new("7.1 closing handshake");
    cases.case(
        "7.1.1 text echoed, then close 1000 echoed, server closes TCP",
        || {
            let mut c = server.connect();
            c.send_text(b"Hello World!");
            c.expect_text(b"Hello World!");
            close_ok(&mut c);
        },
    );
    cases.case("7.1.2 close twice: one close echoed", || {
        let mut c = server.connect();
        let mut wire = c.frame(true, 0, op::CLOSE, &close_payload(1000, b""));
        wire.extend(c.frame(true, 0, op::CLOSE, &close_payload(1000, b"")));
        c.send_raw(&wire);
        c.expect_close(1000);
    });
    cases.case("7.1.3 close, then ping: no pong", || {
        let mut c = server.connect();
        let mut wire = c.frame(true, 0, op::CLOSE, &close_payload(1000, b""));
        wire.extend(c.frame(true, 0, op::PING, b"Hello World!"));
        c.send_raw(&wire);
        c.expect_close(1000);
    });
    cases.case("7.1.4 close, then text: no echo", || {
        let mut c = server.connect();
        let mut wire = c.frame(true, 0, op::CLOSE, &close_payload(1000, b""));
        wire.extend(c.frame(true, 0, op::TEXT, b"Hello World!"));
        c.send_raw(&wire);
        c.expect_close(1000);
    });
    cases.case(
        "7.1.4.b close, then a ping in a later write: no pong",
        || {
            let mut c = server.connect();
            c.send_close(1000, b"");
            c.expect_close_frame(1000);
            c.send_ping(b"late");
            c.expect_eof();
        },
    );
    cases.case(
        "7.1.5 text fragment, close, continuation: no message",
        || {
            let mut c = server.connect();
            let mut wire = c.frame(false, 0, op::TEXT, b"fragment1");
            wire.extend(c.frame(true, 0, op::CLOSE, &close_payload(1000, b"")));
            wire.extend(c.frame(true, 0, op::CONT, b"fragment2"));
            c.send_raw(&wire);
            c.expect_close(1000);
        },
    );
    cases.case(
        "7.1.6 256 KiB text, close, ping in one write: echo, close, no pong",
        || {
            let mut c = server.connect();
            let text = utf8_text(256 * KIB);
            let mut wire = c.frame(true, 0, op::TEXT, &text);
            wire.extend(c.frame(true, 0, op::CLOSE, &close_payload(1000, b"")));
            wire.extend(c.frame(true, 0, op::PING, b"Hello World!"));
            c.send_raw(&wire);
            c.expect_echo_then_close(op::TEXT, &text, 1000);
        },
    );
    cases.case("7.1.7 close chopped one byte per write", || {
        let mut c = server.connect();
        let wire = c.frame(true, 0, op::CLOSE, &close_payload(1001, b"going away"));
        c.send_chopped(&wire, 1, MS);
        c.expect_close(1001);
    });
    cases.finish();
}

#[test]
fn g7_close_payloads() {
    let server = EchoServer::start();
    let mut cases = Cases::new("7.3/7.5 close payloads");
    cases.case(
        "7.3.1 close without payload: echoed without payload (1005)",
        || {
            let mut c = server.connect();
            c.send_frame(true, 0, op::CLOSE, b"");
            c.expect_close_payload(b"");
        },
    );
    cases.case("7.3.2 close with a 1-byte payload -> 1002", || {
        let mut c = server.connect();
        c.send_frame(true, 0, op::CLOSE, b"a");
        c.expect_close(1002);
    });
    cases.case("7.3.3 close 1000 without reason", || {
        let mut c = server.connect();
        c.send_close(1000, b"");
        c.expect_close(1000);
    });
    cases.case("7.3.4 close 1000 with a reason", || {
        let mut c = server.connect();
        c.send_close(1000, b"Hello World!");
        c.expect_close(1000);
    });
    cases.case("7.3.5 close 1000 with a 123-byte reason", || {
        let mut c = server.connect();
        c.send_close(1000, &[b'*'; 123]);
        c.expect_close(1000);
    });
    cases.case(
        "7.3.5.b close with a 123-byte multibyte UTF-8 reason",
        || {
            let mut c = server.connect();
            let reason = utf8_text(123);
            c.send_close(1000, &reason);
            c.expect_close(1000);
        },
    );
    cases.case(
        "7.3.6 close 1000 with a 124-byte reason (payload 126) -> 1002",
        || {
            let mut c = server.connect();
            c.send_close(1000, &[b'*'; 124]);
            c.expect_close(1002);
        },
    );
    cases.case("7.5.1 close reason with invalid UTF-8 -> 1007", || {
        let mut c = server.connect();
        c.send_close(
            1000,
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited",
        );
        c.expect_close(1007);
    });
    cases.case("7.5.2 close reason cut inside a code point -> 1007", || {
        let mut c = server.connect();
        c.send_close(1000, b"ok \xe2\x82");
        c.expect_close(1007);
    });
    cases.finish();
}

#[test]
fn g7_close_codes() {
    let server = EchoServer::start();
    let mut cases = Cases::new("7.7/7.9/7.13 close codes");
    let valid = [
        1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999, 4000,
        4999,
    ];
    for (i, code) in valid.into_iter().enumerate() {
        cases.case(&format!("7.7.{} valid code {code} echoed", i + 1), || {
            let mut c = server.connect();
            c.send_close(code, b"");
            c.expect_close(code);
        });
    }
    let invalid = [
        0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
    ];
    for (i, code) in invalid.into_iter().enumerate() {
        cases.case(
            &format!("7.9.{} invalid code {code} -> 1002", i + 1),
            || {
                let mut c = server.connect();
                c.send_close(code, b"");
                c.expect_close(1002);
            },
        );
    }
    cases.finish();
}

// ------------------------------------------------------------------------------------------
// 9 Large messages, 10 automatic fragmentation, limits (1009)
// ------------------------------------------------------------------------------------------

const LARGE: [usize; 5] = [64 * KIB, 256 * KIB, MIB, 4 * MIB, 16 * MIB];

fn large_cases(name: &str, groups: [u8; 2], fragment: Option<usize>) {
    let server = EchoServer::start();
    let mut cases = Cases::new(name);
    for (i, &len) in LARGE.iter().enumerate() {
        let how = fragment.map_or("one frame".to_owned(), |f| {
            format!("{} KiB fragments", f / KIB)
        });
        for (kind, opcode) in [("text", op::TEXT), ("binary", op::BINARY)] {
            let group = groups[usize::from(opcode == op::BINARY)];
            let id = format!("9.{group}.{} {kind} of {} KiB in {how}", i + 1, len / KIB);
            cases.case(&id, || {
                let mut c = server.connect();
                let payload = if opcode == op::TEXT {
                    utf8_text(len)
                } else {
                    binary_data(len, len as u32)
                };
                match fragment {
                    None => c.send_frame(true, 0, opcode, &payload),
                    Some(f) => c.send_fragmented(opcode, &payload, f),
                }
                c.expect_message(opcode, &payload);
                close_ok(&mut c);
            });
        }
    }
    cases.finish();
}

#[test]
fn g9_large_messages_one_frame() {
    large_cases("9 large messages, one frame", [1, 2], None);
}

#[test]
fn g9_large_messages_4k_fragments() {
    large_cases("9 large messages, 4 KiB fragments", [3, 4], Some(4 * KIB));
}

#[test]
fn g9_large_messages_64k_fragments() {
    large_cases(
        "9 large messages, 64 KiB fragments",
        [30, 40],
        Some(64 * KIB),
    );
}

#[test]
fn g9_chopped_and_many_messages() {
    let server = EchoServer::start();
    let mut cases = Cases::new("9 chopped and many");
    for chop in [64, 4 * KIB] {
        cases.case(
            &format!("9.5 1 MiB text written in chops of {chop}"),
            || {
                let mut c = server.connect();
                let text = utf8_text(MIB);
                let wire = c.frame(true, 0, op::TEXT, &text);
                c.send_chopped(&wire, chop, Duration::ZERO);
                c.expect_text(&text);
                close_ok(&mut c);
            },
        );
        cases.case(
            &format!("9.6 1 MiB binary written in chops of {chop}"),
            || {
                let mut c = server.connect();
                let data = binary_data(MIB, 96);
                let wire = c.frame(true, 0, op::BINARY, &data);
                c.send_chopped(&wire, chop, Duration::ZERO);
                c.expect_binary(&data);
                close_ok(&mut c);
            },
        );
    }
    for size in [0, 64, 4 * KIB] {
        cases.case(
            &format!("9.7 1000 text messages of {size} bytes in one write"),
            || {
                let mut c = server.connect();
                let mut wire = Vec::new();
                // Numbered (when there is room) so that a reordering would show.
                let texts: Vec<Vec<u8>> = (0..1000)
                    .map(|i| match size {
                        0 => Vec::new(),
                        _ => [format!("{i:04}").into_bytes(), utf8_text(size - 4)].concat(),
                    })
                    .collect();
                for t in &texts {
                    wire.extend(c.frame(true, 0, op::TEXT, t));
                }
                c.send_raw(&wire);
                for t in &texts {
                    c.expect_text(t);
                }
                close_ok(&mut c);
            },
        );
    }
    cases.finish();
}

#[test]
fn g10_auto_fragmentation() {
    let server = EchoServer::start();
    let mut cases = Cases::new("10 automatic fragmentation");
    // The server splits what it sends into frames of at most 64 KiB (its fragment_size).
    let expected = |len: usize| -> Vec<usize> {
        let mut sizes = vec![64 * KIB; len / (64 * KIB)];
        if len % (64 * KIB) != 0 || len == 0 {
            sizes.push(len % (64 * KIB));
        }
        sizes
    };
    for (kind, opcode) in [("text", op::TEXT), ("binary", op::BINARY)] {
        for len in [64 * KIB, 64 * KIB + 1, 16 * MIB] {
            cases.case(
                &format!("10.1 {kind} of {len} bytes echoed in 64 KiB frames"),
                || {
                    let mut c = server.connect();
                    let payload = if opcode == op::TEXT {
                        utf8_text(len)
                    } else {
                        binary_data(len, 10)
                    };
                    c.send_frame(true, 0, opcode, &payload);
                    assert_eq!(c.expect_message(opcode, &payload), expected(len));
                    close_ok(&mut c);
                },
            );
        }
    }
    cases.finish();
}

#[test]
fn limits_1009() {
    let server = EchoServer::start();
    let mut cases = Cases::new("limits");
    cases.case(
        "L.1 binary frame declaring 2^40 bytes -> 1009 before any payload",
        || {
            let mut c = server.connect();
            let header = c.header(true, 0, op::BINARY, 1 << 40);
            c.send_raw(&header);
            c.expect_close(1009);
        },
    );
    cases.case(
        "L.2 text frame declaring 2^40 bytes -> 1009 before any payload",
        || {
            let mut c = server.connect();
            let header = c.header(true, 0, op::TEXT, 1 << 40);
            c.send_raw(&header);
            c.expect_close(1009);
        },
    );
    cases.case(
        "L.3 frame declaring 16 MiB + 1 (over max_frame_size) -> 1009",
        || {
            let mut c = server.connect();
            let header = c.header(true, 0, op::BINARY, (16 * MIB + 1) as u64);
            c.send_raw(&header);
            c.expect_close(1009);
        },
    );
    cases.case("L.4 continuation declaring 2^40 bytes -> 1009", || {
        let mut c = server.connect();
        let mut wire = c.frame(false, 0, op::BINARY, b"start");
        wire.extend(c.header(true, 0, op::CONT, 1 << 40));
        c.send_raw(&wire);
        c.expect_close(1009);
    });
    cases.case("L.5 fragmented message growing past 64 MiB -> 1009", || {
        let mut c = server.connect();
        let chunk = binary_data(16 * MIB, 5);
        for i in 0..4 {
            let opcode = if i == 0 { op::BINARY } else { op::CONT };
            c.send_frame(false, 0, opcode, &chunk);
        }
        let header = c.header(true, 0, op::CONT, 1);
        c.send_raw(&header);
        c.expect_close(1009);
    });
    cases.case(
        "L.6 ping declaring 2^40 bytes -> 1002 before any payload",
        || {
            // §5.5 (control frame over 125 bytes) and the frame limit both apply; the control
            // frame rule comes first: "All control frames MUST have a payload length of 125
            // bytes or less", a protocol error (1002), whatever the configured limit.
            let mut c = server.connect();
            c.send_raw(&encode_header(
                true,
                0,
                op::PING,
                Some([1, 2, 3, 4]),
                1 << 40,
            ));
            let frame = c.next_frame("a close frame");
            assert_eq!(frame.opcode, op::CLOSE, "{frame:?}");
            let code = u16::from_be_bytes([frame.payload[0], frame.payload[1]]);
            assert_eq!(code, 1002, "close code");
            c.expect_eof();
        },
    );
    cases.finish();
}
