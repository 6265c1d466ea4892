//! Synchronisation primitives, swapped for shuttle's instrumented ones under `cfg(shuttle)`.
//!
//! Every lock the engine takes, and every atomic that orders the fast slot (`fast.rs`) or
//! publishes what a waiter is handed (`waiters.rs`), goes through this module so that the
//! shuttle models in `tests/shuttle*.rs` explore the real hand-off and accounting code, not
//! a copy of it.

use std::fmt;

#[cfg(shuttle)]
pub(crate) use shuttle::sync::atomic::{AtomicBool, AtomicU8};
#[cfg(shuttle)]
pub(crate) use shuttle::sync::{Mutex, MutexGuard};
#[cfg(not(shuttle))]
pub(crate) use std::sync::atomic::{AtomicBool, AtomicU8};
#[cfg(not(shuttle))]
pub(crate) use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, ignoring poisoning.
///
/// The engine never runs user code (hooks, `Drop` of a connection, wakers) while holding one of
/// its locks, so a poisoned lock can only come from a bug in the engine itself; the state it
/// protects is updated in single, non-panicking steps and stays consistent.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A cell holding an optional pointer-sized value, exchanged in one atomic step: an atomic
/// exchange instruction (`crossbeam_utils::atomic::AtomicCell`, lock-free for a
/// `Box`-backed `T`); under shuttle, a shuttle lock around the exchange, so that every
/// exchange is a scheduling point the models explore.
pub(crate) struct SwapCell<T> {
    #[cfg(not(shuttle))]
    cell: crossbeam_utils::atomic::AtomicCell<Option<T>>,
    #[cfg(shuttle)]
    cell: Mutex<Option<T>>,
}

impl<T> SwapCell<T> {
    /// An empty cell.
    pub(crate) fn new() -> Self {
        #[cfg(not(shuttle))]
        debug_assert!(
            crossbeam_utils::atomic::AtomicCell::<Option<T>>::is_lock_free(),
            "the fast slot's cell must be one atomic word"
        );
        Self {
            #[cfg(not(shuttle))]
            cell: crossbeam_utils::atomic::AtomicCell::new(None),
            #[cfg(shuttle)]
            cell: Mutex::new(None),
        }
    }

    /// Puts `value` in the cell and returns what was there, in one atomic step (acquire and
    /// release).
    #[inline]
    pub(crate) fn swap(&self, value: Option<T>) -> Option<T> {
        #[cfg(not(shuttle))]
        {
            self.cell.swap(value)
        }
        #[cfg(shuttle)]
        {
            std::mem::replace(&mut *lock(&self.cell), value)
        }
    }
}

impl<T> fmt::Debug for SwapCell<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SwapCell { .. }")
    }
}
