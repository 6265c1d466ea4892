//! Shuttle models of the hand-off and the accounting.
//!
//! Built only with `RUSTFLAGS="--cfg shuttle"`, which swaps the engine's locks for shuttle's
//! instrumented ones (see `src/sync.rs`); shuttle then explores thousands of interleavings of
//! concurrent checkouts, returns, cancellations and connects, and fails on a deadlock (a lost
//! wake-up leaves every task blocked) or a broken invariant.
//!
//! Every model runs under strict fairness and under bounded fairness with two bounds: one
//! hour (never reached: every return parks the connection and nudges the head, callers
//! overtake) and one nanosecond (always passed: every return is a strict hand-off, newcomers
//! queue). A deadlock there is a connection left idle while every waiter sleeps (a lost or
//! stranded nudge). `bounded_timeouts` adds a runtime whose timers fire, so the sweeper
//! times waiters out, nudged ones included, in every interleaving.
//!
//! The shared lease set has its own models in `shuttle_models/lease.rs`.
//!
//! `RUSTFLAGS="--cfg shuttle" cargo test -p pg-pool-core --test shuttle --target-dir target/shuttle`

#![cfg(shuttle)]

#[path = "shuttle_models/lease.rs"]
mod lease;

use std::future::{Future, Pending};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pg_pool_core::{
    ConnPool, ConnPoolConfig, Fairness, LifecycleHooks, PoolError, Poolable, Runtime,
    runtime::NoRuntime,
};

/// The fairness settings every model runs under (see the module docs).
const FAIRNESS: [Fairness; 3] = [
    Fairness::Strict,
    Fairness::Bounded(Duration::from_secs(3600)),
    Fairness::Bounded(Duration::from_nanos(1)),
];

#[derive(Debug, Clone, Copy)]
struct ShuttleRt;

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
struct Conn(Arc<AtomicUsize>);

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
struct TimedRt;

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

fn pool(max_size: usize, live: &Arc<AtomicUsize>, fairness: Fairness) -> ConnPool<Conn, ShuttleRt> {
    pool_on(ShuttleRt, max_size, live, config(max_size, fairness))
}

fn config(max_size: usize, fairness: Fairness) -> ConnPoolConfig {
    let mut config = ConnPoolConfig::default();
    config.max_size = max_size;
    config.idle_timeout = None;
    config.max_lifetime = None;
    config.test_on_checkout = false;
    config.fairness = fairness;
    config
}

fn pool_on<R: Runtime>(
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
async fn check_settled<R: Runtime>(pool: &ConnPool<Conn, R>) {
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
fn check_ledger<R: Runtime>(pool: &ConnPool<Conn, R>) {
    let m = pool.metrics();
    assert_eq!(
        m.creates,
        m.destroys + m.detaches + (m.idle + m.active) as u64,
        "creates = destroys + detaches + idle + active: {m:?}"
    );
    assert!(m.size <= m.max_size, "{m:?}");
}

/// Three tasks share a pool of one: every task is served (no lost wake-up), the pool
/// never exceeds its size, and everything is idle at the end.
fn contended_handoff(fairness: Fairness) {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = pool(1, &live, fairness);
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            shuttle::future::spawn(async move {
                for _ in 0..2 {
                    let guard = pool.get().await.expect("served");
                    check_ledger(&pool);
                    shuttle::future::yield_now().await;
                    drop(guard);
                }
            })
        })
        .collect();
    shuttle::future::block_on(async move {
        for handle in handles {
            handle.await.unwrap();
        }
        check_settled(&pool).await;
        assert_eq!(live.load(Ordering::SeqCst), pool.metrics().idle);
    });
}

/// A waiter cancelled at an arbitrary point, possibly after a connection was handed to it,
/// never strands the connection: the other task is still served.
fn cancelled_waiter_passes_connection_on(fairness: Fairness) {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = pool(1, &live, fairness);
    let held = shuttle::future::block_on(pool.get()).expect("first checkout");
    let canceller = {
        let pool = pool.clone();
        shuttle::future::spawn(async move {
            let mut checkout = Box::pin(pool.get());
            // Poll once (queues), let others run, then give up.
            let _ = futures_lite::future::poll_once(checkout.as_mut()).await;
            shuttle::future::yield_now().await;
            drop(checkout);
        })
    };
    let patient = {
        let pool = pool.clone();
        shuttle::future::spawn(async move { drop(pool.get().await.expect("served")) })
    };
    let returner = shuttle::future::spawn(async move { drop(held) });
    shuttle::future::block_on(async move {
        canceller.await.unwrap();
        patient.await.unwrap();
        returner.await.unwrap();
        check_settled(&pool).await;
    });
}

