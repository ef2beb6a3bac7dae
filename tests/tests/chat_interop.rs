//! Python `websockets` and Node `ws` clients join the tutorial's chat server (built in-process
//! with the facade API exactly as `facade/examples/chat_server.rs` does) and chat: every
//! message, text or binary, comes back to every participant as the binary broadcast
//! `"<sender id>: <message>"`, the ids being the names the clients announced.

use std::collections::BTreeMap;
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use ws_facade::{ProtocolServer, ServerConfig, Session, WebSocketFacade};
use ws_tests::{hex, node, python, tests_file, Peer};

const WAIT: Duration = Duration::from_secs(15);

/// What the chat server saw, in order: `join <id>` / `leave <id>` / `close <id> <code> <reason>`.
type Events = mpsc::Receiver<String>;

/// The tutorial's chat server on a free port: returns it, its port and its join/leave events.
fn start_chat_server() -> (Arc<dyn ProtocolServer>, u16, Events) {
    let server = WebSocketFacade::create_server(&{
        let mut config = ServerConfig::default();
        config.port = 9001;
        config.path = "/chat".into();
        config.server_id = "chat-server".into();
        config
    })
    .expect("create_server");

    let sessions: Arc<Mutex<BTreeMap<String, Arc<dyn Session>>>> = Arc::default();
    let (events_tx, events) = mpsc::channel();
    let events_tx = Arc::new(Mutex::new(events_tx));

    let joined = Arc::clone(&sessions);
    let tx = Arc::clone(&events_tx);
    server.set_connection_callback(move |session| {
        let id = session.id().to_owned();
        joined.lock().unwrap().insert(id.clone(), session);
        let _ = tx.lock().unwrap().send(format!("join {id}"));
    });
    let left = Arc::clone(&sessions);
    let tx = Arc::clone(&events_tx);
    server.set_disconnection_callback(move |id| {
        left.lock().unwrap().remove(id);
        let _ = tx.lock().unwrap().send(format!("leave {id}"));
    });
    let members = Arc::clone(&sessions);
    server.set_receive_callback(move |sender_id, payload| {
        let mut broadcast = format!("{sender_id}: ").into_bytes();
        broadcast.extend_from_slice(payload);
        for session in members.lock().unwrap().values() {
            let _ = session.send(broadcast.clone());
        }
    });

    // Not in the example: also record close codes and reasons, to check them.
    let tx = Arc::clone(&events_tx);
    server
        .as_websocket()
        .expect("the facade server is a WebSocket server")
        .set_close_callback(move |id, code, reason| {
            let _ = tx
                .lock()
                .unwrap()
                .send(format!("close {id} {code} {reason}"));
        });

    server.start(0).expect("start on a free port");
    let port = server
        .local_addr()
        .expect("running server has an address")
        .port();
    (server, port, events)
}

fn next_event(events: &Events) -> String {
    events
        .recv_timeout(WAIT)
        .unwrap_or_else(|_| panic!("the chat server reported no join/leave within {WAIT:?}"))
}

/// The line a chat peer prints for a broadcast from the server: always a binary frame.
fn broadcast_line(sender: &str, message: &[u8]) -> String {
    let mut bytes = format!("{sender}: ").into_bytes();
    bytes.extend_from_slice(message);
    format!("recv binary {}", hex(&bytes))
}

/// Waits for each peer's next line and checks it is exactly `expected`.
fn expect_everyone(peers: &mut [&mut Peer], expected: &str) {
    for peer in peers.iter_mut() {
        let line = peer.next_line(WAIT);
        if line != expected {
            peer.fail(&format!("expected {expected:?}, got {line:?}"));
        }
    }
}

