//! Draining: waits for checked-out connections, then no tagged backend remains.

use std::time::{Duration, Instant};

use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::PgRuntime;

use crate::common::{backends, eventually, pg_config, pool, pool_config, sleep, spawn};

pub(crate) async fn no_backend_remains<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let app = format!("tp-drain-{tag}");
    let mut config = pool_config(6);
    config.min_idle = 3;
    let pool = pool::<R>(pg_config(cluster, None, &app), config).await;
    let holders: Vec<_> = (0..2)
        .map(|_| {
            let pool = pool.clone();
            spawn::<R, _>(async move {
                let conn = pool.get().await.unwrap();
                conn.execute("SELECT 1", &[]).await.unwrap();
                sleep::<R>(Duration::from_millis(300)).await;
            })
        })
        .collect();
    let up = eventually::<R, _, _>(Duration::from_secs(3), || async {
        backends(cluster, &app).await >= 3
    })
    .await;
    assert!(up.is_some());
    let started = Instant::now();
    pool.drain().await;
    let drained = started.elapsed();
    for holder in holders {
        holder.recv().await.unwrap();
    }
    assert!(matches!(pool.get().await, Err(e) if e.is_closed()));
    let gone = eventually::<R, _, _>(Duration::from_secs(3), || async {
        backends(cluster, &app).await == 0
    })
    .await;
    println!("[{tag}] drain returned after {drained:?}; server sessions gone {gone:?} later");
    assert!(gone.is_some(), "[{tag}] tagged backends remain after drain");
}
