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
//! checkouts must be made to yield, or the other tasks on its thread never run. Every
//! checkout spends one unit of budget on its first poll, before it takes anything: when the
//! fast slot is open (nobody queued), the thread's ([`poll_thread_budget`], a thread-local
//! counter: every [`THREAD_BUDGET`](crate::runtime::THREAD_BUDGET)th checkout on a thread
//! yields once); otherwise the runtime's ([`Runtime::poll_cooperate`]: tokio's task budget),
//! as for any resource. The thread's counter is a few instructions where tokio's budget
//! costs about thirty, and it makes a tight loop of fast checkouts yield as often as
//! tokio's budget would (128 checkouts), whatever else the task does. What differs on
//! tokio: the count is per thread, not per task poll (a task may yield after fewer
//! checkouts when others on its thread used the budget), and `tokio::task::unconstrained`
//! does not lift it. A yield for budget happens before the checkout queues, so it never
//! costs a caller its place (there is none yet) and never holds a connection.

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
            // One unit of budget per checkout, before anything is taken: the thread's when
            // the fast slot is open, the runtime's otherwise (see the module docs).
            let open = this.shared.fast.is_open();
            let budget = if open {
                poll_thread_budget(cx)
            } else {
                this.shared.runtime.poll_cooperate(cx)
            };
            if budget.is_pending() {
                return Poll::Pending;
            }
            let prefetched = if open {
                match this.shared.acquire_fast(this.site) {
                    Ok(guard) => return Poll::Ready(Ok(guard)),
                    // Nothing to take, or a connection to validate: the slow path, which
                    // then owns it at once.
                    Err(prefetched) => prefetched,
                }
            } else {
                None
            };
            let make = make
                .take()
                .expect("the start stage is left once it has taken nothing or built the slow one");
            this.stage.set(Stage::Slow {
                slow: make(prefetched),
            });
        }
        match this.stage.project() {
            StageProj::Slow { slow } => poll_slow(slow, cx),
            StageProj::Start { .. } => unreachable!("the slow stage was just set"),
        }
    }
}

/// Polls the slow path, out of line: the fast path stays a small function that saves few
/// registers.
#[inline(never)]
fn poll_slow<S: Future>(slow: Pin<&mut S>, cx: &mut Context<'_>) -> Poll<S::Output> {
    slow.poll(cx)
}
