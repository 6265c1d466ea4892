//! Synchronisation primitives, swapped for shuttle's instrumented ones under `cfg(shuttle)`.
//!
//! Every lock the engine takes goes through this module so that the shuttle models in
//! `tests/shuttle.rs` explore the real hand-off and accounting code, not a copy of it.

#[cfg(shuttle)]
pub(crate) use shuttle::sync::{Mutex, MutexGuard};
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
