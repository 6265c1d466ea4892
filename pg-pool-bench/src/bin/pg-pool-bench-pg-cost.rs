//! The cost of Workload B cycles for one row: `pg-pool-bench-pg-cost ROW TASKS CYCLES`
//! (`ROW` as its variant is spelled, e.g. `PgPoolTokioPostgresPrepared`) runs 2,000 cycles
//! over `TASKS` tasks (pool of 16), then `2,000 + CYCLES` in a fresh pool, and prints the
//! difference per cycle of the heap allocations (under `stats_alloc`'s counting allocator)
//! and of the time: the cost of a cycle without the pool's and the runtime's set-up.
//!
//! The server is the one `PG_POOL_TEST_URL` names (or a throwaway cluster). Run it under
//! `perf stat -e instructions:u` with two values of `CYCLES` and divide the difference by
//! the difference of the counts for the instructions of one cycle on the client's side.

use std::alloc::System;
use std::time::Instant;

use pg_pool_bench::postgres::{self, Plan};
use pg_pool_bench::postgres_cycles::kind_named;
use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn allocations() -> u64 {
    let stats = GLOBAL.stats();
    (stats.allocations + stats.reallocations) as u64
}

fn main() {
    let usage = "usage: pg-pool-bench-pg-cost ROW TASKS CYCLES";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let kind = args.first().and_then(|a| kind_named(a)).expect(usage);
    let tasks: usize = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let cycles: u64 = args.get(2).and_then(|a| a.parse().ok()).expect(usage);
    let cluster = pg_pool_test_support::TestCluster::start().expect("a cluster");
    let url = cluster.url().to_owned();
    let short = 2_000;
    let count = |n: u64| {
        let before = allocations();
        let started = Instant::now();
        let run = postgres::run_plan(kind, &url, 16, Plan::Cycles { tasks, cycles: n });
        (allocations() - before, started.elapsed(), run)
    };
    let (a_short, t_short, _) = count(short);
    let (a_long, t_long, run) = count(short + cycles);
    let per = |a: u64, b: u64| (b as f64 - a as f64) / cycles as f64;
    println!(
        "{kind:?} tasks={tasks} cycles={cycles}: {:.2} allocations/cycle, {:.2} us/cycle, errors {:?}",
        per(a_short, a_long),
        (t_long.as_secs_f64() - t_short.as_secs_f64()) * 1e6 / cycles as f64,
        run.map(|r| r.errors)
    );
}
