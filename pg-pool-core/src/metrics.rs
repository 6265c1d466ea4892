//! Metrics: counters and histograms kept under the pool lock, read as one consistent
//! snapshot ([`Metrics`], from [`ConnPool::metrics`](crate::ConnPool::metrics)).
//!
//! Exporters (Prometheus, the `metrics` facade, OpenTelemetry) live in the
//! `pg-pool-metrics` crate.

use std::fmt::{self, Write as _};
use std::time::Duration;

use crate::hooks::DestroyReason;

/// Number of histogram buckets: bucket `i` counts values below `2^i` microseconds; the last
/// bucket counts everything longer (about 67 s and up).
pub const HISTOGRAM_BUCKETS: usize = 28;

/// A latency histogram with power-of-two microsecond buckets.
///
/// Recording is a shift and an increment, under the pool lock the recorder already holds or,
/// for checkouts and returns that go through the fast slot without the lock, on relaxed
/// atomic counters merged into every snapshot; it never allocates. Percentiles are
/// approximate: they report
/// the upper bound of the bucket the percentile falls in (at most 2x the true value).
#[derive(Clone, PartialEq, Eq)]
pub struct Histogram {
    counts: [u64; HISTOGRAM_BUCKETS],
    sum_micros: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: [0; HISTOGRAM_BUCKETS],
            sum_micros: 0,
        }
    }
}

impl fmt::Debug for Histogram {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count())
            .field("p50", &self.percentile(0.5))
            .field("p99", &self.percentile(0.99))
            .field("max_bucket", &self.max())
            .finish()
    }
}

impl Histogram {
    /// Whole microseconds in `value`, saturating, in 64-bit arithmetic (this runs on every
    /// return).
    fn micros(value: Duration) -> u64 {
        value
            .as_secs()
            .saturating_mul(1_000_000)
            .saturating_add(u64::from(value.subsec_micros()))
    }

    /// Upper bound of bucket `index` (`Duration::MAX` for the last one).
    pub fn bucket_upper_bound(index: usize) -> Duration {
        if index + 1 >= HISTOGRAM_BUCKETS {
            Duration::MAX
        } else {
            Duration::from_micros(1 << index)
        }
    }

    /// Records a zero-length sample (a checkout that did not wait).
    pub(crate) fn record_zero(&mut self) {
        self.counts[0] += 1;
    }

    /// The bucket a sample falls in, and the sample in whole microseconds.
    #[inline]
    pub(crate) fn bucket(value: Duration) -> (usize, u64) {
        let micros = Self::micros(value);
        (Self::bucket_of_micros(micros), micros)
    }

    /// The bucket a sample of `micros` whole microseconds falls in.
    #[inline]
    pub(crate) fn bucket_of_micros(micros: u64) -> usize {
        ((u64::BITS - micros.leading_zeros()) as usize).min(HISTOGRAM_BUCKETS - 1)
    }

    /// Records a sample.
    pub(crate) fn record(&mut self, value: Duration) {
        let (index, micros) = Self::bucket(value);
        self.counts[index] += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros);
    }

    /// Records a sample of `nanos` nanoseconds, as [`Histogram::record`] records the same
    /// `Duration` (without building one).
    #[inline]
    pub(crate) fn record_nanos(&mut self, nanos: u64) {
        let micros = nanos / 1_000;
        self.counts[Self::bucket_of_micros(micros)] += 1;
        self.sum_micros = self.sum_micros.saturating_add(micros);
    }

    /// Adds `n` zero-length samples.
    pub(crate) fn add_zeros(&mut self, n: u64) {
        self.counts[0] += n;
    }

    /// Adds samples counted elsewhere: `counts` per bucket, summing to `sum_micros`.
    pub(crate) fn add(&mut self, counts: &[u64; HISTOGRAM_BUCKETS], sum_micros: u64) {
        for (mine, theirs) in self.counts.iter_mut().zip(counts) {
            *mine += theirs;
        }
        self.sum_micros = self.sum_micros.saturating_add(sum_micros);
    }

    /// The count in each bucket (not cumulative).
    pub fn counts(&self) -> &[u64; HISTOGRAM_BUCKETS] {
        &self.counts
    }

    /// Number of samples.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Sum of all samples (microsecond resolution).
    pub fn sum(&self) -> Duration {
        Duration::from_micros(self.sum_micros)
    }

    /// Upper bound of the bucket holding quantile `q` (0.0 to 1.0); zero when empty.
    pub fn percentile(&self, q: f64) -> Duration {
        let total = self.count();
        if total == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Self::bucket_upper_bound(index);
            }
        }
        Self::bucket_upper_bound(HISTOGRAM_BUCKETS - 1)
    }

    /// Upper bound of the highest non-empty bucket; zero when empty.
    pub fn max(&self) -> Duration {
        self.counts
            .iter()
            .rposition(|&c| c > 0)
            .map_or(Duration::ZERO, Self::bucket_upper_bound)
    }
}

