//! `pg-pool-bench --postgres [tokio-postgres] [--reps N]`: Workload B alone, for a chosen
//! set of rows, printed as markdown (nothing is written to `bench-results/`): what a change
//! to one driver needs measured against its reference in the same run, without the hour
//! the whole suite takes.
//!
//! The rows run interleaved (each repetition visits every task count and every row, the
//! row order rotated by one place per repetition), with the harness, pool size and runtime
//! of the full suite. Each row's ratio is taken per repetition against the
//! deadpool-postgres row running the same statement in that repetition; the table gives
//! the median ratio and its spread (lowest and highest), and the median throughput.

use std::time::Duration;

use crate::postgres::{self, PgKind};
use crate::stats::median;

/// Which rows a `--postgres` run measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowSet {
    /// pg-pool-tokio-postgres at its defaults, with `pool_reset_when=used` (a reset after
    /// every use) and tuned, `prepare_cached` and `query_one`, with deadpool-postgres's rows
    /// for the same statements.
    TokioPostgres,
    /// Every Workload B row.
    All,
}

impl RowSet {
    /// The rows of the set.
    pub fn kinds(self) -> Vec<PgKind> {
        match self {
            Self::TokioPostgres => vec![
                PgKind::DeadpoolPostgresPrepared,
                PgKind::PgPoolTokioPostgresPrepared,
                PgKind::PgPoolTokioPostgresPreparedResetUsed,
                PgKind::PgPoolTokioPostgresPreparedTuned,
                PgKind::DeadpoolPostgresQueryOne,
                PgKind::PgPoolTokioPostgresQueryOne,
                PgKind::PgPoolTokioPostgresQueryOneResetUsed,
            ],
            Self::All => PgKind::ALL.to_vec(),
        }
    }
}

/// One row at one task count: its throughput and ratio in each repetition.
#[derive(Debug, Clone)]
pub struct RowResult {
    /// The row.
    pub kind: PgKind,
    /// Tasks sharing the pool.
    pub tasks: usize,
    /// Queries per second, per repetition (`None`: the run failed).
    pub qps: Vec<Option<f64>>,
    /// Ratio to the same-statement deadpool-postgres row of the same repetition.
    pub ratios: Vec<f64>,
}

/// Runs `rows` against a throwaway cluster at `url`, pool size 16, at each of `tasks`,
/// `reps` times interleaved, each run warmed for `warm` and measured for `measure`.
pub fn compare(
    url: &str,
    rows: RowSet,
    tasks: &[usize],
    reps: usize,
    warm: Duration,
    measure: Duration,
) -> Vec<RowResult> {
    let kinds = rows.kinds();
    // qps[rep][task count][row]
    let mut qps = vec![vec![vec![None; kinds.len()]; tasks.len()]; reps];
    for (rep, by_tasks) in qps.iter_mut().enumerate() {
        for (&n, by_row) in tasks.iter().zip(by_tasks.iter_mut()) {
            for offset in 0..kinds.len() {
                let i = (rep + offset) % kinds.len();
                let run = postgres::run_once(kinds[i], url, 16, n, warm, measure);
                eprintln!(
                    "rep {rep}, {n} tasks, {}: {:?} qps",
                    kinds[i].name(),
                    run.map(|r| r.qps.round())
                );
                by_row[i] = run.map(|r| r.qps);
            }
        }
    }
    let mut out = Vec::new();
    for (t, &n) in tasks.iter().enumerate() {
        for (i, &kind) in kinds.iter().enumerate() {
            let reference = kinds.iter().position(|&k| k == kind.same_query_reference());
            let ratios = qps
                .iter()
                .filter_map(|by_tasks| Some(by_tasks[t][i]? / by_tasks[t][reference?]?))
                .collect();
            out.push(RowResult {
                kind,
                tasks: n,
                qps: qps.iter().map(|by_tasks| by_tasks[t][i]).collect(),
                ratios,
            });
        }
    }
    out
}

/// The results as a markdown table.
pub fn markdown(results: &[RowResult]) -> String {
    let mut out = String::from(
        "| tasks | row | median qps | × deadpool-postgres, same statement (median) | lowest | highest |\n\
         |---:|---|---:|---:|---:|---:|\n",
    );
    for r in results {
        let mut qps: Vec<f64> = r.qps.iter().flatten().copied().collect();
        let mut ratios = r.ratios.clone();
        let fmt = |v: Option<f64>| v.map_or_else(|| "n/a".to_owned(), |v| format!("{v:.2}"));
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} |\n",
            r.tasks,
            r.kind.name(),
            if qps.is_empty() {
                "n/a".to_owned()
            } else {
                format!("{:.0}", median(&mut qps))
            },
            fmt((!ratios.is_empty()).then(|| median(&mut ratios))),
            fmt(ratios.iter().copied().reduce(f64::min)),
            fmt(ratios.iter().copied().reduce(f64::max)),
        ));
    }
    out
}
