//! [`Slot`]: the indirection that makes hot reload possible. Every registered
//! function, source factory and sink factory points to a slot; `UpdatePlugin`
//! swaps the library behind it. A function call holds the slot's read lock for
//! the call, so the swap happens between two calls (a batch boundary); a source
//! or sink checks the generation between two reads or writes and reopens itself
//! on the new library.

use std::sync::{Arc, RwLock, RwLockReadGuard};

use super::ffi::Library;

/// Which library and symbol a slot points to now.
#[derive(Clone)]
pub struct Current {
    /// The library (kept loaded by this `Arc`).
    pub library: Arc<Library>,
    /// The symbol's index in the library's table.
    pub index: u32,
    /// Bumped by every swap.
    pub generation: u64,
}

/// A swappable pointer to a symbol of a loaded library.
pub struct Slot(RwLock<Current>);

impl Slot {
    /// A slot pointing at `index` of `library`.
    pub fn new(library: Arc<Library>, index: u32) -> Arc<Slot> {
        Arc::new(Slot(RwLock::new(Current { library, index, generation: 0 })))
    }

    /// The current symbol, held for the duration of a call.
    pub fn read(&self) -> RwLockReadGuard<'_, Current> {
        self.0.read().unwrap_or_else(|p| p.into_inner())
    }

    /// A copy of the current symbol.
    pub fn current(&self) -> Current {
        self.read().clone()
    }

    /// Points the slot at a new library; waits for the calls in flight.
    pub fn swap(&self, library: Arc<Library>, index: u32) {
        let mut current = self.0.write().unwrap_or_else(|p| p.into_inner());
        let generation = current.generation + 1;
        *current = Current { library, index, generation };
    }
}