/// Monotonic counters, kept inside the pool state.
#[derive(Debug, Clone, Default)]
pub(crate) struct Counters {
    pub(crate) creates: u64,
    pub(crate) connect_failures: u64,
    pub(crate) destroys: [u64; DestroyReason::ALL.len()],
    pub(crate) checkouts: u64,
    pub(crate) timeouts: u64,
    pub(crate) detaches: u64,
    pub(crate) leaks: u64,
    pub(crate) server_changes: u64,
    pub(crate) wait_time: Histogram,
    pub(crate) connect_time: Histogram,
    pub(crate) usage_time: Histogram,
}

/// A snapshot of a pool's gauges, counters and histograms.
///
/// Taken under the pool lock in one step, so the gauges always agree with each other:
/// `size == idle + active + connecting` and `size <= max_size` (after a resize down, until
/// the surplus has come back).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Metrics {
    /// Configured maximum size.
    pub max_size: usize,
    /// The number of idle connections the pool keeps open (`min_idle`, as configured or
    /// last set with `ConnPool::set_min_idle`, never above `max_size`).
    pub min_idle: usize,
    /// Connections that exist or are being opened: `idle + active + connecting`.
    pub size: usize,
    /// Connections sitting idle.
    pub idle: usize,
    /// Connections held by callers, handed to a waiter, or being reset, probed or validated.
    pub active: usize,
    /// Connection attempts in flight.
    pub connecting: usize,
    /// Callers waiting in the queue.
    pub waiters: usize,
    /// Destroyed connections whose close is still running (not counted in `size`).
    pub closing: usize,
    /// Background tasks (reaper, probe) currently running.
    pub background_tasks: usize,
    /// Whether the pool is draining or closed.
    pub draining: bool,
    /// Connections opened successfully.
    pub creates: u64,
    /// Connection attempts that failed (driver error, timeout or create hook).
    pub connect_failures: u64,
    /// Connections destroyed, all reasons.
    pub destroys: u64,
    /// Connections handed to checkouts (including ones then rejected by validation, which
    /// are also counted in `destroys`).
    pub checkouts: u64,
    /// Checkouts that timed out.
    pub timeouts: u64,
    /// Connections taken out of the pool with `PoolGuard::detach`.
    pub detaches: u64,
    /// Checkouts reported by leak detection as held past the threshold.
    pub leaks: u64,
    /// Times a returned connection showed the server changed (failover, shutdown, lost
    /// connection) and the pool evicted every connection
    /// ([`Poolable::server_changed`](crate::Poolable::server_changed)).
    pub server_changes: u64,
    /// Time checkouts waited for a connection (zero when one was idle).
    pub wait_time: Histogram,
    /// Time successful connection attempts took.
    pub connect_time: Histogram,
    /// Time connections were held by callers.
    pub usage_time: Histogram,
    destroys_by_reason: [u64; DestroyReason::ALL.len()],
}

impl Metrics {
    pub(crate) fn new(gauges: Gauges, counters: &Counters) -> Self {
        Self {
            max_size: gauges.max_size,
            min_idle: gauges.min_idle,
            size: gauges.idle + gauges.active + gauges.connecting,
            idle: gauges.idle,
            active: gauges.active,
            connecting: gauges.connecting,
            waiters: gauges.waiters,
            closing: gauges.closing,
            background_tasks: gauges.background_tasks,
            draining: gauges.draining,
            creates: counters.creates,
            connect_failures: counters.connect_failures,
            destroys: counters.destroys.iter().sum(),
            checkouts: counters.checkouts,
            timeouts: counters.timeouts,
            detaches: counters.detaches,
            leaks: counters.leaks,
            server_changes: counters.server_changes,
            wait_time: counters.wait_time.clone(),
            connect_time: counters.connect_time.clone(),
            usage_time: counters.usage_time.clone(),
            destroys_by_reason: counters.destroys,
        }
    }

