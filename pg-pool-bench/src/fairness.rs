//! `--fairness [--quick]`: pg-pool (trimmed) under strict and bounded fairness against
//! deadpool on the contended cells, with the plain harness's loop and with the original
//! grid's loop, printed as markdown.
//!
//! Every cell runs each contestant `reps` times, interleaved, the order rotated by one place
//! per repetition; `× deadpool` is the median of the per-repetition throughput ratios.
//! `PG_POOL_BENCH_FAIRNESS_REPS` sets the repetitions (default 3).

use std::fmt::Write as _;
use std::time::Duration;

use pg_pool_core::Fairness;

use crate::contestant::PoolKind;
use crate::noop::set_fairness;
use crate::plain::{self, ClockKind, PlainOutcome, PlainSpec, PlainStats, YieldKind};
use crate::stats::median;

/// One contestant: a pool, and for pg-pool the fairness it is built with.
#[derive(Debug, Clone, Copy)]
struct Contestant {
    pool: PoolKind,
    fairness: Option<Fairness>,
}

impl Contestant {
    fn name(self) -> String {
        match self.fairness {
            Some(fairness) => format!("pg-pool {fairness}"),
            None => self.pool.name().to_owned(),
        }
    }
}

/// How the tasks loop: the plain harness's, or the original grid's.
#[derive(Debug, Clone, Copy)]
struct Loop {
    name: &'static str,
    yield_kind: YieldKind,
    clock: ClockKind,
    warm: Duration,
    measure: Duration,
}

const LOOPS: [Loop; 2] = [
    Loop {
        name: "plain harness (tokio yield_now, std Instant, 100 + 500 ms)",
        yield_kind: YieldKind::Tokio,
        clock: ClockKind::Std,
        warm: Duration::from_millis(100),
        measure: Duration::from_millis(500),
    },
    Loop {
        name: "original grid's loop (futures-lite yield_now, quanta, 40 + 200 ms)",
        yield_kind: YieldKind::FuturesLite,
        clock: ClockKind::Quanta,
        warm: Duration::from_millis(40),
        measure: Duration::from_millis(200),
    },
];

struct Row {
    contestant: Contestant,
    runs: Vec<PlainOutcome>,
    ratios: Vec<f64>,
}

fn format_wait(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.0} µs", ns as f64 / 1e3)
    }
}

/// Runs the grid and returns the markdown tables.
pub fn run(quick: bool) -> String {
    let reps = std::env::var("PG_POOL_BENCH_FAIRNESS_REPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n: &usize| n > 0)
        .unwrap_or(if quick { 1 } else { 3 });
    let contestants = [
        Contestant {
            pool: PoolKind::PgPool,
            fairness: Some(Fairness::Strict),
        },
        Contestant {
            pool: PoolKind::PgPool,
            fairness: Some(Fairness::Bounded(Duration::from_millis(1))),
        },
        Contestant {
            pool: PoolKind::PgPool,
            fairness: Some(Fairness::Bounded(Duration::from_micros(100))),
        },
        Contestant {
            pool: PoolKind::Deadpool,
            fairness: None,
        },
    ];
    let (sizes, tasks): (&[usize], &[usize]) = if quick {
        (&[4], &[64, 1024])
    } else {
        (&[4, 16], &[64, 256, 1024])
    };
    let mut out = String::new();
    let _ = writeln!(
        out,
        "pg-pool trimmed (no test-on-checkout, idle timeout or lifetime) under each fairness, deadpool at its defaults; {reps} repetitions per cell, interleaved and rotated; `× deadpool` is the median of per-repetition ratios; wait max is the worst over the repetitions; most/least is the median over repetitions of the busiest task's cycles over the idlest's.\n"
    );
    for lp in LOOPS {
        let _ = writeln!(out, "### {}\n", lp.name);
        out.push_str("| pool size | tasks | pool | cycles/s | × deadpool | wait p99 | wait max | most / least | starved |\n|---:|---:|---|---:|---:|---:|---:|---:|---:|\n");
        for &size in sizes {
            for &n in tasks {
                for row in cell(lp, size, n, reps, &contestants) {
                    let done: Vec<PlainStats> =
                        row.runs.iter().filter_map(PlainOutcome::done).collect();
                    let stalled = row.runs.len() - done.len();
                    let _ = write!(out, "| {size} | {n} | {} |", row.contestant.name());
                    if done.is_empty() {
                        let _ = writeln!(out, " **STALLED** | | | | | |");
                        continue;
                    }
                    let med = |f: fn(&PlainStats) -> f64| {
                        median(&mut done.iter().map(f).collect::<Vec<_>>())
                    };
                    let ratio = if row.ratios.is_empty() {
                        "–".to_owned()
                    } else {
                        format!("{:.2}", median(&mut row.ratios.clone()))
                    };
                    let worst = done.iter().map(|s| s.wait_max_ns).max().unwrap_or(0);
                    let _ = writeln!(
                        out,
                        " {:.0} | {ratio} | {} | {} | {:.2} | {}{} |",
                        med(|s| s.cycles_per_sec),
                        format_wait(med(|s| s.wait_p99_ns as f64) as u64),
                        format_wait(worst),
                        med(PlainStats::fairness),
                        med(|s| s.starved as f64),
                        if stalled > 0 {
                            format!(" ({stalled} runs STALLED)")
                        } else {
                            String::new()
                        },
                    );
                }
            }
        }
        out.push('\n');
    }
    set_fairness(None);
    out
}

fn cell(lp: Loop, size: usize, tasks: usize, reps: usize, contestants: &[Contestant]) -> Vec<Row> {
    let mut rows: Vec<Row> = contestants
        .iter()
        .map(|&contestant| Row {
            contestant,
            runs: Vec::new(),
            ratios: Vec::new(),
        })
        .collect();
    let deadpool = contestants
        .iter()
        .position(|c| c.pool == PoolKind::Deadpool)
        .expect("deadpool is a contestant");
    for rep in 0..reps {
        let mut throughput = vec![None; contestants.len()];
        for offset in 0..contestants.len() {
            let index = (rep + offset) % contestants.len();
            let contestant = contestants[index];
            eprintln!(
                "fairness grid: {} pool {size} tasks {tasks} {} (rep {rep})",
                lp.name,
                contestant.name()
            );
            set_fairness(contestant.fairness);
            let outcome = plain::run(
                PlainSpec {
                    pool: contestant.pool,
                    max_size: size,
                    tasks,
                    yield_kind: lp.yield_kind,
                    clock: lp.clock,
                    warm: lp.warm,
                    measure: lp.measure,
                },
                Duration::from_secs(4),
            );
            throughput[index] = outcome.done().map(|s| s.cycles_per_sec);
            rows[index].runs.push(outcome);
        }
        for (index, row) in rows.iter_mut().enumerate() {
            if let (Some(mine), Some(theirs)) = (throughput[index], throughput[deadpool]) {
                row.ratios.push(mine / theirs);
            }
        }
    }
    rows
}
