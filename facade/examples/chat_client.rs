//! Tutorial 2: a chat client that posts a few messages and prints what it receives.
//!
//! ```text
//! cargo run --release --example chat_client -- bob [--host 127.0.0.1] [--port 9001] [--expect N]
//! cargo run --release --example chat_client -- bob --host localhost --tls [--ca ca.pem]
//! ```
//!
//! It leaves 500 ms after its last line; with `--expect N`, once it has received N messages
//! instead (but after 10 s at most). `--help` lists the options.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ws_facade::{ClientConfig, WebSocketFacade};

const USAGE: &str = "\
usage: chat_client [NICK] [--host HOST] [--port PORT] [--tls] [--ca PEM] [--expect N] [--verbose]

Joins the chat room at ws://HOST:PORT/chat (wss:// with --tls) as NICK (default alice), posts
three lines, prints every message it receives and leaves 500 ms after its last line.

options:
  --host HOST    the chat server's host, a name or an IP address such as ::1
                 (default 127.0.0.1)
  --port PORT    the chat server's port (default 9001)
  --tls          connect with wss://, verifying the server's certificate for HOST against
                 Mozilla's root certificates
  --ca PEM       ...against the CA certificates of this file instead (implies --tls)
  --expect N     leave once N messages have been received instead (10 s at most)
  -v, --verbose  debug logs on stderr (default: warnings only; RUST_LOG overrides both)
  -h, --help     print this help and exit";

/// The command line.
struct Args {
    nick: Option<String>,
    host: String,
    port: u16,
    tls: bool,
    ca: Option<String>,
    expect: Option<usize>,
    verbose: bool,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::Arg::{Long, Short, Value};
    let mut args = Args {
        nick: None,
        host: "127.0.0.1".to_owned(),
        port: 9001,
        tls: false,
        ca: None,
        expect: None,
        verbose: false,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("host") => args.host = parser.value()?.into_string()?,
            Long("port") => args.port = parsed(&mut parser, "--port")?,
            Long("tls") => args.tls = true,
            Long("ca") => args.ca = Some(parser.value()?.into_string()?),
            Long("expect") => args.expect = Some(parsed(&mut parser, "--expect")?),
            Short('v') | Long("verbose") => args.verbose = true,
            Short('h') | Long("help") => {
                println!("{USAGE}");
                std::process::exit(0);
            }
            Value(nick) if args.nick.is_none() => args.nick = Some(nick.into_string()?),
            Value(extra) => {
                return Err(format!("unexpected argument {extra:?} (one NICK only)").into())
            }
            other => return Err(other.unexpected()),
        }
    }
    Ok(args)
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
        eprintln!("chat_client: {e}\n{usage}\n(chat_client --help for more)");
        std::process::exit(2);
    });
    let level = if args.verbose { "debug" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();
    let nick = args.nick.unwrap_or_else(|| "alice".to_owned());
    let (host, port, expect) = (args.host, args.port, args.expect);

    let mut config = ClientConfig::default();
    config.client_id = nick.clone();
    config.ping_interval = Duration::from_secs(15);
    config.path = "/chat".into();
    config.tls = match (&args.ca, args.tls) {
        (Some(ca), _) => match ws_facade::tls::client_config_with_ca_pem(ca) {
            Ok(tls) => Some(tls),
            Err(e) => {
                eprintln!("chat_client: {e}");
                std::process::exit(1);
            }
        },
        (None, true) => Some(ws_facade::tls::client_config()),
        (None, false) => None,
    };
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

    // A failed start reaches the error callback too (once, with the address tried), so its
    // Err is not printed again here.
    if client.start(&host, port).is_err() {
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
