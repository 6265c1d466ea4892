//! OpenTelemetry instruments, collected by the SDK's periodic reader into an in-memory
//! exporter.

#![cfg(feature = "opentelemetry")]

mod common;

use opentelemetry::metrics::MeterProvider as _;
use opentelemetry::{Key, KeyValue, Value};
use opentelemetry_sdk::metrics::data::{AggregatedMetrics, Metric, MetricData, ResourceMetrics};
use opentelemetry_sdk::metrics::{InMemoryMetricExporter, PeriodicReader, SdkMeterProvider};
use pg_pool_core::metrics::HISTOGRAM_BUCKETS;
use pg_pool_metrics::{Kind, Pools, SERIES};

fn find<'a>(exported: &'a [ResourceMetrics], name: &str) -> &'a Metric {
    exported
        .iter()
        .flat_map(|r| r.scope_metrics())
        .flat_map(|s| s.metrics())
        .filter(|m| m.name() == name)
        .last()
        .unwrap_or_else(|| panic!("{name} not exported"))
}

fn has<'a>(mut attrs: impl Iterator<Item = &'a KeyValue>, key: &'static str, value: &str) -> bool {
    attrs.any(|kv| kv.key == Key::from_static_str(key) && kv.value == Value::from(value.to_owned()))
}

const POOL: &str = "db.client.connection.pool.name";

#[tokio::test]
async fn semantic_convention_instruments() {
    let (primary, replica) = (common::pool("primary").await, common::pool("replica").await);
    common::exercise(&primary, 4).await;
    let pools = Pools::new();
    pools.add(primary.clone()).add(replica.clone());

    let exporter = InMemoryMetricExporter::default();
    let provider = SdkMeterProvider::builder()
        .with_reader(PeriodicReader::builder(exporter.clone()).build())
        .build();
    let instruments = pg_pool_metrics::otel::register(&provider.meter("pg-pool"), pools);
    instruments.record_histograms();
    provider.force_flush().unwrap();
    let exported = exporter.get_finished_metrics().unwrap();

    for series in SERIES {
        let metric = find(&exported, series.otel_name);
        if !series.unit.is_empty() {
            assert_eq!(metric.unit(), series.unit, "{}", series.otel_name);
        }
        match (series.kind, metric.data()) {
            (Kind::Gauge, AggregatedMetrics::I64(MetricData::Sum(sum))) => {
                assert!(!sum.is_monotonic(), "{}: UpDownCounter", series.otel_name);
            }
            (Kind::Gauge, AggregatedMetrics::U64(MetricData::Gauge(_))) => {
                assert_eq!(series.otel_name, "db.client.connection.draining");
            }
            (Kind::Counter, AggregatedMetrics::U64(MetricData::Sum(sum))) => {
                assert!(sum.is_monotonic(), "{}: Counter", series.otel_name);
            }
            (Kind::Histogram, AggregatedMetrics::F64(MetricData::Histogram(_))) => {}
            (kind, data) => panic!("{}: {kind:?} exported as {data:?}", series.otel_name),
        }
    }

    let m = primary.metrics();
    let AggregatedMetrics::I64(MetricData::Sum(count)) =
        find(&exported, "db.client.connection.count").data()
    else {
        unreachable!()
    };
    let points: Vec<_> = count.data_points().collect();
    assert_eq!(points.len(), 4, "idle and used, for both pools");
    let idle = points
        .iter()
        .find(|p| {
            has(p.attributes(), POOL, "primary")
                && has(p.attributes(), "db.client.connection.state", "idle")
        })
        .expect("primary idle");
    assert_eq!(idle.value(), m.idle as i64);

    let AggregatedMetrics::U64(MetricData::Sum(timeouts)) =
        find(&exported, "db.client.connection.timeouts").data()
    else {
        unreachable!()
    };
    let primary_timeouts = timeouts
        .data_points()
        .find(|p| has(p.attributes(), POOL, "primary"))
        .expect("primary timeouts");
    assert_eq!(primary_timeouts.value(), 1);

    let AggregatedMetrics::F64(MetricData::Histogram(wait)) =
        find(&exported, "db.client.connection.wait_time").data()
    else {
        unreachable!()
    };
    let point = wait
        .data_points()
        .find(|p| has(p.attributes(), POOL, "primary"))
        .expect("primary wait_time");
    println!(
        "wait_time: count {} sum {} buckets {:?}",
        point.count(),
        point.sum(),
        point.bucket_counts().collect::<Vec<_>>()
    );
    assert_eq!(point.count(), m.wait_time.count());
    // pg-pool's bounds, so each replayed sample lands in the bucket it came from.
    assert_eq!(point.bounds().count(), HISTOGRAM_BUCKETS - 1);
    let buckets: Vec<u64> = point.bucket_counts().collect();
    assert_eq!(buckets.as_slice(), m.wait_time.counts().as_slice());

    // Replaying again without new traffic adds nothing.
    instruments.record_histograms();
    provider.force_flush().unwrap();
    let exported = exporter.get_finished_metrics().unwrap();
    let AggregatedMetrics::F64(MetricData::Histogram(wait)) =
        find(&exported, "db.client.connection.wait_time").data()
    else {
        unreachable!()
    };
    let again = wait
        .data_points()
        .find(|p| has(p.attributes(), POOL, "primary"))
        .unwrap();
    assert_eq!(
        again.count(),
        m.wait_time.count(),
        "cumulative, no double counting"
    );
    provider.shutdown().unwrap();
}
