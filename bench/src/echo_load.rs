//! The echo load generator: one thread, one mio poll, `connections` raw TCP WebSocket clients
//! keeping `in_flight` pre-masked binary messages outstanding each. Every byte that comes back
//! is compared with the expected echo, so a server that drops, reorders or corrupts a message
//! fails the run instead of looking fast.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::net::TcpStream;
use mio::{Events, Interest, Poll, Token};

use crate::wire::{self, OP_BINARY};
use crate::LoadError;

/// One cell of the echo grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EchoCell {
    pub connections: usize,
    pub payload: usize,
    pub in_flight: usize,
}

impl EchoCell {
    /// The cell's name in tables: `100 × 20 B, 1 in flight`.
    pub fn label(&self) -> String {
        format!(
            "{} × {}",
            self.connections,
            crate::report::size_label(self.payload)
        )
    }
}

/// What one run of a cell measured (the measuring window only).
#[derive(Clone, Debug, Default)]
pub struct EchoSample {
    pub messages: u64,
    pub elapsed: Duration,
    /// Round trips of the messages completed in the window, in nanoseconds, sorted.
    pub round_trips: Vec<u64>,
    /// How much the caller's probe (server CPU seconds, allocations...) grew over the window.
    pub probe: f64,
}

impl EchoSample {
    pub fn messages_per_sec(&self) -> f64 {
        self.messages as f64 / self.elapsed.as_secs_f64()
    }

    /// The `q` quantile of the round trips (0.5: median), in microseconds.
    pub fn round_trip_us(&self, q: f64) -> f64 {
        crate::report::quantile(&self.round_trips, q, 1e3)
    }
}

struct Client {
    stream: TcpStream,
    /// Bytes queued and not yet written: whole frames, the first possibly part-written.
    unsent: usize,
    /// The echo being received: frame by frame, each payload byte checked as it comes.
    echo: EchoReader,
    /// When each outstanding message was queued, oldest first.
    sent_at: VecDeque<Instant>,
}

/// Checks an echo as it arrives, in whatever frames the server chose (RFC 6455 lets it
/// fragment a message): the first frame binary, the others continuations, the last with FIN,
/// the payloads together equal to what was sent.
#[derive(Default)]
struct EchoReader {
    /// A frame header being read (at most 10 bytes: servers do not mask).
    header: Vec<u8>,
    /// Payload bytes left in the current frame, and whether it is the message's last.
    frame_left: usize,
    frame_fin: bool,
    in_frame: bool,
    /// How much of the message's payload has been checked.
    matched: usize,
}

impl EchoReader {
    /// Consumes `data`; returns how many whole echoes it completed.
    fn feed(&mut self, mut data: &[u8], payload: &[u8]) -> Result<usize, LoadError> {
        let mut done = 0;
        while !data.is_empty() {
            if !self.in_frame {
                let take = (10 - self.header.len()).min(data.len());
                self.header.extend_from_slice(&data[..take]);
                let Some((opcode, header_len, len)) = wire::parse_server_header(&self.header)
                else {
                    data = &data[take..];
                    continue;
                };
                let expected_opcode = if self.matched == 0 { OP_BINARY } else { 0 };
                if opcode != expected_opcode || self.header[1] & 0x80 != 0 {
                    return Err(LoadError::Mismatch {
                        offset: self.matched,
                    });
                }
                // Give back what was read past the header.
                let used = take - (self.header.len() - header_len);
                data = &data[used..];
                self.frame_fin = self.header[0] & 0x80 != 0;
                self.frame_left = len;
                self.in_frame = true;
                self.header.clear();
            }
            let take = self.frame_left.min(data.len());
            let end = self.matched + take;
            if end > payload.len() || data[..take] != payload[self.matched..end] {
                return Err(LoadError::Mismatch {
                    offset: self.matched,
                });
            }
            self.matched = end;
            self.frame_left -= take;
            data = &data[take..];
            if self.frame_left == 0 {
                self.in_frame = false;
                if self.frame_fin {
                    if self.matched != payload.len() {
                        return Err(LoadError::Mismatch {
                            offset: self.matched,
                        });
                    }
                    self.matched = 0;
                    done += 1;
                }
            }
        }
        Ok(done)
    }
}

