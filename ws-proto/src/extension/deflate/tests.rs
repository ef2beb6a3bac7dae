//! RFC 7692 byte for byte, the negotiation tables of both roles, and the inflation limit.

use std::sync::Arc;
use std::time::Instant;

use super::codec::{Compressor, Decompressor, Settings};
use super::{DeflateConfig, PerMessageDeflate};
use crate::extension::{ExtensionError, ExtensionFactory};
use crate::handshake::{parse_extensions, ExtensionOffer, HandshakeError};
use crate::{Accept, ClientRequest, CloseCode, Config, Connection, Error, Event, ProtocolError};

fn element(header: &str) -> ExtensionOffer {
    let mut all = parse_extensions(header.as_bytes()).unwrap();
    assert_eq!(all.len(), 1, "{header}");
    all.remove(0)
}

/// Windows of 15 bits both ways, and nothing asked of the peer.
fn wide() -> DeflateConfig {
    DeflateConfig {
        server_max_window_bits: 15,
        client_max_window_bits: 15,
        ..DeflateConfig::default()
    }
}

fn settings(window_bits: u8) -> Settings {
    Settings {
        level: 6,
        mem_level: 8,
        window_bits,
    }
}

// ---------------------------------------------------------------------------------------------
// §7.2.3: the examples, byte for byte
// ---------------------------------------------------------------------------------------------

const HELLO: [u8; 7] = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];

#[test]
fn compressing_hello_gives_the_bytes_of_7_2_3_1() {
    let mut with_takeover = Compressor::new(settings(15), true, false);
    assert_eq!(with_takeover.compress(b"Hello"), HELLO);
    // §7.2.3.2: the same message again, with the window taken over.
    assert_eq!(
        with_takeover.compress(b"Hello"),
        [0xf2, 0x00, 0x11, 0x00, 0x00]
    );

    let mut without = Compressor::new(settings(15), false, false);
    assert_eq!(without.compress(b"Hello"), HELLO);
    assert_eq!(without.compress(b"Hello"), HELLO);
}

#[test]
fn a_hibernated_compressor_resumes_from_its_history() {
    // The RFC's second "Hello" refers to the first; after hibernating, the rebuilt stream
    // still finds it (the history is its dictionary) and the bytes are the same.
    let mut c = Compressor::new(settings(15), true, true);
    let mut d = Decompressor::new(15, true, false);
    assert_eq!(c.compress(b"Hello"), HELLO);
    c.hibernate();
    let second = c.compress(b"Hello");
    assert_eq!(second, [0xf2, 0x00, 0x11, 0x00, 0x00]);
    // And a long history: only the last 2^window_bits bytes are kept, and what refers to
    // them inflates with a window that kept everything.
    let mut c = Compressor::new(settings(9), true, true);
    let mut d9 = Decompressor::new(9, true, true);
    for i in 0..50 {
        let message = format!(
            "message {i}: {}",
            "lorem ipsum dolor sit amet ".repeat(i % 7)
        );
        let compressed = c.compress(message.as_bytes());
        if i % 3 == 0 {
            c.hibernate();
        }
        if i % 4 == 0 {
            d9.hibernate();
        }
        let mut out = Vec::new();
        d9.decompress(&compressed, true, &mut out, 1 << 20).unwrap();
        assert_eq!(out, message.as_bytes());
    }
    let mut out = Vec::new();
    d.decompress(&HELLO, true, &mut out, 100).unwrap();
    d.decompress(&second, true, &mut out, 100).unwrap();
    assert_eq!(out, b"HelloHello");
}

