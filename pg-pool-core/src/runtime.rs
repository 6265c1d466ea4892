//! The small runtime trait the engine is written against, and what runtime adapters are
//! made of: [`Runtime`], [`NoRuntime`], [`timeout`], [`DiscardOutput`] for timers with an
//! output, and [`poll_thread_budget`] for runtimes without a cooperative budget.
//!
//! Applications only name [`Runtime`] (re-exported at the crate root) as the second
//! parameter of a pool; the rest is for adapter authors.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

/// What the pool needs from an async runtime: a timer and a way to run background work.
///
/// The core crate depends on no runtime. Adapter crates (`pg-pool-tokio`, `pg-pool-async-std`,
/// `pg-pool-smol`) implement this trait; timeouts are built on [`Runtime::sleep`] by
/// [`timeout`].
///
/// Spawned futures must run to completion even if nobody holds on to them: adapters for
/// runtimes whose task handles cancel on drop (smol) detach them.
///
/// `spawn` is called from `Drop` of a pool guard when an asynchronous reset is due, possibly on
/// a thread that is not one of the runtime's own; an implementation must support that (for
/// example by holding a runtime handle rather than looking up a thread-local one).
pub trait Runtime: Clone + Send + Sync + 'static {
    /// The future returned by [`Runtime::sleep`].
    type Sleep: Future<Output = ()> + Send + 'static;

    /// Returns a handle to the runtime the caller is running on.
    ///
    /// # Errors
    ///
    /// Returns [`NoRuntime`] when called outside a runtime this adapter can find, so that a
    /// missing runtime is an error value at build time of the pool, never a panic later.
    fn current() -> Result<Self, NoRuntime>;

    /// Returns a future that completes after `duration`.
    fn sleep(&self, duration: Duration) -> Self::Sleep;

    /// Runs `future` in the background to completion.
    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static;

    /// Asks the runtime's cooperative scheduler whether the current task may go on, once per
    /// checkout that the pool's lock-free fast path does not serve (and once per
    /// `get_shared`). A checkout that finds an idle connection completes without ever
    /// returning `Pending`, so a task looping on checkouts would otherwise never give its
    /// worker back; runtimes with a task budget (tokio) return `Pending` here when it is
    /// spent, having arranged for the task to be polled again. A checkout the fast path may
    /// serve (nobody queued) spends the thread's budget ([`poll_thread_budget`]) instead,
    /// which is what makes a loop of fast-path checkouts yield. Default: always `Ready`.
    fn poll_cooperate(&self, cx: &mut Context<'_>) -> Poll<()> {
        let _ = cx;
        Poll::Ready(())
    }
}

/// The error returned by [`Runtime::current`] when no runtime is available.
#[derive(Debug, Clone)]
pub struct NoRuntime {
    runtime: &'static str,
}

impl NoRuntime {
    /// Creates the error for the runtime named `runtime` (for example `"tokio"`).
    pub fn new(runtime: &'static str) -> Self {
        Self { runtime }
    }
}

impl fmt::Display for NoRuntime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "no {} runtime is running on this thread: create the pool from inside the runtime or pass a runtime handle",
            self.runtime
        )
    }
}

impl Error for NoRuntime {}

/// Runs `future` for at most `duration`; `None` means the time ran out first.
///
/// The future is polled before the timer, so a future that is ready at once always wins.
/// Durations beyond a hundred years (`Duration::MAX` included) wait a hundred years.
///
/// # Cancel safety
///
/// Dropping the returned future drops `future`; it is as cancel safe as `future` is.
///
/// # Examples
///
/// ```
/// # use std::time::Duration;
/// # use pg_pool_core::runtime::{timeout, Runtime, NoRuntime};
/// # #[derive(Clone)] struct Never;
/// # impl Runtime for Never {
/// #     type Sleep = std::future::Pending<()>;
/// #     fn current() -> Result<Self, NoRuntime> { Ok(Never) }
/// #     fn sleep(&self, _: Duration) -> Self::Sleep { std::future::pending() }
/// #     fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(&self, _: F) {}
/// # }
/// let value = futures_lite::future::block_on(timeout(&Never, Duration::from_secs(1), async { 7 }));
/// assert_eq!(value, Some(7));
/// ```
pub async fn timeout<R, F>(runtime: &R, duration: Duration, future: F) -> Option<F::Output>
where
    R: Runtime,
    F: Future,
{
    futures_lite::future::or(async { Some(future.await) }, async {
        runtime.sleep(duration.min(crate::clock::FOREVER)).await;
        None
    })
    .await
}

pin_project_lite::pin_project! {
    /// Adapts a timer future with some output (an `async_io::Timer` yields an `Instant`) into
    /// a [`Runtime::Sleep`], whose output is `()`.
    #[derive(Debug)]
    pub struct DiscardOutput<F> {
        #[pin]
        timer: F,
    }
}

impl<F> DiscardOutput<F> {
    /// Wraps `timer`.
    pub fn new(timer: F) -> Self {
        Self { timer }
    }
}

impl<F: Future> Future for DiscardOutput<F> {
    type Output = ();

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        self.project().timer.poll(cx).map(drop)
    }
}

/// Checkouts a thread may complete in a row before [`poll_thread_budget`] makes the task
/// yield; tokio's own task budget is 128 operations. The pool spends this budget on every
/// checkout made while its fast slot is open (nobody queued), whatever the runtime.
pub const THREAD_BUDGET: u32 = 128;

/// A cooperative budget for runtimes that have none (smol, async-std), for use as their
/// [`Runtime::poll_cooperate`]: every [`THREAD_BUDGET`]th checkout on a thread returns
/// `Pending` once, after waking the task, so it goes to the back of the executor's queue.
///
/// Without it, a task whose checkouts never wait (an idle connection is always there) never
/// yields, and other tasks on its thread never run: fairness among queued callers is no use
/// to a task that cannot get polled.
///
/// # Examples
///
/// ```
/// use std::task::{Context, Poll, Waker};
/// let mut cx = Context::from_waker(Waker::noop());
/// let pending = (0..=pg_pool_core::runtime::THREAD_BUDGET)
///     .filter(|_| pg_pool_core::runtime::poll_thread_budget(&mut cx).is_pending())
///     .count();
/// assert_eq!(pending, 1);
/// ```
#[inline]
pub fn poll_thread_budget(cx: &mut Context<'_>) -> Poll<()> {
    use std::cell::Cell;
    thread_local! {
        static LEFT: Cell<u32> = const { Cell::new(THREAD_BUDGET) };
    }
    LEFT.with(|left| match left.get() {
        0 => {
            left.set(THREAD_BUDGET);
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        n => {
            left.set(n - 1);
            Poll::Ready(())
        }
    })
}

/// The pool's reconnect delay after `failures` consecutive failed attempts: exponential from
/// `base`, capped at `max`, with full jitter in its upper half (so never less than half of
/// the unjittered delay, and never zero for a non-zero `base`). Exposed so that components
/// that reconnect on their own (a listener, a custom health task) back off as the pool does.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pg_pool_core::runtime::backoff_delay;
///
/// let (base, max) = (Duration::from_millis(50), Duration::from_secs(5));
/// let third = backoff_delay(base, max, 3);
/// assert!(third >= Duration::from_millis(100) && third <= Duration::from_millis(200));
/// assert!(backoff_delay(base, max, u32::MAX) <= max);
/// ```
pub fn backoff_delay(base: Duration, max: Duration, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let full = base.saturating_mul(1 << exponent).min(max);
    let half = full / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(fastrand::u64(0..=nanos))
}
