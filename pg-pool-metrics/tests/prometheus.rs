//! The Prometheus collector over several pools: one `# HELP`/`# TYPE` per family, the
//! semantic-convention names, real histograms.

#![cfg(feature = "prometheus")]

mod common;

use std::collections::BTreeMap;

use pg_pool_core::metrics::HISTOGRAM_BUCKETS;
use pg_pool_metrics::prometheus::{PoolCollector, PrometheusExporter};
use pg_pool_metrics::{Kind, Pools, SERIES, from_fn};
use prometheus_client::registry::Registry;

/// Parses the exposition into `(name{labels}, value)`; panics on a line that is not a
/// comment or a sample.
fn samples(text: &str) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    for line in text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        let (series, value) = line.rsplit_once(' ').expect("sample line");
        let value = if value == "+Inf" {
            f64::INFINITY
        } else {
            value.parse().expect(line)
        };
        assert!(
            out.insert(series.to_owned(), value).is_none(),
            "duplicate sample {series}"
        );
    }
    out
}

#[tokio::test]
async fn two_pools_one_descriptor_per_family() {
    let (primary, replica) = (common::pool("primary").await, common::pool("replica").await);
    common::exercise(&primary, 10).await;
    common::exercise(&replica, 3).await;
    let pools = Pools::new();
    pools.add(primary.clone()).add(replica.clone());
    let text = PrometheusExporter::new(pools).render();
    println!("{text}");

    for series in SERIES {
        let help = format!("# HELP {} ", series.prometheus_name);
        let kind = match series.kind {
            Kind::Gauge => "gauge",
            Kind::Counter => "counter",
            Kind::Histogram => "histogram",
        };
        let type_line = format!("# TYPE {} {kind}\n", series.prometheus_name);
        assert_eq!(text.matches(&help).count(), 1, "{help}");
        assert_eq!(text.matches(&type_line).count(), 1, "{type_line}");
    }
    assert_eq!(text.matches("# HELP").count(), SERIES.len());
    assert_eq!(text.matches("# TYPE").count(), SERIES.len());

    let samples = samples(&text);
    for (pool, handle) in [("primary", &primary), ("replica", &replica)] {
        let m = handle.metrics();
        let get = |name: &str, extra: &str| {
            let key = format!("{name}{{db_client_connection_pool_name=\"{pool}\"{extra}}}");
            *samples.get(&key).unwrap_or_else(|| panic!("missing {key}"))
        };
        assert_eq!(
            get(
                "db_client_connection_count",
                ",db_client_connection_state=\"idle\""
            ),
            m.idle as f64
        );
        assert_eq!(
            get(
                "db_client_connection_count",
                ",db_client_connection_state=\"used\""
            ),
            m.active as f64
        );
        assert_eq!(get("db_client_connection_max", ""), 2.0);
        assert_eq!(get("db_client_connection_idle_max", ""), 2.0);
        assert_eq!(get("db_client_connection_idle_min", ""), 1.0);
        assert_eq!(get("db_client_connection_timeouts_total", ""), 1.0);
        assert_eq!(
            get(
                "db_client_connection_destroys_total",
                ",reason=\"marked_broken\""
            ),
            1.0
        );
        assert_eq!(
            get("db_client_connection_destroys_total", ",reason=\"evicted\""),
            0.0
        );
        assert_eq!(
            get("db_client_connection_checkouts_total", ""),
            m.checkouts as f64
        );
        assert_eq!(
            get("db_client_connection_creates_total", ""),
            m.creates as f64
        );

        for (name, histogram) in [
            ("db_client_connection_wait_time_seconds", &m.wait_time),
            ("db_client_connection_create_time_seconds", &m.connect_time),
            ("db_client_connection_use_time_seconds", &m.usage_time),
        ] {
            let mut previous = 0.0;
            let buckets: Vec<(String, f64)> = samples
                .iter()
                .filter(|(k, _)| {
                    k.starts_with(&format!(
                        "{name}_bucket{{db_client_connection_pool_name=\"{pool}\","
                    ))
                })
                .map(|(k, v)| (k.clone(), *v))
                .collect();
            assert_eq!(
                buckets.len(),
                HISTOGRAM_BUCKETS,
                "{name}: one line per bucket"
            );
            // Cumulative counts never go down as `le` grows.
            let mut sorted: Vec<(f64, f64)> = buckets
                .iter()
                .map(|(k, v)| {
                    let le = k.split("le=\"").nth(1).unwrap().trim_end_matches("\"}");
                    (
                        if le == "+Inf" {
                            f64::INFINITY
                        } else {
                            le.parse().unwrap()
                        },
                        *v,
                    )
                })
                .collect();
            sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
            for (_, count) in &sorted {
                assert!(*count >= previous, "{name} buckets cumulative");
                previous = *count;
            }
            assert_eq!(sorted[0].0, 1e-6, "first bound 1 µs");
            let count = get(&format!("{name}_count"), "");
            assert_eq!(previous, count, "{name}: +Inf equals _count");
            assert_eq!(count, histogram.count() as f64);
            let sum = get(&format!("{name}_sum"), "");
            assert!(
                (sum - histogram.sum().as_secs_f64()).abs() < 1e-9,
                "{name} sum {sum}"
            );
        }
        let waited = get("db_client_connection_wait_time_seconds_sum", "");
        println!("{pool}: waited {waited} s in total");
        assert!(
            waited >= 0.015,
            "one checkout waited behind a connection held 20 ms: {waited}"
        );
    }
}

