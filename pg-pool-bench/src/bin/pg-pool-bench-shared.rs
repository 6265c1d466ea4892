//! Workload B for shared leases alone: `pg-pool-bench-shared [reps] [measure_ms]` starts a
//! throwaway PostgreSQL and runs, for a pool of 16 at 16, 256 and 1,024 tasks,
//! deadpool-postgres with `prepare_cached` (the reference), pg-pool-tokio-postgres with
//! exclusive checkouts and with `get_shared` (same statement), pg-pool-wire's
//! `AsyncWirePoolable` with `get_shared` (`exec_query`, cached per session), rotating the order per
//! repetition; prints the medians, the ratios to deadpool-postgres in the same repetition,
//! and the checkout-wait p99. `PG_POOL_BENCH_SHARED_MAX_IN_FLIGHT` sets the per-connection
//! limit of the shared row (default: the pool's default). `PG_POOL_BENCH_SHARED_TASKS`
//! (say `1024` or `256,1024`) measures only those task counts, and
//! `PG_POOL_BENCH_SHARED_ROWS` (say `wire` or `deadpool,wire`: words found in the row
//! names) only those rows, for profiling one row (ratios need the deadpool-postgres row).

use std::time::Duration;

use pg_pool_bench::postgres::{PgKind, PgRun, run_once};
use pg_pool_bench::stats::median;

const KINDS: [PgKind; 4] = [
    PgKind::DeadpoolPostgresPrepared,
    PgKind::PgPoolTokioPostgresPrepared,
    PgKind::PgPoolTokioPostgresShared,
    PgKind::PgPoolAsyncWireShared,
];

fn main() {
    let mut args = std::env::args().skip(1);
    let reps: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(3);
    let measure = Duration::from_millis(args.next().and_then(|a| a.parse().ok()).unwrap_or(1500));
    let warm = Duration::from_millis(300);
    let cluster = pg_pool_test_support::TestCluster::start().expect("PostgreSQL starts");
    let url = cluster.url().to_owned();
    println!("pool of 16, {reps} repetitions of {measure:?} (after {warm:?} warm-up)");
    println!("| tasks | row | qps (median) | ratio to deadpool prepare_cached | wait p99 |");
    println!("|---|---|---|---|---|");
    let task_counts: Vec<usize> = std::env::var("PG_POOL_BENCH_SHARED_TASKS")
        .ok()
        .map(|v| v.split(',').filter_map(|t| t.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![16, 256, 1024]);
    let wanted: Vec<bool> = match std::env::var("PG_POOL_BENCH_SHARED_ROWS") {
        Ok(words) => KINDS
            .iter()
            .map(|kind| words.split(',').any(|w| kind.name().contains(w.trim())))
            .collect(),
        Err(_) => vec![true; KINDS.len()],
    };
    for tasks in task_counts {
        let mut runs: Vec<Vec<Option<PgRun>>> = vec![Vec::new(); KINDS.len()];
        for rep in 0..reps {
            for offset in 0..KINDS.len() {
                let i = (rep + offset) % KINDS.len();
                let run = wanted[i]
                    .then(|| run_once(KINDS[i], &url, 16, tasks, warm, measure))
                    .flatten();
                runs[i].push(run);
            }
        }
        for (i, kind) in KINDS.iter().enumerate() {
            if !wanted[i] {
                continue;
            }
            let done: Vec<PgRun> = runs[i].iter().flatten().copied().collect();
            if done.is_empty() {
                println!("| {tasks} | {} | stalled | | |", kind.name());
                continue;
            }
            let qps = median(&mut done.iter().map(|r| r.qps).collect::<Vec<_>>());
            let p99 = median(
                &mut done
                    .iter()
                    .map(|r| r.wait_p99_ns as f64)
                    .collect::<Vec<_>>(),
            );
            let mut ratios: Vec<f64> = (0..reps)
                .filter_map(|rep| Some(runs[i][rep]?.qps / runs[0][rep]?.qps))
                .collect();
            let ratio = if ratios.is_empty() {
                f64::NAN
            } else {
                median(&mut ratios)
            };
            let errors: u64 = done.iter().map(|r| r.errors).sum();
            println!(
                "| {tasks} | {} | {qps:.0} | {ratio:.2}x | {:.3} ms{} |",
                kind.name(),
                p99 / 1e6,
                if errors > 0 {
                    format!(" ({errors} errors)")
                } else {
                    String::new()
                }
            );
        }
    }
}
