//! Helpers shared by the integration tests: a real PostgreSQL from the test kit, pools
//! configured for fast tests, and small timing utilities.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use pg_pool_core::{ConnPoolConfig, LifecycleHooks};
use pg_pool_test_support::TestCluster;
use pg_pool_wire::{AsyncWirePool, WireConfig, WireConnector, WirePool, WirePoolable};

/// The URL of `cluster` (or of `addr` in front of it), with `application_name` set.
pub(crate) fn url(cluster: &TestCluster, addr: Option<SocketAddr>, app: &str) -> String {
    let base = match addr {
        Some(addr) => cluster.url_for_addr(addr),
        None => cluster.url().to_owned(),
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}application_name={app}")
}

/// Connection settings for `cluster` (or `addr`), tagged with `app`.
pub(crate) fn wire_config(
    cluster: &TestCluster,
    addr: Option<SocketAddr>,
    app: &str,
) -> WireConfig {
    let config = WireConfig::from_url(&url(cluster, addr, app)).expect("the kit's URL parses");
    assert!(
        config.addr.starts_with("127.0.0.1:"),
        "tests target 127.0.0.1 only: {}",
        config.addr
    );
    config
}

/// A pool config tuned for tests: short timeouts, fast reaper and backoff.
pub(crate) fn pool_config(max_size: usize) -> ConnPoolConfig {
    pg_pool_test_support::test_pool_config(max_size)
}

/// A `WirePoolable` pool on `config`'s connection settings.
pub(crate) async fn wire_pool(
    wire: WireConfig,
    config: ConnPoolConfig,
    hooks: LifecycleHooks<WirePoolable>,
) -> WirePool {
    WirePool::builder(WireConnector::new(wire))
        .config(config)
        .hooks(hooks)
        .build()
        .await
        .expect("pool builds")
}

/// An `AsyncWirePoolable` pool of `max_size` on `wire`, test config, no hooks, built lazily.
pub(crate) fn async_wire_pool(wire: WireConfig, max_size: usize) -> AsyncWirePool {
    AsyncWirePool::builder(WireConnector::new(wire))
        .config(pool_config(max_size))
        .hooks(LifecycleHooks::default())
        .build_lazy()
        .expect("pool builds")
}

/// The text of the cell at `row`, `col` of a result.
pub(crate) fn text(rows: &[pg_wired::protocol::types::RawRow], row: usize, col: usize) -> String {
    let cell = rows[row].cell(col).expect("a value");
    String::from_utf8(cell.to_vec()).expect("text")
}

/// Runs blocking kit calls (psql, pg_ctl) off the async worker threads.
pub(crate) async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    tokio::task::spawn_blocking(f)
        .await
        .expect("blocking task panicked")
}

/// [`pg_pool_test_support::eventually`] on tokio.
pub(crate) async fn eventually<F, Fut>(limit: Duration, check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    pg_pool_test_support::eventually::<pg_pool_tokio::Tokio, _, _>(limit, check).await
}

/// Backends of `cluster` tagged `app`, counted by the server.
pub(crate) async fn backends(cluster: &'static TestCluster, app: &str) -> usize {
    let app = app.to_owned();
    blocking(move || cluster.backend_count(&app).expect("pg_stat_activity")).await
}

/// Leaks a cluster so `'static` borrows can go into spawned tasks; the kit's watchdog
/// removes it when the test process exits.
pub(crate) fn own_cluster() -> &'static TestCluster {
    Box::leak(Box::new(
        TestCluster::start().expect("start a throwaway cluster"),
    ))
}

/// A small deterministic generator (xorshift), so that a failure can be replayed from its
/// seed.
pub(crate) struct Rng(pub(crate) u64);

impl Rng {
    /// A number in `0..n`.
    pub(crate) fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n as u64) as usize
    }
}