/// Concurrent connects for several waiters on a pool of two: never more than two
/// connections, every waiter served.
fn concurrent_connects_respect_max(fairness: Fairness) {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = pool(2, &live, fairness);
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            let live = Arc::clone(&live);
            shuttle::future::spawn(async move {
                let guard = pool.get().await.expect("served");
                assert!(live.load(Ordering::SeqCst) <= 2);
                drop(guard);
            })
        })
        .collect();
    shuttle::future::block_on(async move {
        for handle in handles {
            handle.await.unwrap();
        }
        check_settled(&pool).await;
        assert!(pool.metrics().creates <= 2);
    });
}

/// Bounded fairness, pool of two, four tasks: returns race overtaking checkouts and nudged
/// waiters; the first task gives up its second checkout at an arbitrary point (possibly
/// while nudged, or holding a grant it never ran with). Everyone else is served, and the
/// ledger balances throughout.
fn bounded_returns_race_overtakers(fairness: Fairness) {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = pool(2, &live, fairness);
    let handles: Vec<_> = (0..4)
        .map(|task| {
            let pool = pool.clone();
            shuttle::future::spawn(async move {
                let guard = pool.get().await.expect("served");
                check_ledger(&pool);
                shuttle::future::yield_now().await;
                drop(guard);
                if task == 0 {
                    let mut checkout = Box::pin(pool.get());
                    let _ = futures_lite::future::poll_once(checkout.as_mut()).await;
                    shuttle::future::yield_now().await;
                    drop(checkout);
                } else {
                    drop(pool.get().await.expect("served"));
                }
                check_ledger(&pool);
            })
        })
        .collect();
    shuttle::future::block_on(async move {
        for handle in handles {
            handle.await.unwrap();
        }
        check_settled(&pool).await;
    });
}

/// Timers that fire and a checkout timeout of 50 µs: the sweeper times out queued callers
/// (nudged ones included) while returns, overtaking checkouts and nudges race it. Every
/// checkout ends (served or timed out), nothing is stranded, the ledger balances.
fn bounded_timeouts(fairness: Fairness) {
    let live = Arc::new(AtomicUsize::new(0));
    let mut config = config(1, fairness);
    config.checkout_timeout = Duration::from_micros(50);
    let pool = pool_on(TimedRt, 1, &live, config);
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            shuttle::future::spawn(async move {
                for _ in 0..2 {
                    match pool.get().await {
                        Ok(guard) => {
                            check_ledger(&pool);
                            shuttle::future::yield_now().await;
                            drop(guard);
                        }
                        Err(PoolError::Timeout { .. }) => check_ledger(&pool),
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                }
            })
        })
        .collect();
    shuttle::future::block_on(async move {
        for handle in handles {
            handle.await.unwrap();
        }
        check_settled(&pool).await;
        // Served afterwards: no connection is stranded with a waiter that is gone.
        drop(pool.get().await.expect("served once the others are done"));
    });
}

/// Runs `model` under every fairness setting, random and PCT schedules.
fn check(model: fn(Fairness), iterations: usize) {
    for fairness in FAIRNESS {
        println!("fairness {fairness}");
        shuttle::check_random(move || model(fairness), iterations);
        shuttle::check_pct(move || model(fairness), iterations, 3);
    }
}

#[test]
fn shuttle_contended_handoff() {
    check(contended_handoff, 2000);
}

#[test]
fn shuttle_cancelled_waiter() {
    check(cancelled_waiter_passes_connection_on, 2000);
}

#[test]
fn shuttle_concurrent_connects() {
    check(concurrent_connects_respect_max, 2000);
}

#[test]
fn shuttle_bounded_returns_race_overtakers() {
    check(bounded_returns_race_overtakers, 2000);
}

#[test]
fn shuttle_bounded_timeouts() {
    check(bounded_timeouts, 1000);
}
