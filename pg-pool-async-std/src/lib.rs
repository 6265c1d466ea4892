//! The async-std runtime adapter for pg-pool.
//!
//! async-std is discontinued upstream; its maintainers point to smol, and new programs
//! should prefer `pg-pool-smol`. This adapter keeps existing async-std programs served:
//! [`AsyncStd`] implements [`pg_pool_core::Runtime`] with `async-io` timers (the ones
//! async-std itself uses) and `async_std::task::spawn`, whose tasks keep running when their
//! handle is dropped. [`ConnPool`] is the pool type for async-std users.

mod runtime;

pub use runtime::{AsyncStd, Sleep};

/// A pool of `T` connections on async-std.
pub type ConnPool<T> = pg_pool_core::ConnPool<T, AsyncStd>;

/// A connection checked out of an async-std [`ConnPool`].
pub type PoolGuard<T> = pg_pool_core::PoolGuard<T, AsyncStd>;

/// A checkout future that can be named and does not borrow its pool
/// ([`ConnPool::get_owned`](pg_pool_core::ConnPool::get_owned)), on async-std.
pub type OwnedCheckout<T> = pg_pool_core::OwnedCheckout<T, AsyncStd>;

/// A handle that observes a async-std [`ConnPool`] without keeping it open
/// ([`ConnPool::downgrade`](pg_pool_core::ConnPool::downgrade)).
pub type WeakPool<T> = pg_pool_core::WeakPool<T, AsyncStd>;

/// A shared lease of a connection of a async-std [`ConnPool`] ([`pg_pool_core::ConnPool::get_shared`]).
pub type SharedGuard<T> = pg_pool_core::SharedGuard<T, AsyncStd>;
