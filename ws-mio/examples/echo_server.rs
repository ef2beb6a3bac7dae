//! Echo server: sends every text and binary message back on any path, answers pings and
//! closes properly. Used for conformance tests and benchmarks.
//!
//! ```text
//! cargo run --release -p ws-mio --example echo_server -- --port 9002 [--threads N] [--deflate]
//!     [--tls-cert PEM --tls-key PEM] [--verbose]
//! ```
//! Prints the bound address, then runs until Ctrl-C. `--help` lists the options.

use ws_mio::{Handler, Message, Server, ServerConfig, Session};

const USAGE: &str = "\
usage: echo_server [--port PORT] [--threads N] [--deflate] [--tls-cert PEM --tls-key PEM] [--verbose]

Sends every text and binary message back, on any path, until Ctrl-C.
Prints `echo_server listening on ws://ADDRESS` once it accepts connections.

options:
  --port PORT    port to listen on, on all interfaces; 0 picks a free one (default 9002)
  --threads N    event-loop threads; 0 means one per CPU core (default 0)
  --deflate      accept permessage-deflate (RFC 7692) with the default settings
  --tls-cert PEM serve wss:// with this certificate chain (leaf first)...
  --tls-key PEM  ...and this private key
  -v, --verbose  debug logs on stderr (default: warnings only; RUST_LOG overrides both)
  -h, --help     print this help and exit";

/// One per connection (a cloneable handler is its own factory).
#[derive(Clone)]
struct Echo;

impl Handler for Echo {
    fn on_message(&mut self, session: &Session, message: Message) {
        // A reply never meets the output limit (the loop stops reading a peer that does not
        // read its replies): this fails only once the connection is closing, when there is
        // no one left to echo to.
        let _ = session.send(message);
    }
}

/// The command line.
struct Args {
    port: u16,
    threads: usize,
    deflate: bool,
    tls_cert: Option<String>,
    tls_key: Option<String>,
    verbose: bool,
}

fn parse_args() -> Result<Args, lexopt::Error> {
    use lexopt::Arg::{Long, Short};
    let mut args = Args {
        port: 9002,
        threads: 0,
        deflate: false,
        tls_cert: None,
        tls_key: None,
        verbose: false,
    };
    let mut parser = lexopt::Parser::from_env();
    while let Some(arg) = parser.next()? {
        match arg {
            Long("port") => args.port = parsed(&mut parser, "--port")?,
            Long("threads") => args.threads = parsed(&mut parser, "--threads")?,
            Long("deflate") => args.deflate = true,
            Long("tls-cert") => args.tls_cert = Some(parser.value()?.into_string()?),
            Long("tls-key") => args.tls_key = Some(parser.value()?.into_string()?),
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
        eprintln!("echo_server: {e}\n{usage}\n(echo_server --help for more)");
        std::process::exit(2);
    });
    let level = if args.verbose { "debug" } else { "warn" };
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(level)).init();

    let mut config = ServerConfig::default();
    config.threads = args.threads;
    // Echoing a 16 MiB message must fit in the output buffer alongside what is in flight.
    config.protocol.max_buffered_output = 32 << 20;
    if args.deflate {
        let deflate = ws_proto::extension::deflate::PerMessageDeflate::default();
        config
            .protocol
            .extensions
            .push(std::sync::Arc::new(deflate));
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        match ws_mio::tls::server_config_from_pem(cert, key) {
            Ok(tls) => config.tls = Some(tls),
            Err(e) => {
                eprintln!("echo_server: {e}");
                std::process::exit(1);
            }
        }
    }
    let scheme = if config.tls.is_some() { "wss" } else { "ws" };
    let server = match Server::bind(("0.0.0.0", args.port), config, Echo) {
        Ok(server) => server,
        Err(e) => {
            eprintln!("echo_server: cannot listen on port {}: {e}", args.port);
            std::process::exit(1);
        }
    };
    println!(
        "echo_server listening on {scheme}://{}",
        server.local_addr()
    );
    server.wait();
}
