//! Tutorial 1: a broadcasting chat server bound to `/chat`.
//!
//! ```text
//! cargo run --release --example chat_server [-- --port 9001]
//! ```
//! Every message is sent to every participant as `"<sender id>: <message>"`. The server also
//! answers `GET /` with a chat page, so http://localhost:9001/ in a browser is a working chat.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ws_facade::{ServerConfig, Session, WebSocketFacade};

const PAGE: &str = include_str!("chat_page.html");

fn main() {
    let mut port: u16 = 9001;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match (arg.as_str(), args.next().and_then(|v| v.parse().ok())) {
            ("--port", Some(p)) => port = p,
            _ => {
                eprintln!("usage: chat_server [--port PORT]");
                std::process::exit(2);
            }
        }
    }

    let mut config = ServerConfig::default();
    config.port = port;
    config.path = "/chat".into();
    config.server_id = "chat-server".into();
    let server = match WebSocketFacade::create_server(&config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("create failed: {e}");
            std::process::exit(1);
        }
    };

    let sessions: Arc<Mutex<BTreeMap<String, Arc<dyn Session>>>> = Arc::default();

    let joined = Arc::clone(&sessions);
    server.set_connection_callback(move |session| {
        let mut sessions = joined.lock().unwrap();
        let id = session.id().to_owned();
        sessions.insert(id.clone(), session);
        println!("[chat] join {id} ({} online)", sessions.len());
    });

    let left = Arc::clone(&sessions);
    server.set_disconnection_callback(move |id| {
        left.lock().unwrap().remove(id);
        println!("[chat] leave {id}");
    });

    let members = Arc::clone(&sessions);
    server.set_receive_callback(move |sender_id, payload| {
        let mut broadcast = format!("{sender_id}: ").into_bytes();
        broadcast.extend_from_slice(payload);
        for session in members.lock().unwrap().values() {
            // send() takes the bytes by value: each participant gets its own copy.
            let _ = session.send(broadcast.clone());
        }
    });

    server.set_error_callback(|id, error| eprintln!("[chat] error {id}: {error}"));

    if let Some(ws) = server.as_websocket() {
        ws.set_http_callback(|path| {
            (path == "/").then(|| {
                (
                    "text/html; charset=utf-8".to_owned(),
                    PAGE.as_bytes().to_vec(),
                )
            })
        });
    }

    if let Err(e) = server.start(port) {
        eprintln!("start failed: {e}");
        std::process::exit(1);
    }
    println!("[chat] ws://localhost:{port}/chat");
    println!("[chat] open http://localhost:{port}/ in a browser to join");
    server.wait_for_stop();
}
