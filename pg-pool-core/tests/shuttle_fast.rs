//! Shuttle models of the fast slot (`src/fast.rs`): the lock-free checkout and return race
//! callers that queue, a drain, and each other.
//!
//! Built only with `RUSTFLAGS="--cfg shuttle"`, under which the slot's exchange and its
//! `open` flag are shuttle primitives, so every step of the protocol is a scheduling point.
//! A lost wake-up (a connection left in the slot while a caller sleeps in the queue) shows
//! as a deadlock, which shuttle reports; `broken_slot_is_caught` proves it does, by running
//! the first model against a slot whose returns skip their second look at `open`. The same
//! model covers the hand-off to a queued caller (the grant published by an atomic flag and
//! cell, both shuttle primitives here, then the wake-up): `broken_grant_is_caught` runs it
//! against a return that wakes the caller before publishing its grant.
//!
//! `RUSTFLAGS="--cfg shuttle" cargo test -p pg-pool-core --test shuttle_fast --target-dir target/shuttle`

#![cfg(shuttle)]

mod shuttle_support;

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use pg_pool_core::{Fairness, PoolError};

use shuttle_support::{FAIRNESS, check_ledger, check_settled, pool};

/// Which deliberate bug a model runs against.
#[derive(Debug, Clone, Copy)]
enum Broken {
    /// None: the real protocol.
    No,
    /// Returns skip their second look at the fast slot's `open`.
    Slot,
    /// A return wakes the head waiter before storing its grant, not after.
    Grant,
}

/// A connection is out; one caller queues for it while the holder returns it (the return
/// may see the slot open, then the caller queues, then the connection lands in the slot)
/// and a third task checks out and returns through the fast slot meanwhile. Everyone is
/// served: the queued caller is not left asleep with the connection in the slot.
fn return_races_queueing(fairness: Fairness, broken: Broken) {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = pool(1, &live, fairness);
    match broken {
        Broken::No => {}
        Broken::Slot => pool.break_fast_slot_for_model(),
        Broken::Grant => pool.break_grant_for_model(),
    }
    let held = shuttle::future::block_on(pool.get()).expect("first checkout");
    let queued = {
        let pool = pool.clone();
        shuttle::future::spawn(async move { drop(pool.get().await.expect("served")) })
    };
    let returner = shuttle::future::spawn(async move { drop(held) });
    let passer = {
        let pool = pool.clone();
        shuttle::future::spawn(async move {
            let guard = pool.get().await.expect("served");
            check_ledger(&pool);
            drop(guard);
        })
    };
    shuttle::future::block_on(async move {
        queued.await.unwrap();
        returner.await.unwrap();
        passer.await.unwrap();
        check_settled(&pool).await;
        assert_eq!(live.load(Ordering::SeqCst), 1);
    });
}

/// Strict FIFO through the slot: once a caller is queued, a caller that comes later is
/// served after it, however the return of the connection interleaves with the later
/// caller's look at the fast slot.
fn queued_caller_is_not_overtaken() {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = pool(1, &live, Fairness::Strict);
    let held = shuttle::future::block_on(pool.get()).expect("first checkout");
    let order = Arc::new(AtomicUsize::new(0));
    let first = {
        let (pool, order) = (pool.clone(), Arc::clone(&order));
        shuttle::future::spawn(async move {
            let guard = pool.get().await.expect("served");
            let ticket = order.fetch_add(1, Ordering::SeqCst);
            drop(guard);
            ticket
        })
    };
    shuttle::future::block_on(async {
        while pool.metrics().waiters == 0 {
            shuttle::future::yield_now().await;
        }
    });
    let later = {
        let (pool, order) = (pool.clone(), Arc::clone(&order));
        shuttle::future::spawn(async move {
            let guard = pool.get().await.expect("served");
            let ticket = order.fetch_add(1, Ordering::SeqCst);
            drop(guard);
            ticket
        })
    };
    let returner = shuttle::future::spawn(async move { drop(held) });
    shuttle::future::block_on(async move {
        let first = first.await.unwrap();
        let later = later.await.unwrap();
        returner.await.unwrap();
        assert_eq!((first, later), (0, 1), "the queued caller was overtaken");
        check_settled(&pool).await;
    });
}

/// Two tasks check out and return in a loop, through the slot, while the pool drains.
/// The drain completes with every connection closed (none left in the slot or put there
/// afterwards), and checkouts after it fail with `Closed`.
fn drain_races_fast_returns(fairness: Fairness) {
    let live = Arc::new(AtomicUsize::new(0));
    let pool = pool(2, &live, fairness);
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            shuttle::future::spawn(async move {
                for _ in 0..3 {
                    match pool.get().await {
                        Ok(guard) => {
                            shuttle::future::yield_now().await;
                            drop(guard);
                        }
                        Err(PoolError::Closed) => return,
                        Err(other) => panic!("unexpected error: {other}"),
                    }
                }
            })
        })
        .collect();
    shuttle::future::block_on(async move {
        shuttle::future::yield_now().await;
        pool.drain().await;
        let m = pool.metrics();
        assert_eq!((m.size, m.idle, m.closing), (0, 0, 0), "{m:?}");
        for worker in workers {
            worker.await.unwrap();
        }
        let m = pool.metrics();
        assert_eq!((m.size, m.closing), (0, 0), "{m:?}");
        assert_eq!(
            live.load(Ordering::SeqCst),
            0,
            "a connection outlived the drain"
        );
        assert!(matches!(pool.get().await, Err(PoolError::Closed)));
    });
}

fn check(model: impl Fn(Fairness) + Send + Sync + Copy + 'static, iterations: usize) {
    for fairness in FAIRNESS {
        println!("fairness {fairness}");
        shuttle::check_random(move || model(fairness), iterations);
        shuttle::check_pct(move || model(fairness), iterations, 3);
    }
}

#[test]
fn shuttle_fast_return_races_queueing() {
    check(|fairness| return_races_queueing(fairness, Broken::No), 3000);
}

#[test]
fn shuttle_fast_queued_caller_is_not_overtaken() {
    shuttle::check_random(queued_caller_is_not_overtaken, 3000);
    shuttle::check_pct(queued_caller_is_not_overtaken, 3000, 3);
}

#[test]
fn shuttle_fast_drain_races_fast_returns() {
    check(drain_races_fast_returns, 2000);
}

/// The models catch a slot whose returns do not look at `open` again after putting their
/// connection in: shuttle finds the interleaving where the queued caller sleeps forever.
#[test]
fn broken_slot_is_caught() {
    let caught = catch_unwind(AssertUnwindSafe(|| {
        shuttle::check_random(
            || return_races_queueing(Fairness::Strict, Broken::Slot),
            3000,
        );
    }));
    assert!(
        caught.is_err(),
        "the model passed against a slot that loses wake-ups"
    );
}

/// The models catch a hand-off that wakes the waiter before its grant is published (the
/// waiter looks, finds nothing, listens again, and the grant lands with no wake-up after
/// it): shuttle finds the interleaving where the granted caller sleeps forever.
#[test]
fn broken_grant_is_caught() {
    let caught = catch_unwind(AssertUnwindSafe(|| {
        shuttle::check_random(
            || return_races_queueing(Fairness::Strict, Broken::Grant),
            3000,
        );
    }));
    assert!(
        caught.is_err(),
        "the model passed against a hand-off that loses wake-ups"
    );
}
