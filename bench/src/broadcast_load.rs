//! The broadcast load generator: `clients` raw TCP clients join a chat server; in each round
//! `senders` of them post one message at the same moment, and the round ends when every client
//! has every message. The figure is, per message, the time from its send until the last client
//! has it.

use std::io::Write;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::wire::{self, OP_BINARY};
use crate::LoadError;

/// The tag that ends each posted message: `#`, the round and the sender, in hex.
const TAG_LEN: usize = 1 + 8 + 4;

/// Times until the last client had each message, in nanoseconds, sorted.
#[derive(Clone, Debug, Default)]
pub struct BroadcastSample {
    pub until_last: Vec<u64>,
}

impl BroadcastSample {
    /// The `q` quantile, in milliseconds.
    pub fn until_last_ms(&self, q: f64) -> f64 {
        crate::report::quantile(&self.until_last, q, 1e6)
    }
}

struct Member {
    stream: TcpStream,
    /// Received bytes not yet parsed into whole frames.
    pending: Vec<u8>,
}

fn tag(round: u32, sender: u16) -> String {
    format!("#{round:08x}{sender:04x}")
}

fn parse_tag(payload: &[u8]) -> Option<(u32, u16)> {
    let tag = payload.get(payload.len().checked_sub(TAG_LEN)?..)?;
    let tag = std::str::from_utf8(tag).ok()?.strip_prefix('#')?;
    Some((
        u32::from_str_radix(&tag[..8], 16).ok()?,
        u16::from_str_radix(&tag[8..], 16).ok()?,
    ))
}

/// Joins `clients` clients to the chat at `addrs` + `path` (client N, `?id=cN`, to the
/// server N modulo their number: a cluster's nodes share the clients), then runs
/// `warmup + rounds` rounds of `senders` simultaneous posts. Warm-up rounds are not counted.
pub fn run(
    addrs: &[SocketAddr],
    path: &str,
    clients: usize,
    senders: usize,
    warmup: usize,
    rounds: usize,
) -> Result<BroadcastSample, LoadError> {
    let mut poll = Poll::new()?;
    let mut members = Vec::with_capacity(clients);
    for i in 0..clients {
        let addr = addrs[i % addrs.len()];
        let stream = wire::connect(addr, &format!("{path}?id=c{i}"), Duration::from_secs(5))?;
        let mut stream = TcpStream::from_std(stream);
        poll.registry()
            .register(&mut stream, Token(i), Interest::READABLE)?;
        members.push(Member {
            stream,
            pending: Vec::with_capacity(4096),
        });
    }
    // Servers may list a member a little after its handshake: let the last ones settle.
    std::thread::sleep(Duration::from_millis(300));

    let mut sample = BroadcastSample::default();
    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 64 << 10];
    let spacing = clients / senders.max(1);
    for round in 0..(warmup + rounds) as u32 {
        // Arrivals per sender this round, and when the last one came.
        let mut arrivals = vec![0usize; senders];
        let mut last = vec![Instant::now(); senders];
        let sent_at = Instant::now();
        for s in 0..senders {
            let text = format!("hello from the benchmark {}", tag(round, s as u16));
            let frame = wire::client_frame(OP_BINARY, text.as_bytes(), [9, 8, 7, 6]);
            wire::write_all_nonblocking(&mut members[s * spacing].stream, &frame)?;
        }
        let deadline = sent_at + Duration::from_secs(10);
        let mut done = 0;
        while done < senders * clients {
            if Instant::now() > deadline {
                return Err(LoadError::Timeout(senders * clients - done));
            }
            poll.poll(&mut events, Some(Duration::from_millis(100)))?;
            for event in events.iter() {
                let member = &mut members[event.token().0];
                while let Some(n) = wire::read_some(&mut member.stream, &mut buf)? {
                    let now = Instant::now();
                    member.pending.extend_from_slice(&buf[..n]);
                    let mut at = 0;
                    while let Some((opcode, header, len)) =
                        wire::parse_server_header(&member.pending[at..])
                    {
                        if member.pending.len() - at < header + len {
                            break;
                        }
                        let payload = &member.pending[at + header..at + header + len];
                        at += header + len;
                        if opcode == wire::OP_CLOSE {
                            return Err(LoadError::Closed);
                        }
                        let Some((r, s)) = parse_tag(payload) else {
                            continue;
                        };
                        if r != round || s as usize >= senders {
                            return Err(LoadError::Unexpected);
                        }
                        arrivals[s as usize] += 1;
                        last[s as usize] = now;
                        done += 1;
                    }
                    member.pending.drain(..at);
                }
            }
        }
        if arrivals.iter().any(|&a| a != clients) {
            return Err(LoadError::Unexpected);
        }
        if round as usize >= warmup {
            sample
                .until_last
                .extend(last.iter().map(|t| (*t - sent_at).as_nanos() as u64));
        }
    }
    sample.until_last.sort_unstable();
    for member in &mut members {
        let close = wire::client_frame(wire::OP_CLOSE, &[0x03, 0xe8], [1, 2, 3, 4]);
        let _ = member.stream.write(&close);
    }
    Ok(sample)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_parse_back() {
        let text = format!("c12: hello {}", tag(77, 9));
        assert_eq!(parse_tag(text.as_bytes()), Some((77, 9)));
        assert_eq!(parse_tag(b"short"), None);
    }
}
