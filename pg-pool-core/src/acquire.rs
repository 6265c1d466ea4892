//! The checkout's inner future: the fast path on its first poll, the slow path after.
//!
//! The fast path is a plain function, not part of the checkout's `async fn`: it takes the
//! connection in the fast slot (`fast.rs`), runs the synchronous checks that pass in the
//! common case (generation, lifetime, `has_pending_data`, no acquire hook, no ping due) and
//! returns the guard, touching neither the pool lock nor the slow path's state machine. Any
//! other case (the slot empty or closed, a check that fails, a ping or a hook due) goes to
//! [`Shared::acquire_slow`], with the connection already taken if there is one, so that the
//! slow path decides about it exactly as about a connection it took itself.
//!
//! # Cooperative budget
//!
//! A checkout the fast slot serves never returns `Pending`, so a task looping on such
//! checkouts must be made to yield, or the other tasks on its thread never run. The first
//! poll spends one unit of the thread's budget ([`poll_thread_budget`], a thread-local
//! counter: every [`THREAD_BUDGET`](crate::runtime::THREAD_BUDGET)th checkout on a thread
//! yields once) before looking at the slot; only a checkout the slot does not serve, with
//! nothing taken yet, also spends the runtime's budget ([`Runtime::poll_cooperate`]:
//! tokio's task budget). The thread's counter is a few instructions where tokio's budget
//! costs about thirty, and it makes a tight loop of fast checkouts yield as often as
//! tokio's budget would (128 checkouts), whatever else the task does. What differs: the
//! count is per thread, not per task poll (a task may yield after fewer checkouts when
//! others on its thread used the budget), and `tokio::task::unconstrained` does not lift
//! it. A checkout that took a connection needing validation goes straight on, so that the
//! slow path owns the connection at once.

use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use crate::clock::Instant;
use crate::conn::Conn;
use crate::guard::PoolGuard;
use crate::poolable::Poolable;
use crate::runtime::{Runtime, poll_thread_budget};
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
            || !self.fast.needs_nothing_async(&conn, now)
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
            // The thread's budget first, so that a task looping on checkouts the fast slot
            // serves still gives its thread back (see the module docs).
            if poll_thread_budget(cx).is_pending() {
                return Poll::Pending;
            }
            let prefetched = match this.shared.acquire_fast(this.site) {
                Ok(guard) => return Poll::Ready(Ok(guard)),
                // Nothing taken yet: the runtime's budget, as for any resource.
                Err(None) => {
                    if this.shared.runtime.poll_cooperate(cx).is_pending() {
                        return Poll::Pending;
                    }
                    None
                }
                // A connection taken, to be validated: straight on, so that the slow path
                // owns it at once.
                Err(prefetched) => prefetched,
            };
            let make = make
                .take()
                .expect("the start stage is left once it has taken nothing or built the slow one");
            this.stage.set(Stage::Slow {
                slow: make(prefetched),
            });
        }
        match this.stage.project() {
            StageProj::Slow { slow } => slow.poll(cx),
            StageProj::Start { .. } => unreachable!("the slow stage was just set"),
        }
    }
}
