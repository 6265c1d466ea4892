//! The checkout's inner future: the fast path on its first poll, the slow path after.
//!
//! The fast path is a plain function, not part of the checkout's `async fn`: it takes the
//! connection in the fast slot (`fast.rs`), runs the synchronous checks that pass in the
//! common case (generation, lifetime, `has_pending_data`, no acquire hook, no ping due) and
//! returns the guard, touching neither the pool lock nor the slow path's state machine. Any
//! other case (the slot empty or closed, a check that fails, a ping or a hook due) goes to
//! [`Shared::acquire_slow`], with the connection already taken if there is one, so that the
//! slow path decides about it exactly as about a connection it took itself.

use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::clock::Instant;
use crate::conn::Conn;
use crate::guard::PoolGuard;
use crate::poolable::Poolable;
use crate::runtime::Runtime;
use crate::shared::{PoolErrorOf, Shared};

pin_project_lite::pin_project! {
    /// What [`Shared::acquire`] returns; see the module docs.
    pub(crate) struct Acquire<'a, T: Poolable, R: Runtime, Mk, S> {
        shared: &'a Arc<Shared<T, R>>,
        site: &'static Location<'static>,
        #[pin]
        stage: Stage<Mk, S>,
    }
}

pin_project_lite::pin_project! {
    #[project = StageProj]
    enum Stage<Mk, S> {
        // Not polled yet: `make` builds the slow path if the fast one does not serve.
        Start { make: Option<Mk> },
        Slow { #[pin] slow: S },
    }
}

/// A connection the fast path took and hands to the slow path, with when it was taken.
pub(crate) type Prefetched<T> = Option<(Conn<T>, Instant)>;

impl<T: Poolable, R: Runtime> Shared<T, R> {
    /// Checks out a connection: the fast path on the first poll, else the slow path.
    /// `wait == false` is `try_get`: no queueing.
    #[inline]
    pub(crate) fn acquire(
        self: &Arc<Self>,
        site: &'static Location<'static>,
        wait: bool,
    ) -> impl Future<Output = Result<PoolGuard<T, R>, PoolErrorOf<T>>> + Send + '_ {
        Acquire {
            shared: self,
            site,
            stage: Stage::Start {
                make: Some(move |prefetched| self.acquire_slow(site, wait, prefetched)),
            },
        }
    }

    /// The fast path: a connection from the fast slot that needs nothing but the
    /// synchronous checks. `Err` hands what it took (if anything) to the slow path.
    #[inline]
    fn acquire_fast(
        self: &Arc<Self>,
        site: &'static Location<'static>,
    ) -> Result<PoolGuard<T, R>, Prefetched<T>> {
        let Some(mut conn) = self.fast.take() else {
            return Err(None);
        };
        let now = Instant::now();
        if conn.generation != self.generation()
            || conn.expired(now)
            || self.hooks.acquire.is_some()
            || self.needs_async_validation(&conn, now)
            || catch_unwind(AssertUnwindSafe(|| conn.raw.has_pending_data())).unwrap_or(true)
        {
            // The slow path runs the same checks and acts on them.
            return Err(Some((conn, now)));
        }
        if self.fast.plan_on_take() {
            // `min_idle`: the pool may need a connection to replace this one.
            self.update(|_, _| ());
        }
        conn.fresh = false;
        let leak_key = self.leaks.as_ref().map(|leaks| leaks.register(now, site));
        Ok(PoolGuard::new(conn, Arc::clone(self), now, leak_key, None))
    }
}

impl<T, R, Mk, S> Future for Acquire<'_, T, R, Mk, S>
where
    T: Poolable,
    R: Runtime,
    Mk: FnOnce(Prefetched<T>) -> S,
    S: Future<Output = Result<PoolGuard<T, R>, PoolErrorOf<T>>>,
{
    type Output = S::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<S::Output> {
        let mut this = self.project();
        if let StageProj::Start { make } = this.stage.as_mut().project() {
            let make = make
                .take()
                .expect("the start stage is left on its first poll");
            match this.shared.acquire_fast(this.site) {
                Ok(guard) => return Poll::Ready(Ok(guard)),
                Err(prefetched) => this.stage.set(Stage::Slow {
                    slow: make(prefetched),
                }),
            }
        }
        match this.stage.project() {
            StageProj::Slow { slow } => slow.poll(cx),
            StageProj::Start { .. } => unreachable!("the slow stage was just set"),
        }
    }
}
