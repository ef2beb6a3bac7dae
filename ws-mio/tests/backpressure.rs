//! A peer that stops reading: sends are refused (or the connection is closed) once the
//! outgoing buffer is full, and the memory held for it stays bounded.

mod common;

use std::time::{Duration, Instant};

use common::{Ending, Ev, Probe, RawClient, Recording, OP_BINARY, OP_CLOSE, WAIT};
use ws_mio::{
    BackpressurePolicy, CloseCode, DriverError, SendError, Server, ServerConfig, Session,
};

const MESSAGE: usize = 64 << 10;
const LIMIT: usize = 1 << 20;
/// Far more than loopback socket buffers plus `LIMIT` can absorb (64 KiB each: 640 MiB).
const MAX_SENDS: usize = 10_000;

fn server(policy: BackpressurePolicy) -> (Server, Probe) {
    let (factory, probe) = Recording::new(false);
    let mut config = ServerConfig::default();
    config.threads = 1;
    config.backpressure = policy;
    config.protocol.max_buffered_output = LIMIT;
    if let BackpressurePolicy::Close(_) = policy {
        // The failed connection's close frame sits behind data the peer never reads: it ends
        // at the close timeout.
        config.protocol.close_timeout = Duration::from_millis(500);
    }
    let server = Server::bind("127.0.0.1:0", config, factory).unwrap();
    (server, probe)
}

/// A 64 KiB message carrying its sequence number in its first 4 bytes.
fn numbered(seq: u32) -> Vec<u8> {
    let mut data = vec![seq as u8 ^ 0x5A; MESSAGE];
    data[..4].copy_from_slice(&seq.to_be_bytes());
    data
}

/// Sends numbered messages until one is refused; returns how many were accepted and the error.
fn send_until_refused(session: &Session) -> (u32, SendError) {
    // One message may go beyond the limit, never more (plus frame headers).
    let bound = LIMIT + MESSAGE + 14;
    let deadline = Instant::now() + 2 * WAIT;
    for seq in 0..MAX_SENDS as u32 {
        assert!(Instant::now() < deadline, "no refusal in {:?}", 2 * WAIT);
        let result = session.send_binary(numbered(seq));
        let buffered = session.buffered_amount();
        assert!(
            buffered <= bound,
            "{buffered} bytes buffered (bound {bound})"
        );
        if let Err(e) = result {
            return (seq, e);
        }
    }
    panic!("{MAX_SENDS} sends of {MESSAGE} bytes accepted by a peer that does not read");
}

#[test]
fn error_policy_refuses_sends_and_delivers_every_accepted_message() {
    let (server, probe) = server(BackpressurePolicy::Error);
    let mut client = RawClient::connect(server.local_addr(), "/").unwrap();
    let session = probe.opened();

    let (accepted, error) = send_until_refused(&session);
    match error {
        SendError::BufferFull { buffered, limit } => {
            assert_eq!(limit, LIMIT);
            assert!(buffered + MESSAGE > LIMIT, "refused while under the limit");
        }
        other => panic!("expected BufferFull, got {other:?}"),
    }
    assert!(session.is_open(), "the Error policy keeps the connection");
    assert!(accepted > 0);

    // Now the peer reads: every accepted message arrives, in order, none lost.
    for seq in 0..accepted {
        let (opcode, data) = client.read_message().unwrap_or_else(|e| {
            panic!("message {seq} of {accepted} accepted sends never arrived: {e}")
        });
        assert_eq!(opcode, OP_BINARY);
        assert!(data == numbered(seq), "message {seq} differs");
    }
    // The refusal is followed by one on_drain once the output has drained.
    probe.expect("on_drain", |ev| match ev {
        Ev::Drain(id) if id == session.id() => Some(()),
        _ => None,
    });
    // Drained: sending works again.
    assert!(common::eventually(WAIT, || session.buffered_amount() == 0));
    session.send_binary(numbered(u32::MAX)).unwrap();
    assert!(client.read_message().unwrap().1 == numbered(u32::MAX));

    session.close(CloseCode::NORMAL, "done").unwrap();
    assert_eq!(client.read_message().unwrap().0, OP_CLOSE);
    client.send_close(1000, "").unwrap();
    assert_eq!(
        client.read_to_end(0),
        Ending::Eof,
        "the server closes TCP first, cleanly"
    );
    drop(client);
    let disconnect = probe.closed(session.id());
    assert_eq!(disconnect.code, 1000);
    assert!(disconnect.error.is_none(), "{:?}", disconnect.error);
}

