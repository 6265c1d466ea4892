//! What a runtime adapter supplies to run the suite, and helpers shared by the scenarios.

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use event_listener::{Event, listener};
use pg_pool_core::{ConnPool, ConnPoolConfig, LifecycleHooks, Runtime, metrics::Metrics};

use crate::mock::{Control, MockConn};

/// A runtime the suite can run on.
pub trait Harness {
    /// The adapter's runtime type.
    type Rt: Runtime;

    /// Runs `future` to completion on a fresh runtime of this kind.
    fn block_on<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
}

/// A pool of mock connections.
pub type MockPool<R> = ConnPool<MockConn, R>;

/// A config suited to tests: small pool, short timeouts, no background tasks.
///
/// `PG_POOL_CONFORMANCE_FAIRNESS` (`strict`, `bounded:1ms`) sets its fairness, so the whole
/// suite can be run under bounded fairness; scenarios about one fairness set it themselves.
///
/// # Panics
///
/// If `PG_POOL_CONFORMANCE_FAIRNESS` is set to something that does not parse.
pub fn test_config() -> ConnPoolConfig {
    let mut config = ConnPoolConfig::default();
    if let Ok(fairness) = std::env::var("PG_POOL_CONFORMANCE_FAIRNESS")
        && !fairness.is_empty()
    {
        config.fairness = fairness
            .parse()
            .expect("PG_POOL_CONFORMANCE_FAIRNESS: strict or bounded:<duration>");
    }
    config.max_size = 4;
    config.checkout_timeout = Duration::from_secs(5);
    config.connect_timeout = Duration::from_secs(5);
    config.idle_timeout = None;
    config.max_lifetime = None;
    config.test_on_checkout = false;
    config.connect_backoff = Duration::from_millis(10);
    config.connect_backoff_max = Duration::from_millis(50);
    config.checkin_timeout = Duration::from_millis(300);
    config
}

/// Builds a mock pool on the current runtime.
pub async fn mock_pool<R: Runtime>(
    config: ConnPoolConfig,
    hooks: LifecycleHooks<MockConn>,
) -> (MockPool<R>, Arc<Control>) {
    let runtime = R::current().expect("the suite runs inside the runtime");
    let sleeper = runtime.clone();
    let control = Control::new(move |d| sleeper.sleep(d));
    let pool = ConnPool::builder(control.connector())
        .config(config)
        .hooks(hooks)
        .runtime(runtime)
        .build()
        .await
        .expect("mock pool builds");
    (pool, control)
}

/// Sleeps on the current runtime.
pub async fn sleep<R: Runtime>(duration: Duration) {
    R::current()
        .expect("inside the runtime")
        .sleep(duration)
        .await;
}

/// The result of a spawned task, awaited with [`Join::join`].
#[derive(Debug)]
pub struct Join<T> {
    inner: Arc<(Mutex<Option<std::thread::Result<T>>>, Event)>,
}

impl<T> Join<T> {
    /// Waits for the task; re-raises its panic.
    pub async fn join(self) -> T {
        loop {
            listener!(self.inner.1 => done);
            if let Some(result) = self.inner.0.lock().unwrap().take() {
                return result.unwrap_or_else(|p| std::panic::resume_unwind(p));
            }
            done.await;
        }
    }
}

/// Spawns `future` on the current runtime and returns a handle to its result.
pub fn spawn<R: Runtime, F>(future: F) -> Join<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    use futures_lite::FutureExt;
    let inner = Arc::new((Mutex::new(None), Event::new()));
    let done = Arc::clone(&inner);
    R::current().expect("inside the runtime").spawn(async move {
        let result = std::panic::AssertUnwindSafe(future).catch_unwind().await;
        *done.0.lock().unwrap() = Some(result);
        done.1.notify(usize::MAX);
    });
    Join { inner }
}

/// Checks the accounting invariants that must hold at any moment.
///
/// The snapshot is taken under the pool lock, so the ledger must balance exactly: every
/// connection the driver opened (`creates`) has been destroyed, detached, or is idle or
/// active right now. Connection attempts in flight have produced nothing counted yet.
pub fn check_invariants(metrics: &Metrics, control: &Control) {
    assert_eq!(
        metrics.creates,
        metrics.destroys + metrics.detaches + (metrics.idle + metrics.active) as u64,
        "creates = destroys + detaches + idle + active: {metrics:?}"
    );
    assert!(
        metrics.size <= metrics.max_size,
        "size within max_size: {metrics:?}"
    );
    // A mock connection is alive while the pool counts it (idle, active, closing) or while a
    // connect that produced it has not been counted yet.
    assert!(
        control.live() <= metrics.size + metrics.closing,
        "live mock connections ({}) exceed what the pool accounts for: {metrics:?}",
        control.live()
    );
}

/// Waits until nothing is in flight (no connects, closes or active connections), then checks
/// that every live mock connection is an idle one: no capacity and no connection leaked.
pub async fn settle<R: Runtime>(pool: &MockPool<R>, control: &Control) -> Metrics {
    let started = Instant::now();
    loop {
        let m = pool.metrics();
        check_invariants(&m, control);
        if m.connecting == 0 && m.closing == 0 && m.active == 0 && control.live() == m.idle {
            assert_eq!(m.waiters, 0, "no waiter left behind: {m:?}");
            // Every connection the mock opened was created in the pool's books, and every
            // one not idle now was destroyed and closed or detached (the detached ones are
            // the caller's to drop).
            assert_eq!(
                control.connects() as u64,
                m.creates,
                "every mock connection is a create: {m:?}"
            );
            return m;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "pool did not settle: {m:?}, live {}",
            control.live()
        );
        sleep::<R>(Duration::from_millis(5)).await;
    }
}

/// Polls a checkout until it has either finished or queued, returning its output if it
/// finished. A checkout's first poll may return `Pending` without queueing, only to yield
/// for the cooperative budget (every 128th checkout on a thread, or when the runtime's task
/// budget is spent); the budget is renewed when it yields, so a second poll right after
/// goes on to take a connection or queue. Scenarios that read a `Pending` as "queued, in
/// this order" poll through this.
pub async fn poll_to_queue<F: Future + Unpin>(checkout: &mut F) -> Option<F::Output> {
    match futures_lite::future::poll_once(&mut *checkout).await {
        Some(output) => Some(output),
        None => futures_lite::future::poll_once(checkout).await,
    }
}

/// Polls `future` once and drops it: cancels a checkout at its first await point.
pub async fn poll_once_then_drop<F: Future>(future: F) -> Option<F::Output> {
    let mut future = std::pin::pin!(future);
    futures_lite::future::poll_once(future.as_mut()).await
}

/// Runs `future` for at most `limit`, dropping it (cancelling) if it has not finished.
pub async fn cancel_after<R: Runtime, F: Future>(limit: Duration, future: F) -> Option<F::Output> {
    let runtime = R::current().expect("inside the runtime");
    pg_pool_core::runtime::timeout(&runtime, limit, future).await
}
