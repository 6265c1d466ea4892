//! The tokio runtime adapter for pg-pool.
//!
//! [`Tokio`] implements [`pg_pool_core::Runtime`] with tokio's timer and task spawning. It
//! holds a [`tokio::runtime::Handle`], so the pool can spawn (an asynchronous reset on return,
//! a connection close) from `Drop` on any thread, including threads outside the runtime.
//! [`ConnPool`] is the pool type for tokio users.

mod runtime;

pub use runtime::Tokio;

/// A pool of `T` connections on tokio.
pub type ConnPool<T> = pg_pool_core::ConnPool<T, Tokio>;

/// A connection checked out of a tokio [`ConnPool`].
pub type PoolGuard<T> = pg_pool_core::PoolGuard<T, Tokio>;

/// A checkout future that can be named and does not borrow its pool
/// ([`ConnPool::get_owned`](pg_pool_core::ConnPool::get_owned)), on tokio.
pub type OwnedCheckout<T> = pg_pool_core::OwnedCheckout<T, Tokio>;

/// A handle that observes a tokio [`ConnPool`] without keeping it open
/// ([`ConnPool::downgrade`](pg_pool_core::ConnPool::downgrade)).
pub type WeakPool<T> = pg_pool_core::WeakPool<T, Tokio>;

/// A shared lease of a connection of a tokio [`ConnPool`] ([`pg_pool_core::ConnPool::get_shared`]).
pub type SharedGuard<T> = pg_pool_core::SharedGuard<T, Tokio>;