#[test]
fn python_and_node_clients_chat_through_the_facade_chat_server() {
    let python = python();
    let node = node(&["ws"]);
    let (server, port, events) = start_chat_server();

    // Python announces its name in the query string, Node in the X-Client-Id header.
    let mut py = Peer::spawn(
        "python websockets chat client",
        std::process::Command::new(&python)
            .arg(tests_file("interop/py_chat_client.py"))
            .arg(format!("ws://127.0.0.1:{port}/chat?id=py")),
    );
    assert_eq!(py.next_line(WAIT), "open");
    assert_eq!(next_event(&events), "join py");

    let mut js = Peer::spawn(
        "node ws chat client",
        std::process::Command::new(&node)
            .arg(tests_file("interop/node_chat_client.mjs"))
            .arg(format!("ws://127.0.0.1:{port}/chat"))
            .args(["--client-id", "node"]),
    );
    assert_eq!(js.next_line(WAIT), "open");
    assert_eq!(next_event(&events), "join node");
    assert_eq!(server.connection_count(), 2);

    // Text from Python.
    py.send_line("text hello from python");
    expect_everyone(
        &mut [&mut py, &mut js],
        &broadcast_line("py", b"hello from python"),
    );

    // Binary (not valid UTF-8) from Node.
    let blob = [0x00, 0xff, 0x10, 0x80, 0xc3, 0x28];
    js.send_line(&format!("binary {}", hex(&blob)));
    expect_everyone(&mut [&mut py, &mut js], &broadcast_line("node", &blob));

    // Multi-byte UTF-8 text from Node, binary from Python, a 100 KiB text (several frames on
    // our side) from Python.
    js.send_line("text héllo ✓ from node");
    expect_everyone(
        &mut [&mut py, &mut js],
        &broadcast_line("node", "héllo ✓ from node".as_bytes()),
    );
    let blob: Vec<u8> = (0..=255u8).rev().collect();
    py.send_line(&format!("binary {}", hex(&blob)));
    expect_everyone(&mut [&mut py, &mut js], &broadcast_line("py", &blob));
    let long = "0123456789abcdef".repeat(100 * 1024 / 16);
    py.send_line(&format!("text {long}"));
    expect_everyone(
        &mut [&mut py, &mut js],
        &broadcast_line("py", long.as_bytes()),
    );

    // Python leaves with a code and reason: the server sees it leave, Node keeps chatting
    // alone, and nothing else reached either client.
    py.send_line("close 4000 py leaves");
    // The server answers with the code (its reason is its own choice).
    let closed = py.next_line(WAIT);
    assert!(closed.starts_with("closed 4000 "), "python saw {closed:?}");
    assert_eq!(next_event(&events), "leave py");
    assert_eq!(next_event(&events), "close py 4000 py leaves");
    js.send_line("text still here");
    expect_everyone(&mut [&mut js], &broadcast_line("node", b"still here"));
    js.send_line("close 1001 node goes away");
    let closed = js.next_line(WAIT);
    assert!(closed.starts_with("closed 1001 "), "node saw {closed:?}");
    assert_eq!(next_event(&events), "leave node");
    assert_eq!(next_event(&events), "close node 1001 node goes away");

    py.close_stdin();
    js.close_stdin();
    assert!(py.finish(WAIT).success(), "python client exit status");
    assert!(js.finish(WAIT).success(), "node client exit status");
    assert_eq!(py.seen().len(), 7, "python lines: {:?}", py.seen());
    assert_eq!(js.seen().len(), 8, "node lines: {:?}", js.seen());
    assert!(events.try_recv().is_err(), "no other join/leave expected");
    server.stop().expect("stop");
}

#[test]
fn two_clients_announcing_the_same_name_get_distinct_readable_ids() {
    let python = python();
    let node = node(&["ws"]);
    let (server, port, events) = start_chat_server();

    let mut first = Peer::spawn(
        "python websockets chat client",
        std::process::Command::new(&python)
            .arg(tests_file("interop/py_chat_client.py"))
            .arg(format!("ws://127.0.0.1:{port}/chat"))
            .args(["--client-id", "sam"]),
    );
    assert_eq!(first.next_line(WAIT), "open");
    assert_eq!(next_event(&events), "join sam");
    let mut second = Peer::spawn(
        "node ws chat client",
        std::process::Command::new(&node)
            .arg(tests_file("interop/node_chat_client.mjs"))
            .arg(format!("ws://127.0.0.1:{port}/chat?id=sam")),
    );
    assert_eq!(second.next_line(WAIT), "open");
    assert_eq!(next_event(&events), "join sam#2");

    second.send_line("text who am i");
    expect_everyone(
        &mut [&mut first, &mut second],
        &broadcast_line("sam#2", b"who am i"),
    );
    first.send_line("text and me");
    expect_everyone(
        &mut [&mut first, &mut second],
        &broadcast_line("sam", b"and me"),
    );
    server.stop().expect("stop");
}
