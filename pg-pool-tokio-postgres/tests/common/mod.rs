//! Helpers shared by the integration tests: one harness per runtime, a real PostgreSQL from
//! the test kit, pools tuned for fast tests, and small runtime-neutral utilities.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use pg_pool_core::{ConnPoolConfig, Runtime};
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::{PgConfig, PgConnector, PgPool, PgRuntime};

/// A runtime the scenarios can run on.
pub(crate) trait Harness {
    /// The adapter's runtime type.
    type Rt: PgRuntime;

    /// Runs `future` to completion on a fresh runtime of this kind.
    fn block_on<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;
}

/// tokio, multi-thread scheduler with two workers.
pub(crate) struct TokioMt;

impl Harness for TokioMt {
    type Rt = pg_pool_tokio::Tokio;

    fn block_on<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime")
            .block_on(future)
    }
}

/// smol's global executor; no tokio runtime anywhere.
pub(crate) struct SmolRt;

impl Harness for SmolRt {
    type Rt = pg_pool_smol::Smol;

    fn block_on<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        smol::block_on(async {
            assert!(
                tokio::runtime::Handle::try_current().is_err(),
                "the smol tests run without a tokio runtime"
            );
            future.await
        })
    }
}

/// async-std's global executor; no tokio runtime anywhere.
pub(crate) struct AsyncStdRt;

impl Harness for AsyncStdRt {
    type Rt = pg_pool_async_std::AsyncStd;

    fn block_on<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        async_std::task::block_on(async {
            assert!(tokio::runtime::Handle::try_current().is_err());
            future.await
        })
    }
}

/// Connection settings for `cluster` (or `addr` in front of it), tagged with `app`.
pub(crate) fn pg_config(cluster: &TestCluster, addr: Option<SocketAddr>, app: &str) -> PgConfig {
    let base = match addr {
        Some(addr) => cluster.url_for_addr(addr),
        None => cluster.url().to_owned(),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    let config = PgConfig::from_url(&format!("{base}{sep}application_name={app}"))
        .expect("the kit's URL parses");
    assert!(
        base.contains("@127.0.0.1:"),
        "tests target 127.0.0.1 only: {base}"
    );
    config
}

/// Connection settings for the kit's TLS cluster, tagged with `app`, with TLS required
/// (`sslmode=require`).
pub(crate) fn tls_require_config(cluster: &TestCluster, app: &str) -> PgConfig {
    let mut pg = pg_pool_tokio_postgres::tokio_postgres::Config::new();
    pg.host("127.0.0.1")
        .port(cluster.port())
        .user(cluster.user())
        .password(cluster.password())
        .dbname(cluster.database())
        .application_name(app);
    let mut config = PgConfig::new(pg);
    config.tls.mode = pg_pool_conninfo::SslMode::Require;
    config
}

/// A pool config tuned for tests: short timeouts, fast reaper and backoff.
pub(crate) fn pool_config(max_size: usize) -> ConnPoolConfig {
    pg_pool_test_support::test_pool_config(max_size)
}

/// A pool on the current runtime `R`.
pub(crate) async fn pool<R: PgRuntime>(pg: PgConfig, config: ConnPoolConfig) -> PgPool<R> {
    PgPool::builder(PgConnector::<R>::current(pg).expect("inside the runtime"))
        .config(config)
        .build()
        .await
        .expect("pool builds")
}

/// Runs blocking kit calls (psql, pg_ctl) on a thread pool that works under any runtime.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    smol::unblock(f).await
}

/// Sleeps on the current runtime `R`.
pub(crate) async fn sleep<R: Runtime>(duration: Duration) {
    R::current()
        .expect("inside the runtime")
        .sleep(duration)
        .await;
}

/// Spawns `future` on the current runtime `R`; the returned receiver yields its output.
pub(crate) fn spawn<R: Runtime, T: Send + 'static>(
    future: impl Future<Output = T> + Send + 'static,
) -> smol::channel::Receiver<T> {
    let (tx, rx) = smol::channel::bounded(1);
    R::current().expect("inside the runtime").spawn(async move {
        let _ = tx.send(future.await).await;
    });
    rx
}

// Not every test binary that includes this module polls.
#[allow(unused_imports)]
pub(crate) use pg_pool_test_support::eventually;

/// Backends of `cluster` tagged `app`, counted by the server.
pub(crate) async fn backends(cluster: &'static TestCluster, app: &str) -> usize {
    let app = app.to_owned();
    blocking(move || cluster.backend_count(&app).expect("pg_stat_activity")).await
}

/// pids of the backends of `cluster` tagged `app`.
pub(crate) async fn backend_pids(cluster: &'static TestCluster, app: &str) -> Vec<i32> {
    let query = format!("SELECT pid FROM pg_stat_activity WHERE application_name = '{app}'");
    let out = blocking(move || cluster.sql(&query).expect("pg_stat_activity")).await;
    out.lines().map(|l| l.parse().expect("a pid")).collect()
}

/// A throwaway cluster of the test's own (for destructive tests), leaked so `'static`
/// borrows can go into spawned tasks; the kit's watchdog removes it at process exit.
pub(crate) async fn own_cluster() -> &'static TestCluster {
    blocking(|| {
        &*Box::leak(Box::new(
            TestCluster::start().expect("start a throwaway cluster"),
        ))
    })
    .await
}

/// Text of the first row of a simple query's messages.
pub(crate) fn first_row(
    messages: &[pg_pool_tokio_postgres::tokio_postgres::SimpleQueryMessage],
) -> Vec<String> {
    messages
        .iter()
        .find_map(|m| match m {
            pg_pool_tokio_postgres::tokio_postgres::SimpleQueryMessage::Row(row) => Some(
                (0..row.len())
                    .map(|i| row.get(i).unwrap_or("NULL").to_owned())
                    .collect(),
            ),
            _ => None,
        })
        .expect("a row")
}

/// Runs `sql` (one or more statements) through a checkout of `pool`.
pub(crate) async fn run_batch<R: PgRuntime>(pool: &PgPool<R>, sql: &str) {
    pool.get().await.unwrap().batch_execute(sql).await.unwrap();
}

/// Drops and creates `table` (one `int` column `x`) through a checkout of `pool`.
pub(crate) async fn fresh_table<R: PgRuntime>(pool: &PgPool<R>, table: &str) {
    run_batch(
        pool,
        &format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (x int)"),
    )
    .await;
}
