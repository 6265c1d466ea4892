//! Workload A's plan and its interleaved execution.

use std::time::Duration;

use indicatif::ProgressBar;
use serde::Serialize;

use crate::contestant::PoolKind;
use crate::overhead::{self, CellSpec, Hold, Outcome, RunStats, Sched};
use crate::stats::median_stats;

/// How long and how often to measure.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Settings {
    /// `--quick`: fewer cells, one repetition, short windows.
    pub quick: bool,
    /// Repetitions of each cell (pools interleaved within each repetition).
    pub reps: usize,
    /// Warm-up before each measurement.
    pub warm: Duration,
    /// Measurement window.
    pub measure: Duration,
    /// Watchdog bound: a run whose tasks have not finished this long after being told to
    /// stop is stalled.
    pub stall_after: Duration,
}

impl Settings {
    /// The settings for a full or a `--quick` run.
    pub fn new(quick: bool) -> Self {
        if quick {
            Self {
                quick,
                reps: 1,
                warm: Duration::from_millis(10),
                measure: Duration::from_millis(60),
                stall_after: Duration::from_secs(2),
            }
        } else {
            Self {
                quick,
                reps: 5,
                warm: Duration::from_millis(40),
                measure: Duration::from_millis(200),
                stall_after: Duration::from_secs(4),
            }
        }
    }
}

/// One cell of Workload A: a configuration measured for several pools.
#[derive(Debug, Clone, Serialize)]
pub struct Cell {
    /// Which table the cell belongs to.
    pub scenario: &'static str,
    /// Pool maximum size.
    pub max_size: usize,
    /// Concurrent tasks.
    pub tasks: usize,
    /// Scheduling.
    pub sched: Sched,
    /// What a task does while holding.
    pub hold: Hold,
    /// Cancel variant.
    pub cancel: bool,
    /// The pools measured in this cell.
    pub pools: Vec<PoolKind>,
}

/// One pool's result in one cell.
#[derive(Debug, Clone, Serialize)]
pub struct CellResult {
    /// The cell.
    pub scenario: &'static str,
    /// Pool maximum size.
    pub max_size: usize,
    /// Concurrent tasks.
    pub tasks: usize,
    /// Scheduling.
    pub sched: Sched,
    /// Hold.
    pub hold: Hold,
    /// Cancel variant.
    pub cancel: bool,
    /// The pool.
    pub pool: PoolKind,
    /// Every repetition; after a stall the pool is not run again in this cell.
    pub runs: Vec<Outcome>,
    /// Medians of the finished runs.
    pub median: Option<RunStats>,
    /// Whether any run stalled.
    pub stalled: bool,
    /// Median throughput over deadpool's median throughput in the same cell.
    pub ratio_to_deadpool: Option<f64>,
}

/// Scenario names.
pub const GRID: &str = "grid";
/// Two OS threads, each with a current-thread runtime, sharing one pool.
pub const TWO_THREADS: &str = "two-threads";
/// Hold of 1 ms.
pub const HOLD_1MS: &str = "hold-1ms";
/// Every tenth checkout cancelled when not granted within one scheduler turn.
pub const CANCEL: &str = "cancel";

