//! Exchanges abandoned by a timeout, for both connection kinds: the connection whose
//! exchange is still outstanding is never handed out again, the pool is back to full
//! capacity within `checkin_timeout` plus a connect, and (for `AsyncWirePoolable`) the
//! server stops the abandoned statement.

mod common;

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant};

use common::{blocking, eventually, pool_config, wire_config};
use pg_pool_core::{Connector, DestroyReason, LifecycleHooks, Poolable};
use pg_pool_test_support::{FaultProxy, ProxyMode, TestCluster};
use pg_pool_tokio::ConnPool;
use pg_pool_wire::{AsyncWirePoolable, WireConfig, WireConnector, WirePoolable};

type BoxFut<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What the tests need from a connection kind.
trait Kind: Poolable + Sized
where
    WireConnector: Connector<Self>,
{
    /// Runs `sql`, returning whether it succeeded.
    fn run<'a>(&'a mut self, sql: &'a str) -> BoxFut<'a, Result<(), String>>;
    /// The server process ID.
    fn pid(&self) -> i32;
    /// Whether the wrapper says the pool will destroy it.
    fn broken(&self) -> bool;
}

impl Kind for WirePoolable {
    fn run<'a>(&'a mut self, sql: &'a str) -> BoxFut<'a, Result<(), String>> {
        Box::pin(async move {
            self.simple_query(sql)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
    fn pid(&self) -> i32 {
        self.backend_pid()
    }
    fn broken(&self) -> bool {
        self.is_broken()
    }
}

impl Kind for AsyncWirePoolable {
    fn run<'a>(&'a mut self, sql: &'a str) -> BoxFut<'a, Result<(), String>> {
        Box::pin(async move {
            self.exec_query(sql, &[], &[])
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        })
    }
    fn pid(&self) -> i32 {
        self.backend_pid()
    }
    fn broken(&self) -> bool {
        self.is_broken()
    }
}

async fn pool<T: Kind>(wire: WireConfig, max_size: usize) -> ConnPool<T>
where
    WireConnector: Connector<T>,
{
    let mut config = pool_config(max_size);
    config.test_on_checkout = false;
    ConnPool::<T>::builder(WireConnector::new(wire))
        .config(config)
        .hooks(LifecycleHooks::default())
        .build()
        .await
        .expect("pool builds")
}

/// Whether the server runs a statement for backend `pid`.
async fn active(cluster: &'static TestCluster, pid: i32) -> bool {
    let q = format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND state = 'active'");
    blocking(move || cluster.sql(&q).expect("pg_stat_activity")).await != "0"
}

/// `max_size = 1` through a proxy; the server stalls, `timeout(500 ms, query)` elapses and
/// the guard is dropped.
async fn stalled_exchange<T: Kind>(app: &str)
where
    WireConnector: Connector<T>,
{
    let cluster = TestCluster::shared();
    let proxy = FaultProxy::start(cluster.addr()).expect("proxy starts");
    let pool = pool::<T>(wire_config(cluster, Some(proxy.addr()), app), 1).await;
    let checkin_timeout = pool_config(1).checkin_timeout;
    let connect_timeout = pool_config(1).connect_timeout;

    let mut conn = pool.get().await.expect("first checkout");
    conn.run("SELECT 1")
        .await
        .expect("a query through the proxy");
    let old_pid = conn.pid();

    proxy.set_mode(ProxyMode::Stall);
    let timed_out = tokio::time::timeout(Duration::from_millis(500), conn.run("SELECT 1")).await;
    assert!(timed_out.is_err(), "the stalled query timed out");
    assert!(conn.broken(), "an abandoned exchange marks the connection");
    drop(conn);
    let dropped = Instant::now();

    // While the exchange is outstanding (the server is still stalled), nobody gets that
    // connection: a checkout can only wait for a new one.
    let during = tokio::time::timeout(Duration::from_secs(1), pool.get()).await;
    match &during {
        Ok(Ok(c)) => assert_ne!(c.pid(), old_pid, "the abandoned connection was handed out"),
        Ok(Err(e)) => println!("{app}: checkout during the stall failed: {e}"),
        Err(_) => println!("{app}: checkout during the stall waited (no connection to give)"),
    }
    drop(during);
    let m = pool.metrics();
    assert_eq!(m.destroys_for(DestroyReason::Broken), 1, "{m:?}");

    proxy.set_mode(ProxyMode::Pass);
    let unstalled = Instant::now();
    let mut conn = pool.get().await.expect("a checkout after the stall");
    assert_ne!(
        conn.pid(),
        old_pid,
        "the abandoned connection was handed out"
    );
    conn.run("SELECT 1")
        .await
        .expect("the new connection works");
    let back = dropped.elapsed();
    let m = pool.metrics();
    println!(
        "{app}: full capacity again {back:?} after the guard was dropped ({:?} after the stall \
         ended); checkin_timeout {checkin_timeout:?}, connect_timeout {connect_timeout:?}",
        unstalled.elapsed()
    );
    assert_eq!((m.size, m.max_size), (1, 1), "{m:?}");
    // The stall lasted about 1 s; then one connect (bounded by connect_timeout), plus slack.
    assert!(
        back < Duration::from_secs(1) + checkin_timeout + connect_timeout + Duration::from_secs(4),
        "capacity came back too late: {back:?}"
    );
    drop(conn);

    // The abandoned session does not linger on the server.
    let gone = eventually(Duration::from_secs(10), || async {
        common::backends(cluster, app).await == 1
    })
    .await;
    println!("{app}: the abandoned session left the server {gone:?} after the stall ended");
    assert!(gone.is_some(), "the abandoned session stayed on the server");
    pool.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_abandoned_exchange_through_a_stall_is_never_reused() {
    stalled_exchange::<WirePoolable>("abandon-stall-wire").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_abandoned_exchange_through_a_stall_is_never_reused() {
    stalled_exchange::<AsyncWirePoolable>("abandon-stall-async").await;
}

/// `SELECT pg_sleep(30)` dropped after 100 ms; returns how long the backend stayed active.
async fn abandoned_sleep<T: Kind>(app: &str, wire: WireConfig) -> Option<Duration>
where
    WireConnector: Connector<T>,
{
    let cluster = TestCluster::shared();
    let pool = pool::<T>(wire, 1).await;
    let mut conn = pool.get().await.expect("checkout");
    let pid = conn.pid();
    let timed_out =
        tokio::time::timeout(Duration::from_millis(100), conn.run("SELECT pg_sleep(30)")).await;
    assert!(timed_out.is_err(), "pg_sleep(30) outlived the timeout");
    let running = eventually(Duration::from_secs(5), || active(cluster, pid)).await;
    assert!(running.is_some(), "the statement runs on the server");
    drop(conn);
    let dropped = Instant::now();

    let idle = eventually(Duration::from_secs(10), || async {
        !active(cluster, pid).await
    })
    .await;
    println!("{app}: backend {pid} no longer active {idle:?} after the guard was dropped");

    let started = Instant::now();
    let mut conn = pool.get().await.expect("the next checkout");
    conn.run("SELECT 1").await.expect("the next user's query");
    let next_user = started.elapsed();
    println!(
        "{app}: the next user waited {next_user:?} (checkout and query), {:?} after the drop",
        dropped.elapsed()
    );
    assert_ne!(conn.pid(), pid, "the abandoned connection was handed out");
    assert!(
        next_user < Duration::from_secs(10),
        "the next user waited for the abandoned statement: {next_user:?}"
    );
    let m = pool.metrics();
    assert_eq!((m.size, m.max_size), (1, 1), "capacity is back: {m:?}");
    assert_eq!(m.destroys_for(DestroyReason::Broken), 1, "{m:?}");
    drop(conn);
    pool.drain().await;
    idle
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_abandoned_statement_is_cancelled_on_the_server() {
    let cluster = TestCluster::shared();
    let app = "abandon-cancel-async";
    let idle = abandoned_sleep::<AsyncWirePoolable>(app, wire_config(cluster, None, app)).await;
    let idle = idle.expect("the backend stopped the abandoned statement");
    // Target 1 s; the slack covers psql polls on a loaded machine.
    assert!(idle < Duration::from_secs(3), "cancel took {idle:?}");
}

/// `WirePoolable` cannot cancel (pg-wired's `WireConn` hides the cancel key); with
/// `client_connection_check_interval` the server stops the statement once the socket closes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wire_abandoned_statement_stops_with_client_connection_check_interval() {
    let cluster = TestCluster::shared();
    let app = "abandon-check-wire";
    let wire =
        wire_config(cluster, None, app).with_param("client_connection_check_interval", "100ms");
    let idle = abandoned_sleep::<WirePoolable>(app, wire).await;
    let idle = idle.expect("the backend stopped the abandoned statement");
    assert!(idle < Duration::from_secs(3), "the server took {idle:?}");
}
