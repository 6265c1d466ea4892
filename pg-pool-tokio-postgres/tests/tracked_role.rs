//! A standby promoted under a pool: its sessions see `in_hot_standby` change (the server
//! reports it with a `ParameterStatus`), the protocol tap notices, and the pool starts a
//! new generation (`Poolable::server_changed`) instead of handing the sessions out again.

use std::time::Duration;

use pg_pool_core::{ConnPoolConfig, DestroyReason};
use pg_pool_test_support::ReplicatedCluster;
use pg_pool_tokio::Tokio;
use pg_pool_tokio_postgres::{PgConfig, PgConnector, PgPool};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_standby_starts_a_new_generation() {
    let cluster = tokio::task::spawn_blocking(|| ReplicatedCluster::start(1).expect("a standby"))
        .await
        .unwrap();
    let config = PgConfig::from_url(cluster.member(1).unwrap().url()).expect("the URL parses");
    let mut pool_config = ConnPoolConfig::default();
    pool_config.max_size = 2;
    pool_config.test_on_checkout = false;
    let pool: PgPool<Tokio> = PgPool::builder(PgConnector::<Tokio>::current(config).unwrap())
        .config(pool_config)
        .build()
        .await
        .expect("pool builds");
    let conn = pool.get().await.unwrap();
    let standby: bool = conn
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(standby, "member 1 starts as a standby");
    let pid = conn.backend_pid().await.unwrap();
    drop(conn);
    assert_eq!(pool.metrics().server_changes, 0, "no change yet");

    let cluster = tokio::task::spawn_blocking(move || {
        cluster.promote(1).expect("promote");
        cluster
    })
    .await
    .unwrap();

    // The next statement on the old session carries the change.
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.backend_pid().await.unwrap(), pid, "the same session");
    let standby: bool = conn
        .query_one("SELECT pg_is_in_recovery()", &[])
        .await
        .unwrap()
        .get(0);
    assert!(!standby, "promoted");
    drop(conn);
    let m = pool.metrics();
    println!("after the promotion: {m:?}");
    assert_eq!(m.server_changes, 1, "a new generation");
    assert!(
        m.destroys_for(DestroyReason::Evicted) >= 1,
        "the session was not kept"
    );
    let conn = pool.get().await.unwrap();
    assert_ne!(conn.backend_pid().await.unwrap(), pid, "a new session");
    drop(conn);
    tokio::time::timeout(Duration::from_secs(10), pool.drain())
        .await
        .expect("drained");
    drop(cluster);
}
