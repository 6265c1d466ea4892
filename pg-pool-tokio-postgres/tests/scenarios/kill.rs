//! Backends killed by the server (`pg_terminate_backend`): with test-on-checkout on, no
//! dead connection is handed out, let alone twice.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use pg_pool_core::DestroyReason;
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::PgRuntime;

use crate::common::{backend_pids, backends, blocking, eventually, pg_config, pool, pool_config};

pub(crate) async fn terminated_backends_never_handed_out<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let app = format!("tp-kill-{tag}");
    let mut config = pool_config(8);
    config.min_idle = 4;
    config.test_on_checkout = true;
    config.test_on_checkout_after = Duration::ZERO;
    let pool = pool::<R>(pg_config(cluster, None, &app), config).await;
    let settled = eventually::<R, _, _>(Duration::from_secs(5), || async {
        let m = pool.metrics();
        m.idle >= 4 && m.size == m.idle && backends(cluster, &app).await == m.idle
    })
    .await;
    assert!(settled.is_some(), "pool settles: {:?}", pool.metrics());
    let killed: HashSet<i32> = backend_pids(cluster, &app).await.into_iter().collect();
    let app2 = app.clone();
    let terminated = blocking(move || cluster.terminate_backends(&app2).unwrap()).await;
    assert_eq!(terminated, killed.len());

    let started = Instant::now();
    let mut seen = HashSet::new();
    let mut held = Vec::new();
    for _ in 0..killed.len() + 2 {
        let conn = pool.get().await.expect("callers see no error");
        let pid = conn.backend_pid().await.expect("a live session");
        assert!(!killed.contains(&pid), "a dead connection was handed out");
        assert!(
            seen.insert(pid),
            "a connection was handed out twice at once"
        );
        held.push(conn);
    }
    drop(held);
    let m = pool.metrics();
    println!(
        "[{tag}] {} checkouts after killing {} idle backends took {:?}; destroyed broken={} ping_failed={}",
        killed.len() + 2,
        killed.len(),
        started.elapsed(),
        m.destroys_for(DestroyReason::Broken),
        m.destroys_for(DestroyReason::PingFailed),
    );
    assert_eq!(
        m.destroys_for(DestroyReason::Broken) + m.destroys_for(DestroyReason::PingFailed),
        killed.len() as u64,
        "{m:?}"
    );
    pool.drain().await;
}
