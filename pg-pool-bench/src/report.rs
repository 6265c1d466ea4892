//! The results: JSON, a markdown report with the targets evaluated, and the charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use serde::Serialize;

use crate::charts::{self, Series, human};
use crate::contestant::PoolKind;
use crate::overhead::{Hold, Sched};
use crate::postgres::{PgCellResult, PgKind};
use crate::single::SingleStats;
use crate::storm::StormResult;
use crate::suite::{self, CellResult, Settings};

/// Everything one run measured.
#[derive(Debug, Serialize)]
pub struct Report {
    /// How the run was made: command, machine, versions, configurations.
    pub meta: BTreeMap<String, String>,
    /// Settings of Workload A.
    pub settings: Settings,
    /// Single-task uncontended cycle cost, per pool.
    pub single: Vec<(PoolKind, SingleStats)>,
    /// Single-task figures of pg-pool at its defaults and trimmed, and its tokio peers.
    pub plain_single: Vec<crate::single::PlainSingle>,
    /// The plain-harness cells and the factor cells.
    pub plain: Vec<crate::plain_suite::PlainResult>,
    /// Workload A.
    pub overhead: Vec<CellResult>,
    /// Workload B (`None` when PostgreSQL could not be started; see `meta`).
    pub postgres: Vec<PgCellResult>,
    /// Reconnect storms.
    pub storms: Vec<StormResult>,
}

fn us(ns: u64) -> String {
    if ns >= 1_000_000 {
        format!("{:.2} ms", ns as f64 / 1e6)
    } else {
        format!("{:.1} µs", ns as f64 / 1e3)
    }
}

fn fairness(f: f64) -> String {
    if f.is_finite() {
        format!("{f:.2}")
    } else {
        "∞ (a task starved)".into()
    }
}

fn sched_label(s: Sched) -> &'static str {
    match s {
        Sched::MultiThread => "multi-thread (2 workers)",
        Sched::CurrentThread => "current-thread",
        Sched::TwoThreads => "2 OS threads × current-thread",
    }
}

fn cell_rows(out: &mut String, rows: &[&CellResult]) {
    out.push_str("| tasks | runtime | pool | cycles/s | × deadpool | wait p50 | wait p99 | wait p99.9 | wait max | fairness |");
    if rows.iter().any(|r| r.cancel) {
        out.push_str(" cancelled |");
    }
    out.push('\n');
    out.push_str("|---:|---|---|---:|---:|---:|---:|---:|---:|---:|");
    if rows.iter().any(|r| r.cancel) {
        out.push_str("---:|");
    }
    out.push('\n');
    for r in rows {
        let _ = write!(
            out,
            "| {} | {} | {} |",
            r.tasks,
            sched_label(r.sched),
            r.pool.name()
        );
        match (&r.median, r.stalled) {
            (_, true) => {
                let done = r
                    .runs
                    .iter()
                    .filter(|o| matches!(o, crate::overhead::Outcome::Done(_)))
                    .count();
                let _ = write!(
                    out,
                    " **STALLED** ({done} of {} runs finished) | | | | | | |",
                    r.runs.len()
                );
            }
            (Some(m), false) => {
                let ratio = r
                    .ratio_to_deadpool
                    .map_or("–".into(), |x| format!("{x:.2}"));
                let _ = write!(
                    out,
                    " {} | {} | {} | {} | {} | {} | {} |",
                    human(m.cycles_per_sec),
                    ratio,
                    us(m.wait_p50_ns),
                    us(m.wait_p99_ns),
                    us(m.wait_p999_ns),
                    us(m.wait_max_ns),
                    fairness(m.fairness)
                );
            }
            (None, false) => out.push_str(" – | | | | | | |"),
        }
        if r.cancel {
            let _ = write!(
                out,
                " {:.1}% |",
                r.median.map_or(0.0, |m| m.cancelled * 100.0)
            );
        }
        out.push('\n');
    }
    out.push('\n');
}

