//! The Grafana dashboard: valid JSON, the panels operators need, and only series that the
//! Prometheus exposition has.

mod support;

use std::time::Duration;

use pg_pool::metrics::Pools;
use pg_pool::metrics::prometheus::PrometheusExporter;
use pg_pool::{ConnPool, ConnPoolConfig, LifecycleHooks, Poolable};

#[derive(Debug)]
struct Conn;

impl Poolable for Conn {
    type Error = std::io::Error;
}

/// The exposition of two in-memory pools that saw checkouts, waits and a timeout (the names
/// do not depend on the driver).
async fn exposition() -> String {
    let pools = Pools::new();
    let mut handles = Vec::new();
    for name in ["primary", "replica"] {
        let mut config = ConnPoolConfig::default();
        config.name = name.into();
        config.max_size = 1;
        config.checkout_timeout = Duration::from_millis(20);
        let pool = ConnPool::<Conn>::builder(|| async { Ok(Conn) })
            .config(config)
            .hooks(LifecycleHooks::default())
            .build()
            .await
            .unwrap();
        let held = pool.get().await.unwrap();
        assert!(pool.get().await.is_err(), "times out");
        drop(held);
        pools.add(pool.clone());
        handles.push(pool);
    }
    PrometheusExporter::new(pools).render()
}

#[tokio::test]
async fn dashboard_names_only_exported_series() {
    let dashboard = support::dashboard();
    assert!(dashboard["title"].as_str().is_some_and(|t| !t.is_empty()));
    assert!(dashboard["uid"].as_str().is_some_and(|t| !t.is_empty()));
    let panels = dashboard["panels"].as_array().expect("panels");
    let mut ids: Vec<_> = panels
        .iter()
        .map(|p| p["id"].as_u64().expect("panel id"))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), panels.len(), "panel ids are unique");
    for panel in panels {
        for key in ["x", "y", "w", "h"] {
            assert!(
                panel["gridPos"][key].is_u64(),
                "{}: gridPos.{key}",
                panel["title"]
            );
        }
        let targets = panel["targets"].as_array().expect("targets");
        assert!(!targets.is_empty(), "{} has queries", panel["title"]);
        let mut refs: Vec<_> = targets
            .iter()
            .map(|t| t["refId"].as_str().unwrap())
            .collect();
        refs.sort_unstable();
        refs.dedup();
        assert_eq!(
            refs.len(),
            targets.len(),
            "{}: refIds unique",
            panel["title"]
        );
    }

    let text = exposition().await;
    let (samples, labels) = support::exposition_names(&text);
    let queries = support::dashboard_queries(&dashboard);
    let mut named = Vec::new();
    for (place, expr) in &queries {
        let words = support::identifiers(expr);
        assert!(
            words
                .iter()
                .any(|w| w.starts_with("db_client_connection_") && samples.contains(w)),
            "{place} reads at least one pg-pool series: {expr}"
        );
        for word in words {
            let known = samples.contains(&word)
                || labels.contains(&word)
                || support::PROMQL_WORDS.contains(&word.as_str());
            assert!(
                known,
                "{place}: {word:?} is neither an exported series, a label nor PromQL: {expr}"
            );
            if samples.contains(&word) {
                named.push(word);
            }
        }
    }
    named.sort();
    named.dedup();
    println!("the dashboard reads {} series: {named:?}", named.len());
    // The panels operators need.
    let all: String = queries
        .iter()
        .map(|(_, e)| e.as_str())
        .collect::<Vec<_>>()
        .join("\n");
    for needed in [
        "db_client_connection_count{db_client_connection_state=\"used\"",
        "db_client_connection_max",
        "db_client_connection_pending_requests",
        "histogram_quantile(0.99, sum by (le, db_client_connection_pool_name) (rate(db_client_connection_wait_time_seconds_bucket",
        "db_client_connection_timeouts_total",
        "sum by (db_client_connection_pool_name, reason) (rate(db_client_connection_destroys_total",
    ] {
        assert!(
            all.contains(needed),
            "the dashboard has a panel on {needed}"
        );
    }
}

#[test]
fn identifiers_skip_strings_durations_and_variables() {
    let words = support::identifiers(
        r#"sum by (le) (rate(x_bucket{pool=~"$pool", a="b c"}[$__rate_interval])) > 0.5 and y[5m]"#,
    );
    assert_eq!(
        words,
        [
            "sum", "by", "le", "rate", "x_bucket", "pool", "a", "and", "y"
        ]
    );
}
