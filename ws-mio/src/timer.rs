//! Deadlines of a loop's connections in a binary heap, so the loop sleeps until the earliest
//! one without scanning every connection. Rescheduling pushes a new entry; entries that no
//! longer match their connection's current deadline are skipped when they come out.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

use crate::slab::Key;

#[derive(Debug, Default)]
pub(crate) struct TimerHeap {
    heap: BinaryHeap<Reverse<(Instant, Key)>>,
}

impl TimerHeap {
    pub(crate) fn schedule(&mut self, at: Instant, key: Key) {
        self.heap.push(Reverse((at, key)));
    }

    pub(crate) fn next_deadline(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// Removes and returns one entry due at `now`, if any. The heap's storage shrinks as it
    /// empties, so that a burst of connections does not pin its memory.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<(Instant, Key)> {
        let entry = match self.heap.peek() {
            Some(Reverse((at, _))) if *at <= now => self.heap.pop().map(|Reverse(e)| e),
            _ => return None,
        };
        if self.heap.capacity() > 64 && self.heap.len() < self.heap.capacity() / 4 {
            self.heap.shrink_to(self.heap.len() * 2);
        }
        entry
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn pops_in_deadline_order() {
        let t0 = Instant::now();
        let key = |index| Key {
            index,
            generation: 0,
        };
        let mut timers = TimerHeap::default();
        timers.schedule(t0 + Duration::from_secs(3), key(3));
        timers.schedule(t0 + Duration::from_secs(1), key(1));
        timers.schedule(t0 + Duration::from_secs(2), key(2));
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(timers.pop_expired(t0), None);
        let due: Vec<usize> =
            std::iter::from_fn(|| timers.pop_expired(t0 + Duration::from_secs(2)))
                .map(|(_, k)| k.index)
                .collect();
        assert_eq!(due, vec![1, 2]);
    }

    #[test]
    fn storage_shrinks_as_entries_expire() {
        let t0 = Instant::now();
        let mut timers = TimerHeap::default();
        for index in 0..10_000 {
            let key = Key {
                index,
                generation: 0,
            };
            timers.schedule(t0 + Duration::from_millis(index as u64), key);
        }
        assert!(timers.heap.capacity() >= 10_000);
        while timers.pop_expired(t0 + Duration::from_secs(60)).is_some() {}
        assert!(timers.heap.capacity() <= 64, "{}", timers.heap.capacity());
    }
}
