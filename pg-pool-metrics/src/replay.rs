//! Turning pg-pool's cumulative bucketed histograms into samples for backends that only take
//! individual observations (the `metrics` facade, OpenTelemetry histograms).
//!
//! Each publication compares a pool's bucket counts with the ones seen last time and replays
//! the difference: `n` new samples in a bucket become `n` observations of one representative
//! value inside that bucket. Counts per bucket are therefore exact in any backend whose
//! bucket bounds are pg-pool's (or a subset of them); sums are approximate (within the
//! bucket's width per sample).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use pg_pool_core::metrics::{HISTOGRAM_BUCKETS, Histogram};

/// The value a sample of bucket `index` is replayed as, in seconds: 0 for the first bucket
/// (under 1 µs: checkouts that did not wait), the middle of `[2^(i-1), 2^i)` µs for the
/// others, and the lower bound of the last, open-ended bucket.
pub(crate) fn representative_seconds(index: usize) -> f64 {
    match index {
        0 => 0.0,
        i if i + 1 >= HISTOGRAM_BUCKETS => {
            Histogram::bucket_upper_bound(HISTOGRAM_BUCKETS - 2).as_secs_f64()
        }
        i => {
            let upper = Histogram::bucket_upper_bound(i).as_secs_f64();
            upper * 0.75
        }
    }
}

/// pg-pool's finite bucket bounds, in seconds, for backends that take explicit bounds.
#[cfg_attr(not(feature = "opentelemetry"), allow(dead_code))]
pub(crate) fn bucket_bounds_seconds() -> Vec<f64> {
    (0..HISTOGRAM_BUCKETS - 1)
        .map(|i| Histogram::bucket_upper_bound(i).as_secs_f64())
        .collect()
}

/// The bucket counts last published, per pool and series.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    last: Mutex<HashMap<(String, &'static str), [u64; HISTOGRAM_BUCKETS]>>,
}

impl Replay {
    /// Calls `emit(value_seconds, count)` for every bucket that gained samples since the last
    /// call for this pool and series. A histogram whose counts went down (a new pool under an
    /// old name) is replayed whole.
    pub(crate) fn replay(
        &self,
        pool: &str,
        series: &'static str,
        histogram: &Histogram,
        emit: &mut dyn FnMut(f64, u64),
    ) {
        let now = *histogram.counts();
        let previous = {
            let mut last = self.last.lock().unwrap_or_else(PoisonError::into_inner);
            last.insert((pool.to_owned(), series), now)
        };
        let previous = match previous {
            Some(p) if p.iter().zip(&now).all(|(old, new)| old <= new) => p,
            _ => [0; HISTOGRAM_BUCKETS],
        };
        for (index, (new, old)) in now.iter().zip(&previous).enumerate() {
            let delta = new - old;
            if delta > 0 {
                emit(representative_seconds(index), delta);
            }
        }
    }

    /// Forgets pools that are no longer published.
    pub(crate) fn retain(&self, live: &[&str]) {
        self.last
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|(pool, _), _| live.contains(&pool.as_str()));
    }
}

/// Runs `tick` every `interval` on a thread of its own until dropped (then joins it).
pub(crate) struct Ticker {
    stop: std::sync::Arc<(Mutex<bool>, std::sync::Condvar)>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Ticker {
    pub(crate) fn spawn(
        name: &str,
        interval: Duration,
        tick: impl Fn() + Send + 'static,
    ) -> std::io::Result<Self> {
        let stop = std::sync::Arc::new((Mutex::new(false), std::sync::Condvar::new()));
        let flag = std::sync::Arc::clone(&stop);
        let thread = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || {
                let (lock, signal) = &*flag;
                loop {
                    // A panicking recorder or source must not end publication for good.
                    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(&tick));
                    let stopped = lock.lock().unwrap_or_else(PoisonError::into_inner);
                    let (stopped, _) = signal
                        .wait_timeout_while(stopped, interval, |stopped| !*stopped)
                        .unwrap_or_else(PoisonError::into_inner);
                    if *stopped {
                        return;
                    }
                }
            })?;
        Ok(Self {
            stop,
            thread: Some(thread),
        })
    }
}

impl std::fmt::Debug for Ticker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticker").finish_non_exhaustive()
    }
}

impl Drop for Ticker {
    fn drop(&mut self) {
        let (lock, signal) = &*self.stop;
        *lock.lock().unwrap_or_else(PoisonError::into_inner) = true;
        signal.notify_all();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn representatives_fall_inside_their_buckets() {
        assert_eq!(representative_seconds(0), 0.0);
        for index in 1..HISTOGRAM_BUCKETS - 1 {
            let value = representative_seconds(index);
            let lower = Histogram::bucket_upper_bound(index - 1).as_secs_f64();
            let upper = Histogram::bucket_upper_bound(index).as_secs_f64();
            assert!(lower <= value && value < upper, "bucket {index}: {value}");
        }
        let last = representative_seconds(HISTOGRAM_BUCKETS - 1);
        assert!(last >= *bucket_bounds_seconds().last().unwrap());
        assert_eq!(bucket_bounds_seconds().len(), HISTOGRAM_BUCKETS - 1);
    }
}
