//! Drain: refuse new checkouts, fail waiters, wait for every connection, close each once.

use std::time::Duration;

use pg_pool_core::{LifecycleHooks, PoolError, Runtime};

use crate::harness::{mock_pool, sleep, spawn, test_config};
use crate::mock::{Gate, Step};

/// Drain refuses new checkouts at once, fails queued callers, and returns when every
/// checked-out connection has come back; each is closed exactly once.
pub async fn drain_waits_for_checked_out<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 2;
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let a = pool.get().await.unwrap();
    let b = pool.get().await.unwrap();
    let queued = spawn::<R, _>({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    while pool.metrics().waiters == 0 {
        sleep::<R>(Duration::from_millis(1)).await;
    }
    let draining = spawn::<R, _>({
        let pool = pool.clone();
        async move { pool.drain().await }
    });
    assert!(matches!(queued.join().await, Err(PoolError::Closed)));
    sleep::<R>(Duration::from_millis(10)).await;
    assert!(matches!(pool.get().await, Err(PoolError::Closed)));
    assert!(pool.is_closed());
    drop(a);
    sleep::<R>(Duration::from_millis(10)).await;
    assert_eq!(
        pool.metrics().size,
        1,
        "drain still waits for the second connection"
    );
    drop(b);
    draining.join().await;
    let m = pool.metrics();
    assert_eq!((m.size, m.closing), (0, 0), "{m:?}");
    assert_eq!(
        m.creates, m.destroys,
        "each connection destroyed exactly once: {m:?}"
    );
    assert_eq!(control.closes(), 2);
    assert_eq!(control.live(), 0);
    pool.drain().await; // idempotent
}

/// With a deadline, drain reports what is still out; a connect in flight is cancelled at
/// once rather than waited for.
pub async fn drain_with_deadline<R: Runtime>() {
    let (pool, control) = mock_pool::<R>(test_config(), LifecycleHooks::default()).await;
    let held = pool.get().await.unwrap();
    control.set(Step::Connect, Gate::Slow(Duration::from_millis(50)));
    let pending = spawn::<R, _>({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    sleep::<R>(Duration::from_millis(10)).await;
    let report = pool.drain_timeout(Duration::from_millis(20)).await;
    println!("drain with 20 ms deadline: {report:?}");
    assert_eq!(
        report.outstanding, 1,
        "only the held connection: the connect in flight was cancelled: {report:?}"
    );
    assert_eq!(pool.metrics().connecting, 0, "{:?}", pool.metrics());
    assert!(!report.is_complete());
    assert!(matches!(pending.join().await, Err(PoolError::Closed)));
    drop(held);
    let report = pool.drain_timeout(Duration::from_secs(2)).await;
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(control.live(), 0);
    let m = pool.metrics();
    assert_eq!(m.creates, m.destroys, "{m:?}");
    assert_eq!(m.creates, 1, "the slow connect never completed: {m:?}");
}
