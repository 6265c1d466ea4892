//! Shuttle models of the hand-off and the accounting.
//!
//! Built only with `RUSTFLAGS="--cfg shuttle"`, which swaps the engine's locks for shuttle's
//! instrumented ones (see `src/sync.rs`); shuttle then explores thousands of interleavings of
//! concurrent checkouts, returns, cancellations and connects, and fails on a deadlock (a lost
//! wake-up leaves every task blocked) or a broken invariant.
//!
//! `RUSTFLAGS="--cfg shuttle" cargo test -p pg-pool-core --test shuttle --target-dir target/shuttle`

#![cfg(shuttle)]

use std::future::{Future, Pending};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pg_pool_core::{
    ConnPool, ConnPoolConfig, LifecycleHooks, Poolable, Runtime, runtime::NoRuntime,
};

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

fn pool(max_size: usize, live: &Arc<AtomicUsize>) -> ConnPool<Conn, ShuttleRt> {
    let live = Arc::clone(live);
    let mut config = ConnPoolConfig::default();
    config.max_size = max_size;
    config.idle_timeout = None;
    config.max_lifetime = None;
    config.test_on_checkout = false;
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
    .runtime(ShuttleRt)
    .build_lazy()
    .expect("valid config")
}

/// Lets connects still in flight (started for waiters that were served by a returned
/// connection meanwhile) finish, then checks that everything is idle.
async fn check_settled(pool: &ConnPool<Conn, ShuttleRt>) {
    while pool.metrics().connecting > 0 {
        shuttle::future::yield_now().await;
    }
    let m = pool.metrics();
    assert_eq!(m.waiters, 0, "{m:?}");
    assert_eq!((m.active, m.connecting), (0, 0), "{m:?}");
    assert!(m.size <= m.max_size, "{m:?}");
    assert_eq!(m.size, m.idle, "{m:?}");
}

/// Three tasks share a pool of one: every task is served (no lost wake-up), the pool
/// never exceeds its size, and everything is idle at the end.
fn contended_handoff() {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = pool(1, &live);
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            shuttle::future::spawn(async move {
                for _ in 0..2 {
                    let guard = pool.get().await.expect("served");
                    let m = pool.metrics();
                    assert!(m.size <= 1, "{m:?}");
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
fn cancelled_waiter_passes_connection_on() {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = pool(1, &live);
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
fn concurrent_connects_respect_max() {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = pool(2, &live);
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

#[test]
fn shuttle_contended_handoff() {
    shuttle::check_random(contended_handoff, 3000);
    shuttle::check_pct(contended_handoff, 3000, 3);
}

#[test]
fn shuttle_cancelled_waiter() {
    shuttle::check_random(cancelled_waiter_passes_connection_on, 3000);
    shuttle::check_pct(cancelled_waiter_passes_connection_on, 3000, 3);
}

#[test]
fn shuttle_concurrent_connects() {
    shuttle::check_random(concurrent_connects_respect_max, 3000);
    shuttle::check_pct(concurrent_connects_respect_max, 3000, 3);
}
