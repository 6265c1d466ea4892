//! The plain-harness cells ([`crate::plain`]) and the factor table that explains how they
//! differ from the original grid.
//!
//! Every cell runs each pool `reps` times, interleaved, with the order rotated by one place
//! per repetition (A B C, B C A, C A B), so drift of a shared machine and the position in
//! the sequence hit every pool alike. `× deadpool` is the median over repetitions of the
//! throughput ratio within each repetition.

use std::time::Duration;

use indicatif::ProgressBar;
use serde::Serialize;

use crate::contestant::PoolKind;
use crate::plain::{self, ClockKind, PlainOutcome, PlainSpec, PlainStats, YieldKind};
use crate::stats::median;

/// Scenario of the plain cells.
pub const PLAIN: &str = "plain";
/// Scenario of the factor cells.
pub const FACTORS: &str = "factors";

/// One cell: a configuration measured for several pools.
#[derive(Debug, Clone, Serialize)]
pub struct PlainCell {
    /// [`PLAIN`] or [`FACTORS`].
    pub scenario: &'static str,
    /// A short description of the loop variant (factor cells).
    pub variant: &'static str,
    /// Pool maximum size.
    pub max_size: usize,
    /// Concurrent tasks.
    pub tasks: usize,
    /// The hold.
    pub yield_kind: YieldKind,
    /// The clock timing each checkout.
    pub clock: ClockKind,
    /// Warm-up per run.
    pub warm: Duration,
    /// Measurement window per run.
    pub measure: Duration,
    /// Repetitions.
    pub reps: usize,
    /// The pools, in the order of the first repetition.
    pub pools: Vec<PoolKind>,
}

/// One pool's result in one cell.
#[derive(Debug, Clone, Serialize)]
pub struct PlainResult {
    /// The cell.
    pub cell: PlainCell,
    /// The pool.
    pub pool: PoolKind,
    /// Every repetition, in order; after a stall the pool is not run again in this cell.
    pub runs: Vec<PlainOutcome>,
    /// Field-by-field medians of the finished runs.
    pub median: Option<PlainStats>,
    /// Median over the finished runs of most/least cycles per task (infinite when a task
    /// completed none).
    pub fairness: Option<f64>,
    /// Whether any run stalled.
    pub stalled: bool,
    /// Median over repetitions of (this pool's throughput / deadpool's) in the same
    /// repetition.
    pub ratio_to_deadpool: Option<f64>,
    /// This pool's median throughput over deadpool's median throughput (the original grid's
    /// method), for comparison.
    pub ratio_of_medians: Option<f64>,
}

/// The plain cells (`reps` repetitions) and the factor cells (`factor_reps`) for a full or
/// `--quick` run (one repetition each).
pub fn plan(quick: bool, reps: usize, factor_reps: usize) -> Vec<PlainCell> {
    let (warm, measure) = (Duration::from_millis(100), Duration::from_millis(500));
    let (short_warm, short_measure) = (Duration::from_millis(40), Duration::from_millis(200));
    let (reps, factor_reps) = if quick { (1, 1) } else { (reps, factor_reps) };
    let (sizes, tasks, factor_tasks): (&[usize], &[usize], &[usize]) = if quick {
        (&[4], &[64, 1024], &[256])
    } else {
        (&[4, 16], &[64, 256, 1024], &[64, 256, 1024])
    };
    let mut cells = Vec::new();
    for &max_size in sizes {
        for &n in tasks {
            cells.push(PlainCell {
                scenario: PLAIN,
                variant: "tokio yield_now, std Instant, 100 + 500 ms",
                max_size,
                tasks: n,
                yield_kind: YieldKind::Tokio,
                clock: ClockKind::Std,
                warm,
                measure,
                reps,
                pools: PoolKind::PLAIN.to_vec(),
            });
        }
    }
    let variants = [
        (
            "futures-lite yield_now, quanta, 40 + 200 ms (the original grid's loop)",
            YieldKind::FuturesLite,
            ClockKind::Quanta,
        ),
        (
            "futures-lite yield_now, std Instant, 40 + 200 ms",
            YieldKind::FuturesLite,
            ClockKind::Std,
        ),
        (
            "tokio yield_now, quanta, 40 + 200 ms",
            YieldKind::Tokio,
            ClockKind::Quanta,
        ),
        (
            "tokio yield_now, std Instant, 40 + 200 ms",
            YieldKind::Tokio,
            ClockKind::Std,
        ),
    ];
    for &n in factor_tasks {
        for (variant, yield_kind, clock) in variants {
            cells.push(PlainCell {
                scenario: FACTORS,
                variant,
                max_size: 4,
                tasks: n,
                yield_kind,
                clock,
                warm: short_warm,
                measure: short_measure,
                reps: factor_reps,
                pools: vec![
                    PoolKind::PgPool,
                    PoolKind::PgPoolDefaults,
                    PoolKind::Deadpool,
                ],
            });
        }
    }
    cells
}

