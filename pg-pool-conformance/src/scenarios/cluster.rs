//! Read/write routing: writes on the primary, reads spread over healthy replicas, a
//! failing or lagging replica skipped until it recovers, the primary as the fallback.

use std::sync::Arc;
use std::time::{Duration, Instant};

use pg_pool_core::{ClusterPool, LifecycleHooks, PoolError, ReadPolicy, Role, Runtime};

use crate::harness::{MockPool, mock_pool, sleep, test_config};
use crate::mock::{Control, Gate, MockConn, Step};

async fn member<R: Runtime>(name: &'static str) -> (MockPool<R>, Arc<Control>) {
    let mut config = test_config();
    config.name = name.into();
    config.checkout_timeout = Duration::from_millis(300);
    let hooks = LifecycleHooks::<MockConn>::default().on_create(move |conn| {
        Box::pin(async move {
            conn.tag = Some(name.into());
            Ok(())
        })
    });
    mock_pool::<R>(config, hooks).await
}

async fn read_from<R: Runtime>(cluster: &ClusterPool<MockConn, R>) -> String {
    let guard = cluster.get_read().await.expect("a read connection");
    guard.tag.clone().expect("tagged by its create hook")
}

async fn until<R: Runtime>(what: &str, mut done: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < Duration::from_secs(5), "{what}");
        sleep::<R>(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// Writes go to the primary, reads alternate over the replicas; a replica whose checkout
/// fails is skipped (the read still succeeds) until the background check sees it serve
/// again; with every replica down, reads fall back to the primary, or fail when the
/// policy says so.
pub async fn cluster_routes_reads_and_writes<R: Runtime>() {
    let (primary, _p) = member::<R>("primary").await;
    let (one, one_control) = member::<R>("replica-1").await;
    let (two, two_control) = member::<R>("replica-2").await;
    let mut policy = ReadPolicy::default();
    policy.check_interval = Duration::from_millis(30);
    let cluster = ClusterPool::new(primary, vec![one, two], policy).unwrap();
    let roles: Vec<Role> = cluster.members().map(|(role, _)| role).collect();
    assert_eq!(roles, [Role::Primary, Role::Replica, Role::Replica]);
    let write = cluster.get_write().await.unwrap();
    assert_eq!(write.tag.as_deref(), Some("primary"));
    drop(write);
    let mut reads = Vec::new();
    for _ in 0..4 {
        reads.push(read_from(&cluster).await);
    }
    reads.sort();
    assert_eq!(reads, ["replica-1", "replica-1", "replica-2", "replica-2"]);

    // Replica 1 goes down: its idle connection dies and nothing new can be opened.
    one_control.set(Step::Connect, Gate::Fail);
    cluster.members().nth(1).unwrap().1.evict_all();
    for _ in 0..4 {
        assert_eq!(read_from(&cluster).await, "replica-2");
    }
    assert!(
        !cluster.replica_health()[0].0,
        "replica-1 is out of rotation"
    );

    // Both down: the primary serves reads.
    two_control.set(Step::Connect, Gate::Fail);
    cluster.members().nth(2).unwrap().1.evict_all();
    assert_eq!(read_from(&cluster).await, "primary");
    assert_eq!(read_from(&cluster).await, "primary");

    // Replica 1 comes back: the background check gives it reads again.
    one_control.set(Step::Connect, Gate::Pass);
    let took = until::<R>("replica-1 healthy again", || cluster.replica_health()[0].0).await;
    println!("a recovered replica got reads back after {took:?} (check interval 30 ms)");
    assert_eq!(read_from(&cluster).await, "replica-1");
    cluster.drain().await;

    // No fallback: with no healthy replica, reads fail clearly.
    let (primary, _p) = member::<R>("primary").await;
    let (one, one_control) = member::<R>("replica-1").await;
    one_control.set(Step::Connect, Gate::Fail);
    let mut policy = ReadPolicy::default();
    policy.fallback_to_primary = false;
    policy.check_interval = Duration::from_secs(60);
    let cluster = ClusterPool::new(primary, vec![one], policy).unwrap();
    assert!(cluster.get_read().await.is_err(), "its checkout fails");
    match cluster.get_read().await {
        Err(error @ PoolError::NoHealthyReplica) => {
            assert!(
                error.to_string().contains("no replica is healthy"),
                "{error}"
            );
        }
        other => panic!("expected NoHealthyReplica, got {:?}", other.map(|_| ())),
    }
    let report = cluster.drain_timeout(Duration::from_secs(2)).await;
    assert!(report.is_complete(), "{report:?}");
}

/// A replica lagging beyond `max_lag` gets no reads until it catches up; the lag is
/// measured in the background.
pub async fn lagging_replica_gets_no_reads<R: Runtime>() {
    let (primary, _p) = member::<R>("primary").await;
    let (one, one_control) = member::<R>("replica-1").await;
    let (two, two_control) = member::<R>("replica-2").await;
    one_control.set_lag(Some(Duration::ZERO));
    two_control.set_lag(Some(Duration::ZERO));
    let mut policy = ReadPolicy::default();
    policy.max_lag = Some(Duration::from_millis(500));
    policy.check_interval = Duration::from_millis(30);
    let cluster = ClusterPool::with_lag_checks(primary, vec![one, two], policy).unwrap();
    until::<R>("first lag measurement", || {
        cluster
            .replica_health()
            .iter()
            .all(|(_, lag)| lag.is_some())
    })
    .await;
    one_control.set_lag(Some(Duration::from_secs(3)));
    let took = until::<R>("replica-1 out of rotation", || {
        !cluster.replica_health()[0].0
    })
    .await;
    println!("a replica lagging 3 s (max 500 ms) lost its reads after {took:?}");
    assert_eq!(
        cluster.replica_health()[0].1,
        Some(Duration::from_secs(3)),
        "the lag measured"
    );
    for _ in 0..4 {
        assert_eq!(read_from(&cluster).await, "replica-2");
    }
    one_control.set_lag(Some(Duration::from_millis(10)));
    until::<R>("replica-1 back", || cluster.replica_health()[0].0).await;
    let mut reads: Vec<String> = Vec::new();
    for _ in 0..4 {
        reads.push(read_from(&cluster).await);
    }
    assert!(reads.iter().any(|r| r == "replica-1"), "{reads:?}");
    // A replica that was promoted reports no lag: it is not a standby any more, and reads
    // on it are as fresh as can be.
    two_control.set_lag(None);
    sleep::<R>(Duration::from_millis(100)).await;
    assert!(cluster.replica_health()[1].0);
    cluster.drain().await;
}
