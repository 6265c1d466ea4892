//! The `metrics` facade publisher against a recorder that keeps what it is given.

#![cfg(feature = "metrics")]

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use metrics::{
    Counter, CounterFn, Gauge, GaugeFn, Histogram, HistogramFn, Key, KeyName, Metadata, Recorder,
    SharedString, Unit,
};
use pg_pool_metrics::facade::{NameStyle, Publisher};
use pg_pool_metrics::{Kind, Pools, SERIES};

/// What the recorder holds for one key (`name{k=v,...}` with labels in order).
#[derive(Debug, Default)]
struct Stored {
    value: f64,
    /// Histogram samples as `(value, count)`.
    samples: Vec<(f64, usize)>,
}

#[derive(Debug, Default, Clone)]
struct Capture {
    series: Arc<Mutex<BTreeMap<String, Stored>>>,
    described: Arc<Mutex<BTreeMap<String, Option<Unit>>>>,
}

struct Handle(Capture, String);

impl CounterFn for Handle {
    fn increment(&self, value: u64) {
        self.0
            .series
            .lock()
            .unwrap()
            .entry(self.1.clone())
            .or_default()
            .value += value as f64;
    }
    fn absolute(&self, value: u64) {
        let mut series = self.0.series.lock().unwrap();
        let stored = series.entry(self.1.clone()).or_default();
        stored.value = stored.value.max(value as f64);
    }
}

impl GaugeFn for Handle {
    fn increment(&self, value: f64) {
        self.0
            .series
            .lock()
            .unwrap()
            .entry(self.1.clone())
            .or_default()
            .value += value;
    }
    fn decrement(&self, value: f64) {
        self.0
            .series
            .lock()
            .unwrap()
            .entry(self.1.clone())
            .or_default()
            .value -= value;
    }
    fn set(&self, value: f64) {
        self.0
            .series
            .lock()
            .unwrap()
            .entry(self.1.clone())
            .or_default()
            .value = value;
    }
}

impl HistogramFn for Handle {
    fn record(&self, value: f64) {
        self.record_many(value, 1);
    }
    fn record_many(&self, value: f64, count: usize) {
        let mut series = self.0.series.lock().unwrap();
        series
            .entry(self.1.clone())
            .or_default()
            .samples
            .push((value, count));
    }
}

impl Capture {
    fn handle(&self, key: &Key) -> Arc<Handle> {
        let labels: Vec<String> = key
            .labels()
            .map(|l| format!("{}={}", l.key(), l.value()))
            .collect();
        Arc::new(Handle(
            self.clone(),
            format!("{}{{{}}}", key.name(), labels.join(",")),
        ))
    }
    fn value(&self, key: &str) -> f64 {
        self.series
            .lock()
            .unwrap()
            .get(key)
            .unwrap_or_else(|| panic!("missing {key}"))
            .value
    }
    fn samples(&self, key: &str) -> Vec<(f64, usize)> {
        self.series
            .lock()
            .unwrap()
            .get(key)
            .map(|s| s.samples.clone())
            .unwrap_or_default()
    }
}

impl Recorder for Capture {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned(), unit);
    }
    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned(), unit);
    }
    fn describe_histogram(&self, key: KeyName, unit: Option<Unit>, _: SharedString) {
        self.described
            .lock()
            .unwrap()
            .insert(key.as_str().to_owned(), unit);
    }
    fn register_counter(&self, key: &Key, _: &Metadata<'_>) -> Counter {
        Counter::from_arc(self.handle(key))
    }
    fn register_gauge(&self, key: &Key, _: &Metadata<'_>) -> Gauge {
        Gauge::from_arc(self.handle(key))
    }
    fn register_histogram(&self, key: &Key, _: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.handle(key))
    }
}

const POOL: &str = "db.client.connection.pool.name";

