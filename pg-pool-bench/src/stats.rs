//! Medians over repetitions.

use crate::overhead::{Outcome, RunStats};

/// The median of `values` (the mean of the middle two for an even count); NaN when empty.
pub fn median(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let mid = values.len() / 2;
    if values.len() % 2 == 1 {
        values[mid]
    } else {
        (values[mid - 1] + values[mid]) / 2.0
    }
}

fn median_u64(values: impl Iterator<Item = u64>) -> u64 {
    let mut v: Vec<f64> = values.map(|x| x as f64).collect();
    median(&mut v) as u64
}

/// Field-by-field medians of the finished runs; `None` when no run finished.
pub fn median_stats(runs: &[Outcome]) -> Option<RunStats> {
    let done: Vec<RunStats> = runs
        .iter()
        .filter_map(|run| match run {
            Outcome::Done(stats) => Some(*stats),
            Outcome::Stalled => None,
        })
        .collect();
    if done.is_empty() {
        return None;
    }
    let field = |f: fn(&RunStats) -> f64| {
        let mut v: Vec<f64> = done.iter().map(f).collect();
        median(&mut v)
    };
    Some(RunStats {
        cycles_per_sec: field(|s| s.cycles_per_sec),
        fairness: field(|s| s.fairness),
        cancelled: field(|s| s.cancelled),
        wait_p50_ns: median_u64(done.iter().map(|s| s.wait_p50_ns)),
        wait_p99_ns: median_u64(done.iter().map(|s| s.wait_p99_ns)),
        wait_p999_ns: median_u64(done.iter().map(|s| s.wait_p999_ns)),
        wait_max_ns: median_u64(done.iter().map(|s| s.wait_max_ns)),
    })
}
