//! permessage-deflate (RFC 7692) properties, on generated messages and settings:
//!
//! * whatever a side sends arrives intact at the other, in both directions, for any fragment
//!   size, with and without context takeover, any window sizes and any threshold, with pauses
//!   long enough for the compressors to hibernate;
//! * any split of the received bytes gives the same messages as reading them at once.

use std::sync::Arc;
use std::time::{Duration, Instant};

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::FileFailurePersistence;
use ws_proto::extension::deflate::{DeflateConfig, PerMessageDeflate};
use ws_proto::{Accept, ClientRequest, Config, Connection, Event};

fn cases(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    }
}

/// Settings both sides are configured with.
#[derive(Debug, Clone)]
struct Settings {
    deflate: DeflateConfig,
    fragment_size: usize,
}

fn settings() -> impl Strategy<Value = Settings> {
    (
        any::<bool>(),
        any::<bool>(),
        8u8..=15,
        8u8..=15,
        prop_oneof![Just(0usize), Just(64), 0usize..300],
        prop_oneof![Just(1usize << 16), 1usize..200],
        1u8..=9,
        0u8..=9,
    )
        .prop_map(
            |(
                server_reset,
                client_reset,
                server_bits,
                client_bits,
                min_size,
                fragment_size,
                mem,
                level,
            )| {
                let mut deflate = DeflateConfig::default();
                deflate.server_no_context_takeover = server_reset;
                deflate.client_no_context_takeover = client_reset;
                deflate.server_max_window_bits = server_bits;
                deflate.client_max_window_bits = client_bits;
                deflate.min_size = min_size;
                deflate.mem_level = mem;
                deflate.level = level;
                Settings {
                    deflate,
                    fragment_size,
                }
            },
        )
}

/// Text or binary, compressible (few distinct symbols, repeats) or not (random bytes).
fn message() -> impl Strategy<Value = Event> {
    let compressible = vec(
        prop_oneof![Just("ab"), Just("chat "), Just("ü✓"), Just("{\"x\":1}")],
        0..400,
    )
    .prop_map(|parts| parts.concat());
    prop_oneof![
        compressible.clone().prop_map(Event::Text),
        compressible.prop_map(|t| Event::Binary(t.into_bytes())),
        ".{0,200}".prop_map(Event::Text),
        vec(any::<u8>(), 0..3000).prop_map(Event::Binary),
    ]
}

fn config(settings: &Settings) -> Config {
    let mut config = Config::default();
    config.fragment_size = settings.fragment_size;
    config
        .extensions
        .push(Arc::new(PerMessageDeflate::new(settings.deflate.clone())));
    config
}

fn pump(from: &mut Connection, to: &mut Connection, now: Instant) {
    while !from.pending_output().is_empty() {
        let n = from.pending_output().len();
        to.receive(from.pending_output(), now);
        from.advance_output(n);
    }
}

/// A client and a server after the handshake, plus the client's request (to open more servers
/// in the same state).
fn open_pair(settings: &Settings) -> (Connection, Connection, Vec<u8>) {
    let now = Instant::now();
    let mut client = Connection::client(config(settings), ClientRequest::new("x", "/"), now);
    let request = client.pending_output().to_vec();
    let mut server = accepted_server(settings, &request);
    client.advance_output(request.len());
    pump(&mut server, &mut client, now);
    match client.poll_event() {
        Some(Event::Open(negotiated)) => {
            assert_eq!(negotiated.extensions[0].name, "permessage-deflate")
        }
        other => panic!("{other:?}"),
    }
    (client, server, request)
}

fn accepted_server(settings: &Settings, request: &[u8]) -> Connection {
    let now = Instant::now();
    let mut server = Connection::server(config(settings), now);
    server.receive(request, now);
    assert!(matches!(server.poll_event(), Some(Event::Request(_))));
    server.accept(Accept::default(), now).unwrap();
    assert!(matches!(server.poll_event(), Some(Event::Open(_))));
    server
}

fn send(conn: &mut Connection, message: &Event) {
    match message {
        Event::Text(t) => conn.send_text(t.clone()).unwrap(),
        Event::Binary(b) => conn.send_binary(b.clone()).unwrap(),
        other => unreachable!("{other:?}"),
    }
}

fn events(conn: &mut Connection) -> Vec<Event> {
    std::iter::from_fn(|| conn.poll_event()).collect()
}

proptest! {
    #![proptest_config(cases(200))]

    /// §7.2.1 and §7.2.2 are inverse, whatever the negotiated parameters: compressing,
    /// removing the tail, framing, appending the tail and inflating gives the message back.
    #[test]
    fn messages_round_trip_compressed_both_ways(
        settings in settings(),
        messages in vec((message(), any::<bool>()), 1..12),
    ) {
        let (mut client, mut server, _) = open_pair(&settings);
        let mut now = Instant::now();
        for (message, pause) in &messages {
            if *pause {
                // Long enough for both sides to hibernate their compressors.
                now += Duration::from_secs(2);
                client.handle_timeout(now);
                server.handle_timeout(now);
            }
            send(&mut client, message);
            pump(&mut client, &mut server, now);
            prop_assert_eq!(events(&mut server), vec![message.clone()]);
            send(&mut server, message);
            pump(&mut server, &mut client, now);
            prop_assert_eq!(events(&mut client), vec![message.clone()]);
        }
    }

    /// Inflating as frames arrive does not depend on how the bytes were cut into reads.
    #[test]
    fn any_split_of_compressed_input_gives_the_same_messages(
        settings in settings(),
        messages in vec(message(), 1..8),
        cuts in vec(any::<prop::sample::Index>(), 0..20),
    ) {
        let (mut client, _, request) = open_pair(&settings);
        for message in &messages {
            send(&mut client, message);
        }
        let wire = client.pending_output().to_vec();
        let now = Instant::now();
        let mut whole = accepted_server(&settings, &request);
        whole.receive(&wire, now);
        prop_assert_eq!(&events(&mut whole), &messages);

        let mut cut_at: Vec<usize> = cuts.iter().map(|i| i.index(wire.len() + 1)).collect();
        cut_at.sort_unstable();
        let mut split = accepted_server(&settings, &request);
        let mut from = 0;
        for at in cut_at.into_iter().chain([wire.len()]) {
            split.receive(&wire[from..at], now);
            from = at;
        }
        prop_assert_eq!(events(&mut split), messages);
    }
}
