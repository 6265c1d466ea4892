//! Shuttle models of the shared lease set (`ConnPool::get_shared`): room handed over in
//! order, one waiter at a time opening a connection for the set, waiters that give up at
//! any point, leases retired while in use, exclusive and shared callers on one pool, and
//! checkout timeouts racing all of it.
//!
//! Each model ends with the set empty (no connection, user, waiter or opener left) and the
//! pool settled (every connection idle, the ledger balanced); a lost wake-up shows up as a
//! deadlock, which shuttle reports.
//!
//! `RUSTFLAGS="--cfg shuttle" cargo test -p pg-pool-core --test shuttle_lease --target-dir target/shuttle`

#![cfg(shuttle)]

mod shuttle_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pg_pool_core::{ConnPool, Fairness, PoolError, Runtime, Shareable, SharedGuard};

use shuttle_support::{
    Conn, ShuttleRt, TimedRt, check, check_ledger, check_settled, config, pool, pool_on,
};

impl Shareable for Conn {
    type Handle<'a> = &'a Conn;

    fn share(&self) -> &Conn {
        self
    }

    fn is_broken(&self) -> bool {
        false
    }
}

/// A pool whose shared connections take at most `per_conn` users each.
fn shared_pool(
    max_size: usize,
    per_conn: usize,
    live: &Arc<AtomicUsize>,
    fairness: Fairness,
) -> ConnPool<Conn, ShuttleRt> {
    let pool = pool(max_size, live, fairness);
    pool.set_shared_max_in_flight(per_conn)
        .expect("a valid limit");
    pool
}

/// The set is empty and the pool settled.
async fn check_set_empty<R: Runtime>(pool: &ConnPool<Conn, R>) {
    // The last user of a lease returns its connection through the ordinary path.
    check_settled(pool).await;
    let stats = pool.shared_stats();
    assert_eq!(
        (
            stats.connections,
            stats.in_flight,
            stats.waiting,
            stats.opening
        ),
        (0, 0, 0, 0),
        "{stats:?}"
    );
}

/// One user's share: never more users on its connection than the limit.
fn check_share<R: Runtime>(guard: &SharedGuard<Conn, R>, per_conn: usize) {
    let users = SharedGuard::in_flight(guard);
    assert!(
        (1..=per_conn).contains(&users),
        "{users} users on a connection limited to {per_conn}"
    );
}

