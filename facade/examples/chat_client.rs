//! Tutorial 2: a chat client that posts a few messages and prints what it receives.
//!
//! ```text
//! cargo run --release --example chat_client -- bob [--host 127.0.0.1] [--port 9001] [--expect N]
//! ```
//!
//! It leaves 500 ms after its last line; with `--expect N`, once it has received N messages
//! instead (but after 10 s at most).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ws_facade::{ClientConfig, WebSocketFacade};

fn main() {
    let mut nick = "alice".to_owned();
    let mut host = "127.0.0.1".to_owned();
    let mut port: u16 = 9001;
    let mut expect: Option<usize> = None;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--host" => host = args.next().unwrap_or(host),
            "--port" => port = args.next().and_then(|p| p.parse().ok()).unwrap_or(port),
            "--expect" => expect = args.next().and_then(|n| n.parse().ok()),
            other if !other.starts_with("--") => nick = other.to_owned(),
            _ => {
                eprintln!("usage: chat_client [NICK] [--host HOST] [--port PORT] [--expect N]");
                std::process::exit(2);
            }
        }
    }

    let mut config = ClientConfig::default();
    config.client_id = nick.clone();
    config.ping_interval = Duration::from_secs(15);
    config.path = "/chat".into();
    let client = match WebSocketFacade::create_client(&config) {
        Ok(client) => client,
        Err(e) => {
            eprintln!("create failed: {e}");
            std::process::exit(1);
        }
    };

    let me = nick.clone();
    let received = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&received);
    client.set_receive_callback(move |data| {
        println!("[{me}] {}", String::from_utf8_lossy(data));
        count.fetch_add(1, Ordering::Relaxed);
    });
    let me = nick.clone();
    client.set_error_callback(move |error| eprintln!("[{me}] error: {error}"));

    if let Err(e) = client.start(&host, port) {
        eprintln!("connect failed: {e}");
        std::process::exit(1);
    }

    std::thread::sleep(Duration::from_millis(200));
    for line in ["hello chat", "anyone here?", "goodbye"] {
        if let Err(e) = client.send(line.as_bytes().to_vec()) {
            eprintln!("[{nick}] send failed: {e}");
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    match expect {
        None => std::thread::sleep(Duration::from_millis(500)),
        Some(n) => {
            let deadline = Instant::now() + Duration::from_secs(10);
            while received.load(Ordering::Relaxed) < n && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
    let _ = client.stop();
}
