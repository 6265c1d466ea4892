//! Shared leases under load: many tasks over a few connections, and exclusive callers
//! beside busy shared users.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pg_pool_core::{Runtime, SharedGuard};

use crate::harness::{settle, spawn};
use crate::scenarios::shared::{shared_pool, until};

/// Many tasks over a few shared connections: every statement succeeds, no connection ever
/// has more users than the limit, and everything comes back.
pub async fn shared_many_tasks<R: Runtime>() {
    let (pool, control) = shared_pool::<R>(3, 4).await;
    let mut tasks = Vec::new();
    for _ in 0..48 {
        let pool = pool.clone();
        tasks.push(spawn::<R, _>(async move {
            for _ in 0..10 {
                let guard = pool.get_shared().await.unwrap();
                assert!(SharedGuard::in_flight(&guard) <= 4);
                let handle = guard.handle();
                handle.statement(Duration::from_micros(200)).await.unwrap();
                assert!(handle.most_running() <= 4, "{}", handle.most_running());
            }
        }));
    }
    for task in tasks {
        task.join().await;
    }
    let stats = pool.shared_stats();
    println!("48 tasks x 10 statements over 3 shared connections: {stats:?}");
    assert_eq!(stats.handed_out, 480);
    let m = settle(&pool, &control).await;
    assert!(m.creates <= 3, "{m:?}");
}

/// Shared users that never all let go at once do not starve a caller of the pool's own
/// `get()`: a shared connection in steady use notices the queued caller within a few
/// milliseconds, takes no more users and goes back to the pool.
pub async fn shared_does_not_starve_exclusive<R: Runtime>() {
    let (pool, control) = shared_pool::<R>(2, 4).await;
    let stop = Arc::new(AtomicBool::new(false));
    let mut users = Vec::new();
    for _ in 0..8 {
        let pool = pool.clone();
        let stop = Arc::clone(&stop);
        users.push(spawn::<R, _>(async move {
            let mut rounds = 0u64;
            while !stop.load(Ordering::SeqCst) {
                let guard = pool.get_shared().await.unwrap();
                guard
                    .handle()
                    .statement(Duration::from_millis(2))
                    .await
                    .unwrap();
                rounds += 1;
            }
            rounds
        }));
    }
    until::<R>("both connections are shared", || {
        pool.shared_stats().connections == 2
    })
    .await;
    let started = Instant::now();
    let exclusive = pool.get().await.expect("an exclusive caller is served");
    let waited = started.elapsed();
    println!("exclusive get() beside 8 busy shared users: served after {waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    assert!(
        pool.shared_stats().rotated >= 1,
        "{:?}",
        pool.shared_stats()
    );
    drop(exclusive);
    stop.store(true, Ordering::SeqCst);
    let mut rounds = 0;
    for user in users {
        rounds += user.join().await;
    }
    assert!(rounds > 0);
    settle(&pool, &control).await;
}
