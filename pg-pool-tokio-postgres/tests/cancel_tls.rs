//! The server-side cancel of a session that uses TLS goes over TLS, as libpq's does: a
//! query abandoned on a `sslmode=require` session is cancelled (the backend stops within a
//! few seconds even on a starved machine, and capacity is back), on every runtime. Before the
//! cancel spoke TLS, a session opened under `require` could not be cancelled at all: the
//! request asked for TLS and was refused on our side, so the pool waited out `checkin_timeout`
//! and destroyed the session, leaving the query running on the server.

mod common;

use std::time::{Duration, Instant};

use pg_pool_core::runtime::timeout;
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::{PgConfig, PgRuntime};

use crate::common::{Harness, blocking, eventually, pool, pool_config};

/// The TLS cluster's test role, TLS required.
fn tls_config(cluster: &TestCluster, tag: &str) -> PgConfig {
    common::tls_require_config(cluster, &format!("tp-cancel-tls-{tag}"))
}

async fn sql(cluster: &'static TestCluster, q: String) -> String {
    blocking(move || cluster.sql(&q).unwrap()).await
}

async fn abandoned_query_over_tls_is_cancelled<R: PgRuntime>(tag: &'static str) {
    let cluster: &'static TestCluster = blocking(TestCluster::tls_shared).await;
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    // Long enough that a session not cancelled would still be waited for when the test
    // looks: only a delivered cancel frees the backend within the bound below.
    config.checkin_timeout = Duration::from_secs(20);
    let pool = pool::<R>(tls_config(cluster, tag), config).await;
    let runtime = R::current().unwrap();

    let conn = pool.get().await.unwrap();
    let pid = conn.backend_pid().await.unwrap();
    assert_eq!(
        sql(
            cluster,
            format!("SELECT ssl FROM pg_stat_ssl WHERE pid = {pid}")
        )
        .await,
        "t",
        "[{tag}] the session uses TLS"
    );
    let outcome = timeout(
        &runtime,
        Duration::from_millis(100),
        conn.query_typed("SELECT pg_sleep(30)", &[]),
    )
    .await;
    assert!(outcome.is_none(), "[{tag}] the sleep finished early?");
    let dropped = Instant::now();
    drop(conn);

    let state = format!("SELECT coalesce(state, '') FROM pg_stat_activity WHERE pid = {pid}");
    // Idle (cancelled, the session proven idle and kept) or gone (cancelled, and the pool
    // chose to destroy the session, as it does when its idle check is itself hit by the
    // cancel on a starved machine): either way the query no longer runs. Without a cancel
    // the backend stays `active` in `pg_sleep` for 30 s; the bound below leaves room for a
    // machine running at a fraction of its speed (typically ~150 ms here).
    let settled = eventually::<R, _, _>(Duration::from_secs(12), || async {
        matches!(sql(cluster, state.clone()).await.as_str(), "idle" | "")
    })
    .await;
    let now = sql(cluster, state.clone()).await;
    println!(
        "[{tag}] TLS session: backend {pid} {} {settled:?} after the guard was dropped ({:?} since)",
        if now.is_empty() { "gone" } else { "idle" },
        dropped.elapsed()
    );
    assert!(
        settled.is_some_and(|t| t < Duration::from_secs(10)),
        "[{tag}] the query was not cancelled: backend {now}"
    );
    let started = Instant::now();
    let conn = pool.get().await.expect("capacity is back");
    if now == "idle" {
        assert_eq!(
            conn.backend_pid().await.unwrap(),
            pid,
            "[{tag}] the cancelled session is reused"
        );
    }
    let row = conn.query_one("SELECT 41 + 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    println!(
        "[{tag}] next checkout and query took {:?}",
        started.elapsed()
    );
    drop(conn);
    pool.drain().await;
}

#[test]
fn tokio_mt() {
    common::TokioMt::block_on(abandoned_query_over_tls_is_cancelled::<
        <common::TokioMt as Harness>::Rt,
    >("tokio_mt"));
}

#[test]
fn async_std() {
    common::AsyncStdRt::block_on(abandoned_query_over_tls_is_cancelled::<
        <common::AsyncStdRt as Harness>::Rt,
    >("async_std"));
}

#[test]
fn smol() {
    common::SmolRt::block_on(abandoned_query_over_tls_is_cancelled::<
        <common::SmolRt as Harness>::Rt,
    >("smol"));
}
