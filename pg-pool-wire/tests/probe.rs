//! The health probe evicts an idle connection whose network path stalled, within the probe
//! interval plus the probe timeout.

mod common;

use std::time::{Duration, Instant};

use common::{eventually, pool_config, wire_config, wire_pool};
use pg_pool_core::{DestroyReason, LifecycleHooks};
use pg_pool_test_support::{FaultProxy, ProxyMode, TestCluster};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_evicts_a_stalled_idle_connection() {
    let cluster = TestCluster::shared();
    let proxy = FaultProxy::start(cluster.addr()).unwrap();
    let interval = Duration::from_millis(300);
    let probe_timeout = Duration::from_millis(500);
    let mut config = pool_config(2);
    config.health_check_interval = Some(interval);
    config.probe_timeout = probe_timeout;
    config.test_on_checkout = false;
    let pool = wire_pool(
        wire_config(cluster, Some(proxy.addr()), "probe-stall"),
        config,
        LifecycleHooks::default(),
    )
    .await;

    let pid = {
        let mut conn = pool.get().await.unwrap();
        conn.execute("SELECT 1").await.unwrap();
        conn.backend_pid()
    };
    // Idle and healthy: the probe pings it and keeps it.
    tokio::time::sleep(interval * 3).await;
    let m = pool.metrics();
    assert_eq!(
        (m.idle, m.destroys_for(DestroyReason::PingFailed)),
        (1, 0),
        "{m:?}"
    );

    proxy.set_mode(ProxyMode::Stall);
    let stalled = Instant::now();
    // Worst case: the connection was just pinged, so it becomes due one interval later, the
    // probe tick after that finds it (another interval at most), then the ping times out.
    let bound = interval * 2 + probe_timeout;
    let evicted = eventually(bound + Duration::from_secs(2), || async {
        pool.metrics().destroys_for(DestroyReason::PingFailed) == 1
    })
    .await;
    let took = stalled.elapsed();
    println!(
        "stalled connection evicted after {took:?} (interval {interval:?}, probe timeout \
         {probe_timeout:?}, bound {bound:?})"
    );
    assert!(
        evicted.is_some(),
        "the probe never evicted it: {:?}",
        pool.metrics()
    );
    assert!(
        took >= probe_timeout,
        "evicted before the ping could time out"
    );
    assert!(
        took <= bound + Duration::from_millis(300),
        "evicted too late: {took:?} > {bound:?}"
    );
    assert_eq!(pool.metrics().idle, 0);

    // With the path healthy again, the pool serves with a new session.
    proxy.set_mode(ProxyMode::Pass);
    let mut conn = pool.get().await.unwrap();
    assert_ne!(conn.backend_pid(), pid);
    assert_eq!(
        conn.query_value("SELECT 1").await.unwrap().as_deref(),
        Some("1")
    );
    drop(conn);
    pool.drain().await;
}
