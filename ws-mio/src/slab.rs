//! A slab of connections: slot index = mio token, plus a generation per slot so that a handle
//! to a closed connection can never reach the connection that reuses its slot. When the last
//! value leaves, the storage is released, so that a burst of connections does not pin its
//! memory for the rest of the loop's life.

#[derive(Debug)]
struct Slot<T> {
    generation: u32,
    value: Option<T>,
}

/// Slab with generation-checked keys.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: Vec<usize>,
    len: usize,
    /// The generation of newly created slots: above every generation of the slots released
    /// before, so that a key from before a release never matches a slot created after it.
    floor: u32,
}

/// A slot index and the generation it was filled with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct Key {
    pub(crate) index: usize,
    pub(crate) generation: u32,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Slab {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            floor: 0,
        }
    }
}

impl<T> Slab<T> {
    /// The key the next `insert` will return.
    pub(crate) fn vacant_key(&self) -> Key {
        match self.free.last() {
            Some(&index) => Key {
                index,
                generation: self.slots[index].generation,
            },
            None => Key {
                index: self.slots.len(),
                generation: self.floor,
            },
        }
    }

    pub(crate) fn insert(&mut self, value: T) -> Key {
        let key = self.vacant_key();
        if key.index == self.slots.len() {
            self.slots.push(Slot {
                generation: key.generation,
                value: Some(value),
            });
        } else {
            self.free.pop();
            self.slots[key.index].value = Some(value);
        }
        self.len += 1;
        key
    }

    pub(crate) fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.slots
            .get_mut(key.index)
            .filter(|s| s.generation == key.generation)
            .and_then(|s| s.value.as_mut())
    }

    /// The live key at `index`, if any (for mio tokens, which carry only the index).
    pub(crate) fn key_at(&self, index: usize) -> Option<Key> {
        let slot = self.slots.get(index)?;
        slot.value.as_ref().map(|_| Key {
            index,
            generation: slot.generation,
        })
    }

    pub(crate) fn remove(&mut self, key: Key) -> Option<T> {
        let slot = self
            .slots
            .get_mut(key.index)
            .filter(|s| s.generation == key.generation)?;
        let value = slot.value.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(key.index);
        self.len -= 1;
        if self.len == 0 {
            self.release();
        }
        Some(value)
    }

    /// Frees the storage of an empty slab (its capacity is that of its busiest moment).
    fn release(&mut self) {
        let newest = self.slots.iter().map(|s| s.generation).max();
        self.floor = newest.map_or(self.floor, |g| g.max(self.floor));
        self.slots = Vec::new();
        self.free = Vec::new();
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn keys(&self) -> Vec<Key> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.value.is_some())
            .map(|(index, s)| Key {
                index,
                generation: s.generation,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stale_keys_miss_reused_slots() {
        let mut slab = Slab::default();
        let a = slab.insert("a");
        assert_eq!(slab.remove(a), Some("a"));
        let b = slab.insert("b");
        assert_eq!(a.index, b.index);
        assert_eq!(slab.get_mut(a), None);
        assert_eq!(slab.get_mut(b), Some(&mut "b"));
        assert_eq!(slab.remove(a), None);
        assert_eq!(slab.len(), 1);
        assert_eq!(slab.key_at(b.index), Some(b));
        assert_eq!(slab.keys(), vec![b]);
    }

    #[test]
    fn an_emptied_slab_releases_its_storage_and_old_keys_stay_stale() {
        let mut slab = Slab::default();
        let keys: Vec<Key> = (0..1000).map(|i| slab.insert(i)).collect();
        for &key in &keys[1..] {
            slab.remove(key);
        }
        assert!(slab.slots.capacity() >= 1000, "not empty yet: kept");
        slab.remove(keys[0]);
        assert_eq!((slab.slots.capacity(), slab.free.capacity()), (0, 0));
        // New slots reuse the indices, never the keys.
        let fresh: Vec<Key> = (0..1000).map(|i| slab.insert(i)).collect();
        for (old, new) in keys.iter().zip(&fresh) {
            assert_eq!(old.index, new.index);
            assert_eq!(slab.get_mut(*old), None);
            assert_eq!(slab.remove(*old), None);
        }
        assert_eq!(slab.len(), 1000);
    }
}
