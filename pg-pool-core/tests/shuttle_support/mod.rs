//! What the shuttle models share: runtimes, a connection that counts its kind, pools, and
//! the accounting checks.

#![allow(dead_code, unreachable_pub)]

use std::future::{Future, Pending};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pg_pool_core::{
    ConnPool, ConnPoolConfig, Fairness, LifecycleHooks, Poolable, Runtime, runtime::NoRuntime,
};

/// The fairness settings every model runs under (see the module docs).
pub const FAIRNESS: [Fairness; 3] = [
    Fairness::Strict,
    Fairness::Bounded(Duration::from_secs(3600)),
    Fairness::Bounded(Duration::from_nanos(1)),
];

#[derive(Debug, Clone, Copy)]
pub struct ShuttleRt;

impl Runtime for ShuttleRt {
    // Timers never fire in the model: every scenario ends without one.
    type Sleep = Pending<()>;

    fn current() -> Result<Self, NoRuntime> {
        Ok(ShuttleRt)
    }

    fn sleep(&self, _: Duration) -> Self::Sleep {
        std::future::pending()
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        drop(shuttle::future::spawn(future));
    }
}

/// A connection that counts how many of its kind are alive (per model run: tests run in
/// parallel threads, so the counter is not a static).
#[derive(Debug)]
pub struct Conn(pub Arc<AtomicUsize>);

impl Drop for Conn {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Poolable for Conn {
    type Error = std::io::Error;
}

/// A runtime whose timers fire: `sleep` yields until the real deadline has passed.
#[derive(Debug, Clone, Copy)]
pub struct TimedRt;

impl Runtime for TimedRt {
    type Sleep = std::pin::Pin<Box<dyn Future<Output = ()> + Send>>;

    fn current() -> Result<Self, NoRuntime> {
        Ok(TimedRt)
    }

    fn sleep(&self, duration: Duration) -> Self::Sleep {
        let until = std::time::Instant::now() + duration.min(Duration::from_secs(60));
        Box::pin(async move {
            while std::time::Instant::now() < until {
                shuttle::future::yield_now().await;
            }
        })
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        drop(shuttle::future::spawn(future));
    }
}

pub fn pool(
    max_size: usize,
    live: &Arc<AtomicUsize>,
    fairness: Fairness,
) -> ConnPool<Conn, ShuttleRt> {
    pool_on(ShuttleRt, max_size, live, config(max_size, fairness))
}

pub fn config(max_size: usize, fairness: Fairness) -> ConnPoolConfig {
    let mut config = ConnPoolConfig::default();
    config.max_size = max_size;
    config.idle_timeout = None;
    config.max_lifetime = None;
    config.test_on_checkout = false;
    config.fairness = fairness;
    config
}

pub fn pool_on<R: Runtime>(
    runtime: R,
    max_size: usize,
    live: &Arc<AtomicUsize>,
    config: ConnPoolConfig,
) -> ConnPool<Conn, R> {
    assert_eq!(config.max_size, max_size);
    let live = Arc::clone(live);
    ConnPool::builder(move || {
        let live = Arc::clone(&live);
        async move {
            shuttle::future::yield_now().await;
            live.fetch_add(1, Ordering::SeqCst);
            Ok(Conn(live))
        }
    })
    .config(config)
    .hooks(LifecycleHooks::default())
    .runtime(runtime)
    .build_lazy()
    .expect("valid config")
}

/// Lets connects still in flight (started for waiters that were served by a returned
/// connection meanwhile) finish, then checks that everything is idle.
pub async fn check_settled<R: Runtime>(pool: &ConnPool<Conn, R>) {
    while pool.metrics().connecting > 0 || pool.metrics().closing > 0 {
        shuttle::future::yield_now().await;
    }
    let m = pool.metrics();
    check_ledger(pool);
    assert_eq!(m.waiters, 0, "{m:?}");
    assert_eq!((m.active, m.connecting), (0, 0), "{m:?}");
    assert!(m.size <= m.max_size, "{m:?}");
    assert_eq!(m.size, m.idle, "{m:?}");
}

/// The ledger balances at every snapshot (taken under the pool lock), and the pool never
/// exceeds its size.
pub fn check_ledger<R: Runtime>(pool: &ConnPool<Conn, R>) {
    let m = pool.metrics();
    assert_eq!(
        m.creates,
        m.destroys + m.detaches + (m.idle + m.active) as u64,
        "creates = destroys + detaches + idle + active: {m:?}"
    );
    assert!(m.size <= m.max_size, "{m:?}");
}

/// Runs `model` under every fairness setting, random and PCT schedules.
pub fn check(model: fn(Fairness), iterations: usize) {
    for fairness in FAIRNESS {
        println!("fairness {fairness}");
        shuttle::check_random(move || model(fairness), iterations);
        shuttle::check_pct(move || model(fairness), iterations, 3);
    }
}
