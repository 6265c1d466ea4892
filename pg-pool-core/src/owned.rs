//! [`OwnedCheckout`]: a checkout future with a name and no borrow, for code that must store
//! or name it.

use std::fmt;
use std::future::Future;
use std::panic::Location;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::checkout::Checkout;
use crate::guard::PoolGuard;
use crate::pool::ConnPool;
use crate::poolable::Poolable;
use crate::runtime::Runtime;
use crate::shared::PoolErrorOf;

/// What an [`OwnedCheckout`] resolves to.
type Output<T, R> = Result<PoolGuard<T, R>, PoolErrorOf<T>>;

/// The future returned by [`ConnPool::get_owned`]: a checkout that owns a handle to its
/// pool, so it is `'static`, and whose type can be written down (a struct field, a trait's
/// associated type, a `Vec` of pending checkouts).
///
/// [`ConnPool::get`] returns an `async fn`'s future, which Rust cannot name; naming it
/// would need a box, and `get` promises a checkout without allocation. This type is that
/// box: one allocation per checkout, otherwise the same checkout (the same deadline,
/// fairness, validation, hooks, tracing span and cooperative budget).
///
/// The handle it holds keeps the pool open until the checkout ends, as any
/// [`ConnPool`] clone does.
///
/// # Cancel safety
///
/// As [`Checkout`]: dropping it at any point loses nothing.
#[must_use = "futures do nothing unless awaited"]
pub struct OwnedCheckout<T: Poolable, R: Runtime> {
    inner: Pin<Box<dyn Future<Output = Output<T, R>> + Send>>,
}

impl<T: Poolable, R: Runtime> Future for OwnedCheckout<T, R> {
    type Output = Output<T, R>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.inner.as_mut().poll(cx)
    }
}

impl<T: Poolable, R: Runtime> fmt::Debug for OwnedCheckout<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnedCheckout { .. }")
    }
}

impl<T: Poolable, R: Runtime> ConnPool<T, R> {
    /// Checks out a connection as [`ConnPool::get`] does, returning a future that can be
    /// named ([`OwnedCheckout`]) and does not borrow the pool, at the cost of one
    /// allocation.
    ///
    /// # Errors
    ///
    /// As [`ConnPool::get`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`ConnPool::get`].
    ///
    /// # Examples
    ///
    /// ```
    /// # use pg_pool_core::{ConnPool, OwnedCheckout, Poolable, Runtime};
    /// /// A request that carries its own pending checkout.
    /// struct Pending<T: Poolable, R: Runtime> {
    ///     checkout: OwnedCheckout<T, R>,
    /// }
    ///
    /// fn start<T: Poolable, R: Runtime>(pool: &ConnPool<T, R>) -> Pending<T, R> {
    ///     Pending { checkout: pool.get_owned() }
    /// }
    /// ```
    #[track_caller]
    pub fn get_owned(&self) -> OwnedCheckout<T, R> {
        let site = Location::caller();
        let pool = self.clone();
        OwnedCheckout {
            inner: Box::pin(async move {
                let shared = pool.shared();
                Checkout::pooled(
                    &shared.runtime,
                    &shared.config.name,
                    shared.acquire(site, true),
                )
                .await
            }),
        }
    }
}
