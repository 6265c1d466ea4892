//! Prometheus exposition through the official `prometheus-client` crate (feature
//! `prometheus`).
//!
//! [`PoolCollector`] is a `prometheus_client` [`Collector`]: on every scrape it takes one
//! snapshot of each pool in a [`Pools`] set and writes each family once — one `# HELP` and
//! one `# TYPE` line, then the samples of every pool, told apart by the
//! `db_client_connection_pool_name` label. Register it in your own
//! [`Registry`] beside your application's metrics, or
//! let [`PrometheusExporter`] own a registry for you.
//!
//! Histograms are real Prometheus histograms in seconds (`_bucket{le=...}`, `_sum`,
//! `_count`), on pg-pool's power-of-two bucket bounds (1 µs to about 67 s, then `+Inf`).

use std::fmt;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};

use pg_pool_core::metrics::{HISTOGRAM_BUCKETS, Histogram};

use crate::series::{Kind, SERIES, Value};
use crate::source::Pools;

/// `Content-Type` of [`PrometheusExporter::render`]: the Prometheus text format 0.0.4.
pub const TEXT_CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// `Content-Type` of [`PrometheusExporter::render_openmetrics`]: OpenMetrics text 1.0.0.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The Prometheus label naming the pool.
pub const POOL_LABEL: &str = "db_client_connection_pool_name";

/// A `prometheus_client` collector over every pool in a [`Pools`] set.
///
/// # Examples
///
/// ```
/// use pg_pool_metrics::Pools;
/// use pg_pool_metrics::prometheus::PoolCollector;
/// use prometheus_client::registry::Registry;
///
/// let pools = Pools::new();
/// let mut registry = Registry::default();
/// registry.register_collector(Box::new(PoolCollector::new(pools.clone())));
/// // later: pools.add(pool.downgrade());
/// ```
#[derive(Debug, Clone)]
pub struct PoolCollector {
    pools: Pools,
}

impl PoolCollector {
    /// A collector reading `pools` on every scrape.
    pub fn new(pools: Pools) -> Self {
        Self { pools }
    }
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), fmt::Error> {
        let snapshots = self.pools.snapshots();
        if snapshots.is_empty() {
            return Ok(());
        }
        for series in SERIES {
            let (metric_type, unit) = match series.kind {
                Kind::Gauge => (MetricType::Gauge, None),
                Kind::Counter => (MetricType::Counter, None),
                Kind::Histogram => (MetricType::Histogram, Some(&Unit::Seconds)),
            };
            let mut family = encoder.encode_descriptor(
                series.prometheus_stem(),
                series.help,
                unit,
                metric_type,
            )?;
            let label = series.prometheus_label();
            for snapshot in &snapshots {
                let mut result = Ok(());
                series.read(&snapshot.metrics, &mut |label_value, value| {
                    if result.is_err() {
                        return;
                    }
                    let mut labels = vec![(POOL_LABEL, snapshot.name.as_str())];
                    if let (Some(key), Some(label_value)) = (label.as_deref(), label_value) {
                        labels.push((key, label_value));
                    }
                    result = family
                        .encode_family(&labels)
                        .and_then(|mut metric| match value {
                            Value::Gauge(v) => metric.encode_gauge(&v),
                            Value::Counter(v) => {
                                metric.encode_counter::<NoLabelSet, _, u64>(&v, None)
                            }
                            Value::Histogram(h) => encode_histogram(&mut metric, h),
                        });
                });
                result?;
            }
        }
        Ok(())
    }
}

fn encode_histogram(
    metric: &mut prometheus_client::encoding::MetricEncoder<'_>,
    histogram: &Histogram,
) -> Result<(), fmt::Error> {
    let buckets: Vec<(f64, u64)> = histogram
        .counts()
        .iter()
        .enumerate()
        .map(|(index, &count)| {
            let bound = if index + 1 == HISTOGRAM_BUCKETS {
                f64::INFINITY
            } else {
                Histogram::bucket_upper_bound(index).as_secs_f64()
            };
            (bound, count)
        })
        .collect();
    metric.encode_histogram::<NoLabelSet>(
        histogram.sum().as_secs_f64(),
        histogram.count(),
        &buckets,
        None,
    )
}

/// A `prometheus_client` registry holding a [`PoolCollector`], rendered on demand.
///
/// Add the application's own metrics with [`PrometheusExporter::registry_mut`].
///
/// # Examples
///
/// ```
/// use pg_pool_metrics::Pools;
/// use pg_pool_metrics::prometheus::PrometheusExporter;
///
/// let pools = Pools::new();
/// let exporter = PrometheusExporter::new(pools.clone());
/// // pools.add(primary.downgrade()); pools.add(replica.downgrade());
/// let body = exporter.render();
/// assert!(body.is_empty(), "no pool yet, no series");
/// ```
#[derive(Debug)]
pub struct PrometheusExporter {
    registry: Registry,
    pools: Pools,
}

impl PrometheusExporter {
    /// An exporter over `pools`, in a new registry.
    pub fn new(pools: Pools) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(PoolCollector::new(pools.clone())));
        Self { registry, pools }
    }

    /// The pools exported.
    pub fn pools(&self) -> &Pools {
        &self.pools
    }

    /// The registry, to register more metrics or collectors.
    pub fn registry_mut(&mut self) -> &mut Registry {
        &mut self.registry
    }

    /// The registry.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The exposition in the Prometheus text format 0.0.4 ([`TEXT_CONTENT_TYPE`]), what
    /// `promtool check metrics` and every Prometheus version read.
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        // Writing to a String cannot fail, and the collector only fails when the writer does.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }

    /// The exposition in the OpenMetrics text format ([`OPENMETRICS_CONTENT_TYPE`]), ending
    /// with `# EOF`.
    pub fn render_openmetrics(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}