impl Report {
    /// Writes `results.json`, `RESULTS.md` and the charts into `dir`.
    ///
    /// # Errors
    ///
    /// When a file cannot be written.
    pub fn write(&self, dir: &Path) -> Result<(), Box<dyn std::error::Error>> {
        fs::create_dir_all(dir)?;
        fs::write(
            dir.join("results.json"),
            serde_json::to_string_pretty(self)?,
        )?;
        let charts = self.charts(dir)?;
        fs::write(dir.join("RESULTS.md"), self.markdown(&charts))?;
        Ok(())
    }

    fn grid(&self) -> impl Iterator<Item = &CellResult> {
        self.overhead.iter().filter(|r| r.scenario == suite::GRID)
    }

    fn charts(&self, dir: &Path) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        let mut files = Vec::new();
        let mut configs: Vec<(usize, Hold)> = self.grid().map(|r| (r.max_size, r.hold)).collect();
        configs.dedup();
        configs.sort_by_key(|(m, h)| (*m, h.label()));
        configs.dedup();
        for (max_size, hold) in configs {
            let rows: Vec<&CellResult> = self
                .grid()
                .filter(|r| {
                    r.max_size == max_size && r.hold == hold && r.sched == Sched::MultiThread
                })
                .collect();
            let series = |f: fn(&crate::overhead::RunStats) -> f64| -> Vec<Series> {
                PoolKind::ALL
                    .iter()
                    .map(|&p| {
                        let pts = rows
                            .iter()
                            .filter(|r| r.pool == p)
                            .filter_map(|r| r.median.as_ref().map(|m| (r.tasks as f64, f(m))))
                            .collect();
                        (p.name().to_owned(), pts)
                    })
                    .collect()
            };
            let tag = format!("max{max_size}-hold-{}", hold.label());
            let name = format!("throughput-{tag}.svg");
            charts::line_chart(
                &dir.join(&name),
                &format!(
                    "Workload A: cycles/s, max size {max_size}, hold {} (STALLED runs omitted)",
                    hold.label()
                ),
                "cycles per second",
                &series(|m| m.cycles_per_sec),
            )?;
            files.push(name);
            let name = format!("wait-p99-{tag}.svg");
            charts::line_chart(
                &dir.join(&name),
                &format!(
                    "Workload A: checkout wait p99 (ns), max size {max_size}, hold {}",
                    hold.label()
                ),
                "wait p99 (ns)",
                &series(|m| m.wait_p99_ns as f64),
            )?;
            files.push(name);
        }
        let mut plain_sizes: Vec<usize> = self
            .plain
            .iter()
            .filter(|r| r.cell.scenario == crate::plain_suite::PLAIN)
            .map(|r| r.cell.max_size)
            .collect();
        plain_sizes.sort_unstable();
        plain_sizes.dedup();
        for size in plain_sizes {
            let series = |f: fn(&crate::plain::PlainStats) -> f64| -> Vec<Series> {
                PoolKind::PLAIN
                    .iter()
                    .map(|&p| {
                        let pts = self
                            .plain
                            .iter()
                            .filter(|r| {
                                r.cell.scenario == crate::plain_suite::PLAIN
                                    && r.cell.max_size == size
                                    && r.pool == p
                            })
                            .filter_map(|r| r.median.as_ref().map(|m| (r.cell.tasks as f64, f(m))))
                            .collect();
                        (p.name().to_owned(), pts)
                    })
                    .collect()
            };
            let name = format!("plain-throughput-max{size}.svg");
            charts::line_chart(
                &dir.join(&name),
                &format!(
                    "Plain harness: cycles/s, pool of {size}, hold across tokio yield_now (STALLED runs omitted)"
                ),
                "cycles per second",
                &series(|m| m.cycles_per_sec),
            )?;
            files.push(name);
            let name = format!("plain-wait-p99-max{size}.svg");
            charts::line_chart(
                &dir.join(&name),
                &format!(
                    "Plain harness: checkout wait p99 (ns), pool of {size}, hold across tokio yield_now"
                ),
                "wait p99 (ns)",
                &series(|m| m.wait_p99_ns as f64),
            )?;
            files.push(name);
        }
        if !self.postgres.is_empty() {
            let series = |f: fn(&crate::postgres::PgRun) -> f64| -> Vec<Series> {
                PgKind::ALL
                    .iter()
                    .filter(|p| p.at_defaults())
                    .map(|&p| {
                        let pts = self
                            .postgres
                            .iter()
                            .filter(|r| r.pool == p)
                            .filter_map(|r| r.median.as_ref().map(|m| (r.tasks as f64, f(m))))
                            .collect();
                        (p.name().to_owned(), pts)
                    })
                    .collect()
            };
            charts::line_chart(
                &dir.join("pg-throughput.svg"),
                "Workload B: SELECT 1 per checkout, pool 16, every pool at its defaults",
                "queries per second",
                &series(|m| m.qps),
            )?;
            charts::line_chart(
                &dir.join("pg-wait-p99.svg"),
                "Workload B: checkout wait p99 (ns), pool 16, every pool at its defaults",
                "wait p99 (ns)",
                &series(|m| m.wait_p99_ns as f64),
            )?;
            files.push("pg-throughput.svg".into());
            files.push("pg-wait-p99.svg".into());
        }
        Ok(files)
    }

    fn targets(&self) -> String {
        let mut out = String::new();
        let mut cell_groups: BTreeMap<(String, usize, usize, String, String), Vec<&CellResult>> =
            BTreeMap::new();
        for r in self.overhead.iter().filter(|r| r.pool.is_tokio()) {
            cell_groups
                .entry((
                    r.scenario.to_owned(),
                    r.max_size,
                    r.tasks,
                    format!("{:?}", r.sched),
                    r.hold.label(),
                ))
                .or_default()
                .push(r);
        }
        let key_label = |k: &(String, usize, usize, String, String)| {
            format!("{} max {} tasks {} {} hold {}", k.0, k.1, k.2, k.3, k.4)
        };
        // 1. At least deadpool's throughput in every cell.
        let mut below = Vec::new();
        let mut behind = Vec::new();
        let mut p99_worse = Vec::new();
        let mut cells = 0;
        for (key, rows) in &cell_groups {
            let Some(pg) = rows.iter().find(|r| r.pool == PoolKind::PgPool) else {
                continue;
            };
            cells += 1;
            let Some(pgm) = pg.median else {
                below.push(format!("{} (pg-pool stalled)", key_label(key)));
                continue;
            };
            if let Some(ratio) = pg.ratio_to_deadpool
                && ratio < 1.0
            {
                below.push(format!("{} ({ratio:.2}×)", key_label(key)));
            }
            if key.2 >= 64 {
                for peer in rows.iter().filter(|r| r.pool != PoolKind::PgPool) {
                    if let Some(pm) = peer.median
                        && pm.cycles_per_sec > pgm.cycles_per_sec
                    {
                        behind.push(format!(
                            "{}: {} {} vs pg-pool {}",
                            key_label(key),
                            peer.pool.name(),
                            human(pm.cycles_per_sec),
                            human(pgm.cycles_per_sec)
                        ));
                    }
                }
            }
            if key.2 == 256 || key.2 == 1024 {
                for peer in rows.iter().filter(|r| r.pool != PoolKind::PgPool) {
                    if let Some(pm) = peer.median {
                        if pm.wait_p99_ns <= pgm.wait_p99_ns {
                            p99_worse.push(format!(
                                "{}: p99 {} {} vs pg-pool {}",
                                key_label(key),
                                peer.pool.name(),
                                us(pm.wait_p99_ns),
                                us(pgm.wait_p99_ns)
                            ));
                        }
                        if pm.wait_max_ns <= pgm.wait_max_ns {
                            p99_worse.push(format!(
                                "{}: max {} {} vs pg-pool {}",
                                key_label(key),
                                peer.pool.name(),
                                us(pm.wait_max_ns),
                                us(pgm.wait_max_ns)
                            ));
                        }
                    }
                }
            }
        }
        let list = |items: &[String]| -> String {
            if items.is_empty() {
                " met.\n".into()
            } else {
                let mut s = format!(" **missed in {}**:\n", items.len());
                for i in items {
                    let _ = writeln!(s, "  - {i}");
                }
                s
            }
        };
        let _ = write!(
            out,
            "- Workload A, at least deadpool's throughput in every tokio cell ({cells} cells):{}",
            list(&below)
        );
        let _ = write!(
            out,
            "- Workload A, ahead of every peer at 64 tasks and more:{}",
            list(&behind)
        );
        let _ = write!(
            out,
            "- Wait p99 and max at 256 and 1024 tasks lower than every peer's (peers that stalled are not counted):{}",
            list(&p99_worse)
        );
        let single: BTreeMap<PoolKind, SingleStats> = self.single.iter().copied().collect();
        if let (Some(pg), Some(dp)) = (
            single.get(&PoolKind::PgPool),
            single.get(&PoolKind::Deadpool),
        ) {
            let ratio = pg.ns_per_cycle / dp.ns_per_cycle;
            let _ = writeln!(
                out,
                "- Single-task cycle at most half of deadpool's: pg-pool {:.1} ns vs deadpool {:.1} ns = {ratio:.2}× → {}.",
                pg.ns_per_cycle,
                dp.ns_per_cycle,
                if ratio <= 0.5 { "met" } else { "**missed**" }
            );
        }
        let allocs: Vec<String> = [
            PoolKind::PgPool,
            PoolKind::PgPoolSmol,
            PoolKind::PgPoolAsyncStd,
        ]
        .iter()
        .filter_map(|p| {
            single
                .get(p)
                .and_then(|s| s.allocs_per_cycle)
                .map(|a| format!("{} {a:.3}", p.name()))
        })
        .collect();
        let zero = [
            PoolKind::PgPool,
            PoolKind::PgPoolSmol,
            PoolKind::PgPoolAsyncStd,
        ]
        .iter()
        .all(|p| single.get(p).and_then(|s| s.allocs_per_cycle) == Some(0.0));
        let _ = writeln!(
            out,
            "- Zero allocations per cycle: {} → {}.",
            allocs.join(", "),
            if zero { "met" } else { "**missed**" }
        );
        let worst = self
            .overhead
            .iter()
            .filter(|r| {
                matches!(
                    r.pool,
                    PoolKind::PgPool | PoolKind::PgPoolSmol | PoolKind::PgPoolAsyncStd
                ) && r.tasks > 1
            })
            .filter_map(|r| r.median.map(|m| (m.fairness, r)))
            .max_by(|a, b| a.0.total_cmp(&b.0));
        if let Some((f, r)) = worst {
            let _ = writeln!(
                out,
                "- Fairness close to 1: worst pg-pool cell {} ({} max {} tasks {} hold {}, {}).",
                fairness(f),
                r.scenario,
                r.max_size,
                r.tasks,
                r.hold.label(),
                r.pool.name()
            );
        }
        let find = |kind: PgKind, tasks: usize| {
            self.postgres
                .iter()
                .find(|r| r.pool == kind && r.tasks == tasks)
                .and_then(|r| r.median)
        };
        let peers = [
            PgKind::DeadpoolPostgres,
            PgKind::Bb8Postgres,
            PgKind::Bb8PostgresDefaults,
        ];
        for ours in [
            PgKind::PgPoolWireDefaults,
            PgKind::PgPoolWire,
            PgKind::PgPoolAsyncWireDefaults,
            PgKind::PgPoolAsyncWire,
            PgKind::PgPoolTokioPostgresSimple,
            PgKind::PgPoolTokioPostgres,
        ] {
            if let Some(m) = find(ours, 16) {
                let best = peers
                    .iter()
                    .filter_map(|&p| find(p, 16))
                    .map(|r| r.qps)
                    .fold(0.0, f64::max);
                if best > 0.0 {
                    let _ = writeln!(
                        out,
                        "- Workload B, 16 tasks, {} within noise (±5%) of the best peer: {} vs {} qps = {:.2}× → {}.",
                        ours.name(),
                        human(m.qps),
                        human(best),
                        m.qps / best,
                        if m.qps >= best * 0.95 {
                            "met"
                        } else {
                            "**missed**"
                        }
                    );
                }
            }
            if let Some(m) = find(ours, 256) {
                let best = peers
                    .iter()
                    .filter_map(|&p| find(p, 256))
                    .map(|r| r.wait_p99_ns)
                    .min();
                if let Some(best) = best {
                    let _ = writeln!(
                        out,
                        "- Workload B, 256 tasks, {} p99 ahead of every peer: {} vs best peer {} → {}.",
                        ours.name(),
                        us(m.wait_p99_ns),
                        us(best),
                        if m.wait_p99_ns < best {
                            "met"
                        } else {
                            "**missed**"
                        }
                    );
                }
            }
        }
        out
    }

    fn markdown(&self, charts: &[String]) -> String {
        let mut out = String::new();
        out.push_str("# pg-pool benchmarks\n\n");
        out.push_str(
            "Generated by `pg-pool-bench`; do not edit by hand. Raw numbers: `results.json`.\n\n",
        );
        out.push_str("## How this was run\n\n");
        for (key, value) in &self.meta {
            let _ = writeln!(out, "- **{key}**: {value}");
        }
        let _ = writeln!(
            out,
            "- **Workload A settings**: {} repetition(s) per cell, pools interleaved within each repetition; {} ms warm-up and {} ms measurement per run; a run whose tasks have not finished {} s after being told to stop is STALLED and abandoned. Medians over repetitions, field by field; `× deadpool` is median throughput over deadpool's median in the same cell (pg-pool on smol/async-std is compared with deadpool on tokio). Fairness is the most cycles by any task over the least by any task.\n",
            self.settings.reps,
            self.settings.warm.as_millis(),
            self.settings.measure.as_millis(),
            self.settings.stall_after.as_secs()
        );
        out.push_str("## Targets\n\n");
        out.push_str(&self.targets());
        out.push('\n');
        out.push_str("## Single task, uncontended (max size 4)\n\n");
        out.push_str("One task checks out, touches and returns a no-op connection in a loop, on a current-thread runtime (smol, async-std: `block_on`). Allocations are counted in a separate process with `stats_alloc` so that the counting allocator does not slow the other measurements.\n\n");
        out.push_str(
            "| pool | ns per cycle | × deadpool | allocations per cycle |\n|---|---:|---:|---:|\n",
        );
        let dp = self
            .single
            .iter()
            .find(|(p, _)| *p == PoolKind::Deadpool)
            .map(|(_, s)| s.ns_per_cycle);
        for (pool, s) in &self.single {
            let _ = writeln!(
                out,
                "| {} | {:.1} | {} | {} |",
                pool.name(),
                s.ns_per_cycle,
                dp.map_or("–".into(), |d| format!("{:.2}", s.ns_per_cycle / d)),
                s.allocs_per_cycle.map_or("–".into(), |a| format!("{a:.3}"))
            );
        }
        out.push('\n');
        crate::report_plain::single_table(&mut out, &self.plain_single);
        crate::report_plain::plain_tables(&mut out, &self.plain);
        crate::report_plain::factor_table(&mut out, &self.plain);
        out.push_str("## Workload A: pure pool overhead (original grid, pg-pool trimmed)\n\n");
        let sections = [
            (suite::GRID, "Grid: checkout, touch, (hold), return"),
            (
                suite::TWO_THREADS,
                "Two OS threads, each with its own current-thread tokio runtime, sharing one pool (hold none)",
            ),
            (
                suite::HOLD_1MS,
                "Hold 1 ms (sleep on the runtime's timer; tokio's timer has 1 ms granularity, so a tokio sleep of 1 ms lasts about 2 ms, async-io's about 1 ms)",
            ),
            (
                suite::CANCEL,
                "Cancellation: every tenth checkout is dropped if not granted within one scheduler turn (hold yield)",
            ),
        ];
        for (scenario, title) in sections {
            let rows: Vec<&CellResult> = self
                .overhead
                .iter()
                .filter(|r| r.scenario == scenario)
                .collect();
            if rows.is_empty() {
                continue;
            }
            let _ = writeln!(out, "### {title}\n");
            let mut groups: Vec<(usize, String)> =
                rows.iter().map(|r| (r.max_size, r.hold.label())).collect();
            groups.sort();
            groups.dedup();
            for (max_size, hold) in groups {
                let _ = writeln!(out, "#### max size {max_size}, hold {hold}\n");
                let sub: Vec<&CellResult> = rows
                    .iter()
                    .copied()
                    .filter(|r| r.max_size == max_size && r.hold.label() == hold)
                    .collect();
                cell_rows(&mut out, &sub);
            }
        }
        if !self.postgres.is_empty() {
            out.push_str("## Workload B: PostgreSQL, `SELECT 1` per checkout, pool size 16, 2 tokio workers\n\n");
            out.push_str("Every pool and driver has a row at its defaults (only the pool size set: what a user gets) beside any tuned row. The statement is sent three ways: `simple_query` (one round trip, simple query protocol), plain `query_one` (tokio-postgres prepares an unnamed statement and then runs it: two round trips) and `prepare_cached` followed by a query on the cached statement (one round trip once the cache is warm). pg-pool-tokio-postgres's defaults are `PgConfig::from_url`'s and `PgConfig::pool_config`'s, whatever they are in the build measured. The rows run interleaved, their order rotated between repetitions; both ratios are medians of per-repetition ratios: against deadpool-postgres with `prepare_cached` at its defaults (the reference), and against deadpool-postgres running the same statement at its defaults.\n\n");
            out.push_str("| tasks | pool | statement | settings | queries/s | × deadpool-postgres prepare_cached | × deadpool-postgres same statement | wait p50 | wait p99 | wait p99.9 | wait max | errors |\n|---:|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            let fmt_ratio = |r: Option<f64>| r.map_or("–".into(), |x| format!("{x:.2}"));
            for r in &self.postgres {
                let lead = format!(
                    "| {} | {} | {} | {} |",
                    r.tasks,
                    r.pool.pool_name(),
                    r.pool.query().label(),
                    r.pool.settings()
                );
                match r.median {
                    Some(m) => {
                        let _ = writeln!(
                            out,
                            "{lead} {} | {} | {} | {} | {} | {} | {} | {} |",
                            human(m.qps),
                            fmt_ratio(r.ratio_to_reference),
                            fmt_ratio(r.ratio_same_query),
                            us(m.wait_p50_ns),
                            us(m.wait_p99_ns),
                            us(m.wait_p999_ns),
                            us(m.wait_max_ns),
                            m.errors
                        );
                    }
                    None => {
                        let _ = writeln!(out, "{lead} **STALLED** | | | | | | | |");
                    }
                }
            }
            out.push('\n');
        }
        if !self.storms.is_empty() {
            out.push_str(
                "## Connection storm: connections reaching their max lifetime together\n\n",
            );
            out.push_str("The pool is filled to `size` (kept there by `min_idle` in both pools), then a 64-task `SELECT 1` load runs for the lifetime plus 3 s. Connects are counted when they complete. deadpool has no max lifetime and is not in this table.\n\n");
            out.push_str("| pool | size | lifetime | fill time | reconnects in window | peak connects/s (100 ms window) | first wave spread | load wait p99 | load wait max | load qps |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
            for s in &self.storms {
                let _ = writeln!(
                    out,
                    "| {} | {} | {:.1} s | {:.2} s | {} | {:.0} | {:.2} s | {} | {} | {} |",
                    s.label,
                    s.size,
                    s.lifetime_s,
                    s.fill_s,
                    s.reconnects,
                    s.peak_connects_per_s,
                    s.wave_s,
                    us(s.wait_p99_ns),
                    us(s.wait_max_ns),
                    human(s.qps)
                );
            }
            out.push('\n');
        }
        if !charts.is_empty() {
            out.push_str("## Charts\n\n");
            for c in charts {
                let _ = writeln!(out, "![{c}]({c})\n");
            }
        }
        out
    }
}