#[tokio::test]
async fn gauges_counters_and_replayed_histograms() {
    let (primary, replica) = (common::pool("primary").await, common::pool("replica").await);
    common::exercise(&primary, 5).await;
    let pools = Pools::new();
    pools.add(primary.clone()).add(replica.clone());
    let publisher = Publisher::new(pools);
    let capture = Capture::default();
    metrics::with_local_recorder(&capture, || {
        publisher.describe();
        publisher.publish();
    });

    let described = capture.described.lock().unwrap().clone();
    assert_eq!(described.len(), SERIES.len());
    for series in SERIES {
        let unit = described[series.otel_name];
        match series.kind {
            Kind::Histogram => assert_eq!(unit, Some(Unit::Seconds), "{}", series.otel_name),
            Kind::Counter => assert_eq!(unit, Some(Unit::Count)),
            Kind::Gauge => assert_eq!(unit, None),
        }
    }

    let m = primary.metrics();
    let state = |s: &str| {
        format!("db.client.connection.count{{{POOL}=primary,db.client.connection.state={s}}}")
    };
    assert_eq!(capture.value(&state("idle")), m.idle as f64);
    assert_eq!(capture.value(&state("used")), m.active as f64);
    assert_eq!(
        capture.value(&format!("db.client.connection.idle.min{{{POOL}=primary}}")),
        1.0
    );
    assert_eq!(
        capture.value(&format!("db.client.connection.timeouts{{{POOL}=primary}}")),
        1.0
    );
    assert_eq!(
        capture.value(&format!("db.client.connection.timeouts{{{POOL}=replica}}")),
        0.0
    );
    assert_eq!(
        capture.value(&format!(
            "db.client.connection.destroys{{{POOL}=primary,reason=marked_broken}}"
        )),
        1.0
    );

    // Every wait sample was replayed once, at a value inside its pg-pool bucket.
    let wait_key = format!("db.client.connection.wait_time{{{POOL}=primary}}");
    let samples = capture.samples(&wait_key);
    let replayed: usize = samples.iter().map(|(_, n)| n).sum();
    println!("wait samples replayed: {samples:?}");
    assert_eq!(replayed as u64, m.wait_time.count());
    assert!(
        samples.iter().any(|(v, _)| *v == 0.0),
        "checkouts that did not wait"
    );
    assert!(
        samples.iter().any(|(v, _)| *v >= 0.016),
        "the checkout that waited 20 ms"
    );

    // A second publication replays only what happened in between.
    common::exercise(&primary, 2).await;
    metrics::with_local_recorder(&capture, || publisher.publish());
    let replayed_after: usize = capture.samples(&wait_key).iter().map(|(_, n)| n).sum();
    let m2 = primary.metrics();
    assert_eq!(replayed_after as u64, m2.wait_time.count());
    assert_eq!(
        capture.value(&format!("db.client.connection.timeouts{{{POOL}=primary}}")),
        2.0
    );
}

#[tokio::test]
async fn prometheus_style_names_and_a_publishing_thread() {
    let pool = common::pool("styled").await;
    let pools = Pools::new();
    pools.add(pool.clone());
    let capture = Capture::default();
    let publisher = Publisher::new(pools).with_names(NameStyle::Prometheus);
    metrics::with_local_recorder(&capture, || publisher.publish());
    assert_eq!(
        capture.value("db_client_connection_count{db_client_connection_pool_name=styled,db_client_connection_state=idle}"),
        1.0
    );
    assert_eq!(
        capture.value("db_client_connection_timeouts_total{db_client_connection_pool_name=styled}"),
        0.0
    );
    // The spawned thread publishes to the global recorder; with none installed the calls
    // are no-ops, and dropping the handle stops and joins the thread promptly.
    let started = std::time::Instant::now();
    let handle = publisher
        .spawn(std::time::Duration::from_secs(3600))
        .unwrap();
    drop(handle);
    println!("stopped the publishing thread in {:?}", started.elapsed());
    assert!(started.elapsed() < std::time::Duration::from_secs(30));
}
