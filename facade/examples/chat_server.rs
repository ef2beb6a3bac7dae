//! Tutorial 1: a broadcasting chat server bound to `/chat`.
//!
//! ```text
//! cargo run --release --example chat_server [-- [--host ::1] [--port 9001]]
//! cargo run --release --example chat_server -- --tls-cert cert.pem --tls-key key.pem
//! cargo run --release -p ws-facade --features redis --example chat_server -- \
//!     --redis redis://127.0.0.1:6379 --node-id a
//! ```
//! Every message is sent to every participant as `"<sender id>: <message>"`. The server also
//! answers `GET /` with a chat page, so http://localhost:9001/ in a browser is a working chat
//! (https:// and wss:// with `--tls-cert` and `--tls-key`). With `--redis`, several chat servers
//! share one room through Redis pub/sub (docs/scaling-out.md).
//! Ctrl-C stops it: every participant is closed with 1001 (going away). `--help` lists the
//! options.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use ws_facade::cluster::{ClusterConfig, ClusterEvent, LeaveCause};
use ws_facade::{ServerConfig, Session, WebSocketFacade};

const PAGE: &str = include_str!("chat_page.html");

const USAGE: &str = "\
usage: chat_server [--host HOST] [--port PORT] [--threads N] [--tls-cert PEM --tls-key PEM]
                   [--redis redis://HOST:PORT [--node-id NAME]] [--verbose]

A broadcasting chat room on ws://localhost:PORT/chat, with a chat page for browsers on
http://localhost:PORT/ (wss:// and https:// with TLS). Ctrl-C stops it: every participant is
closed with 1001.

options:
  --host HOST       address to listen on, e.g. 127.0.0.1 or ::1 (default: every interface,
                    IPv6 and IPv4)
  --port PORT       port to listen on (default 9001)
  --threads N       event loops (default 0: one per core)
  --tls-cert PEM    serve over TLS with this certificate chain (leaf first)...
  --tls-key PEM     ...and this private key
  --redis URL       share the room with every chat server on this Redis server
                    (redis://HOST:PORT; needs the cargo feature ws-facade/redis)
  --node-id NAME    this server's name in the cluster (default: node-XXXXXXXX)
  -v, --verbose     debug logs on stderr (default: warnings only; RUST_LOG overrides both)
  -h, --help        print this help and exit";

/// The command line.
struct Args {
    host: Option<String>,
    port: u16,
    threads: usize,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    redis: Option<String>,
    node_id: Option<String>,
    verbose: bool,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::Arg::{Long, Short};
    let mut args = Args {
        host: None,
        port: 9001,
        threads: 0,
        tls_cert: None,
        tls_key: None,
        redis: None,
        node_id: None,
        verbose: false,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("host") => args.host = Some(parser.value()?.into_string()?),
            Long("port") => args.port = parsed(&mut parser, "--port")?,
            Long("threads") => args.threads = parsed(&mut parser, "--threads")?,
            Long("tls-cert") => args.tls_cert = Some(parser.value()?.into_string()?),
            Long("tls-key") => args.tls_key = Some(parser.value()?.into_string()?),
            Long("redis") => args.redis = Some(parser.value()?.into_string()?),
            Long("node-id") => args.node_id = Some(parser.value()?.into_string()?),
            Short('v') | Long("verbose") => args.verbose = true,
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            other => return Err(other.unexpected()),
        }
    }
    if args.tls_cert.is_some() != args.tls_key.is_some() {
        return Err("--tls-cert and --tls-key go together".into());
    }
    if args.node_id.is_some() && args.redis.is_none() {
        return Err("--node-id needs --redis".into());
    }
    Ok(args)
}

/// Participants in the room now (0 once the server is gone).
fn online_count(room: &std::sync::Weak<dyn ws_facade::ProtocolServer>) -> usize {
    room.upgrade()
        .as_deref()
        .and_then(|s| s.as_websocket())
        .map_or(0, |ws| ws.online_count())
}

/// The value of `flag`, parsed; an error names the value and the flag.
fn parsed<T>(parser: &mut lexopt::Parser, flag: &str) -> Result<T, lexopt::Error>
where
    T: std::str::FromStr,
    T::Err: std::fmt::Display,
{
    let value = parser.value()?.into_string()?;
    value
        .parse()
        .map_err(|e| format!("invalid value '{value}' for {flag}: {e}").into())
}

fn main() {
    let args = parse_args().unwrap_or_else(|e| {
        let usage = USAGE.lines().next().unwrap_or_default();
        eprintln!("chat_server: {e}\n{usage}\n(chat_server --help for more)");
        std::process::exit(2);
    });
    let level = if args.verbose { "debug" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    let port = args.port;
    // The host to show in the URLs below: localhost when listening on every interface.
    let shown = match args.host.as_deref() {
        None | Some("::" | "[::]" | "0.0.0.0") => "localhost".to_owned(),
        Some(host) if host.contains(':') && !host.starts_with('[') => format!("[{host}]"),
        Some(host) => host.to_owned(),
    };

    let mut config = ServerConfig::default();
    config.host = args.host;
    config.port = port;
    config.threads = args.threads;
    config.path = "/chat".into();
    config.server_id = "chat-server".into();
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        match ws_facade::tls::server_config_from_pem(cert, key) {
            Ok(tls) => config.tls = Some(tls),
            Err(e) => {
                eprintln!("chat_server: {e}");
                std::process::exit(1);
            }
        }
    }
    if let Some(url) = &args.redis {
        let mut cluster = ClusterConfig::new(url.as_str());
        cluster.node_id = args.node_id.clone().unwrap_or_default();
        config.cluster = Some(cluster);
    }
    let (ws, http) = match config.tls {
        Some(_) => ("wss", "https"),
        None => ("ws", "http"),
    };
    let server = match WebSocketFacade::create_server(&config) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("create failed: {e}");
            std::process::exit(1);
        }
    };

    let sessions: Arc<Mutex<BTreeMap<String, Arc<dyn Session>>>> = Arc::default();

    // The online count is the room's: with --redis, every node's participants.
    let joined = Arc::clone(&sessions);
    let room = Arc::downgrade(&server);
    server.set_connection_callback(move |session| {
        let id = session.id().to_owned();
        joined.lock().unwrap().insert(id.clone(), session);
        let online = online_count(&room);
        println!("[chat] join {id} ({online} online)");
    });

    let left = Arc::clone(&sessions);
    server.set_disconnection_callback(move |id| {
        left.lock().unwrap().remove(id);
        println!("[chat] leave {id}");
    });

    // Every participant gets every message: one frame, encoded once and shared by all of
    // them (the tutorial's C++ loop copies it for each session; see docs/tutorial.md). The
    // callback holds the server weakly: a server owning a callback that owns the server
    // would never be freed.
    let room = Arc::downgrade(&server);
    server.set_receive_callback(move |sender_id, payload| {
        let mut broadcast = format!("{sender_id}: ").into_bytes();
        broadcast.extend_from_slice(payload);
        if let Some(ws) = room.upgrade().as_deref().and_then(|s| s.as_websocket()) {
            let _ = ws.broadcast_binary(&broadcast);
        }
    });

    server.set_error_callback(|id, error| eprintln!("[chat] error {id}: {error}"));

    // Other nodes' participants, and this node's link to Redis.
    let room = Arc::downgrade(&server);
    let redis_url = args.redis.clone().unwrap_or_default();
    if let Some(ws) = server.as_websocket() {
        ws.set_cluster_callback(move |event| match event {
            ClusterEvent::Joined { node, id } => {
                let online = online_count(&room);
                println!("[chat] join {id} on {node} ({online} online)");
            }
            ClusterEvent::Left { node, id, cause } => match cause {
                LeaveCause::Disconnected => println!("[chat] leave {id} on {node}"),
                cause => println!("[chat] leave {id} on {node} ({cause})"),
            },
            ClusterEvent::Connected { node } => {
                println!("[chat] cluster: {node} connected to {redis_url}")
            }
            ClusterEvent::Disconnected { error } => {
                println!("[chat] cluster: {error}; local chat goes on, reconnecting")
            }
            ClusterEvent::NodeUp { node } => println!("[chat] cluster: node {node} up"),
            ClusterEvent::NodeDown { node, cause } => {
                println!("[chat] cluster: node {node} down ({cause})")
            }
            ClusterEvent::Lost { node, count } => {
                println!("[chat] cluster: {count} messages from {node} lost")
            }
            _ => {}
        });
    }

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

    // Ctrl-C: say why, then stop. stop() closes every participant with 1001 (each still gets
    // its disconnection callback, so its "leave" line) and makes wait_for_stop() return.
    let stopping = Arc::clone(&server);
    let online = Arc::clone(&sessions);
    let on_interrupt = move || {
        let count = online.lock().unwrap().len();
        println!("[chat] interrupted: stopping ({count} online)");
        let _ = stopping.stop();
    };
    if let Err(e) = ctrlc::set_handler(on_interrupt) {
        eprintln!("[chat] cannot catch Ctrl-C: {e}");
    }

    println!("[chat] {ws}://{shown}:{port}/chat");
    println!("[chat] open {http}://{shown}:{port}/ in a browser to join");
    server.wait_for_stop();
}