/// Runs `cell` against the echo server at `addr` (path `/`): connects every client, warms up
/// for `warmup`, measures for `measure`, then lets the outstanding messages come back.
/// `probe` is read when the measuring window opens and when it closes.
pub fn run(
    addr: SocketAddr,
    cell: EchoCell,
    warmup: Duration,
    measure: Duration,
    probe: &mut dyn FnMut() -> f64,
) -> Result<EchoSample, LoadError> {
    let payload: Vec<u8> = (0..cell.payload).map(|i| (i * 31 + 7) as u8).collect();
    let frame = wire::client_frame(OP_BINARY, &payload, [0x5a, 0x13, 0xc7, 0x81]);
    // `in_flight` frames back to back: any run of queued frames is one slice of it.
    let batch = frame.repeat(cell.in_flight);

    let mut poll = Poll::new()?;
    let mut clients = Vec::with_capacity(cell.connections);
    for i in 0..cell.connections {
        let stream = wire::connect(addr, "/", Duration::from_secs(5))?;
        let mut stream = TcpStream::from_std(stream);
        poll.registry().register(
            &mut stream,
            Token(i),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        clients.push(Client {
            stream,
            unsent: 0,
            echo: EchoReader::default(),
            sent_at: VecDeque::with_capacity(cell.in_flight),
        });
    }

    let start = Instant::now();
    let measure_from = start + warmup;
    let measure_until = measure_from + measure;
    let drain_until = measure_until + Duration::from_secs(10);
    let mut sample = EchoSample {
        elapsed: measure,
        ..EchoSample::default()
    };
    sample.round_trips.reserve(1 << 20);
    for client in &mut clients {
        for _ in 0..cell.in_flight {
            client.unsent += frame.len();
            client.sent_at.push_back(start);
        }
        flush(client, &batch, frame.len())?;
    }

    let mut events = Events::with_capacity(1024);
    let mut buf = vec![0u8; 256 << 10];
    let mut outstanding = cell.connections * cell.in_flight;
    // The probe's reading when the window opened, then `None` once it is closed.
    let mut probe_start = None;
    let mut window_open = false;
    while outstanding > 0 {
        let now = Instant::now();
        if now > drain_until {
            return Err(LoadError::Timeout(outstanding));
        }
        if !window_open && now >= measure_from && now < measure_until {
            window_open = true;
            probe_start = Some(probe());
        } else if window_open && now >= measure_until {
            window_open = false;
            if let Some(start) = probe_start.take() {
                sample.probe = probe() - start;
            }
        }
        let sending = now < measure_until;
        poll.poll(&mut events, Some(Duration::from_millis(100)))?;
        for event in events.iter() {
            let client = &mut clients[event.token().0];
            if event.is_readable() || event.is_read_closed() {
                while let Some(n) = wire::read_some(&mut client.stream, &mut buf)? {
                    let now = Instant::now();
                    let completed = client.echo.feed(&buf[..n], &payload)?;
                    for _ in 0..completed {
                        let sent = client.sent_at.pop_front().ok_or(LoadError::Unexpected)?;
                        outstanding -= 1;
                        if now >= measure_from && now < measure_until {
                            sample.messages += 1;
                            sample.round_trips.push((now - sent).as_nanos() as u64);
                        }
                        if sending && now < measure_until {
                            client.unsent += frame.len();
                            client.sent_at.push_back(now);
                            outstanding += 1;
                        }
                    }
                    if n < buf.len() {
                        break;
                    }
                }
            }
            flush(client, &batch, frame.len())?;
        }
    }
    // The last echoes may all have come back before the loop saw the window close.
    if let Some(start) = probe_start {
        sample.probe = probe() - start;
    }
    sample.round_trips.sort_unstable();
    for client in &mut clients {
        // A normal closure (1000), so servers log nothing unusual.
        let close = wire::client_frame(wire::OP_CLOSE, &[0x03, 0xe8], [1, 2, 3, 4]);
        let _ = wire::write_all_nonblocking(&mut client.stream, &close);
    }
    Ok(sample)
}

/// Writes what the client has queued, as far as the socket takes it.
fn flush(client: &mut Client, batch: &[u8], frame_len: usize) -> Result<(), LoadError> {
    while client.unsent > 0 {
        // The queued bytes are the tail of some whole frames: start where the first one is.
        let start = (frame_len - client.unsent % frame_len) % frame_len;
        let end = (start + client.unsent).min(batch.len());
        match client.stream.write(&batch[start..end]) {
            Ok(0) => return Err(LoadError::Closed),
            Ok(n) => client.unsent -= n,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echoes_are_checked_across_frames_and_reads() {
        let payload: Vec<u8> = (0..300u32).map(|i| i as u8).collect();
        // One frame, then the same message in three fragments, fed one byte at a time.
        let mut wire_bytes = wire::server_frame(OP_BINARY, &payload);
        for (i, part) in payload.chunks(100).enumerate() {
            let mut frame = wire::server_frame(if i == 0 { OP_BINARY } else { 0 }, part);
            if i < 2 {
                frame[0] &= 0x7f; // not FIN
            }
            wire_bytes.extend_from_slice(&frame);
        }
        let mut reader = EchoReader::default();
        let done: usize = wire_bytes
            .iter()
            .map(|b| reader.feed(std::slice::from_ref(b), &payload).unwrap())
            .sum();
        assert_eq!(done, 2);
        // A changed byte, a wrong opcode, a short message: each is a mismatch.
        let mut bad = wire::server_frame(OP_BINARY, &payload);
        bad[50] ^= 1;
        assert!(EchoReader::default().feed(&bad, &payload).is_err());
        let text = wire::server_frame(0x1, &payload);
        assert!(EchoReader::default().feed(&text, &payload).is_err());
        let short = wire::server_frame(OP_BINARY, &payload[..299]);
        assert!(EchoReader::default().feed(&short, &payload).is_err());
    }
}
