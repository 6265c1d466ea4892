//! The tracked reset over TLS, on every runtime: the tap reads the session above TLS, so a
//! clean use goes back without a reset and a change is reset. The same pair with
//! `sslmode=disable` (no `SSLRequest` on the stream; the plain-cluster tests elsewhere run
//! under `prefer`, which the server refuses).

mod common;
mod tracked;

use std::time::Duration;

use pg_pool_conninfo::SslMode;
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::{PgConfig, PgRuntime};

use crate::common::{Harness, blocking, eventually, first_row, sleep};
use crate::tracked::{CLEAN, PROBE_SQL, RESET_START, last_query, single};

/// The TLS cluster's test role, TLS required.
fn tls_config(cluster: &TestCluster, tag: &str) -> PgConfig {
    common::tls_require_config(cluster, &format!("tp-tap-tls-{tag}"))
}

async fn clean_and_dirty_over_tls<R: PgRuntime>(tag: &'static str) {
    let cluster: &'static TestCluster = blocking(TestCluster::tls_shared).await;
    clean_and_dirty::<R>(tag, cluster, tls_config(cluster, tag), "t").await;
    let plain: &'static TestCluster = blocking(TestCluster::shared).await;
    let mut config = common::pg_config(plain, None, &format!("tp-tap-disable-{tag}"));
    config.tls.mode = SslMode::Disable;
    clean_and_dirty::<R>(tag, plain, config, "f").await;
}

/// A clean use is not reset, a change is; `ssl` is what `pg_stat_ssl` must say.
async fn clean_and_dirty<R: PgRuntime>(
    tag: &'static str,
    cluster: &'static TestCluster,
    config: PgConfig,
    ssl: &str,
) {
    let pool = single::<R>(config).await;
    let pid = pool.get().await.unwrap().backend_pid().await.unwrap();
    let q = format!("SELECT ssl FROM pg_stat_ssl WHERE pid = {pid}");
    assert_eq!(
        blocking(move || cluster.sql(&q).unwrap()).await,
        ssl,
        "[{tag}] TLS in use"
    );

    // Clean: not reset.
    pool.get()
        .await
        .unwrap()
        .query_one("SELECT 41 + 1", &[])
        .await
        .unwrap();
    sleep::<R>(Duration::from_millis(300)).await;
    let last = last_query(cluster, pid).await;
    println!("[{tag}] TLS, after SELECT: {last:?}");
    assert_eq!(
        last, "SELECT 41 + 1",
        "[{tag}] a clean TLS session was reset"
    );

    // Dirty: reset before the next user.
    pool.get()
        .await
        .unwrap()
        .batch_execute("SET work_mem = '1234kB'; SELECT pg_advisory_lock(9)")
        .await
        .unwrap();
    let reset = eventually::<R, _, _>(Duration::from_secs(3), || async {
        last_query(cluster, pid).await.starts_with(RESET_START)
    })
    .await;
    assert!(
        reset.is_some(),
        "[{tag}] {}",
        last_query(cluster, pid).await
    );
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.backend_pid().await.unwrap(), pid);
    let probe = first_row(&conn.simple_query(PROBE_SQL).await.unwrap());
    assert_eq!(probe, CLEAN, "[{tag}] TLS: leaked");
    drop(conn);
    pool.drain().await;
}

#[test]
fn tokio_mt() {
    common::TokioMt::block_on(
        clean_and_dirty_over_tls::<<common::TokioMt as Harness>::Rt>("tokio_mt"),
    );
}

#[test]
fn async_std() {
    common::AsyncStdRt::block_on(clean_and_dirty_over_tls::<
        <common::AsyncStdRt as Harness>::Rt,
    >("async_std"));
}

#[test]
fn smol() {
    common::SmolRt::block_on(clean_and_dirty_over_tls::<<common::SmolRt as Harness>::Rt>(
        "smol",
    ));
}