#[test]
fn an_idle_connection_hibernates_its_compressor_on_time() {
    let now = Instant::now();
    let (mut c, mut s) = open_pair(
        Some(DeflateConfig::default()),
        Some(DeflateConfig::default()),
    );
    // Nothing to free before a message.
    assert_eq!(s.poll_timeout(), None);
    s.send_text(json_like(1)).unwrap();
    let deadline = s
        .poll_timeout()
        .expect("the hibernate timer runs after a message");
    assert_eq!(deadline.duration_since(now).as_secs(), 1);
    // A message during the period: one more period before hibernating.
    s.handle_timeout(deadline);
    let second = s.poll_timeout().expect("another period");
    assert_eq!(second.duration_since(deadline).as_secs(), 1);
    s.handle_timeout(second);
    assert_eq!(
        s.poll_timeout(),
        None,
        "hibernated: no timer until the next message"
    );
    // Messages after hibernating decode with the client's window as it was.
    s.send_text(json_like(1)).unwrap();
    s.send_text(json_like(2)).unwrap();
    pump(&mut s, &mut c, now);
    assert_eq!(c.poll_event(), Some(Event::Text(json_like(1))));
    assert_eq!(c.poll_event(), Some(Event::Text(json_like(1))));
    assert_eq!(c.poll_event(), Some(Event::Text(json_like(2))));
    // Without context takeover either way there is nothing to hibernate: no timer.
    let reset = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..DeflateConfig::default()
    };
    let (_c, mut s) = open_pair(Some(DeflateConfig::default()), Some(reset));
    s.send_text(json_like(1)).unwrap();
    assert_eq!(s.poll_timeout(), None);
    // Nor when hibernation is off.
    let keep = DeflateConfig {
        hibernate_after: None,
        ..DeflateConfig::default()
    };
    let (_c, mut s) = open_pair(Some(DeflateConfig::default()), Some(keep));
    s.send_text(json_like(1)).unwrap();
    assert_eq!(s.poll_timeout(), None);
}

#[test]
fn a_stream_restarted_after_a_final_block_keeps_the_window() {
    // §7.2.2: the window carries over, also when the previous message ended its DEFLATE
    // stream with BFINAL (§7.2.3.4): the second "Hello" refers to the first.
    let bfinal: &[u8] = &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
    assert_eq!(
        inflate_messages(15, true, &[bfinal, &[0xf2, 0x00, 0x11, 0x00, 0x00]]),
        [b"Hello".to_vec(), b"Hello".to_vec()]
    );
}

#[test]
fn a_compressed_message_without_payload_is_empty_and_changes_nothing() {
    let mut d = Decompressor::new(15, true, false);
    let mut out = Vec::new();
    d.decompress(&[], true, &mut out, 100).unwrap();
    assert!(out.is_empty());
    d.decompress(&HELLO, true, &mut out, 100).unwrap();
    assert_eq!(out, b"Hello");
}

#[test]
fn hibernation_waits_for_the_end_of_a_message_being_received() {
    let now = Instant::now();
    let (mut c, mut s) = open_pair(
        Some(DeflateConfig::default()),
        Some(DeflateConfig::default()),
    );
    let text = format!("{}{}", json_like(1), json_like(2));
    c.send_text(text.clone()).unwrap();
    let wire = c.pending_output().to_vec();
    // One frame, 2-byte header (a length under 126), 4-byte mask.
    assert!(wire[1] & 0x7f < 126);
    let key = [wire[2], wire[3], wire[4], wire[5]];
    let payload: Vec<u8> = wire[6..]
        .iter()
        .enumerate()
        .map(|(i, b)| b ^ key[i % 4])
        .collect();
    let (first, second) = payload.split_at(payload.len() / 2);
    let frame = |fin: bool, opcode: u8, rsv1: bool, data: &[u8]| {
        let mut f = vec![
            (u8::from(fin) << 7) | (u8::from(rsv1) << 6) | opcode,
            0x80 | data.len() as u8,
        ];
        f.extend_from_slice(&[0, 0, 0, 0]);
        f.extend_from_slice(data);
        f
    };
    // A message sent first, so that the hibernate timer runs; then the two halves of the
    // compressed message, with long pauses between them.
    s.send_text(json_like(3)).unwrap();
    s.receive(&frame(false, 1, true, first), now);
    for pause in [2, 4, 6] {
        s.handle_timeout(now + std::time::Duration::from_secs(pause));
    }
    s.receive(
        &frame(true, 0, false, second),
        now + std::time::Duration::from_secs(6),
    );
    assert_eq!(s.poll_event(), Some(Event::Text(text)));
}

