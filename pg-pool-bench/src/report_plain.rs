//! Markdown for the plain-harness cells, the factor table and the single-task comparison of
//! pg-pool's default and trimmed configurations.

use std::fmt::Write as _;

use crate::charts::human;
use crate::contestant::PoolKind;
use crate::plain_suite::{FACTORS, PLAIN, PlainResult};
use crate::single::PlainSingle;

fn us(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.1} µs", ns as f64 / 1e3)
    }
}

fn ratio(r: Option<f64>) -> String {
    r.map_or("–".into(), |x| format!("{x:.2}"))
}

/// The plain cells: one table per pool size.
pub fn plain_tables(out: &mut String, results: &[PlainResult]) {
    let rows: Vec<&PlainResult> = results
        .iter()
        .filter(|r| r.cell.scenario == PLAIN)
        .collect();
    let Some(first) = rows.first() else {
        return;
    };
    out.push_str("## Workload A, plain harness: pg-pool at its defaults and trimmed\n\n");
    let _ = writeln!(
        out,
        "Built like an application's own harness: each task loops {{ `t0 = std::time::Instant::now()`; `get().await`; record `t0.elapsed()` in its own HdrHistogram (2 significant figures); touch the connection; `tokio::task::yield_now().await` while holding it; drop }}, checking a stop flag once per loop; a fresh pool and a fresh 2-worker tokio runtime per run, {} ms warm-up, {} ms measured, {} repetitions with the pools interleaved and their order rotated by one place per repetition. `× deadpool` is the median of the per-repetition ratios. Every pool at its defaults except the size and what the no-op manager does (nothing), except `pg-pool (trimmed)`: `test_on_checkout = false`, no idle timeout, no lifetime (the original grid's config). Most/least: cycles completed by the busiest and the idlest task (median run); starved: tasks that completed no cycle in the window; queued: share of checkouts that waited 1 µs or more. `bb8 (defaults)` tests on check-out (the no-op `is_valid`); mobc keeps `max_idle = max_open` (its size); qp checks out with `acquire_unchecked`. A STALLED pool left tasks that had not finished 4 s after the stop flag was set (stuck in `get`).\n",
        first.cell.warm.as_millis(),
        first.cell.measure.as_millis(),
        first.cell.reps
    );
    let mut sizes: Vec<usize> = rows.iter().map(|r| r.cell.max_size).collect();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        let _ = writeln!(
            out,
            "### pool of {size}, hold across one `tokio::task::yield_now()`\n"
        );
        out.push_str("| tasks | pool | cycles/s | × deadpool | wait p50 | wait p99 | wait max | most / least per task | starved tasks | queued |\n|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
        for r in rows.iter().filter(|r| r.cell.max_size == size) {
            let _ = write!(out, "| {} | {} |", r.cell.tasks, r.pool.name());
            match (&r.median, r.stalled) {
                (_, true) => {
                    let done = r.runs.iter().filter(|o| o.done().is_some()).count();
                    let _ = writeln!(
                        out,
                        " **STALLED** ({done} of {} runs finished) | | | | | | | |",
                        r.cell.reps
                    );
                }
                (Some(m), false) => {
                    let fair = r.fairness.unwrap_or(f64::NAN);
                    let fair = if fair.is_finite() {
                        format!("{} / {} = {fair:.2}", m.most, m.least)
                    } else {
                        format!("{} / {} = ∞", m.most, m.least)
                    };
                    let _ = writeln!(
                        out,
                        " {} | {} | {} | {} | {} | {fair} | {} | {:.0}% |",
                        human(m.cycles_per_sec),
                        ratio(r.ratio_to_deadpool),
                        us(m.wait_p50_ns),
                        us(m.wait_p99_ns),
                        us(m.wait_max_ns),
                        m.starved,
                        m.queued * 100.0
                    );
                }
                (None, false) => out.push_str(" – | | | | | | | |\n"),
            }
        }
        out.push('\n');
    }
}

