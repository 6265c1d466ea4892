//! The smol runtime adapter for pg-pool.
//!
//! [`Smol`] implements [`pg_pool_core::Runtime`] with `async-io` timers and smol's executors.
//! smol tasks are cancelled when their handle is dropped, so every task the pool spawns is
//! detached and runs to completion. [`ConnPool`] is the pool type for smol users.

mod runtime;

pub use runtime::{Sleep, Smol};

/// A pool of `T` connections on smol.
pub type ConnPool<T> = pg_pool_core::ConnPool<T, Smol>;

/// A connection checked out of a smol [`ConnPool`].
pub type PoolGuard<T> = pg_pool_core::PoolGuard<T, Smol>;

/// A checkout future that can be named and does not borrow its pool
/// ([`ConnPool::get_owned`](pg_pool_core::ConnPool::get_owned)), on smol.
pub type OwnedCheckout<T> = pg_pool_core::OwnedCheckout<T, Smol>;

/// A handle that observes a smol [`ConnPool`] without keeping it open
/// ([`ConnPool::downgrade`](pg_pool_core::ConnPool::downgrade)).
pub type WeakPool<T> = pg_pool_core::WeakPool<T, Smol>;

/// A shared lease of a connection of a smol [`ConnPool`] ([`pg_pool_core::ConnPool::get_shared`]).
pub type SharedGuard<T> = pg_pool_core::SharedGuard<T, Smol>;