/// How many measurements [`run_all`] makes at most.
pub fn run_count(cells: &[PlainCell]) -> u64 {
    cells.iter().map(|c| (c.pools.len() * c.reps) as u64).sum()
}

/// Runs every cell (see the module documentation for the order and the ratios).
pub fn run_all(
    cells: &[PlainCell],
    stall_after: Duration,
    progress: &ProgressBar,
) -> Vec<PlainResult> {
    let mut results = Vec::new();
    for cell in cells {
        results.extend(run_cell(cell, stall_after, progress));
    }
    results
}

fn run_cell(cell: &PlainCell, stall_after: Duration, progress: &ProgressBar) -> Vec<PlainResult> {
    let count = cell.pools.len();
    // runs[pool][rep]: `None` when skipped after a stall.
    let mut runs: Vec<Vec<Option<PlainOutcome>>> = vec![vec![None; cell.reps]; count];
    let mut stalled = vec![false; count];
    for rep in 0..cell.reps {
        for offset in 0..count {
            let index = (rep + offset) % count;
            let pool = cell.pools[index];
            progress.set_message(format!(
                "{} max {} tasks {} {}",
                cell.scenario,
                cell.max_size,
                cell.tasks,
                pool.name()
            ));
            progress.inc(1);
            if stalled[index] {
                continue;
            }
            let outcome = plain::run(
                PlainSpec {
                    pool,
                    max_size: cell.max_size,
                    tasks: cell.tasks,
                    yield_kind: cell.yield_kind,
                    clock: cell.clock,
                    warm: cell.warm,
                    measure: cell.measure,
                },
                stall_after,
            );
            if matches!(outcome, PlainOutcome::Stalled) {
                stalled[index] = true;
                progress.println(format!(
                    "STALLED: {} ({} max {} tasks {}); its runtime is abandoned",
                    pool.name(),
                    cell.scenario,
                    cell.max_size,
                    cell.tasks
                ));
            }
            if let Some(slot) = runs[index].get_mut(rep) {
                *slot = Some(outcome);
            }
        }
    }
    let deadpool = cell.pools.iter().position(|&p| p == PoolKind::Deadpool);
    let throughput = |index: usize, rep: usize| {
        runs[index][rep]
            .and_then(|o| o.done())
            .map(|s| s.cycles_per_sec)
    };
    let medians: Vec<Option<PlainStats>> = runs.iter().map(|r| median_stats(r)).collect();
    (0..count)
        .map(|index| {
            let ratio_to_deadpool = deadpool.and_then(|d| {
                let mut ratios: Vec<f64> = (0..cell.reps)
                    .filter_map(|rep| Some(throughput(index, rep)? / throughput(d, rep)?))
                    .collect();
                (!ratios.is_empty() && !stalled[index] && !stalled[d]).then(|| median(&mut ratios))
            });
            let ratio_of_medians = match (deadpool.and_then(|d| medians[d]), medians[index]) {
                (Some(d), Some(m)) if !stalled[index] => Some(m.cycles_per_sec / d.cycles_per_sec),
                _ => None,
            };
            PlainResult {
                cell: cell.clone(),
                pool: cell.pools[index],
                runs: runs[index].iter().flatten().copied().collect(),
                median: if stalled[index] { None } else { medians[index] },
                fairness: {
                    let mut f: Vec<f64> = runs[index]
                        .iter()
                        .flatten()
                        .filter_map(PlainOutcome::done)
                        .map(|s| s.fairness())
                        .collect();
                    (!f.is_empty()).then(|| median(&mut f))
                },
                stalled: stalled[index],
                ratio_to_deadpool,
                ratio_of_medians,
            }
        })
        .collect()
}

fn median_stats(runs: &[Option<PlainOutcome>]) -> Option<PlainStats> {
    let done: Vec<PlainStats> = runs
        .iter()
        .flatten()
        .filter_map(PlainOutcome::done)
        .collect();
    if done.is_empty() {
        return None;
    }
    let field = |f: fn(&PlainStats) -> f64| median(&mut done.iter().map(f).collect::<Vec<_>>());
    Some(PlainStats {
        cycles_per_sec: field(|s| s.cycles_per_sec),
        wait_p50_ns: field(|s| s.wait_p50_ns as f64) as u64,
        wait_p99_ns: field(|s| s.wait_p99_ns as f64) as u64,
        wait_max_ns: field(|s| s.wait_max_ns as f64) as u64,
        most: field(|s| s.most as f64) as u64,
        least: field(|s| s.least as f64) as u64,
        starved: field(|s| s.starved as f64) as usize,
        queued: field(|s| s.queued),
    })
}