/// The cells to measure.
pub fn plan(settings: &Settings) -> Vec<Cell> {
    let all = PoolKind::ALL.to_vec();
    let tokio = PoolKind::TOKIO.to_vec();
    let mut cells = Vec::new();
    let (sizes, holds, tasks): (&[usize], &[Hold], &[usize]) = if settings.quick {
        (&[4], &[Hold::Yield], &[1, 64, 1024])
    } else {
        (
            &[4, 16],
            &[Hold::None, Hold::Yield],
            &[1, 4, 16, 64, 256, 1024],
        )
    };
    for &max_size in sizes {
        for &hold in holds {
            cells.push(Cell {
                scenario: GRID,
                max_size,
                tasks: 1,
                sched: Sched::CurrentThread,
                hold,
                cancel: false,
                pools: all.clone(),
            });
            for &n in tasks {
                cells.push(Cell {
                    scenario: GRID,
                    max_size,
                    tasks: n,
                    sched: Sched::MultiThread,
                    hold,
                    cancel: false,
                    pools: all.clone(),
                });
            }
        }
    }
    let extra_tasks: &[usize] = if settings.quick { &[64] } else { &[64, 1024] };
    for &n in extra_tasks {
        cells.push(Cell {
            scenario: TWO_THREADS,
            max_size: 4,
            tasks: n,
            sched: Sched::TwoThreads,
            hold: Hold::None,
            cancel: false,
            pools: tokio.clone(),
        });
    }
    let hold_tasks: &[usize] = if settings.quick {
        &[256]
    } else {
        &[64, 256, 1024]
    };
    for &n in hold_tasks {
        cells.push(Cell {
            scenario: HOLD_1MS,
            max_size: 16,
            tasks: n,
            sched: Sched::MultiThread,
            hold: Hold::Sleep(Duration::from_millis(1)),
            cancel: false,
            pools: all.clone(),
        });
    }
    for &n in extra_tasks {
        cells.push(Cell {
            scenario: CANCEL,
            max_size: 4,
            tasks: n,
            sched: Sched::MultiThread,
            hold: Hold::Yield,
            cancel: true,
            pools: all.clone(),
        });
    }
    cells
}

/// How many measurements [`run_all`] makes at most.
pub fn run_count(cells: &[Cell], settings: &Settings) -> u64 {
    cells
        .iter()
        .map(|c| (c.pools.len() * settings.reps) as u64)
        .sum()
}

/// Runs every cell: within a cell, the pools are interleaved (A B C A B C ...) over the
/// repetitions, so that drift of the machine hits every pool alike.
pub fn run_all(cells: &[Cell], settings: &Settings, progress: &ProgressBar) -> Vec<CellResult> {
    let mut results = Vec::new();
    for cell in cells {
        let mut runs: Vec<Vec<Outcome>> = vec![Vec::new(); cell.pools.len()];
        let mut stalled = vec![false; cell.pools.len()];
        for _ in 0..settings.reps {
            for (index, &pool) in cell.pools.iter().enumerate() {
                progress.set_message(format!(
                    "{} max {} tasks {} hold {} {}",
                    cell.scenario,
                    cell.max_size,
                    cell.tasks,
                    cell.hold.label(),
                    pool.name()
                ));
                progress.inc(1);
                if stalled[index] {
                    continue;
                }
                let spec = CellSpec {
                    pool,
                    max_size: cell.max_size,
                    tasks: cell.tasks,
                    sched: cell.sched,
                    hold: cell.hold,
                    cancel: cell.cancel,
                    warm: settings.warm,
                    measure: settings.measure,
                };
                let outcome = overhead::run(spec, settings.stall_after);
                if matches!(outcome, Outcome::Stalled) {
                    stalled[index] = true;
                    progress.println(format!(
                        "STALLED: {} ({} max {} tasks {} hold {}); its runtime is abandoned",
                        pool.name(),
                        cell.scenario,
                        cell.max_size,
                        cell.tasks,
                        cell.hold.label()
                    ));
                }
                runs[index].push(outcome);
            }
        }
        let medians: Vec<Option<RunStats>> = runs.iter().map(|r| median_stats(r)).collect();
        let deadpool = cell
            .pools
            .iter()
            .position(|&p| p == PoolKind::Deadpool)
            .and_then(|i| if stalled[i] { None } else { medians[i] });
        for (index, &pool) in cell.pools.iter().enumerate() {
            let median = if stalled[index] { None } else { medians[index] };
            results.push(CellResult {
                scenario: cell.scenario,
                max_size: cell.max_size,
                tasks: cell.tasks,
                sched: cell.sched,
                hold: cell.hold,
                cancel: cell.cancel,
                pool,
                runs: runs[index].clone(),
                median,
                stalled: stalled[index],
                ratio_to_deadpool: match (median, deadpool) {
                    (Some(m), Some(d)) => Some(m.cycles_per_sec / d.cycles_per_sec),
                    _ => None,
                },
            });
        }
    }
    results
}