#[test]
fn an_empty_message_compresses_to_one_empty_block() {
    // An empty stored block after the sync flush's tail is removed: the single byte 0x00.
    assert_eq!(
        Compressor::new(settings(15), false, false).compress(b""),
        [0x00]
    );
    // Also after another message, and another empty one, with the context taken over (zlib
    // itself writes nothing for a second flush in a row); what follows still inflates.
    let mut c = Compressor::new(settings(15), true, false);
    let mut d = Decompressor::new(15, true, false);
    for message in [&b"Hello"[..], b"", b"", b"Hello"] {
        let mut out = Vec::new();
        d.decompress(&c.compress(message), true, &mut out, 100)
            .unwrap();
        assert_eq!(out, message);
    }
}

fn inflate_messages(window_bits: u8, takeover: bool, messages: &[&[u8]]) -> Vec<Vec<u8>> {
    let mut d = Decompressor::new(window_bits, takeover, false);
    messages
        .iter()
        .map(|m| {
            let mut out = Vec::new();
            d.decompress(m, true, &mut out, 1 << 20).unwrap();
            out
        })
        .collect()
}

#[test]
fn the_decoding_examples_of_7_2_3() {
    // §7.2.3.1, §7.2.3.2: a message, then the same one with the window shared.
    assert_eq!(
        inflate_messages(15, true, &[&HELLO, &[0xf2, 0x00, 0x11, 0x00, 0x00]]),
        [b"Hello".to_vec(), b"Hello".to_vec()]
    );
    // §7.2.3.3: a DEFLATE block with no compression.
    assert_eq!(
        inflate_messages(
            15,
            false,
            &[&[0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00]]
        ),
        [b"Hello".to_vec()]
    );
    // §7.2.3.4: a block with BFINAL set.
    assert_eq!(
        inflate_messages(
            15,
            true,
            &[&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00], &HELLO]
        ),
        [b"Hello".to_vec(), b"Hello".to_vec()]
    );
    // §7.2.3.5: two DEFLATE blocks in one message.
    assert_eq!(
        inflate_messages(
            15,
            false,
            &[&[0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00]]
        ),
        [b"Hello".to_vec()]
    );
    // §7.2.3.6: an empty block is an empty message.
    assert_eq!(inflate_messages(15, false, &[&[0x00]]), [Vec::<u8>::new()]);
}