#[test]
fn a_burst_of_sends_loses_no_accepted_message() {
    // Messages built beforehand so that the sends outrun the event loop: the session's view of
    // the buffer then lags the loop's, which must not turn an accepted send into a lost one.
    for round in 0..8 {
        let (server, probe) = server(BackpressurePolicy::Error);
        let mut client = RawClient::connect(server.local_addr(), "/").unwrap();
        let session = probe.opened();
        let messages: Vec<Vec<u8>> = (0..300).map(numbered).collect();
        let mut accepted = Vec::new();
        for (seq, message) in messages.into_iter().enumerate() {
            match session.send_binary(message) {
                Ok(()) => accepted.push(seq as u32),
                Err(SendError::BufferFull { .. }) => {}
                Err(e) => panic!("round {round}: send {seq}: {e}"),
            }
            let buffered = session.buffered_amount();
            assert!(
                buffered <= LIMIT + MESSAGE + 14,
                "{buffered} bytes buffered"
            );
        }
        assert!(accepted.len() < 300, "round {round}: nothing was refused");
        // The close goes out after everything accepted before it.
        session.close(CloseCode::NORMAL, "").unwrap();
        let mut delivered = Vec::new();
        loop {
            let (opcode, data) = client.read_message().unwrap();
            if opcode == OP_CLOSE {
                break;
            }
            assert_eq!(opcode, OP_BINARY);
            let seq = u32::from_be_bytes(data[..4].try_into().unwrap());
            assert!(
                data == numbered(seq),
                "round {round}: message {seq} corrupted"
            );
            delivered.push(seq);
        }
        assert_eq!(
            delivered, accepted,
            "round {round}: accepted sends lost or reordered"
        );
        client.send_close(1000, "").unwrap();
        assert_eq!(
            client.read_to_end(0),
            Ending::Eof,
            "round {round}: the server closes TCP first, cleanly"
        );
        drop(client);
        assert_eq!(probe.closed(session.id()).code, 1000);
    }
}

#[test]
fn close_policy_fails_a_slow_consumer_with_1008() {
    let (server, probe) = server(BackpressurePolicy::Close(CloseCode::POLICY_VIOLATION));
    let mut client = RawClient::connect(server.local_addr(), "/").unwrap();
    let session = probe.opened();

    let (_, error) = send_until_refused(&session);
    assert!(
        matches!(error, SendError::BufferFull { .. }),
        "expected BufferFull, got {error:?}"
    );
    let disconnect = probe.closed(session.id());
    assert_eq!(disconnect.code, 1008);
    assert!(
        matches!(disconnect.error, Some(DriverError::SlowConsumer)),
        "{:?}",
        disconnect.error
    );
    assert!(!session.is_open());
    assert_eq!(session.send_binary(vec![1]), Err(SendError::Closed));
    // The socket is closed: the client reaches EOF after what was in flight.
    assert_eq!(client.read_to_end(64 << 20), Ending::Eof);
    assert!(common::eventually(WAIT, || server.connection_count() == 0));
    assert_eq!(probe.tally().closes.get(&session.id()), Some(&1));
}

/// `on_drain` says "sending may go on": never for a connection the Close policy has failed,
/// even once its peer reads what was in flight.
#[test]
fn close_policy_calls_no_on_drain_after_failing_the_connection() {
    let (server, probe) = server(BackpressurePolicy::Close(CloseCode::POLICY_VIOLATION));
    let mut client = RawClient::connect(server.local_addr(), "/").unwrap();
    let session = probe.opened();
    send_until_refused(&session);
    // The peer reads everything up to the server's close frame, then goes.
    loop {
        let (opcode, _) = client.read_message().unwrap();
        if opcode == OP_CLOSE {
            break;
        }
    }
    drop(client);
    // Every callback of the connection comes before its on_close.
    let mut drains = 0;
    probe.expect("on_close", |ev| match ev {
        Ev::Drain(id) if id == session.id() => {
            drains += 1;
            None
        }
        Ev::Close(id, disconnect) if id == session.id() => Some(disconnect),
        _ => None,
    });
    assert_eq!(drains, 0, "on_drain for a connection failed with 1008");
}

