//! The fast path allocates nothing: a checkout of an idle connection and its return, with
//! no hooks and no reset due, perform zero heap allocations and spawn no task.

mod common;

use std::alloc::System;
use std::sync::atomic::Ordering;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

use common::{Inline, Noop, SPAWNS};
use futures_lite::future::block_on;
use pg_pool_core::{ConnPool, ConnPoolConfig, LifecycleHooks};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

#[test]
fn checkout_and_return_allocate_nothing() {
    let mut config = ConnPoolConfig::default();
    config.max_size = 4;
    let pool = ConnPool::build_lazy(config, LifecycleHooks::default(), Inline, || async {
        Ok(Noop)
    })
    .expect("valid config");
    // Warm up: open the connection and let every lazily-allocated structure settle.
    for _ in 0..10 {
        drop(block_on(pool.get()).unwrap());
    }
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
