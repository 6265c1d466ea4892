//! Shared leases allocate nothing on their hot path: taking room on a connection already
//! shared and letting go of it performs zero heap allocations and spawns no task.
//!
//! Its own process without the test harness, like `alloc.rs`: the allocation counters are
//! process-wide.

mod common;

use std::alloc::System;
use std::sync::atomic::Ordering;

use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

use common::{Inline, SPAWNS, settle_spawned};
use futures_lite::future::block_on;
use pg_pool_core::{ConnPool, ConnPoolConfig, LifecycleHooks, Poolable, Shareable};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// A connection that costs nothing and can be shared.
#[derive(Debug)]
struct Pipe;

impl Poolable for Pipe {
    type Error = std::io::Error;
}

impl Shareable for Pipe {
    type Handle<'a> = &'a Pipe;

    fn share(&self) -> &Pipe {
        self
    }

    fn is_broken(&self) -> bool {
        false
    }
}

fn main() {
    shared_room_allocates_nothing();
    last_user_round_trip_cost();
    queued_hand_off_cost();
    println!("3 passed, 0 failed");
}

fn pool() -> ConnPool<Pipe, Inline> {
    let mut config = ConnPoolConfig::default();
    config.max_size = 4;
    ConnPool::builder(|| async { Ok(Pipe) })
        .config(config)
        .hooks(LifecycleHooks::default())
        .runtime(Inline)
        .build_lazy()
        .expect("valid config")
}

fn shared_room_allocates_nothing() {
    let pool = pool();
    // One user stays, so the connection stays shared; the measured users come and go.
    let anchor = block_on(pool.get_shared()).unwrap();
    for _ in 0..10 {
        drop(block_on(pool.get_shared()).unwrap());
    }
    settle_spawned();
    let spawns = SPAWNS.load(Ordering::SeqCst);
    let region = Region::new(GLOBAL);
    for _ in 0..10_000 {
        let guard = block_on(pool.get_shared()).unwrap();
        let _: &Pipe = guard.handle();
        drop(guard);
    }
    let allocations = region.change().allocations;
    println!("allocations in 10,000 shared take/let-go cycles: {allocations}");
    assert_eq!(allocations, 0, "the shared hot path allocated");
    assert_eq!(
        SPAWNS.load(Ordering::SeqCst),
        spawns,
        "the shared hot path spawned"
    );
    drop(anchor);
    let m = pool.metrics();
    assert_eq!((m.checkouts, m.creates, m.active), (1, 1, 0), "{m:?}");
    assert_eq!(pool.shared_stats().handed_out, 10_011);
}

/// When the last user lets go, the connection goes back to the pool, and the next user
/// checks it out again: that path allocates the lease (and the boxed wait). Reported, not
/// asserted zero.
fn last_user_round_trip_cost() {
    let pool = pool();
    for _ in 0..10 {
        drop(block_on(pool.get_shared()).unwrap());
    }
    settle_spawned();
    let region = Region::new(GLOBAL);
    for _ in 0..1_000 {
        drop(block_on(pool.get_shared()).unwrap());
    }
    let allocations = region.change().allocations;
    println!(
        "allocations in 1,000 sole-user shared cycles (checkout and return each): {allocations}"
    );
    assert!(allocations <= 3_000, "{allocations}");
    let m = pool.metrics();
    assert_eq!((m.checkouts, m.creates, m.idle), (1_010, 1, 1), "{m:?}");
}

/// A caller that waits for room and gets it handed over by a user letting go. The waiter
/// itself is reused once warm; the boxed wait and the pool checkout it races (the pool is
/// full here, so that checkout queues and is dropped) allocate. Reported; bounded loosely.
fn queued_hand_off_cost() {
    let pool = pool();
    pool.set_shared_max_in_flight(2).unwrap();
    pool.resize(1).unwrap();
    let anchor = block_on(pool.get_shared()).unwrap();
    let cycle = || {
        let held = block_on(pool.get_shared()).unwrap();
        let mut queued = std::pin::pin!(pool.get_shared());
        assert!(block_on(futures_lite::future::poll_once(queued.as_mut())).is_none());
        assert_eq!(pool.shared_stats().waiting, 1);
        drop(held);
        let guard = block_on(queued).unwrap();
        drop(guard);
    };
    for _ in 0..10 {
        cycle();
    }
    settle_spawned();
    let region = Region::new(GLOBAL);
    for _ in 0..1_000 {
        cycle();
    }
    let allocations = region.change().allocations;
    println!("allocations in 1,000 queued shared hand-offs: {allocations}");
    assert!(allocations <= 5_000, "{allocations}");
    drop(anchor);
    let stats = pool.shared_stats();
    assert_eq!((stats.waiting, stats.connections), (0, 0), "{stats:?}");
}
