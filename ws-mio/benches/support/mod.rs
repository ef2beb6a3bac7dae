//! Shared pieces of the ws-mio benchmark suite (each bench target does `mod support;`).
//!
//! * [`loadgen`]: a raw-TCP WebSocket load generator (its own handshake and framing, no
//!   WebSocket library), driven by mio on a few threads.
//! * [`servers`]: the echo servers under test, started in-process: ours (`ws_mio::Server`)
//!   and tokio-tungstenite on a runtime of its own.
//! * [`cpu`]: on-CPU time of this process's threads, by thread name.
//! * [`report`]: command-line options and the results table.
// Not every bench target uses every item.
#![allow(dead_code)]

pub mod cpu;
pub mod loadgen;
pub mod report;
pub mod servers;
