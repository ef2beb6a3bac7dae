//! Whole sessions: a client and a server `Connection` talking to each other through in-memory
//! buffers, the way a driver moves bytes through a socket: opening handshake, messages of every
//! size, pings, and the closing handshake from either side down to the TCP close.

mod common;

use common::*;
use ws_proto::CloseCode;
use ws_proto::{CloseFrame, Config, Connection, Event, Role, State};

/// Moves bytes both ways until neither side has anything left to write.
fn settle(client: &mut Connection, server: &mut Connection) {
    while pump(client, server) + pump(server, client) > 0 {}
}

/// Moves a server's bytes to the client in small pieces (a slow link), returning the client's
/// events.
fn trickle(from: &mut Connection, to: &mut Connection, piece: usize) -> Vec<Event> {
    let mut got = Vec::new();
    loop {
        let chunk = from.pending_output();
        if chunk.is_empty() {
            return got;
        }
        let n = chunk.len().min(piece);
        to.receive(&chunk[..n], t0());
        from.advance_output(n);
        got.extend(events(to));
    }
}

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 257) as u8).collect()
}

#[test]
fn full_session_closed_by_the_client() {
    let mut small_fragments = Config::default();
    small_fragments.fragment_size = 5;
    let (mut client, mut server) = connected_pair(small_fragments.clone(), small_fragments);

    // Fragmented text both ways (5-byte fragments split the multi-byte characters).
    let text = "Grüße aus dem Speicher — κόσμε 🦀";
    client.send_text(text).unwrap();
    pump(&mut client, &mut server);
    assert_eq!(events(&mut server), [Event::Text(text.into())]);
    server.send_text(text).unwrap();
    pump(&mut server, &mut client);
    assert_eq!(events(&mut client), [Event::Text(text.into())]);

    // Pings interleaved with a fragmented message in flight.
    client.send_binary(pattern(12)).unwrap();
    client.ping(b"are you there").unwrap();
    server.ping(b"and you?").unwrap();
    settle(&mut client, &mut server);
    assert_eq!(
        events(&mut server),
        [
            Event::Binary(pattern(12)),
            Event::Ping(b"are you there".to_vec()),
            Event::Pong(b"and you?".to_vec()),
        ]
    );
    assert_eq!(
        events(&mut client),
        [
            Event::Ping(b"and you?".to_vec()),
            Event::Pong(b"are you there".to_vec()),
        ]
    );

    // The client closes; the server echoes and shuts TCP down first.
    client.close(CloseCode::NORMAL, "done", t0()).unwrap();
    pump(&mut client, &mut server);
    assert_eq!(
        events(&mut server),
        [Event::Close(CloseFrame {
            code: CloseCode::NORMAL,
            reason: "done".into()
        })]
    );
    assert!(!server.should_shutdown());
    pump(&mut server, &mut client);
    assert!(server.should_shutdown());
    assert_eq!(
        events(&mut client),
        [Event::Close(CloseFrame {
            code: CloseCode::NORMAL,
            reason: String::new()
        })]
    );
    assert_eq!(client.state(), State::Closed);
    assert!(!client.should_shutdown(), "the client waits for the server");
    client.receive_eof(t0());
    assert!(client.is_terminated());
    assert_eq!(events(&mut client), []);
    server.receive_eof(t0());
    assert!(server.is_terminated());
    assert_eq!(events(&mut server), []);
}

#[test]
fn sixteen_mib_binary_both_ways() {
    // Room for a control frame queued behind the whole message.
    let mut roomy = Config::default();
    roomy.max_buffered_output = 32 << 20;
    let (mut client, mut server) = connected_pair(roomy.clone(), roomy);
    let big = pattern(16 << 20);

    client.send_binary(big.clone()).unwrap();
    client.ping(b"after the big one").unwrap();
    pump(&mut client, &mut server);
    let got = events(&mut server);
    assert_eq!(got.len(), 2);
    assert!(matches!(&got[0], Event::Binary(data) if *data == big));
    assert_eq!(got[1], Event::Ping(b"after the big one".to_vec()));

    // Server to client through a slow link, with the pong queued behind the message.
    server.send_binary(big.clone()).unwrap();
    let got = trickle(&mut server, &mut client, 65_521);
    assert_eq!(got.len(), 2);
    assert_eq!(got[0], Event::Pong(b"after the big one".to_vec()));
    assert!(matches!(&got[1], Event::Binary(data) if *data == big));
}