    /// Connections destroyed for `reason`.
    pub fn destroys_for(&self, reason: DestroyReason) -> u64 {
        self.destroys_by_reason[reason.index()]
    }

    /// Renders the snapshot of **one** pool in the Prometheus text exposition format, every
    /// series labelled `pool="<pool_name>"`, under the `pg_pool_` names.
    ///
    /// The output is a complete exposition for a single pool: every family carries its own
    /// `# HELP` and `# TYPE` lines. Concatenating the output of several pools therefore
    /// repeats those lines, which the exposition format forbids (Prometheus rejects the scrape
    /// or drops the repeated families). To expose several pools, or to use the
    /// OpenTelemetry semantic-convention names (`db_client_connection_*`) that dashboards
    /// know, use the `pg-pool-metrics` crate (`pg_pool::metrics` with the facade's
    /// `prometheus` feature): its collector writes one `# HELP`/`# TYPE` per family whatever
    /// the number of pools. This method is kept for single-pool debugging output.
    ///
    /// # Examples
    ///
    /// ```
    /// # use pg_pool_core::metrics::Metrics;
    /// # fn show(metrics: &Metrics) {
    /// let text = metrics.render_prometheus("orders");
    /// assert!(text.contains("pg_pool_connections{pool=\"orders\",state=\"idle\"}"));
    /// # }
    /// ```
    pub fn render_prometheus(&self, pool_name: &str) -> String {
        let mut out = String::with_capacity(4096);
        let pool = escape_label(pool_name);
        let _ = self.write_prometheus(&mut out, &pool);
        out
    }

    fn write_prometheus(&self, out: &mut String, pool: &str) -> fmt::Result {
        writeln!(out, "# HELP pg_pool_connections Connections by state.")?;
        writeln!(out, "# TYPE pg_pool_connections gauge")?;
        for (state, value) in [
            ("idle", self.idle),
            ("active", self.active),
            ("connecting", self.connecting),
            ("closing", self.closing),
        ] {
            writeln!(
                out,
                "pg_pool_connections{{pool=\"{pool}\",state=\"{state}\"}} {value}"
            )?;
        }
        for (name, help, value) in [
            ("max_size", "Configured maximum size.", self.max_size),
            ("waiters", "Callers waiting for a connection.", self.waiters),
        ] {
            writeln!(out, "# HELP pg_pool_{name} {help}")?;
            writeln!(out, "# TYPE pg_pool_{name} gauge")?;
            writeln!(out, "pg_pool_{name}{{pool=\"{pool}\"}} {value}")?;
        }
        for (name, help, value) in [
            ("creates", "Connections opened.", self.creates),
            (
                "connect_failures",
                "Failed connection attempts.",
                self.connect_failures,
            ),
            ("checkouts", "Connections handed out.", self.checkouts),
            ("timeouts", "Checkouts that timed out.", self.timeouts),
            (
                "detaches",
                "Connections detached from the pool.",
                self.detaches,
            ),
            (
                "leaks",
                "Checkouts held past the leak threshold.",
                self.leaks,
            ),
        ] {
            writeln!(out, "# HELP pg_pool_{name}_total {help}")?;
            writeln!(out, "# TYPE pg_pool_{name}_total counter")?;
            writeln!(out, "pg_pool_{name}_total{{pool=\"{pool}\"}} {value}")?;
        }
        writeln!(
            out,
            "# HELP pg_pool_destroys_total Connections destroyed, by reason."
        )?;
        writeln!(out, "# TYPE pg_pool_destroys_total counter")?;
        for reason in DestroyReason::ALL {
            writeln!(
                out,
                "pg_pool_destroys_total{{pool=\"{pool}\",reason=\"{reason}\"}} {}",
                self.destroys_for(reason)
            )?;
        }
        for (name, help, histogram) in [
            ("wait", "Time checkouts waited.", &self.wait_time),
            (
                "connect",
                "Time connection attempts took.",
                &self.connect_time,
            ),
            ("usage", "Time connections were held.", &self.usage_time),
        ] {
            writeln!(out, "# HELP pg_pool_{name}_seconds {help}")?;
            writeln!(out, "# TYPE pg_pool_{name}_seconds histogram")?;
            let mut cumulative = 0;
            for (index, count) in histogram.counts().iter().enumerate() {
                cumulative += count;
                if index + 1 == HISTOGRAM_BUCKETS {
                    break;
                }
                let le = Histogram::bucket_upper_bound(index).as_secs_f64();
                writeln!(
                    out,
                    "pg_pool_{name}_seconds_bucket{{pool=\"{pool}\",le=\"{le}\"}} {cumulative}"
                )?;
            }
            writeln!(
                out,
                "pg_pool_{name}_seconds_bucket{{pool=\"{pool}\",le=\"+Inf\"}} {cumulative}"
            )?;
            writeln!(
                out,
                "pg_pool_{name}_seconds_sum{{pool=\"{pool}\"}} {}",
                histogram.sum().as_secs_f64()
            )?;
            writeln!(
                out,
                "pg_pool_{name}_seconds_count{{pool=\"{pool}\"}} {cumulative}"
            )?;
        }
        Ok(())
    }
}

