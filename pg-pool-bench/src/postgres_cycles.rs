//! Workload B by count instead of by time: `tasks` tasks share a fixed number of cycles, so
//! that a tool counting from outside the process (`perf stat`, a counting allocator) can
//! take the difference of two runs and get the cost of one cycle, set-up excluded. See the
//! `pg-pool-bench-pg-cost` binary.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::postgres::{PgBench, PgKind, PgRun};

/// Every Workload B row, those outside [`PgKind::ALL`] included.
pub const KINDS: [PgKind; 17] = [
    PgKind::DeadpoolPostgresPrepared,
    PgKind::DeadpoolPostgresQueryOne,
    PgKind::DeadpoolPostgres,
    PgKind::PgPoolTokioPostgresPrepared,
    PgKind::PgPoolTokioPostgresQueryOne,
    PgKind::PgPoolTokioPostgresSimple,
    PgKind::PgPoolTokioPostgresPreparedTuned,
    PgKind::PgPoolTokioPostgres,
    PgKind::PgPoolTokioPostgresPreparedResetUsed,
    PgKind::PgPoolTokioPostgresQueryOneResetUsed,
    PgKind::PgPoolTokioPostgresShared,
    PgKind::PgPoolWireDefaults,
    PgKind::PgPoolWire,
    PgKind::PgPoolAsyncWireDefaults,
    PgKind::PgPoolAsyncWire,
    PgKind::Bb8PostgresDefaults,
    PgKind::Bb8Postgres,
];

/// The row whose variant is spelled `name` (as in `Debug`: `DeadpoolPostgresPrepared`).
pub fn kind_named(name: &str) -> Option<PgKind> {
    KINDS
        .iter()
        .copied()
        .find(|kind| format!("{kind:?}").eq_ignore_ascii_case(name))
}

/// Runs `cycles` cycles over `tasks` tasks; the throughput is over the whole run, the
/// checkout waits are not recorded (zero). `None` if a task failed to finish.
pub(crate) fn drive_cycles<P: PgBench>(
    rt: &tokio::runtime::Runtime,
    pool: Arc<P>,
    tasks: usize,
    cycles: u64,
) -> Option<PgRun> {
    let left = Arc::new(AtomicU64::new(cycles));
    let started = Instant::now();
    let handles: Vec<_> = (0..tasks.max(1))
        .map(|_| {
            let pool = Arc::clone(&pool);
            let left = Arc::clone(&left);
            rt.spawn(async move {
                let mut errors = 0u64;
                while left
                    .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
                    .is_ok()
                {
                    if pool.cycle().await.is_none() {
                        errors += 1;
                    }
                }
                errors
            })
        })
        .collect();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(600), async {
            let mut errors = 0;
            for handle in handles {
                errors += handle.await.ok()?;
            }
            Some(PgRun {
                qps: cycles as f64 / started.elapsed().as_secs_f64(),
                wait_p50_ns: 0,
                wait_p99_ns: 0,
                wait_p999_ns: 0,
                wait_max_ns: 0,
                errors,
            })
        })
        .await
        .ok()
        .flatten()
    })
}
