//! The future [`ConnPool::get`](crate::ConnPool::get) returns: around the checkout itself,
//! the runtime's cooperative budget (for an inner future that does not spend it) and the
//! `pg_pool.get` span.

use std::fmt;
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::Pin;
use std::task::{Context, Poll};

use crate::error::PoolError;
use crate::runtime::Runtime;

pin_project_lite::pin_project! {
    /// The future returned by [`ConnPool::get`](crate::ConnPool::get).
    ///
    /// # Cancel safety
    ///
    /// Dropping it at any point loses nothing: a queued caller leaves the queue; a connection
    /// already handed to it goes to the next waiter or back to idle; a connection being
    /// validated or in its checkout hook is destroyed (its session state is unknown) and its
    /// capacity freed; a connection attempt started for it finishes and serves someone else.
    ///
    /// # Tracing
    ///
    /// Each checkout runs in a `pg_pool.get` span at `DEBUG` level with the pool's name,
    /// and records `outcome` (`ok`, or the error kind) and `waited` when it ends. With no
    /// subscriber interested, the span is disabled and costs next to nothing.
    #[must_use = "futures do nothing unless awaited"]
    pub struct Checkout<'a, R, F> {
        runtime: &'a R,
        pool: &'a str,
        // Spend the runtime's budget on the first poll (the inner future does not).
        cooperate: bool,
        started: bool,
        traced: Traced,
        #[pin]
        inner: F,
    }
}

impl<'a, R, F> Checkout<'a, R, F> {
    /// A checkout whose first poll spends one unit of the runtime's cooperative budget
    /// before polling `inner`.
    pub(crate) fn new(runtime: &'a R, pool: &'a str, inner: F) -> Self {
        Self {
            runtime,
            pool,
            cooperate: true,
            started: false,
            traced: Traced(ManuallyDrop::new(None)),
            inner,
        }
    }

    /// A checkout whose `inner` future spends the cooperative budget itself (the pool's
    /// own checkout, `acquire.rs`: the thread's budget for a connection from the fast slot,
    /// the runtime's otherwise).
    pub(crate) fn pooled(runtime: &'a R, pool: &'a str, inner: F) -> Self {
        Self {
            cooperate: false,
            ..Self::new(runtime, pool, inner)
        }
    }
}

/// A checkout's span and start time, if a subscriber wants the span. Boxed, so that a
/// disabled span costs the checkout one null pointer; dropped by hand, so that dropping a
/// checkout without a span is one inlined test rather than a call to the drop glue of a
/// span.
struct Traced(ManuallyDrop<Option<Box<(tracing::Span, std::time::Instant)>>>);

impl Drop for Traced {
    #[inline]
    fn drop(&mut self) {
        if self.0.is_some() {
            drop_span(&mut self.0);
        }
    }
}

/// Drops a span (taken out, so that nothing is left to drop).
#[cold]
#[inline(never)]
fn drop_span(traced: &mut Option<Box<(tracing::Span, std::time::Instant)>>) {
    drop(traced.take());
}

/// The checkout's span, if a subscriber wants it. With no subscriber at `DEBUG`, one
/// relaxed load decides; the span itself is built out of line.
#[inline]
fn traced(pool: &str) -> Option<Box<(tracing::Span, std::time::Instant)>> {
    if tracing::level_enabled!(tracing::Level::DEBUG) {
        new_span(pool)
    } else {
        None
    }
}

#[cold]
#[inline(never)]
fn new_span(pool: &str) -> Option<Box<(tracing::Span, std::time::Instant)>> {
    let span = tracing::debug_span!(
        "pg_pool.get",
        pool = pool,
        outcome = tracing::field::Empty,
        waited = tracing::field::Empty,
    );
    if span.is_disabled() {
        None
    } else {
        Some(Box::new((span, std::time::Instant::now())))
    }
}

/// Records how a traced checkout ended.
#[cold]
#[inline(never)]
fn record((span, started): &(tracing::Span, std::time::Instant), outcome: &'static str) {
    span.record("outcome", outcome);
    span.record("waited", tracing::field::debug(started.elapsed()));
}

/// What a checkout's span records as its outcome.
fn outcome<G, E>(result: &Result<G, PoolError<E>>) -> &'static str {
    {
        match result {
            Ok(_) => "ok",
            Err(PoolError::Timeout { .. }) => "timeout",
            Err(PoolError::Connect(_)) => "connect_error",
            Err(PoolError::Hook(_)) => "hook_rejected",
            Err(PoolError::Closed) => "closed",
            Err(PoolError::Exhausted) => "exhausted",
            Err(PoolError::RuntimeGone) => "runtime_gone",
            Err(_) => "error",
        }
    }
}

impl<R, F> fmt::Debug for Checkout<'_, R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Checkout { .. }")
    }
}

impl<R: Runtime, F, G, E> Future for Checkout<'_, R, F>
where
    F: Future<Output = Result<G, PoolError<E>>>,
{
    type Output = F::Output;

    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        if !*this.started {
            // Spend one unit of the runtime's cooperative budget per checkout, before
            // anything else (here rather than as an await inside the checkout, which costs a
            // state), unless the inner future does.
            if *this.cooperate && this.runtime.poll_cooperate(cx).is_pending() {
                return Poll::Pending;
            }
            *this.started = true;
            // Assigned only when there is a span: no drop of the old `None` otherwise.
            if let Some(span) = traced(this.pool) {
                *this.traced.0 = Some(span);
            }
        }
        match this.traced.0.as_deref() {
            // No span: the inner future's output is this one's, written in place.
            None => this.inner.poll(cx),
            Some(traced) => poll_traced(traced, this.inner, cx),
        }
    }
}

/// Polls a traced checkout's inner future inside its span, and records how it ended.
#[cold]
#[inline(never)]
fn poll_traced<F, G, E>(
    traced: &(tracing::Span, std::time::Instant),
    inner: Pin<&mut F>,
    cx: &mut Context<'_>,
) -> Poll<F::Output>
where
    F: Future<Output = Result<G, PoolError<E>>>,
{
    let output = traced.0.in_scope(|| inner.poll(cx));
    if let Poll::Ready(result) = &output {
        record(traced, outcome(result));
    }
    output
}