#[test]
fn data_after_a_final_block_starts_a_new_stream_and_garbage_there_is_invalid() {
    // A final block, then a whole second stream with "Hello" again.
    let mut two = vec![0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
    two.extend_from_slice(&HELLO);
    assert_eq!(
        inflate_messages(15, true, &[&two]),
        [b"HelloHello".to_vec()]
    );
    // A final block and nothing else: the tail we append is ignored.
    assert_eq!(
        inflate_messages(15, true, &[&[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00]]),
        [b"Hello".to_vec()]
    );
    let mut d = Decompressor::new(15, true, false);
    let mut out = Vec::new();
    let err = d
        .decompress(
            &[0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0xff],
            true,
            &mut out,
            100,
        )
        .unwrap_err();
    assert!(matches!(err, ExtensionError::InvalidData(_)), "{err:?}");
}

#[test]
fn corrupt_data_is_invalid_data() {
    let mut d = Decompressor::new(15, true, false);
    let mut out = Vec::new();
    // BTYPE 11 (reserved).
    let err = d
        .decompress(&[0xff, 0xff], true, &mut out, 100)
        .unwrap_err();
    assert!(matches!(err, ExtensionError::InvalidData(_)), "{err:?}");
    assert_eq!(err.close_code(), CloseCode::INVALID_PAYLOAD);
}

// ---------------------------------------------------------------------------------------------
// The size limit holds while inflating
// ---------------------------------------------------------------------------------------------

/// `n` zero bytes compressed (about 1 KiB per MiB).
fn zeros_compressed(n: usize) -> Vec<u8> {
    Compressor::new(settings(15), false, false).compress(&vec![0u8; n])
}

#[test]
fn a_message_exactly_at_the_limit_inflates_and_one_byte_more_does_not() {
    let limit = 100_000;
    for (size, fits) in [(limit, true), (limit + 1, false)] {
        let mut d = Decompressor::new(15, false, false);
        let mut out = Vec::new();
        let result = d.decompress(&zeros_compressed(size), true, &mut out, limit);
        assert_eq!(result.is_ok(), fits, "{size}");
        assert!(
            out.len() <= limit && out.capacity() <= limit + 1,
            "{}",
            out.capacity()
        );
        if !fits {
            assert_eq!(result.unwrap_err(), ExtensionError::TooLarge);
        }
    }
}

#[test]
fn a_deflate_bomb_stops_at_the_limit_while_inflating() {
    // 64 MiB of zeros in about 64 KiB; the limit is 1 MiB.
    let bomb = zeros_compressed(64 << 20);
    assert!(bomb.len() < 128 << 10, "{}", bomb.len());
    let limit = 1 << 20;
    let mut d = Decompressor::new(15, false, false);
    let mut out = Vec::new();
    // Fed in pieces, as frames arrive: the error comes on the piece that crosses the limit.
    let mut result = Ok(());
    let mut fed = 0;
    for piece in bomb.chunks(1024) {
        fed += piece.len();
        result = d.decompress(piece, false, &mut out, limit);
        if result.is_err() {
            break;
        }
    }
    assert_eq!(result, Err(ExtensionError::TooLarge));
    assert!(fed < 4096, "stopped after {fed} bytes of input");
    assert!(out.capacity() <= limit + 1, "allocated {}", out.capacity());
}

// ---------------------------------------------------------------------------------------------
// Negotiation (§7.1), server side
// ---------------------------------------------------------------------------------------------

fn server_answer(config: DeflateConfig, offer: &str) -> Option<String> {
    PerMessageDeflate::new(config)
        .accept(&element(offer))
        .map(|(_, answer)| answer.to_string())
}

#[test]
fn server_negotiation_table() {
    let d = DeflateConfig::default();
    let takeover_off = DeflateConfig {
        server_no_context_takeover: true,
        client_no_context_takeover: true,
        ..DeflateConfig::default()
    };
    let wide = wide();
    let table: &[(&DeflateConfig, &str, Option<&str>)] = &[
        (&d, "permessage-deflate",
            Some("permessage-deflate; server_max_window_bits=12")),
        // Chromium's and Firefox's offer.
        (&d, "permessage-deflate; client_max_window_bits",
            Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12")),
        (&d, "permessage-deflate; client_max_window_bits=10",
            Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=10")),
        (&d, "permessage-deflate; server_max_window_bits=9",
            Some("permessage-deflate; server_max_window_bits=9")),
        (&d, "permessage-deflate; server_max_window_bits=15",
            Some("permessage-deflate; server_max_window_bits=12")),
        (&d, "permessage-deflate; server_max_window_bits=8",
            Some("permessage-deflate; server_max_window_bits=8")),
        (&d, "permessage-deflate; server_no_context_takeover",
            Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=12")),
        (&d, "permessage-deflate; client_no_context_takeover",
            Some("permessage-deflate; client_no_context_takeover; server_max_window_bits=12")),
        (&d, "permessage-deflate; server_max_window_bits=\"10\"",
            Some("permessage-deflate; server_max_window_bits=10")),
        (&d, "PERMESSAGE-DEFLATE; Client_Max_Window_Bits", None),
        (&takeover_off, "permessage-deflate",
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover; server_max_window_bits=12")),
        (&wide, "permessage-deflate", Some("permessage-deflate")),
        (&wide, "permessage-deflate; client_max_window_bits",
            Some("permessage-deflate; client_max_window_bits=15")),
        // Declined (§5): unknown, repeated or invalid parameters.
        (&d, "permessage-deflate; foo", None),
        (&d, "permessage-deflate; server_max_window_bits", None),
        (&d, "permessage-deflate; server_max_window_bits=16", None),
        (&d, "permessage-deflate; server_max_window_bits=7", None),
        (&d, "permessage-deflate; server_max_window_bits=010", None),
        (&d, "permessage-deflate; server_max_window_bits=1x", None),
        (&d, "permessage-deflate; client_max_window_bits=0", None),
        (&d, "permessage-deflate; client_max_window_bits=16", None),
        (&d, "permessage-deflate; server_no_context_takeover=1", None),
        (&d, "permessage-deflate; client_no_context_takeover; client_no_context_takeover", None),
        (&d, "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", None),
        (&d, "permessage-deflate; client_max_window_bits; client_max_window_bits=10", None),
    ];
    for (config, offer, expected) in table {
        // The name's case is the connection's business: the factory sees only its own name.
        if offer.starts_with("PERMESSAGE") {
            continue;
        }
        assert_eq!(
            server_answer((*config).clone(), offer).as_deref(),
            *expected,
            "offer {offer:?}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Whole connections: several offers, the client's checks, messages both ways
// ---------------------------------------------------------------------------------------------

fn pump(from: &mut Connection, to: &mut Connection, now: Instant) {
    while !from.pending_output().is_empty() {
        let n = from.pending_output().len();
        to.receive(from.pending_output(), now);
        from.advance_output(n);
    }
}

fn config_with(deflate: Option<DeflateConfig>) -> Config {
    let mut config = Config::default();
    if let Some(d) = deflate {
        config.extensions.push(Arc::new(PerMessageDeflate::new(d)));
    }
    config
}

/// A server with `server` settings answering a raw request carrying `offers` (one header
/// value each): the response head.
fn server_response_to(server: Option<DeflateConfig>, offers: &[&str]) -> String {
    let now = Instant::now();
    let mut conn = Connection::server(config_with(server), now);
    let mut request = String::from(
        "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n",
    );
    for offer in offers {
        request.push_str(&format!("Sec-WebSocket-Extensions: {offer}\r\n"));
    }
    request.push_str("\r\n");
    conn.receive(request.as_bytes(), now);
    match conn.poll_event() {
        Some(Event::Request(_)) => {
            conn.accept(Accept::default(), now).unwrap();
            String::from_utf8(conn.pending_output().to_vec()).unwrap()
        }
        other => {
            let head = String::from_utf8_lossy(conn.pending_output()).into_owned();
            format!("{other:?} {head}")
        }
    }
}

fn extensions_header(response: &str) -> Option<&str> {
    response
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Extensions: "))
}

#[test]
fn a_server_takes_the_first_acceptable_offer_from_one_or_several_headers() {
    let d = Some(DeflateConfig::default());
    // The first offer is invalid: declined, the second accepted.
    let one_header = server_response_to(
        d.clone(),
        &["permessage-deflate; server_max_window_bits=99, permessage-deflate; client_max_window_bits"],
    );
    assert_eq!(
        extensions_header(&one_header),
        Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12")
    );
    let two_headers = server_response_to(
        d.clone(),
        &[
            "permessage-deflate; foo",
            "permessage-deflate; server_no_context_takeover",
        ],
    );
    assert_eq!(
        extensions_header(&two_headers),
        Some("permessage-deflate; server_no_context_takeover; server_max_window_bits=12")
    );
    // Every offer declined: the connection opens without compression (101, no header).
    let none = server_response_to(d.clone(), &["permessage-deflate; foo=bar"]);
    assert!(none.starts_with("HTTP/1.1 101"), "{none}");
    assert_eq!(extensions_header(&none), None);
    // Unknown extensions are ignored; a server without deflate answers without it.
    let other = server_response_to(d, &["x-webkit-deflate-frame, permessage-deflate"]);
    assert_eq!(
        extensions_header(&other),
        Some("permessage-deflate; server_max_window_bits=12")
    );
    assert_eq!(
        extensions_header(&server_response_to(None, &["permessage-deflate"])),
        None
    );
    // A header that breaks the §9.1 grammar is a bad request.
    let malformed = server_response_to(Some(DeflateConfig::default()), &["permessage-deflate;;"]);
    assert!(malformed.contains("HTTP/1.1 400"), "{malformed}");
}

/// A client with `client` settings receiving a 101 response whose extensions header is
/// `response`: the handshake's outcome.
fn client_outcome(client: DeflateConfig, response: &str) -> Result<(), HandshakeError> {
    let now = Instant::now();
    let mut conn = Connection::client(config_with(Some(client)), ClientRequest::new("x", "/"), now);
    let request = String::from_utf8(conn.pending_output().to_vec()).unwrap();
    let key = request
        .lines()
        .find_map(|l| l.strip_prefix("Sec-WebSocket-Key: "))
        .unwrap();
    let n = conn.pending_output().len();
    conn.advance_output(n);
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Extensions: {response}\r\n\r\n",
        crate::handshake::accept_key(key.as_bytes())
    );
    conn.receive(head.as_bytes(), now);
    match conn.poll_event() {
        Some(Event::Open(_)) => Ok(()),
        Some(Event::Error(Error::Handshake(e))) => {
            assert!(
                conn.is_terminated(),
                "a refused response fails the connection"
            );
            Err(e)
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn client_negotiation_table() {
    let d = DeflateConfig::default(); // offers server_max_window_bits=12; client_max_window_bits=12
    let asks_reset = DeflateConfig {
        server_no_context_takeover: true,
        ..DeflateConfig::default()
    };
    let wide = wide();
    let ok: &[(&DeflateConfig, &str)] = &[
        (&d, "permessage-deflate; server_max_window_bits=12"),
        (
            &d,
            "permessage-deflate; server_max_window_bits=9; client_max_window_bits=8",
        ),
        (
            &d,
            "permessage-deflate; server_max_window_bits=12; client_no_context_takeover",
        ),
        (
            &d,
            "permessage-deflate; server_max_window_bits=12; server_no_context_takeover",
        ),
        (
            &asks_reset,
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=10",
        ),
        (&wide, "permessage-deflate"),
        (&wide, "permessage-deflate; server_max_window_bits=10"),
        (&wide, "permessage-deflate; client_max_window_bits=15"),
    ];
    for (config, response) in ok {
        assert_eq!(
            client_outcome((*config).clone(), response),
            Ok(()),
            "{response}"
        );
    }
    let refused: &[(&DeflateConfig, &str)] = &[
        // Parameters that are unknown, repeated or invalid.
        (&d, "permessage-deflate; server_max_window_bits=12; foo"),
        (
            &d,
            "permessage-deflate; server_max_window_bits=12; server_max_window_bits=12",
        ),
        (&d, "permessage-deflate; server_max_window_bits=16"),
        (&d, "permessage-deflate; server_max_window_bits"),
        // Beyond what was offered, or dropping what was asked for.
        (&d, "permessage-deflate"),
        (&d, "permessage-deflate; server_max_window_bits=13"),
        (
            &d,
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=13",
        ),
        (
            &d,
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits",
        ),
        (&asks_reset, "permessage-deflate; server_max_window_bits=12"),
    ];
    for (config, response) in refused {
        let outcome = client_outcome((*config).clone(), response);
        assert!(
            matches!(
                outcome,
                Err(HandshakeError::ExtensionRefused(
                    ExtensionError::Negotiation(_)
                ))
            ),
            "{response}: {outcome:?}"
        );
    }
    // An extension that was not offered, or deflate twice.
    assert_eq!(
        client_outcome(d.clone(), "x-other"),
        Err(HandshakeError::UnexpectedExtension)
    );
    assert_eq!(
        client_outcome(
            d,
            "permessage-deflate; server_max_window_bits=12, permessage-deflate; server_max_window_bits=12"
        ),
        Err(HandshakeError::UnexpectedExtension)
    );
}

/// A client and a server, both with deflate (or only one of them), after the handshake.
fn open_pair(
    client: Option<DeflateConfig>,
    server: Option<DeflateConfig>,
) -> (Connection, Connection) {
    open_pair_with(config_with(client), config_with(server))
}

/// A client and a server with these configurations, after the handshake.
fn open_pair_with(client: Config, server: Config) -> (Connection, Connection) {
    let now = Instant::now();
    let mut c = Connection::client(client, ClientRequest::new("x", "/"), now);
    let mut s = Connection::server(server, now);
    pump(&mut c, &mut s, now);
    assert!(matches!(s.poll_event(), Some(Event::Request(_))));
    s.accept(Accept::default(), now).unwrap();
    assert!(matches!(s.poll_event(), Some(Event::Open(_))));
    pump(&mut s, &mut c, now);
    assert!(matches!(c.poll_event(), Some(Event::Open(_))));
    (c, s)
}

fn json_like(i: usize) -> String {
    format!(
        r#"{{"id":{i},"user":"participant-{i}","text":"the same chat message, again and again","tags":["a","b","c"]}}"#
    )
}

#[test]
fn messages_round_trip_compressed_in_both_directions_with_and_without_takeover() {
    for takeover in [true, false] {
        let config = DeflateConfig {
            server_no_context_takeover: !takeover,
            client_no_context_takeover: !takeover,
            ..DeflateConfig::default()
        };
        let (mut c, mut s) = open_pair(Some(config.clone()), Some(config));
        let now = Instant::now();
        let mut wire = 0;
        for i in 0..20 {
            let text = json_like(i);
            c.send_text(text.clone()).unwrap();
            wire += c.pending_output().len();
            pump(&mut c, &mut s, now);
            assert_eq!(s.poll_event(), Some(Event::Text(text.clone())));
            s.send_binary(text.clone().into_bytes()).unwrap();
            pump(&mut s, &mut c, now);
            assert_eq!(c.poll_event(), Some(Event::Binary(text.into_bytes())));
        }
        let plain: usize = (0..20).map(|i| json_like(i).len() + 6).sum();
        assert!(
            wire < plain,
            "takeover {takeover}: {wire} bytes on the wire, {plain} plain"
        );
    }
}

#[test]
fn small_messages_and_control_frames_go_uncompressed() {
    let (mut c, mut s) = open_pair(
        Some(DeflateConfig::default()),
        Some(DeflateConfig::default()),
    );
    s.send_text("hi").unwrap();
    assert_eq!(
        s.pending_output(),
        b"\x81\x02hi",
        "below min_size: RSV1 clear, plain"
    );
    s.ping(b"ping").unwrap();
    let out = s.pending_output();
    assert_eq!(
        &out[4..],
        b"\x89\x04ping",
        "control frames are never compressed"
    );
    pump(&mut s, &mut c, Instant::now());
    assert_eq!(c.poll_event(), Some(Event::Text("hi".into())));
}

#[test]
fn a_large_message_is_compressed_once_and_fragmented_with_rsv1_on_the_first_frame_only() {
    let config = Config {
        fragment_size: 100,
        ..config_with(Some(DeflateConfig::default()))
    };
    let now = Instant::now();
    let (mut c, mut s) = open_pair_with(config_with(Some(DeflateConfig::default())), config);
    // Incompressible-ish data, so that the compressed message spans several frames.
    let data: Vec<u8> = (0..2000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    s.send_binary(data.clone()).unwrap();
    let out = s.pending_output().to_vec();
    assert_eq!(out[0], 0x40 | 0x02, "first frame: RSV1, binary, not final");
    assert_eq!(out[2 + 100], 0x00, "second frame: continuation, no RSV1");
    pump(&mut s, &mut c, now);
    assert_eq!(c.poll_event(), Some(Event::Binary(data)));
}

#[test]
fn rfc_examples_through_a_connection_fragmented_and_shared() {
    let (mut c, _s) = open_pair(Some(wide()), Some(wide()));
    let now = Instant::now();
    // §7.2.3.1: "Hello" in one frame, then fragmented in two, then §7.2.3.2's shared window.
    c.receive(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], now);
    c.receive(
        &[
            0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
        ],
        now,
    );
    c.receive(&[0xc1, 0x05, 0xf2, 0x00, 0x11, 0x00, 0x00], now);
    for _ in 0..3 {
        assert_eq!(c.poll_event(), Some(Event::Text("Hello".into())));
    }
    // An uncompressed message (RSV1 clear) between compressed ones.
    c.receive(b"\x81\x05Hello", now);
    assert_eq!(c.poll_event(), Some(Event::Text("Hello".into())));
    assert_eq!(c.poll_event(), None);
}

fn assert_fails_with(conn: &mut Connection, code: CloseCode) {
    let mut seen = Vec::new();
    while let Some(e) = conn.poll_event() {
        if let Event::Error(Error::Protocol(p)) = &e {
            assert_eq!(p.close_code(), code, "{p:?}");
            return;
        }
        seen.push(e);
    }
    panic!("no protocol error; events {seen:?}");
}

#[test]
fn rsv1_where_it_does_not_belong_is_a_protocol_error() {
    let now = Instant::now();
    // On a continuation frame.
    let (mut c, _s) = open_pair(
        Some(DeflateConfig::default()),
        Some(DeflateConfig::default()),
    );
    c.receive(
        &[
            0x41, 0x03, 0xf2, 0x48, 0xcd, 0xc0, 0x04, 0xc9, 0xc9, 0x07, 0x00,
        ],
        now,
    );
    assert_fails_with(&mut c, CloseCode::PROTOCOL_ERROR);
    // On a control frame.
    let (mut c, _s) = open_pair(
        Some(DeflateConfig::default()),
        Some(DeflateConfig::default()),
    );
    c.receive(&[0xc9, 0x00], now);
    assert_fails_with(&mut c, CloseCode::PROTOCOL_ERROR);
    // When deflate was not negotiated.
    let (mut c, _s) = open_pair(Some(DeflateConfig::default()), None);
    c.receive(&[0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00], now);
    assert_fails_with(&mut c, CloseCode::PROTOCOL_ERROR);
}

#[test]
fn corrupt_data_and_invalid_utf8_after_inflating_fail_with_1007() {
    let now = Instant::now();
    let (mut c, _s) = open_pair(
        Some(DeflateConfig::default()),
        Some(DeflateConfig::default()),
    );
    c.receive(&[0xc1, 0x02, 0xff, 0xff], now);
    assert_fails_with(&mut c, CloseCode::INVALID_PAYLOAD);
    // "\xff" compressed: valid DEFLATE, invalid UTF-8 in a text message.
    let invalid = Compressor::new(settings(12), false, false).compress(&[b'a', 0xff, b'b']);
    let (mut c, _s) = open_pair(
        Some(DeflateConfig::default()),
        Some(DeflateConfig::default()),
    );
    let mut frame = vec![0xc1, invalid.len() as u8];
    frame.extend_from_slice(&invalid);
    c.receive(&frame, now);
    assert_fails_with(&mut c, CloseCode::INVALID_PAYLOAD);
}

#[test]
fn a_bomb_through_a_connection_closes_with_1009_before_the_limit_is_allocated() {
    let config = Config {
        max_message_size: 1 << 20,
        ..config_with(Some(DeflateConfig::default()))
    };
    let now = Instant::now();
    let (_c, mut s) = open_pair_with(config_with(Some(DeflateConfig::default())), config);
    // 1 GiB of zeros would be about 1 MiB compressed; 16 MiB of them, masked, is enough to
    // cross the limit many times over.
    let bomb = Compressor::new(settings(12), false, false).compress(&vec![0u8; 16 << 20]);
    let mut frame = vec![0xc2, 0x80 | 127];
    frame.extend_from_slice(&(bomb.len() as u64).to_be_bytes());
    frame.extend_from_slice(&[0, 0, 0, 0]);
    frame.extend_from_slice(&bomb);
    s.receive(&frame, now);
    assert_fails_with(&mut s, CloseCode::MESSAGE_TOO_BIG);
    assert!(matches!(
        ProtocolError::Extension(ExtensionError::TooLarge).close_code(),
        CloseCode::MESSAGE_TOO_BIG
    ));
}

#[test]
fn a_broadcast_without_context_takeover_is_compressed_once_for_all() {
    let config = DeflateConfig {
        server_no_context_takeover: true,
        ..DeflateConfig::default()
    };
    let mut servers: Vec<Connection> = (0..3)
        .map(|_| open_pair(Some(DeflateConfig::default()), Some(config.clone())).1)
        .collect();
    let message = crate::PreparedMessage::text(json_like(1));
    let mut outputs = Vec::new();
    for s in &mut servers {
        s.send_prepared(&message).unwrap();
        outputs.push(s.pending_output().to_vec());
    }
    assert!(outputs.iter().all(|o| o == &outputs[0]));
    assert_eq!(outputs[0][0], 0xc1, "compressed: RSV1 set");
    assert!(outputs[0].len() < message.wire_len());
    // Encoded once: the shared encoding is there, and a later call does not encode again.
    let cached = message
        .shared_encoding(
            super::codec::Settings {
                level: 6,
                mem_level: 5,
                window_bits: 12,
            }
            .key(),
            |_| unreachable!("already encoded"),
        )
        .unwrap();
    assert_eq!(&outputs[0][2..], &cached[..]);
}

#[test]
fn a_broadcast_with_context_takeover_is_compressed_per_connection_and_decodes() {
    let (mut c, mut s) = open_pair(
        Some(DeflateConfig::default()),
        Some(DeflateConfig::default()),
    );
    let now = Instant::now();
    for i in 0..3 {
        let message = crate::PreparedMessage::text(json_like(i));
        s.send_prepared(&message).unwrap();
        assert_eq!(s.pending_output()[0], 0xc1);
        pump(&mut s, &mut c, now);
        assert_eq!(c.poll_event(), Some(Event::Text(json_like(i))));
    }
}
