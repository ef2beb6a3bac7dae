//! The outgoing byte queue a driver drains.
//!
//! Small frames are coalesced into one contiguous buffer so a burst of messages goes out in one
//! write. Large payloads are queued as their own chunks without being copied (the caller's
//! `Vec` is moved in, or shared through an `Arc` when a prepared broadcast frame is reused by
//! many connections). Drivers take the front chunk, or several as `IoSlice`s for a vectored
//! write, and advance by what the socket accepted.

use std::collections::VecDeque;
use std::io::IoSlice;
use std::sync::Arc;

/// The one backpressure rule: whether `additional` bytes may join `buffered` bytes of output
/// under `limit`. An empty queue takes anything, however large (a big message is never
/// refused for buffer space alone); otherwise the total must stay within the limit. Every
/// layer that bounds output (the connection's sends and automatic pongs, a driver's session
/// handles and broadcasts) asks this one function.
///
/// ```
/// use ws_proto::fits_output_limit;
/// assert!(fits_output_limit(0, 10 << 20, 1 << 20)); // an empty queue takes a big message
/// assert!(fits_output_limit(1000, 24, 1024));
/// assert!(!fits_output_limit(1000, 25, 1024));
/// ```
pub fn fits_output_limit(buffered: usize, additional: usize, limit: usize) -> bool {
    buffered == 0 || buffered.saturating_add(additional) <= limit
}

/// Payloads at least this long are queued as their own chunk instead of being copied.
pub(crate) const ZERO_COPY_THRESHOLD: usize = 4 << 10;
/// The coalescing buffer stops growing past this; a new one is started.
const COALESCE_LIMIT: usize = 64 << 10;

#[derive(Debug)]
enum Chunk {
    Owned {
        buf: Vec<u8>,
        pos: usize,
    },
    Shared {
        buf: Arc<Vec<u8>>,
        pos: usize,
        end: usize,
    },
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Owned { buf, pos } => &buf[*pos..],
            Chunk::Shared { buf, pos, end } => &buf[*pos..*end],
        }
    }
}

#[derive(Debug, Default)]
pub(crate) struct OutputQueue {
    chunks: VecDeque<Chunk>,
    len: usize,
    /// A drained coalescing buffer kept for reuse, so steady traffic does not allocate.
    spare: Vec<u8>,
}

impl OutputQueue {
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The coalescing tail buffer, created if the last chunk cannot take more bytes.
    pub(crate) fn tail(&mut self, additional: usize) -> &mut Vec<u8> {
        let reusable = matches!(self.chunks.back(),
            Some(Chunk::Owned { buf, .. }) if buf.len() + additional <= COALESCE_LIMIT.max(buf.capacity()));
        if !reusable {
            let mut buf = std::mem::take(&mut self.spare);
            buf.reserve(additional);
            self.chunks.push_back(Chunk::Owned { buf, pos: 0 });
        }
        match self.chunks.back_mut() {
            Some(Chunk::Owned { buf, .. }) => buf,
            _ => unreachable!("a reusable owned tail was just ensured"),
        }
    }

    /// Appends bytes to the coalescing tail.
    pub(crate) fn push_slice(&mut self, bytes: &[u8]) {
        self.tail(bytes.len()).extend_from_slice(bytes);
        self.len += bytes.len();
    }

    /// Records `n` bytes written directly into [`tail`](Self::tail).
    pub(crate) fn commit_tail(&mut self, n: usize) {
        self.len += n;
    }

    /// Queues an owned buffer as its own chunk (no copy).
    pub(crate) fn push_vec(&mut self, buf: Vec<u8>) {
        if buf.len() < ZERO_COPY_THRESHOLD {
            self.push_slice(&buf);
        } else {
            self.len += buf.len();
            self.chunks.push_back(Chunk::Owned { buf, pos: 0 });
        }
    }

    /// Queues `buf[start..end]` of a shared buffer (no copy).
    pub(crate) fn push_shared(&mut self, buf: &Arc<Vec<u8>>, start: usize, end: usize) {
        if end - start < ZERO_COPY_THRESHOLD {
            self.push_slice(&buf[start..end]);
        } else {
            self.len += end - start;
            self.chunks.push_back(Chunk::Shared {
                buf: Arc::clone(buf),
                pos: start,
                end,
            });
        }
    }

    pub(crate) fn front(&self) -> &[u8] {
        self.chunks.front().map_or(&[], Chunk::bytes)
    }

    pub(crate) fn fill_slices<'a>(&'a self, out: &mut [IoSlice<'a>]) -> usize {
        let mut n = 0;
        for (slot, chunk) in out.iter_mut().zip(&self.chunks) {
            *slot = IoSlice::new(chunk.bytes());
            n += 1;
        }
        n
    }

    pub(crate) fn advance(&mut self, mut n: usize) {
        n = n.min(self.len);
        self.len -= n;
        while n > 0 {
            let Some(front) = self.chunks.front_mut() else {
                break;
            };
            let left = front.bytes().len();
            if n < left {
                match front {
                    Chunk::Owned { pos, .. } | Chunk::Shared { pos, .. } => *pos += n,
                }
                return;
            }
            n -= left;
            if let Some(Chunk::Owned { mut buf, .. }) = self.chunks.pop_front() {
                if buf.capacity() <= COALESCE_LIMIT && buf.capacity() > self.spare.capacity() {
                    buf.clear();
                    self.spare = buf;
                }
            }
        }
        // Drop fully drained chunks left at the front (zero-length ones).
        while self.chunks.front().is_some_and(|c| c.bytes().is_empty()) {
            self.chunks.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn coalesces_small_and_keeps_order() {
        let mut q = OutputQueue::default();
        q.push_slice(b"ab");
        q.push_vec(vec![b'c'; 10]);
        let big = vec![b'd'; ZERO_COPY_THRESHOLD];
        q.push_vec(big);
        q.push_slice(b"e");
        assert_eq!(q.len(), 2 + 10 + ZERO_COPY_THRESHOLD + 1);
        let mut all = Vec::new();
        while !q.is_empty() {
            let take = q.front().len().min(3000);
            all.extend_from_slice(&q.front()[..take]);
            q.advance(take);
        }
        let mut expected = b"ab".to_vec();
        expected.extend(vec![b'c'; 10]);
        expected.extend(vec![b'd'; ZERO_COPY_THRESHOLD]);
        expected.push(b'e');
        assert_eq!(all, expected);
    }

    #[test]
    fn vectored_view_covers_every_chunk() {
        let mut q = OutputQueue::default();
        let shared = Arc::new(vec![7u8; ZERO_COPY_THRESHOLD * 2]);
        q.push_slice(b"hdr");
        q.push_shared(&shared, 10, 10 + ZERO_COPY_THRESHOLD);
        q.push_slice(b"tail");
        let mut slices = [IoSlice::new(&[]); 8];
        let n = q.fill_slices(&mut slices);
        let total: usize = slices[..n].iter().map(|s| s.len()).sum();
        assert_eq!(total, q.len());
        q.advance(total);
        assert!(q.is_empty() && q.front().is_empty());
    }
}