/// Gauges read under the lock, for [`Metrics::new`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct Gauges {
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) idle: usize,
    pub(crate) active: usize,
    pub(crate) connecting: usize,
    pub(crate) waiters: usize,
    pub(crate) closing: usize,
    pub(crate) background_tasks: usize,
    pub(crate) draining: bool,
}

fn escape_label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_percentiles() {
        let mut h = Histogram::default();
        h.record_zero();
        for _ in 0..98 {
            h.record(Duration::from_micros(100));
        }
        h.record(Duration::from_millis(50));
        assert_eq!(h.count(), 100);
        assert_eq!(h.percentile(0.5), Duration::from_micros(128));
        assert_eq!(h.percentile(1.0), Duration::from_micros(65_536));
        assert_eq!(h.max(), Duration::from_micros(65_536));
        // Bucket i counts values below 2^i µs: 0 µs in bucket 0, 1 µs in bucket 1,
        // 100 µs (64 <= 100 < 128) in bucket 7, anything of 2^26 µs or more in the last.
        let mut h = Histogram::default();
        for micros in [0, 1, 100, 127, 128, 1 << 26, u64::MAX / 1_000_000] {
            h.record(Duration::from_micros(micros));
        }
        let counts = h.counts();
        assert_eq!(counts[0], 1, "{counts:?}");
        assert_eq!(counts[1], 1, "{counts:?}");
        assert_eq!(counts[7], 2, "100 and 127 µs: {counts:?}");
        assert_eq!(counts[8], 1, "128 µs: {counts:?}");
        assert_eq!(counts[HISTOGRAM_BUCKETS - 1], 2, "{counts:?}");
        assert_eq!(h.count(), 7);
    }

    /// A sample recorded in nanoseconds lands where the same `Duration` does.
    #[test]
    fn nanoseconds_record_as_durations() {
        let mut by_duration = Histogram::default();
        let mut by_nanos = Histogram::default();
        for nanos in [
            0,
            999,
            1_000,
            1_999,
            127_999,
            128_000,
            7_000_000_123,
            u64::MAX,
        ] {
            by_duration.record(Duration::from_nanos(nanos));
            by_nanos.record_nanos(nanos);
        }
        assert_eq!(by_nanos, by_duration);
        assert_eq!(by_nanos.count(), 8);
    }

    #[test]
    fn snapshot_carries_the_gauges() {
        let gauges = Gauges {
            max_size: 8,
            min_idle: 3,
            idle: 2,
            active: 4,
            connecting: 1,
            waiters: 5,
            closing: 0,
            background_tasks: 1,
            draining: false,
        };
        let m = Metrics::new(gauges, &Counters::default());
        assert_eq!((m.max_size, m.min_idle), (8, 3));
        assert_eq!(m.size, 7);
        assert_eq!(m.waiters, 5);
    }
}
