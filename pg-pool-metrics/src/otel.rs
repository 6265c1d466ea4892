//! OpenTelemetry instruments on a user-supplied [`Meter`] (feature `opentelemetry`).
//!
//! # Model
//!
//! Gauges and counters are observable instruments: the SDK calls their callbacks at each
//! collection, and each callback reads a fresh snapshot of every pool. Gauges are
//! `UpDownCounter`s (`db.client.connection.count`, `.idle.max`, ... as the semantic
//! conventions specify), except `db.client.connection.draining`, a `Gauge`; counters are
//! observable `Counter`s reporting running totals.
//!
//! OpenTelemetry has no observable histogram, so `db.client.connection.create_time`,
//! `.wait_time` and `.use_time` are ordinary `f64` histograms in seconds, with pg-pool's
//! power-of-two bucket bounds, fed by [`OtelMetrics::record_histograms`]: it replays the
//! samples that entered each pg-pool bucket since its previous call as observations of one
//! value inside that bucket. Bucket counts are exact; sums are approximate. Call it
//! periodically (before each export interval ends), or let [`OtelMetrics::spawn`] do it.
//!
//! Every measurement carries `db.client.connection.pool.name`; the connection count also
//! `db.client.connection.state` (`idle` or `used`), destroys also `reason`.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{AsyncInstrumentBuilder, Histogram, Meter};

use crate::replay::{Replay, Ticker, bucket_bounds_seconds};
use crate::series::{Kind, POOL_NAME, SERIES, Series, Value};
use crate::source::{PoolSnapshot, Pools};

/// The instruments registered by [`register`]; holds the histograms that
/// [`OtelMetrics::record_histograms`] feeds. The observable instruments live as long as the
/// meter provider.
#[derive(Debug)]
pub struct OtelMetrics {
    pools: Pools,
    histograms: Vec<(&'static Series, Histogram<f64>)>,
    replay: Replay,
}

/// Registers every series of [`SERIES`] on `meter`, reading `pools` (pools added later are
/// reported too).
///
/// # Examples
///
/// ```
/// use opentelemetry::global;
/// use pg_pool_metrics::Pools;
///
/// let pools = Pools::new();
/// let meter = global::meter("pg-pool");
/// let instruments = pg_pool_metrics::otel::register(&meter, pools.clone());
/// // pools.add(pool.downgrade());
/// instruments.record_histograms(); // periodically
/// ```
pub fn register(meter: &Meter, pools: Pools) -> OtelMetrics {
    let mut histograms = Vec::new();
    for series in SERIES {
        let name = series.otel_name;
        let read = pools.clone();
        match (series.kind, series.otel_name) {
            (Kind::Gauge, "db.client.connection.draining") => {
                meter
                    .u64_observable_gauge(name)
                    .with_description(series.help)
                    .with_callback(move |observer| {
                        observe(&read, series, &mut |v, attrs| observer.observe(v, attrs));
                    })
                    .build();
            }
            (Kind::Gauge, _) => {
                let builder = meter
                    .i64_observable_up_down_counter(name)
                    .with_description(series.help)
                    .with_callback(move |observer| {
                        observe(&read, series, &mut |v, attrs| {
                            observer.observe(i64::try_from(v).unwrap_or(i64::MAX), attrs);
                        });
                    });
                with_unit(builder, series.unit).build();
            }
            (Kind::Counter, _) => {
                let builder = meter
                    .u64_observable_counter(name)
                    .with_description(series.help)
                    .with_callback(move |observer| {
                        observe(&read, series, &mut |v, attrs| observer.observe(v, attrs));
                    });
                with_unit(builder, series.unit).build();
            }
            (Kind::Histogram, _) => {
                let histogram = meter
                    .f64_histogram(name)
                    .with_description(series.help)
                    .with_unit(series.unit)
                    .with_boundaries(bucket_bounds_seconds())
                    .build();
                histograms.push((series, histogram));
            }
        }
    }
    OtelMetrics {
        pools,
        histograms,
        replay: Replay::default(),
    }
}

fn with_unit<'a, I, M>(
    builder: AsyncInstrumentBuilder<'a, I, M>,
    unit: &'static str,
) -> AsyncInstrumentBuilder<'a, I, M> {
    if unit.is_empty() {
        builder
    } else {
        builder.with_unit(unit)
    }
}

fn attributes(
    snapshot: &PoolSnapshot,
    series: &Series,
    label: Option<&'static str>,
) -> Vec<KeyValue> {
    let mut attrs = vec![KeyValue::new(POOL_NAME, snapshot.name.clone())];
    if let (Some(key), Some(value)) = (series.label, label) {
        attrs.push(KeyValue::new(key, value));
    }
    attrs
}

/// Reads every pool's values of a gauge or counter series. Callbacks run inside the SDK's
/// collection: a panic in a source is contained by [`Pools::snapshots`].
fn observe(pools: &Pools, series: &'static Series, emit: &mut dyn FnMut(u64, &[KeyValue])) {
    for snapshot in pools.snapshots() {
        series.read(&snapshot.metrics, &mut |label, value| {
            let v = match value {
                Value::Gauge(v) | Value::Counter(v) => v,
                Value::Histogram(_) => return,
            };
            emit(v, &attributes(&snapshot, series, label));
        });
    }
}

impl OtelMetrics {
    /// Records, into the duration histograms, the samples every pool took since the last
    /// call (see the [module docs](self)).
    ///
    /// OpenTelemetry's API records one observation per call, so this costs one `record` per
    /// sample since the previous call (what recording each checkout directly would cost).
    pub fn record_histograms(&self) {
        let snapshots = self.pools.snapshots();
        for snapshot in &snapshots {
            for (series, histogram) in &self.histograms {
                series.read(&snapshot.metrics, &mut |label, value| {
                    let Value::Histogram(h) = value else { return };
                    let attrs = attributes(snapshot, series, label);
                    self.replay
                        .replay(&snapshot.name, series.otel_name, h, &mut |value, count| {
                            for _ in 0..count {
                                histogram.record(value, &attrs);
                            }
                        });
                });
            }
        }
        let live: Vec<&str> = snapshots.iter().map(|s| s.name.as_str()).collect();
        self.replay.retain(&live);
    }

    /// Calls [`OtelMetrics::record_histograms`] now and then every `interval` on a thread of
    /// its own, until the returned handle is dropped.
    ///
    /// # Errors
    ///
    /// When the thread cannot be spawned.
    pub fn spawn(self, interval: Duration) -> std::io::Result<OtelHandle> {
        let ticker = Ticker::spawn("pg-pool-otel", interval, move || self.record_histograms())?;
        Ok(OtelHandle { _ticker: ticker })
    }
}

/// Keeps an [`OtelMetrics::spawn`] thread running; dropping it stops and joins the thread.
#[derive(Debug)]
pub struct OtelHandle {
    _ticker: Ticker,
}
