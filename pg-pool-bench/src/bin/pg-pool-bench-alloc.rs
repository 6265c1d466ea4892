//! Counts heap allocations per single-task cycle for every pool, under `stats_alloc`'s counting
//! allocator, and prints them as JSON (`{"pool": allocations per cycle}`).
//!
//! A process of its own, so that the counting allocator (two atomic additions per allocation
//! and per free, shared by all threads) never slows the throughput measurements.

use std::alloc::System;
use std::collections::BTreeMap;

use pg_pool_bench::contestant::PoolKind;
use pg_pool_bench::single::single_task;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocations() -> u64 {
    let stats = GLOBAL.stats();
    (stats.allocations + stats.reallocations) as u64
}

fn main() {
    let mut out = BTreeMap::new();
    for pool in PoolKind::SINGLE {
        let stats = single_task(pool, 4, Some(allocations), true);
        out.insert(pool.name(), stats.allocs_per_cycle.unwrap_or(f64::NAN));
    }
    println!("{}", serde_json::to_string(&out).expect("serialisable"));
}