/// Four tasks, two shares each, on a pool of one connection taking two users: room freed
/// by one user goes to the next waiter; everyone is served.
fn room_handed_over(fairness: Fairness) {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = shared_pool(1, 2, &live, fairness);
    let handles: Vec<_> = (0..4)
        .map(|_| {
            let pool = pool.clone();
            shuttle::future::spawn(async move {
                for _ in 0..2 {
                    let guard = pool.get_shared().await.expect("served");
                    check_share(&guard, 2);
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
        check_set_empty(&pool).await;
        assert!(live.load(Ordering::SeqCst) <= 1);
    });
}

/// A shared waiter that gives up at an arbitrary point (queued, opening a connection for
/// the set, or holding room it never claimed) strands nothing: the patient one is served.
fn cancelled_shared_waiter(fairness: Fairness) {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = shared_pool(1, 1, &live, fairness);
    let held = shuttle::future::block_on(pool.get_shared()).expect("first share");
    let canceller = {
        let pool = pool.clone();
        shuttle::future::spawn(async move {
            let mut wait = Box::pin(pool.get_shared());
            let _ = futures_lite::future::poll_once(wait.as_mut()).await;
            shuttle::future::yield_now().await;
            drop(wait);
        })
    };
    let patient = {
        let pool = pool.clone();
        shuttle::future::spawn(async move { drop(pool.get_shared().await.expect("served")) })
    };
    let returner = shuttle::future::spawn(async move { drop(held) });
    shuttle::future::block_on(async move {
        canceller.await.unwrap();
        patient.await.unwrap();
        returner.await.unwrap();
        check_set_empty(&pool).await;
    });
}

/// Shared and exclusive callers on a pool of two: never more than two connections, and an
/// exclusive caller gets a connection once the shares on it are gone.
fn exclusive_and_shared(fairness: Fairness) {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = shared_pool(2, 2, &live, fairness);
    let handles: Vec<_> = (0..4)
        .map(|task| {
            let pool = pool.clone();
            let live = Arc::clone(&live);
            shuttle::future::spawn(async move {
                if task % 2 == 0 {
                    let guard = pool.get_shared().await.expect("served");
                    check_share(&guard, 2);
                    shuttle::future::yield_now().await;
                    drop(guard);
                } else {
                    let guard = pool.get().await.expect("served");
                    shuttle::future::yield_now().await;
                    drop(guard);
                }
                assert!(live.load(Ordering::SeqCst) <= 2);
                check_ledger(&pool);
            })
        })
        .collect();
    shuttle::future::block_on(async move {
        for handle in handles {
            handle.await.unwrap();
        }
        check_set_empty(&pool).await;
    });
}

/// A user marks its connection broken while others share it or wait: the lease leaves
/// the set, its other users finish, the last one's return destroys it, and the waiters
/// are served on a new connection.
fn broken_lease_retired(fairness: Fairness) {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = shared_pool(1, 2, &live, fairness);
    let handles: Vec<_> = (0..3)
        .map(|task| {
            let pool = pool.clone();
            shuttle::future::spawn(async move {
                let guard = pool.get_shared().await.expect("served");
                check_share(&guard, 2);
                if task == 0 {
                    SharedGuard::mark_broken(&guard);
                }
                shuttle::future::yield_now().await;
                drop(guard);
            })
        })
        .collect();
    shuttle::future::block_on(async move {
        for handle in handles {
            handle.await.unwrap();
        }
        check_set_empty(&pool).await;
        let m = pool.metrics();
        assert!(
            m.destroys >= 1,
            "the broken connection was destroyed: {m:?}"
        );
        assert_eq!(live.load(Ordering::SeqCst), m.idle, "{m:?}");
    });
}

/// Timers that fire and a checkout timeout of 50 µs: shared waiters time out while room
/// is handed over and a connection is opened for the set. Every call ends (served or timed
/// out), nothing is stranded, and the pool serves afterwards.
fn shared_timeouts(fairness: Fairness) {
    let live = Arc::new(AtomicUsize::new(0));
    let mut config = config(1, fairness);
    config.checkout_timeout = Duration::from_micros(50);
    let pool = pool_on(TimedRt, 1, &live, config);
    pool.set_shared_max_in_flight(1).expect("a valid limit");
    let handles: Vec<_> = (0..3)
        .map(|_| {
            let pool = pool.clone();
            shuttle::future::spawn(async move {
                for _ in 0..2 {
                    match pool.get_shared().await {
                        Ok(guard) => {
                            check_share(&guard, 1);
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
        check_set_empty(&pool).await;
        // Served once the others are done. The 50 µs timeout runs in real time, so on a
        // loaded machine one call may time out while the connection opens; a stranded pool
        // would time out every time.
        let mut timeouts = 0;
        loop {
            match pool.get_shared().await {
                Ok(guard) => break drop(guard),
                Err(PoolError::Timeout { .. }) if timeouts < 100 => timeouts += 1,
                Err(other) => panic!("not served after {timeouts} timeouts: {other}"),
            }
        }
        check_set_empty(&pool).await;
    });
}

/// A drain while shares are held and callers wait: every call ends (served or `Closed`),
/// the drain finishes once the last share is gone, and nothing is left open.
fn drain_with_shares(fairness: Fairness) {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = shared_pool(1, 1, &live, fairness);
    let handles: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            shuttle::future::spawn(async move {
                match pool.get_shared().await {
                    Ok(guard) => {
                        shuttle::future::yield_now().await;
                        drop(guard);
                    }
                    Err(PoolError::Closed) => {}
                    Err(other) => panic!("unexpected error: {other}"),
                }
            })
        })
        .collect();
    let drainer = {
        let pool = pool.clone();
        shuttle::future::spawn(async move { pool.drain().await })
    };
    shuttle::future::block_on(async move {
        for handle in handles {
            handle.await.unwrap();
        }
        drainer.await.unwrap();
        let m = pool.metrics();
        assert_eq!((m.active, m.idle, m.connecting), (0, 0, 0), "{m:?}");
        while pool.metrics().closing > 0 {
            shuttle::future::yield_now().await;
        }
        assert_eq!(live.load(Ordering::SeqCst), 0, "every connection closed");
        let stats = pool.shared_stats();
        assert_eq!((stats.connections, stats.waiting), (0, 0), "{stats:?}");
    });
}

#[test]
fn shuttle_shared_room_handed_over() {
    check(room_handed_over, 1000);
}

#[test]
fn shuttle_shared_cancelled_waiter() {
    check(cancelled_shared_waiter, 1000);
}

#[test]
fn shuttle_shared_with_exclusive() {
    check(exclusive_and_shared, 1000);
}

#[test]
fn shuttle_shared_broken_lease() {
    check(broken_lease_retired, 1000);
}

#[test]
fn shuttle_shared_timeouts() {
    check(shared_timeouts, 500);
}

#[test]
fn shuttle_shared_drain() {
    check(drain_with_shares, 1000);
}
