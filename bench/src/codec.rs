//! The codec in memory: a `ws-proto` client and server joined by nothing but byte copies, in
//! lockstep: the client sends a message, the server receives it and sends it back, the client
//! receives the echo. No socket and no runtime: what the protocol work itself costs. The same
//! workload for fastwebsockets and tungstenite is in [`crate::codec_peers`].

use std::time::{Duration, Instant};

use ws_proto::{Accept, ClientRequest, Config, Connection, Event};

/// A client and a server `Connection`, opened on each other.
pub fn open_pair() -> (Connection, Connection) {
    let now = Instant::now();
    let mut client = Connection::client(Config::default(), ClientRequest::new("bench", "/"), now);
    let mut server = Connection::server(Config::default(), now);
    move_bytes(&mut client, &mut server, now);
    match server.poll_event() {
        Some(Event::Request(_)) => {}
        other => panic!("expected the upgrade request, got {other:?}"),
    }
    server.accept(Accept::default(), now).expect("accept");
    assert!(matches!(server.poll_event(), Some(Event::Open(_))));
    move_bytes(&mut server, &mut client, now);
    assert!(matches!(client.poll_event(), Some(Event::Open(_))));
    (client, server)
}

/// Moves everything `from` has to send into `to`.
fn move_bytes(from: &mut Connection, to: &mut Connection, now: Instant) {
    while !from.pending_output().is_empty() {
        let n = from.pending_output().len();
        to.receive(from.pending_output(), now);
        from.advance_output(n);
    }
}

/// `messages` lockstep round trips of `payload` (binary) through a client and a server
/// `Connection`; panics if an echo differs. Returns the time of the loop.
pub fn ws_proto_round_trips(messages: usize, payload: &[u8]) -> Duration {
    let (mut client, mut server) = open_pair();
    let now = Instant::now();
    // The client sends each echo on as the next message (it owns it, with the same bytes):
    // spent buffers come back to each connection, so the loop allocates nothing.
    let mut outgoing = payload.to_vec();
    let start = Instant::now();
    for _ in 0..messages {
        client.send_binary(outgoing).expect("client send");
        move_bytes(&mut client, &mut server, now);
        match server.poll_event() {
            Some(Event::Binary(data)) => server.send_binary(data).expect("server send"),
            other => panic!("server: expected the message, got {other:?}"),
        }
        move_bytes(&mut server, &mut client, now);
        match client.poll_event() {
            Some(Event::Binary(data)) => {
                assert_eq!(data, payload, "the echo differs");
                outgoing = data;
            }
            other => panic!("client: expected the echo, got {other:?}"),
        }
    }
    start.elapsed()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_complete() {
        ws_proto_round_trips(1000, b"14 bytes here!");
        ws_proto_round_trips(10, &vec![3u8; 100_000]);
    }
}
