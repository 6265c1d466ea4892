//! The server-side cancel of a session opened on a later host of a several-host config
//! lands at once, even when an earlier host is unreachable (its connects hang, as they do
//! for a server gone dark after a failover): the cancel goes to every host of the config at
//! once, each bounded by `connect_timeout`, instead of one after the other. Before, it
//! waited on the unreachable host first; the pool gave up at `checkin_timeout` and
//! destroyed the session, leaving the abandoned query running on the server.

mod common;

use std::time::{Duration, Instant};

use pg_pool_core::runtime::timeout;
use pg_pool_test_support::{FaultProxy, ProxyMode, TestCluster};
use pg_pool_tokio_postgres::PgRuntime;

use crate::common::{Harness, blocking, eventually, pg_config, pool, pool_config};

async fn sql(cluster: &'static TestCluster, q: String) -> String {
    blocking(move || cluster.sql(&q).unwrap()).await
}

async fn cancel_skips_an_unreachable_host<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let dark = FaultProxy::start(cluster.addr()).expect("proxy");
    dark.set_mode(ProxyMode::Blackhole);
    // Hosts: the unreachable one first, then the server; one second per host.
    let mut pg = pg_config(
        cluster,
        Some(dark.addr()),
        &format!("tp-cancel-hosts-{tag}"),
    );
    pg.pg
        .host("127.0.0.1")
        .port(cluster.port())
        .connect_timeout(Duration::from_secs(1));
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    config.connect_timeout = Duration::from_secs(15);
    // Long enough that a session not cancelled would still be waited for when the test
    // looks: only a delivered cancel frees the backend within the bound below.
    config.checkin_timeout = Duration::from_secs(20);
    let pool = pool::<R>(pg, config).await;
    let runtime = R::current().unwrap();

    let conn = pool.get().await.unwrap();
    let pid = conn.backend_pid().await.unwrap();
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
    // Without a cancel that reaches the server, the backend stays `active` in `pg_sleep`
    // for 30 s; the bound leaves room for a machine running at a fraction of its speed.
    let settled = eventually::<R, _, _>(Duration::from_secs(12), || async {
        matches!(sql(cluster, state.clone()).await.as_str(), "idle" | "")
    })
    .await;
    let now = sql(cluster, state.clone()).await;
    println!(
        "[{tag}] backend {pid} settled {settled:?} after the guard was dropped, now {:?} \
         ({:?} since)",
        if now.is_empty() { "gone" } else { now.as_str() },
        dropped.elapsed()
    );
    assert!(
        settled.is_some_and(|t| t < Duration::from_secs(10)),
        "[{tag}] the query was not cancelled: backend {now:?}"
    );
    let started = Instant::now();
    let conn = pool.get().await.expect("capacity is back");
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
    common::TokioMt::block_on(cancel_skips_an_unreachable_host::<
        <common::TokioMt as Harness>::Rt,
    >("tokio_mt"));
}

#[test]
fn async_std() {
    common::AsyncStdRt::block_on(cancel_skips_an_unreachable_host::<
        <common::AsyncStdRt as Harness>::Rt,
    >("async_std"));
}

#[test]
fn smol() {
    common::SmolRt::block_on(cancel_skips_an_unreachable_host::<
        <common::SmolRt as Harness>::Rt,
    >("smol"));
}
