//! `bench_peer`: runs one of the suite's peer WebSocket servers (see `ws_bench::peers`).
//!
//! ```text
//! bench_peer --impl fastwebsockets|tokio-tungstenite|tokio-websockets --mode echo|chat [--port P]
//! ```
//!
//! It listens on `127.0.0.1:P` (a free port when `--port` is left out or 0), prints
//! `listening on 127.0.0.1:PORT` on stdout once it accepts connections, and serves until it is
//! killed. A bad argument prints the usage on stderr and exits with status 2; a server that
//! cannot start prints why and exits with status 1.

use std::process::ExitCode;

use ws_bench::peers::{self, Mode, PeerImpl};

/// The usage text, printed for `--help` and after a bad argument.
const USAGE: &str = "\
usage: bench_peer --impl NAME --mode MODE [--port PORT]

  --impl NAME   fastwebsockets, tokio-tungstenite or tokio-websockets
  --mode MODE   echo (send every message back) or chat (broadcast every message to all)
  --port PORT   the port to listen on, on 127.0.0.1 (default 0: a free port)

Prints `listening on 127.0.0.1:PORT` once it accepts connections, then serves until killed.";

/// The parsed command line.
#[derive(Debug, PartialEq, Eq)]
struct Args {
    /// The library the server is built with.
    peer: PeerImpl,
    /// What the server does with messages.
    mode: Mode,
    /// The port to listen on; 0 for a free one.
    port: u16,
}

/// What the command line asks for.
#[derive(Debug, PartialEq, Eq)]
enum Command {
    /// Run a server.
    Run(Args),
    /// Print the usage and exit successfully.
    Help,
}

/// Parses the arguments after the program name. The error is the message to print above the
/// usage.
fn parse_args(args: impl IntoIterator<Item = String>) -> Result<Command, String> {
    let mut peer = None;
    let mut mode = None;
    let mut port = 0;
    let mut args = args.into_iter();
    while let Some(flag) = args.next() {
        // `--flag=value` and `--flag value` are both accepted.
        let (flag, inline_value) = match flag.split_once('=') {
            Some((flag, value)) => (flag.to_owned(), Some(value.to_owned())),
            None => (flag, None),
        };
        if flag == "-h" || flag == "--help" {
            return Ok(Command::Help);
        }
        if !matches!(flag.as_str(), "--impl" | "--mode" | "--port") {
            return Err(format!("unknown argument `{flag}`"));
        }
        let value = match inline_value.or_else(|| args.next()) {
            Some(value) => value,
            None => return Err(format!("`{flag}` needs a value")),
        };
        match flag.as_str() {
            "--impl" => peer = Some(value.parse::<PeerImpl>().map_err(|e| e.to_string())?),
            "--mode" => mode = Some(value.parse::<Mode>().map_err(|e| e.to_string())?),
            _ => {
                port = value
                    .parse::<u16>()
                    .map_err(|e| format!("bad port `{value}`: {e}"))?;
            }
        }
    }
    let peer = peer.ok_or("`--impl` is required")?;
    let mode = mode.ok_or("`--mode` is required")?;
    Ok(Command::Run(Args { peer, mode, port }))
}

fn main() -> ExitCode {
    let args = match parse_args(std::env::args().skip(1)) {
        Ok(Command::Run(args)) => args,
        Ok(Command::Help) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(message) => {
            eprintln!("bench_peer: {message}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match peers::run(args.peer, args.mode, args.port) {
        Ok(never) => match never {},
        Err(e) => {
            eprintln!("bench_peer: {} peer ({} mode): {e}", args.peer, args.mode);
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Command, String> {
        parse_args(args.iter().map(|arg| arg.to_string()))
    }

    #[test]
    fn parses_the_documented_forms() {
        let expected = Command::Run(Args {
            peer: PeerImpl::TokioTungstenite,
            mode: Mode::Chat,
            port: 9001,
        });
        assert_eq!(
            parse(&[
                "--impl",
                "tokio-tungstenite",
                "--mode",
                "chat",
                "--port",
                "9001"
            ]),
            Ok(expected)
        );
        assert_eq!(
            parse(&["--mode=echo", "--impl=fastwebsockets"]),
            Ok(Command::Run(Args {
                peer: PeerImpl::Fastwebsockets,
                mode: Mode::Echo,
                port: 0,
            }))
        );
        assert_eq!(parse(&["--help"]), Ok(Command::Help));
    }

    #[test]
    fn refuses_bad_arguments() {
        assert!(parse(&[]).is_err());
        assert!(parse(&["--impl", "tokio-websockets"]).is_err());
        assert!(parse(&["--impl", "nope", "--mode", "echo"]).is_err());
        assert!(parse(&["--impl", "tokio-websockets", "--mode", "broadcast"]).is_err());
        assert!(parse(&[
            "--impl",
            "tokio-websockets",
            "--mode",
            "echo",
            "--port",
            "70000"
        ])
        .is_err());
        assert!(parse(&["--impl", "tokio-websockets", "--mode"]).is_err());
        assert!(parse(&["--verbose"]).is_err());
    }
}
