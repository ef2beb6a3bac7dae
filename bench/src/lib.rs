//! The benchmark suite (see `docs/benchmarks.md`): the load generators, the peer servers it
//! compares with, the in-memory codec workloads, and the report it writes.
//!
//! Everything here measures; nothing is part of the published crates.

pub mod broadcast_load;
pub mod codec;
pub mod count_alloc;
pub mod echo_load;
pub mod report;
pub mod wire;

use std::fmt;
use std::io;

/// Why a load run failed. Any failure means the server under test misbehaved (or could not be
/// reached): the suite stops rather than report a figure for it.
#[derive(Debug)]
#[non_exhaustive]
pub enum LoadError {
    /// A socket operation failed.
    Io(io::Error),
    /// The server did not answer the upgrade with 101 (its status line, or what went wrong).
    Handshake(String),
    /// An echo differed from what was sent, this many bytes into the expected frame.
    Mismatch { offset: usize },
    /// The server closed a connection in the middle of the run.
    Closed,
    /// A message came back that was never sent (or a broadcast went to the wrong round).
    Unexpected,
    /// Messages still missing when the run's deadline passed.
    Timeout(usize),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Io(e) => write!(f, "I/O error: {e}"),
            LoadError::Handshake(status) => write!(f, "handshake refused: {status}"),
            LoadError::Mismatch { offset } => {
                write!(
                    f,
                    "an echo differs from the message, at byte {offset} of the frame"
                )
            }
            LoadError::Closed => f.write_str("the server closed a connection"),
            LoadError::Unexpected => f.write_str("a message arrived that was not expected"),
            LoadError::Timeout(n) => write!(f, "{n} messages still missing at the deadline"),
        }
    }
}

impl std::error::Error for LoadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            LoadError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for LoadError {
    fn from(e: io::Error) -> Self {
        LoadError::Io(e)
    }
}
pub mod codec_peers;
pub mod peers;