/// The factor table: pg-pool (trimmed and defaults) over deadpool for each loop variant.
pub fn factor_table(out: &mut String, results: &[PlainResult]) {
    let rows: Vec<&PlainResult> = results
        .iter()
        .filter(|r| r.cell.scenario == FACTORS)
        .collect();
    if rows.is_empty() {
        return;
    }
    out.push_str(
        "## Why the original grid and a plain harness disagree (pool of 4, 2 tokio workers)\n\n",
    );
    out.push_str("The same three pools measured with one factor of the task loop changed at a time, each cell with its own rotated, interleaved repetitions (short 40 + 200 ms windows, as in the original grid, so that many repetitions fit). `median ratio` is the median of per-repetition ratios; `ratio of medians` is the original grid's method (median throughput over deadpool's median throughput). The last row of each group is the plain cell itself (tokio `yield_now`, `std::time::Instant`, 100 + 500 ms).\n\n");
    out.push_str("| tasks | task loop | deadpool cycles/s | trimmed × deadpool (median ratio) | trimmed (ratio of medians) | defaults × deadpool (median ratio) | defaults (ratio of medians) | wait p50 deadpool / trimmed / defaults |\n|---:|---|---:|---:|---:|---:|---:|---:|\n");
    let mut tasks: Vec<usize> = rows.iter().map(|r| r.cell.tasks).collect();
    tasks.sort_unstable();
    tasks.dedup();
    for n in tasks {
        let mut variants: Vec<&'static str> = Vec::new();
        for r in rows.iter().filter(|r| r.cell.tasks == n) {
            if !variants.contains(&r.cell.variant) {
                variants.push(r.cell.variant);
            }
        }
        let plain_rows: Vec<&PlainResult> = results
            .iter()
            .filter(|r| r.cell.scenario == PLAIN && r.cell.max_size == 4 && r.cell.tasks == n)
            .collect();
        let mut groups: Vec<(&str, Vec<&PlainResult>)> = variants
            .iter()
            .map(|v| {
                (
                    *v,
                    rows.iter()
                        .copied()
                        .filter(|r| r.cell.tasks == n && r.cell.variant == *v)
                        .collect(),
                )
            })
            .collect();
        if !plain_rows.is_empty() {
            groups.push((plain_rows[0].cell.variant, plain_rows));
        }
        for (variant, group) in groups {
            let find = |p: PoolKind| group.iter().find(|r| r.pool == p);
            let dp = find(PoolKind::Deadpool)
                .and_then(|r| r.median)
                .map_or("–".into(), |m| human(m.cycles_per_sec));
            let trimmed = find(PoolKind::PgPool);
            let defaults = find(PoolKind::PgPoolDefaults);
            let queued = |r: Option<&&PlainResult>| {
                r.and_then(|r| r.median)
                    .map_or("–".into(), |m| us(m.wait_p50_ns))
            };
            let _ = writeln!(
                out,
                "| {n} | {variant} | {dp} | {} | {} | {} | {} | {} / {} / {} |",
                ratio(trimmed.and_then(|r| r.ratio_to_deadpool)),
                ratio(trimmed.and_then(|r| r.ratio_of_medians)),
                ratio(defaults.and_then(|r| r.ratio_to_deadpool)),
                ratio(defaults.and_then(|r| r.ratio_of_medians)),
                queued(find(PoolKind::Deadpool)),
                queued(trimmed),
                queued(defaults),
            );
        }
    }
    out.push('\n');
}

/// The single-task table of the plain comparison.
pub fn single_table(out: &mut String, single: &[PlainSingle]) {
    if single.is_empty() {
        return;
    }
    out.push_str("## Single task, uncontended: pg-pool at its defaults and trimmed\n\n");
    out.push_str("One task checks out, touches and returns a no-op connection on a current-thread tokio runtime, pool of 4. Tight loop: nothing else. Timed loop: as an application's harness would, each checkout timed with `std::time::Instant` and recorded in an HdrHistogram; this adds the same few tens of nanoseconds to every pool, so the ratio moves towards 1 while the difference in nanoseconds stays. Each repetition builds a fresh pool for every pool in rotated order and times a fixed number of cycles (median of 7 batches); `× deadpool` is the median of per-repetition ratios. Instructions per cycle (tight loop) are counted by `valgrind --tool=callgrind` inside the cycle loop only (difference between two cycle counts), which does not depend on the machine's load.\n\n");
    out.push_str("| pool | tight: ns per cycle | tight: × deadpool | timed: ns per cycle | timed: × deadpool | instructions per cycle | instructions × deadpool |\n|---|---:|---:|---:|---:|---:|---:|\n");
    let dp_instr = single
        .iter()
        .find(|s| s.pool == PoolKind::Deadpool)
        .and_then(|s| s.instructions_per_cycle);
    for s in single {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {} | {:.1} | {} | {} | {} |",
            s.pool.name(),
            s.ns_per_cycle,
            ratio(s.ratio_to_deadpool),
            s.timed_ns_per_cycle,
            ratio(s.timed_ratio_to_deadpool),
            s.instructions_per_cycle
                .map_or("–".into(), |i| format!("{i:.0}")),
            match (s.instructions_per_cycle, dp_instr) {
                (Some(i), Some(d)) => format!("{:.2}", i / d),
                _ => "–".into(),
            }
        );
    }
    out.push('\n');
}