#[test]
fn a_slow_consumer_does_not_stall_other_connections() {
    let (server, probe) = server(BackpressurePolicy::Error);
    let _slow = RawClient::connect(server.local_addr(), "/").unwrap();
    let slow = probe.opened();
    let mut fast = RawClient::connect(server.local_addr(), "/").unwrap();
    let fast_session = probe.opened();

    send_until_refused(&slow);
    for i in 0..50u8 {
        fast_session.send_binary(vec![i; 1000]).unwrap();
        assert_eq!(fast.read_message().unwrap(), (OP_BINARY, vec![i; 1000]));
    }
}

/// Pings count against the same limit as data: once the buffer is full, `ping` is refused too,
/// so pings to a peer that does not read cannot pile up.
#[test]
fn pings_are_refused_once_the_buffer_is_full() {
    let (server, probe) = server(BackpressurePolicy::Error);
    let _peer = RawClient::connect(server.local_addr(), "/").unwrap(); // never reads
    let session = probe.opened();
    send_until_refused(&session);
    // Some pings fit as the loop moves bytes on into the socket's buffer (a few MiB on
    // loopback), but never beyond the bound, and then one is refused.
    let bound = LIMIT + MESSAGE + 14;
    let deadline = Instant::now() + 2 * WAIT;
    loop {
        assert!(
            Instant::now() < deadline,
            "no ping refused in {:?}",
            2 * WAIT
        );
        let result = session.ping(vec![7; 125]);
        let buffered = session.buffered_amount();
        assert!(
            buffered <= bound,
            "{buffered} bytes buffered (bound {bound})"
        );
        match result {
            Ok(()) => {}
            Err(SendError::BufferFull { .. }) => break,
            Err(other) => panic!("{other:?}"),
        }
    }
    server.stop();
}

/// A handler that holds its loop on the message "block" until released.
#[derive(Clone)]
struct Blocking {
    entered: std::sync::mpsc::Sender<()>,
    release: std::sync::Arc<std::sync::Mutex<std::sync::mpsc::Receiver<()>>>,
}

impl ws_mio::Handler for Blocking {
    fn on_message(&mut self, _session: &Session, message: ws_mio::Message) {
        if message.as_bytes() == b"block" {
            self.entered.send(()).unwrap();
            let _ = self.release.lock().unwrap().recv_timeout(WAIT);
        }
    }
}

/// Broadcasts wait in the loop's command queue until the loop applies them: while a callback
/// holds the loop, at most a buffer's worth is queued and the rest is refused, so memory stays
/// bounded however often the application broadcasts.
#[test]
fn broadcasts_to_a_busy_loop_are_bounded() {
    let (entered_tx, entered_rx) = std::sync::mpsc::channel();
    let (release_tx, release_rx) = std::sync::mpsc::channel();
    let mut config = ServerConfig::default();
    config.threads = 1;
    config.protocol.max_buffered_output = LIMIT;
    let handler = Blocking {
        entered: entered_tx,
        release: std::sync::Arc::new(release_rx.into()),
    };
    let server = Server::bind("127.0.0.1:0", config, handler).unwrap();
    let mut peer = RawClient::connect(server.local_addr(), "/").unwrap();
    peer.send_frame(true, common::OP_TEXT, b"block").unwrap();
    entered_rx.recv_timeout(WAIT).unwrap();
    let message = ws_mio::PreparedMessage::binary(vec![1; MESSAGE]);
    let mut accepted = 0;
    for _ in 0..1_000 {
        match server.broadcast(&message) {
            Ok(()) => accepted += 1,
            Err(SendError::BufferFull { limit, .. }) => assert_eq!(limit, LIMIT),
            Err(other) => panic!("{other:?}"),
        }
    }
    assert_eq!(accepted, LIMIT / message.wire_len());
    release_tx.send(()).unwrap();
    // The loop applies what it queued: the peer gets those broadcasts, and later ones are
    // taken again.
    for _ in 0..accepted {
        let frame = peer.read_frame().unwrap();
        assert_eq!((frame.opcode, frame.payload.len()), (OP_BINARY, MESSAGE));
    }
    assert!(common::eventually(WAIT, || server
        .broadcast(&message)
        .is_ok()));
    server.stop();
}
