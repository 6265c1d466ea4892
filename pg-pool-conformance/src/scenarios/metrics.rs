//! Metrics: counters, histograms and the Prometheus rendering agree with what happened.

use std::time::Duration;

use pg_pool_core::{LifecycleHooks, Runtime};

use crate::harness::{mock_pool, settle, sleep, spawn, test_config};

/// Counters and histograms after a known workload; Prometheus text carries them.
pub async fn metrics_match_workload<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 1;
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let held = pool.get().await.unwrap();
    let waiter = spawn::<R, _>({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    sleep::<R>(Duration::from_millis(30)).await;
    let m = pool.metrics();
    assert_eq!((m.size, m.active, m.waiters), (1, 1, 1), "{m:?}");
    drop(held);
    waiter.join().await.unwrap();
    let m = settle(&pool, &control).await;
    assert_eq!(
        (m.creates, m.checkouts, m.timeouts, m.destroys),
        (1, 2, 0, 0)
    );
    assert_eq!(m.wait_time.count(), 2);
    assert!(
        m.wait_time.percentile(1.0) >= Duration::from_millis(16),
        "{:?}",
        m.wait_time
    );
    assert_eq!(m.usage_time.count(), 2);
    assert_eq!(m.connect_time.count(), 1);
    let text = m.render_prometheus("mock \"pool\"");
    assert!(
        text.contains("pg_pool_checkouts_total{pool=\"mock \\\"pool\\\"\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("pg_pool_wait_seconds_count{pool=\"mock \\\"pool\\\"\"} 2"),
        "{text}"
    );
    assert!(text.contains("le=\"+Inf\""));
    assert!(
        text.contains("pg_pool_destroys_total{pool=\"mock \\\"pool\\\"\",reason=\"broken\"} 0")
    );
}
