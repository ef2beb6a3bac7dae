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
    /// A spent message buffer (a sent payload, drained or copied), kept to receive the next
    /// message into: an echo or a relay allocates nothing per message.
    recycled: Vec<u8>,
    /// Free the kept buffers once the queue drains (the handshake's are not worth keeping).
    release_when_drained: bool,
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

    /// Keeps a spent buffer, if it is no larger than [`COALESCE_LIMIT`]: the largest buffer
    /// seen becomes the recycled message buffer, the second largest the coalescing spare, so
    /// steady traffic settles with both large enough. At most two buffers of 64 KiB are kept.
    pub(crate) fn keep(&mut self, mut buf: Vec<u8>) {
        if buf.capacity() > COALESCE_LIMIT {
            return;
        }
        buf.clear();
        if buf.capacity() > self.recycled.capacity() {
            buf = std::mem::replace(&mut self.recycled, buf);
        }
        if buf.capacity() > self.spare.capacity() {
            self.spare = buf;
        }
    }

    /// Frees the buffers kept for reuse as soon as the queue is empty: after the opening
    /// handshake, so that an idle connection holds no buffer at all.
    pub(crate) fn release_kept_once_drained(&mut self) {
        self.release_when_drained = true;
        self.release_if_drained();
    }

    fn release_if_drained(&mut self) {
        if self.release_when_drained && self.len == 0 {
            self.release_when_drained = false;
            self.spare = Vec::new();
            self.recycled = Vec::new();
            self.chunks = VecDeque::new();
        }
    }

    /// An empty buffer for a received message of `len` bytes: the recycled one when it is
    /// large enough, else a new one of exactly that capacity.
    pub(crate) fn message_buffer(&mut self, len: usize) -> Vec<u8> {
        if self.recycled.capacity() >= len && len > 0 {
            std::mem::take(&mut self.recycled)
        } else {
            Vec::with_capacity(len)
        }
    }

    /// The bytes of the buffers kept for reuse (for the memory accounting of idle
    /// connections).
    #[cfg(test)]
    pub(crate) fn kept_capacity(&self) -> usize {
        self.spare.capacity() + self.recycled.capacity()
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
            if let Some(Chunk::Owned { buf, .. }) = self.chunks.pop_front() {
                self.keep(buf);
            }
        }
        // Drop fully drained chunks left at the front (zero-length ones).
        while self.chunks.front().is_some_and(|c| c.bytes().is_empty()) {
            self.chunks.pop_front();
        }
        self.release_if_drained();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spent_buffers_are_reused_and_bounded() {
        let mut q = OutputQueue::default();
        // A drained message chunk comes back for the next received message.
        q.push_vec(vec![1; ZERO_COPY_THRESHOLD]);
        q.advance(ZERO_COPY_THRESHOLD);
        q.keep(Vec::with_capacity(100));
        let buf = q.message_buffer(100);
        assert!(buf.capacity() >= 100 && buf.is_empty());
        // Nothing above the limit is kept.
        q.keep(Vec::with_capacity(COALESCE_LIMIT + 1));
        assert!(q.kept_capacity() <= 2 * COALESCE_LIMIT);
        // Too small a recycled buffer is not handed out for a larger message.
        let mut q = OutputQueue::default();
        q.keep(Vec::with_capacity(10));
        q.keep(Vec::with_capacity(10));
        assert!(q.message_buffer(1000).capacity() >= 1000);
    }

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
