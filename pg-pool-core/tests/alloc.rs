//! The fast path allocates nothing: a checkout of an idle connection and its return, with
//! no hooks and no reset due, perform zero heap allocations and spawn no task.
//!
//! The allocation counters are process-wide, so this file runs without the test harness
//! (`harness = false`): no other test thread, and no harness thread printing results, can
//! allocate while a measurement runs, however loaded the machine is.

mod common;

use std::alloc::System;
use std::sync::atomic::Ordering;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

use common::{Inline, Noop, SPAWNS, settle_spawned};
use futures_lite::future::block_on;
use std::time::Duration;

use pg_pool_core::{ConnPool, ConnPoolConfig, Fairness, LifecycleHooks};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    let bounded = Fairness::Bounded(Duration::from_millis(1));
    for fairness in [Fairness::Strict, bounded] {
        println!("fairness {fairness}");
        checkout_and_return_allocate_nothing(fairness);
        queued_checkouts_allocate_nothing_once_warm(fairness);
    }
    // Bounded, with the head always past its bound: every return is a strict hand-off.
    println!("fairness bounded, head always past the bound");
    queued_checkouts_allocate_nothing_once_warm(Fairness::Bounded(Duration::from_nanos(1)));
    println!("5 passed, 0 failed");
}

fn checkout_and_return_allocate_nothing(fairness: Fairness) {
    let mut config = ConnPoolConfig::default();
    config.max_size = 4;
    config.fairness = fairness;
    let pool = ConnPool::builder(|| async { Ok(Noop) })
        .config(config)
        .hooks(LifecycleHooks::default())
        .runtime(Inline)
        .build_lazy()
        .expect("valid config");
    // Warm up: open the connection and let every lazily-allocated structure settle,
    // background tasks included.
    for _ in 0..10 {
        drop(block_on(pool.get()).unwrap());
    }
    settle_spawned();
    let spawns = SPAWNS.load(Ordering::SeqCst);
    let region = Region::new(GLOBAL);
    for _ in 0..10_000 {
        let guard = block_on(pool.get()).unwrap();
        drop(guard);
    }
    let allocations = region.change().allocations;
    println!("allocations in 10,000 checkout/return cycles: {allocations}");
    assert_eq!(allocations, 0, "the fast path allocated");
    assert_eq!(
        SPAWNS.load(Ordering::SeqCst),
        spawns,
        "the fast path spawned a task"
    );
    let m = pool.metrics();
    assert_eq!((m.checkouts, m.creates), (10_010, 1));
}

fn queued_checkouts_allocate_nothing_once_warm(fairness: Fairness) {
    let mut config = ConnPoolConfig::default();
    config.max_size = 1;
    config.fairness = fairness;
    let pool = ConnPool::builder(|| async { Ok(Noop) })
        .config(config)
        .hooks(LifecycleHooks::default())
        .runtime(Inline)
        .build_lazy()
        .expect("valid config");
    // One hand-off cycle: A holds the only connection, B queues behind it, A returns it
    // (strict: directly into B's slot; bounded: idle, B nudged and taking it when it runs),
    // B runs and returns it.
    let cycle = |queued_for: Duration| {
        let held = block_on(pool.get()).unwrap();
        let mut queued = std::pin::pin!(pool.get());
        assert!(block_on(futures_lite::future::poll_once(queued.as_mut())).is_none());
        std::thread::sleep(queued_for);
        drop(held);
        let guard = block_on(queued).unwrap();
        drop(guard);
    };
    // Warm up: the connection, the sweeper, a spare waiter and its event.
    for _ in 0..10 {
        cycle(Duration::ZERO);
    }
    settle_spawned();
    // Once more with the caller left queued long enough for the sweeper (on its own thread)
    // to look while it is: the sweeper then knows a deadline earlier than any later
    // caller's, and no later caller needs to wake it (its wake-up allocates a listener on
    // its thread, which would count here).
    cycle(Duration::from_millis(100));
    let region = Region::new(GLOBAL);
    for _ in 0..1_000 {
        cycle(Duration::ZERO);
    }
    let allocations = region.change().allocations;
    println!("allocations in 1,000 queued hand-offs: {allocations}");
    assert_eq!(allocations, 0, "queueing allocated once warm");
    let m = pool.metrics();
    assert_eq!((m.waiters, m.active, m.idle), (0, 0, 1), "{m:?}");
    assert_eq!(m.checkouts, 2 * 1_011, "{m:?}");
}