#[tokio::test]
async fn labels_are_escaped_and_gone_sources_dropped() {
    let odd = common::pool("we\"ird\\name\nline").await;
    let pools = Pools::new();
    pools.add(odd.clone());
    pools.add(from_fn(|| None));
    let mut registry = Registry::default();
    registry.register_collector(Box::new(PoolCollector::new(pools.clone())));
    let mut text = String::new();
    prometheus_client::encoding::prometheus_text::encode(&mut text, &registry).unwrap();
    assert!(
        text.contains(
            r#"db_client_connection_max{db_client_connection_pool_name="we\"ird\\name\nline"} 2"#
        ),
        "{text}"
    );
    assert_eq!(pools.len(), 1, "the gone source is forgotten");
    assert_eq!(pools.remove("we\"ird\\name\nline"), 1);
    assert!(pools.is_empty());
}

#[tokio::test]
async fn a_panicking_source_is_skipped() {
    let pool = common::pool("steady").await;
    let pools = Pools::new();
    pools.add(from_fn(|| panic!("source bug")));
    pools.add(pool.clone());
    let exporter = PrometheusExporter::new(pools);
    let text = exporter.render();
    assert!(
        text.contains("db_client_connection_pool_name=\"steady\""),
        "{text}"
    );
    let open = exporter.render_openmetrics();
    assert!(open.ends_with("# EOF\n"), "{open}");
    assert!(
        open.contains("# TYPE db_client_connection_timeouts counter"),
        "{open}"
    );
}

#[tokio::test]
async fn a_weak_pool_is_exported_until_dropped_and_never_kept_open() {
    let pool = common::pool("weakly-held").await;
    let pools = Pools::new();
    pools.add(pool.downgrade());
    let exporter = PrometheusExporter::new(pools.clone());
    let text = exporter.render();
    assert!(
        text.contains(
            r#"db_client_connection_max{db_client_connection_pool_name="weakly-held"} 2"#
        ),
        "{text}"
    );
    // The exporter's handle does not keep the pool open: dropping the application's last
    // handle closes it, and the source is forgotten at the next collection.
    let weak = pool.downgrade();
    drop(pool);
    assert!(weak.upgrade().is_none(), "a closed pool never reopens");
    assert!(weak.metrics().is_none());
    let text = exporter.render();
    assert!(!text.contains("weakly-held"), "{text}");
    assert!(pools.is_empty(), "the gone pool is forgotten");
}