#[test]
fn full_session_closed_by_the_server() {
    let (mut client, mut server) = connected_pair(Config::default(), Config::default());
    server.send_text("bye soon").unwrap();
    server
        .close(CloseCode::GOING_AWAY, "going away", t0())
        .unwrap();
    assert_eq!(
        server.send_text("too late"),
        Err(ws_proto::SendError::Closed)
    );
    // The client still sends while the server's close is in flight.
    client.send_text("last words").unwrap();
    pump(&mut client, &mut server);
    pump(&mut server, &mut client);
    assert_eq!(events(&mut server), [Event::Text("last words".into())]);
    assert_eq!(
        events(&mut client),
        [
            Event::Text("bye soon".into()),
            Event::Close(CloseFrame {
                code: CloseCode::GOING_AWAY,
                reason: "going away".into()
            })
        ]
    );
    pump(&mut client, &mut server);
    assert_eq!(
        events(&mut server),
        [Event::Close(CloseFrame {
            code: CloseCode::GOING_AWAY,
            reason: String::new()
        })]
    );
    assert_eq!(server.state(), State::Closed);
    assert!(server.should_shutdown());
    assert!(!client.should_shutdown());
    client.receive_eof(t0());
    assert!(client.is_terminated());
    assert_eq!(client.close_status().map(|c| c.code.as_u16()), Some(1001));
    assert_eq!(server.close_status().map(|c| c.code.as_u16()), Some(1001));
}

#[test]
fn simultaneous_close() {
    let (mut client, mut server) = connected_pair(Config::default(), Config::default());
    client.close(CloseCode::NORMAL, "", t0()).unwrap();
    server.close(CloseCode::GOING_AWAY, "", t0()).unwrap();
    settle(&mut client, &mut server);
    // Each side got the other's close, and neither echoed (both had sent one already).
    assert_eq!(
        events(&mut client),
        [Event::Close(CloseFrame {
            code: CloseCode::GOING_AWAY,
            reason: String::new()
        })]
    );
    assert_eq!(
        events(&mut server),
        [Event::Close(CloseFrame {
            code: CloseCode::NORMAL,
            reason: String::new()
        })]
    );
    assert!(server.should_shutdown());
    assert_eq!(client.state(), State::Closed);
}

#[test]
fn many_small_messages_both_ways() {
    let (mut client, mut server) = connected_pair(Config::default(), Config::default());
    for i in 0..1000 {
        client.send_text(format!("c{i}")).unwrap();
        server.send_binary(vec![(i % 256) as u8; i % 40]).unwrap();
    }
    settle(&mut client, &mut server);
    let at_server = events(&mut server);
    let at_client = events(&mut client);
    assert_eq!(at_server.len(), 1000);
    assert_eq!(at_client.len(), 1000);
    for i in 0..1000 {
        assert_eq!(at_server[i], Event::Text(format!("c{i}")));
        assert_eq!(at_client[i], Event::Binary(vec![(i % 256) as u8; i % 40]));
    }
}

/// What a driver writes with one vectored write is exactly what it would write chunk by chunk,
/// coalesced small frames and zero-copy large payloads alike, and `advance_output` after a
/// partial vectored write resumes at the right byte.
#[test]
fn vectored_output_is_the_same_bytes_as_the_front_chunks() {
    let mut server = open_server(Config::default());
    let small = "tiny".to_string();
    let large = pattern(100_000);
    server.send_text(small.clone()).unwrap();
    server.send_binary(large.clone()).unwrap();
    server.send_text(small).unwrap();
    let total = server.buffered_amount();

    let mut expected = Vec::new();
    let mut copy = open_server(Config::default());
    copy.send_text("tiny").unwrap();
    copy.send_binary(large).unwrap();
    copy.send_text("tiny").unwrap();
    while !copy.pending_output().is_empty() {
        let n = copy.pending_output().len();
        expected.extend_from_slice(copy.pending_output());
        copy.advance_output(n);
    }
    assert_eq!(expected.len(), total);

    let mut written = Vec::new();
    let mut first = true;
    while server.buffered_amount() > 0 {
        let mut slices = [std::io::IoSlice::new(&[]); 8];
        let used = server.pending_output_vectored(&mut slices);
        assert!(used >= 1, "output left but no slice");
        if first {
            // The coalesced small frames and the large payload's own chunk: one write takes
            // several chunks.
            assert!(used >= 3, "{used} slices for 3 queued chunks");
            first = false;
        }
        let gathered: Vec<u8> = slices[..used]
            .iter()
            .flat_map(|s| s.iter().copied())
            .collect();
        // A partial write: 7 bytes short of everything gathered (or all of it if shorter).
        let n = gathered.len().saturating_sub(7).max(1);
        written.extend_from_slice(&gathered[..n]);
        server.advance_output(n);
    }
    assert_eq!(written, expected);
}

/// `incoming_amount` is the size of the data message being received, so a driver can count a
/// reply the application may send once its last frame arrives.
#[test]
fn incoming_amount_is_the_message_received_so_far() {
    let mut server = open_server(Config::default());
    assert_eq!(server.incoming_amount(), 0);
    server.receive(
        &incoming(Role::Server, Frame::binary(vec![1; 10]).fin(false)),
        t0(),
    );
    assert_eq!(server.incoming_amount(), 10);
    server.receive(
        &incoming(Role::Server, Frame::cont(vec![2; 5]).fin(false)),
        t0(),
    );
    assert_eq!(server.incoming_amount(), 15);
    server.receive(&incoming(Role::Server, Frame::cont(vec![3; 1])), t0());
    assert_eq!(server.incoming_amount(), 0);
    assert!(matches!(server.poll_event(), Some(Event::Binary(b)) if b.len() == 16));
}
