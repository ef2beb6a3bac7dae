//! The application's callbacks, shared by every connection of a server or client and read on
//! every event without taking a lock.
//!
//! Setting a callback replaces the whole table (copy, change, publish a new `Arc`) and bumps a
//! version. Each connection keeps a [`CallbackView`]: per event it loads the version (a read of
//! a rarely written atomic, no write to shared memory) and refreshes its `Arc` only when a
//! setter ran since. Setters are rare (usually all before `start`); events are not.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The published table of callbacks `C` (the server's or the client's set).
pub(crate) struct CallbackTable<C> {
    current: RwLock<Arc<C>>,
    version: AtomicU64,
}

impl<C: Clone + Default> Default for CallbackTable<C> {
    fn default() -> Self {
        CallbackTable {
            current: RwLock::new(Arc::new(C::default())),
            version: AtomicU64::new(0),
        }
    }
}

impl<C: Clone + Default> CallbackTable<C> {
    /// Changes the table: the next event of every connection sees the change.
    pub(crate) fn set(&self, change: impl FnOnce(&mut C)) {
        let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
        let mut table = C::clone(&current);
        change(&mut table);
        *current = Arc::new(table);
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// The current table (for code that runs rarely: setup, errors before a connection).
    pub(crate) fn get(&self) -> Arc<C> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// A view for one connection, up to date now.
    pub(crate) fn view(&self) -> CallbackView<C> {
        let version = self.version.load(Ordering::Acquire);
        CallbackView {
            version,
            table: self.get(),
        }
    }
}

/// One connection's copy of the table, refreshed when a setter ran.
pub(crate) struct CallbackView<C> {
    version: u64,
    table: Arc<C>,
}

impl<C: Clone + Default> CallbackView<C> {
    /// The callbacks in effect now.
    pub(crate) fn get(&mut self, from: &CallbackTable<C>) -> &C {
        let version = from.version.load(Ordering::Acquire);
        if version != self.version {
            self.table = from.get();
            self.version = version;
        }
        &self.table
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Clone, Default)]
    struct Table {
        name: &'static str,
    }

    #[test]
    fn a_view_sees_a_later_change() {
        let table = CallbackTable::<Table>::default();
        let mut view = table.view();
        assert_eq!(view.get(&table).name, "");
        table.set(|t| t.name = "new");
        assert_eq!(view.get(&table).name, "new");
    }
}
