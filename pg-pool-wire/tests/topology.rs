//! Topology on real servers: a server that turns read-only (the stale-primary case of a
//! failover) makes the pool evict every connection to it at once, and a cluster pool over
//! a real primary and streaming replica routes reads and keeps them off a replica whose
//! replay lags.

mod common;

use std::time::{Duration, Instant};

use common::{blocking, own_cluster, pool_config, wire_config, wire_pool};
use pg_pool_core::{ClusterPool, DestroyReason, LifecycleHooks, ReadPolicy};
use pg_pool_test_support::ReplicatedCluster;
use pg_pool_wire::{WireConfig, WireConnector, WirePool};

/// A write refused with `25006` (the server became read-only, as an old primary does
/// after a failover) evicts every pooled connection at once, not one failure per
/// connection; the pool reconnects at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_only_server_evicts_every_connection() {
    let cluster = own_cluster();
    let app = "topology-ro";
    let pool = wire_pool(
        wire_config(cluster, None, app),
        pool_config(4),
        LifecycleHooks::default(),
    )
    .await;
    {
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(pool.get().await.unwrap());
        }
        held[0]
            .execute("CREATE TABLE IF NOT EXISTS topology_ro (n int)")
            .await
            .unwrap();
    }
    assert_eq!(pool.metrics().idle, 4);
    blocking(move || {
        cluster
            .sql("ALTER SYSTEM SET default_transaction_read_only = on")
            .unwrap();
        cluster.sql("SELECT pg_reload_conf()").unwrap()
    })
    .await;
    // Existing sessions see the reloaded default on their next transaction.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut conn = pool.get().await.unwrap();
    let error = conn
        .execute("INSERT INTO topology_ro VALUES (1)")
        .await
        .expect_err("the server is read-only now");
    assert_eq!(error.code(), Some("25006"), "{error}");
    let started = Instant::now();
    drop(conn);
    let m = pool.metrics();
    println!("after one 25006: {m:?} in {:?}", started.elapsed());
    assert_eq!(m.server_changes, 1, "{m:?}");
    assert_eq!(m.idle, 0, "every idle connection evicted at once: {m:?}");
    assert_eq!(m.destroys_for(DestroyReason::Evicted), 4, "{m:?}");
    blocking(move || {
        cluster
            .sql("ALTER SYSTEM RESET default_transaction_read_only")
            .unwrap();
        cluster.sql("SELECT pg_reload_conf()").unwrap()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut conn = pool.get().await.expect("a fresh connection");
    conn.execute("INSERT INTO topology_ro VALUES (2)")
        .await
        .expect("writable again");
    drop(conn);
    pool.drain().await;
}

fn member_pool_config(name: &str) -> pg_pool_core::ConnPoolConfig {
    let mut config = pool_config(3);
    config.name = name.into();
    config
}

/// A cluster pool over a real primary and streaming replica: writes on the primary,
/// reads on the replica; pausing the replica's replay makes its lag pass `max_lag`, and
/// reads move to the primary until it catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lagging_replica_loses_its_reads() {
    let cluster: &'static ReplicatedCluster = Box::leak(Box::new(
        blocking(|| ReplicatedCluster::start(1).expect("a primary and a replica")).await,
    ));
    let primary_url = cluster.member(0).unwrap().url().to_owned();
    let replica_url = cluster.member(1).unwrap().url().to_owned();
    let primary: WirePool = WirePool::builder(WireConnector::new(
        WireConfig::from_url(&primary_url).unwrap(),
    ))
    .config(member_pool_config("primary"))
    .hooks(LifecycleHooks::default())
    .build()
    .await
    .unwrap();
    let replica: WirePool = WirePool::builder(WireConnector::new(
        WireConfig::from_url(&replica_url).unwrap(),
    ))
    .config(member_pool_config("replica"))
    .hooks(LifecycleHooks::default())
    .build()
    .await
    .unwrap();
    {
        use pg_pool_core::ReplicaLag;
        let mut conn = replica.get().await.unwrap();
        let lag = conn.replica_lag().await;
        println!("replica lag before the cluster starts: {lag:?}");
        assert!(matches!(lag, Ok(Some(_))), "{lag:?}");
    }
    let mut policy = ReadPolicy::default();
    policy.max_lag = Some(Duration::from_millis(500));
    policy.check_interval = Duration::from_millis(100);
    let pools = ClusterPool::with_lag_checks(primary, vec![replica], policy).unwrap();

    let mut writer = pools.get_write().await.unwrap();
    writer
        .execute("CREATE TABLE IF NOT EXISTS lag_probe (n int)")
        .await
        .unwrap();
    drop(writer);
    let in_recovery = |value: Option<String>| value.as_deref() == Some("t");
    let mut reader = pools.get_read().await.unwrap();
    assert!(
        in_recovery(
            reader
                .query_value("SELECT pg_is_in_recovery()")
                .await
                .unwrap()
        ),
        "reads go to the replica"
    );
    drop(reader);

    blocking(move || cluster.pause_replay(1).unwrap()).await;
    let paused = Instant::now();
    // Writes keep arriving; the replica receives them but does not replay them.
    let mut out_of_rotation = None;
    while paused.elapsed() < Duration::from_secs(15) {
        let mut writer = pools.get_write().await.unwrap();
        writer
            .execute("INSERT INTO lag_probe VALUES (1)")
            .await
            .unwrap();
        drop(writer);
        if !pools.replica_health()[0].0 {
            out_of_rotation = Some(paused.elapsed());
            break;
        }

        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let took = out_of_rotation.expect("the lagging replica lost its reads");
    println!(
        "replay paused: the replica lost its reads after {took:?} (max lag 500 ms, checks every 100 ms); measured lag {:?}",
        pools.replica_health()[0].1
    );
    let mut reader = pools.get_read().await.unwrap();
    assert!(
        !in_recovery(
            reader
                .query_value("SELECT pg_is_in_recovery()")
                .await
                .unwrap()
        ),
        "reads fell back to the primary"
    );
    drop(reader);

    blocking(move || cluster.resume_replay(1).unwrap()).await;
    let resumed = Instant::now();
    while !pools.replica_health()[0].0 {
        assert!(
            resumed.elapsed() < Duration::from_secs(15),
            "the replica caught up"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    println!(
        "replay resumed: reads back on the replica after {:?}",
        resumed.elapsed()
    );
    let mut reader = pools.get_read().await.unwrap();
    assert!(in_recovery(
        reader
            .query_value("SELECT pg_is_in_recovery()")
            .await
            .unwrap()
    ));
    drop(reader);
    let report = pools.drain_timeout(Duration::from_secs(5)).await;
    assert!(report.is_complete(), "{report:?}");
}
