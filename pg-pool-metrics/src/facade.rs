//! Publishing to the `metrics` crate facade (feature `metrics`): whatever recorder the
//! application installed (a Prometheus exporter, StatsD, an OpenTelemetry bridge...) gets
//! pg-pool's series.
//!
//! # Model
//!
//! The pool does not call the facade on its hot path; it keeps its own counters. A
//! [`Publisher`] copies snapshots into the recorder when asked:
//!
//! - gauges are `set` to the snapshot's value;
//! - counters are set with `absolute` (the snapshot is the running total);
//! - histograms are replayed: the samples that entered each pg-pool bucket since the last
//!   publication are recorded with `record_many`, at one value inside that bucket (0 for the
//!   first bucket, the middle of the bucket for the others). Counts are exact and bucket
//!   boundaries at pg-pool's powers of two see every sample on the right side; sums and
//!   quantiles interpolated inside a bucket are approximate (within the bucket's width).
//!
//! Call [`Publisher::publish`] periodically (every few seconds, or just before your exporter
//! is scraped), or let [`Publisher::spawn`] do it on a thread of its own. Macros of the
//! facade go to the recorder in effect on the calling thread: the spawned thread uses the
//! global recorder.
//!
//! Names are the OpenTelemetry names (`db.client.connection.count`, attribute keys such as
//! `db.client.connection.pool.name`) by default, with units declared through `describe_*`;
//! [`NameStyle::Prometheus`] uses the Prometheus family names instead
//! (`db_client_connection_wait_time_seconds`, `db_client_connection_timeouts_total`), for
//! recorders that write the names as they are.

use std::time::Duration;

use ::metrics::{Label, SharedString, Unit};

use crate::replay::{Replay, Ticker};
use crate::series::{Kind, POOL_NAME, SERIES, Series, Value, prometheus_label};
use crate::source::Pools;

/// How series and labels are named when published.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum NameStyle {
    /// `db.client.connection.wait_time`, label `db.client.connection.pool.name`.
    #[default]
    OpenTelemetry,
    /// `db_client_connection_wait_time_seconds`, label `db_client_connection_pool_name`.
    Prometheus,
}

impl NameStyle {
    fn name(self, series: &Series) -> &'static str {
        match self {
            NameStyle::OpenTelemetry => series.otel_name,
            NameStyle::Prometheus => series.prometheus_name,
        }
    }

    fn label(self, key: &'static str) -> SharedString {
        match self {
            NameStyle::OpenTelemetry => SharedString::const_str(key),
            NameStyle::Prometheus => SharedString::from(prometheus_label(key)),
        }
    }
}

/// Copies pool snapshots into the `metrics` facade's recorder; see the [module
/// docs](self).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pg_pool_metrics::Pools;
/// use pg_pool_metrics::facade::Publisher;
///
/// let pools = Pools::new();
/// // pools.add(pool.downgrade());
/// let publisher = Publisher::new(pools);
/// publisher.describe();
/// publisher.publish(); // or: let _running = publisher.spawn(Duration::from_secs(5))?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Publisher {
    pools: Pools,
    style: NameStyle,
    replay: Replay,
}

impl Publisher {
    /// A publisher of `pools` under the OpenTelemetry names.
    pub fn new(pools: Pools) -> Self {
        Self {
            pools,
            style: NameStyle::default(),
            replay: Replay::default(),
        }
    }

    /// Chooses how series and labels are named.
    pub fn with_names(mut self, style: NameStyle) -> Self {
        self.style = style;
        self
    }

    /// Declares every series' kind, unit and description to the current recorder.
    pub fn describe(&self) {
        for series in SERIES {
            let name = self.style.name(series);
            let help = series.help;
            match series.kind {
                Kind::Gauge => ::metrics::describe_gauge!(name, help),
                Kind::Counter => ::metrics::describe_counter!(name, Unit::Count, help),
                Kind::Histogram => ::metrics::describe_histogram!(name, Unit::Seconds, help),
            }
        }
    }

    /// Takes a snapshot of every pool and publishes it to the current recorder: gauges set,
    /// counters set to their running totals, histogram samples since the last call replayed.
    ///
    /// # Panics
    ///
    /// Only if the recorder panics (a panicking pool source is skipped).
    pub fn publish(&self) {
        let snapshots = self.pools.snapshots();
        let pool_key = self.style.label(POOL_NAME);
        for snapshot in &snapshots {
            for series in SERIES {
                let name = self.style.name(series);
                let label_key = series.label.map(|key| self.style.label(key));
                series.read(&snapshot.metrics, &mut |label_value, value| {
                    let mut labels = vec![Label::new(pool_key.clone(), snapshot.name.clone())];
                    if let (Some(key), Some(label_value)) = (&label_key, label_value) {
                        labels.push(Label::new(key.clone(), label_value));
                    }
                    match value {
                        Value::Gauge(v) => ::metrics::gauge!(name, labels).set(v as f64),
                        Value::Counter(v) => ::metrics::counter!(name, labels).absolute(v),
                        Value::Histogram(h) => {
                            let histogram = ::metrics::histogram!(name, labels);
                            self.replay
                                .replay(&snapshot.name, name, h, &mut |value, count| {
                                    let count = usize::try_from(count).unwrap_or(usize::MAX);
                                    histogram.record_many(value, count);
                                });
                        }
                    }
                });
            }
        }
        let live: Vec<&str> = snapshots.iter().map(|s| s.name.as_str()).collect();
        self.replay.retain(&live);
    }

    /// Publishes now and then every `interval` on a thread of its own (using the global
    /// recorder) until the returned handle is dropped; call [`Publisher::describe`] first if
    /// the recorder wants descriptions. A recorder that panics is contained: publication
    /// goes on at the next tick.
    ///
    /// # Errors
    ///
    /// When the thread cannot be spawned.
    pub fn spawn(self, interval: Duration) -> std::io::Result<PublisherHandle> {
        let ticker = Ticker::spawn("pg-pool-metrics", interval, move || self.publish())?;
        Ok(PublisherHandle { _ticker: ticker })
    }
}

/// Keeps a [`Publisher::spawn`] thread running; dropping it stops and joins the thread.
#[derive(Debug)]
pub struct PublisherHandle {
    _ticker: Ticker,
}
