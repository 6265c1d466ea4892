//! A session that comes back with an exchange in flight is never handed out as is: the
//! pool waits it out, cancelling server-side, or destroys it. Errors that prove a session
//! dead destroy it on return, and raw (`Deref`) use is made safe the same way.

use std::time::{Duration, Instant};

use pg_pool_core::{DestroyReason, runtime::timeout};
use pg_pool_test_support::{FaultProxy, ProxyMode, TestCluster};
use pg_pool_tokio_postgres::tokio_postgres::GenericClient;
use pg_pool_tokio_postgres::{PgPool, PgRuntime, ResetStrategy};

use crate::common::{blocking, eventually, pg_config, pool, pool_config};

/// The state of backend `pid` in `pg_stat_activity` (`idle`, `active`...).
async fn backend_state(cluster: &'static TestCluster, pid: i32) -> String {
    let q = format!("SELECT coalesce(state, '') FROM pg_stat_activity WHERE pid = {pid}");
    blocking(move || cluster.sql(&q).unwrap()).await
}

/// After a call abandoned at `dropped_after`, the backend is idle again within 1 s, and the
/// next user gets the same session (cancelled, waited out, reset) without waiting 30 s.
async fn assert_cancelled<R: PgRuntime>(
    tag: &str,
    what: &str,
    cluster: &'static TestCluster,
    pool: &PgPool<R>,
    pid: i32,
    dropped: Instant,
) {
    let idle = eventually::<R, _, _>(Duration::from_secs(3), || async {
        backend_state(cluster, pid).await == "idle"
    })
    .await;
    println!(
        "[{tag}] {what}: backend {pid} idle {idle:?} after the guard was dropped ({:?} since the call was dropped)",
        dropped.elapsed()
    );
    assert!(
        idle.is_some_and(|t| t < Duration::from_secs(1)),
        "[{tag}] {what}: backend still busy: {}",
        backend_state(cluster, pid).await
    );
    let started = Instant::now();
    let conn = pool.get().await.expect("capacity is back");
    assert_eq!(
        conn.backend_pid().await.unwrap(),
        pid,
        "[{tag}] {what}: session reused"
    );
    let row = conn.query_one("SELECT 41 + 1", &[]).await.unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    println!(
        "[{tag}] {what}: next checkout and query took {:?}",
        started.elapsed()
    );
    assert!(started.elapsed() < Duration::from_secs(3), "[{tag}] {what}");
}

/// `SELECT pg_sleep(30)` dropped after 100 ms, through the wrapper and through the raw
/// client (`Deref`), at the default configuration.
pub(crate) async fn abandoned_query_is_cancelled<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    let pool = pool::<R>(
        pg_config(cluster, None, &format!("tp-cancel-{tag}")),
        config,
    )
    .await;
    let runtime = R::current().unwrap();

    // Through the wrapper.
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
    assert_cancelled(tag, "wrapper", cluster, &pool, pid, dropped).await;

    // Through the raw client, as tokio-postgres code would.
    let conn = pool.get().await.unwrap();
    let raw: &pg_pool_tokio_postgres::tokio_postgres::Client = &conn;
    let outcome = timeout(
        &runtime,
        Duration::from_millis(100),
        raw.simple_query("SELECT pg_sleep(30)"),
    )
    .await;
    assert!(outcome.is_none());
    let dropped = Instant::now();
    drop(conn);
    assert_cancelled(tag, "raw client", cluster, &pool, pid, dropped).await;

    // A stream dropped after its first row.
    let conn = pool.get().await.unwrap();
    {
        use futures_lite::StreamExt as _;
        let params: [(i32, pg_pool_tokio_postgres::tokio_postgres::types::Type); 0] = [];
        let mut rows = conn
            .query_typed_raw(
                // Rows fill the server's send buffer (so the first ones arrive) long before
                // the last one sleeps.
                "SELECT g, repeat('x', 200), CASE WHEN g = 100000 THEN pg_sleep(30) END \
                 FROM generate_series(1, 100000) g",
                params,
            )
            .await
            .unwrap();
        let first = rows.next().await.unwrap().unwrap();
        assert_eq!(first.get::<_, i32>(0), 1);
    }
    let dropped = Instant::now();
    drop(conn);
    assert_cancelled(tag, "stream", cluster, &pool, pid, dropped).await;
    assert_eq!(pool.metrics().destroys_for(DestroyReason::ResetFailed), 0);
    pool.drain().await;
}

/// Minimal reproduction of the stalled-server case: a pool of one, no reset, the server
/// stalled, a query abandoned by a timeout; the next checkout must not get that connection
/// back as is (it is destroyed once `checkin_timeout` passes without it becoming idle).
pub(crate) async fn stalled_connection_not_handed_out<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let proxy = FaultProxy::start(cluster.addr()).unwrap();
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    config.checkout_timeout = Duration::from_millis(1500);
    config.checkin_timeout = Duration::from_secs(1);
    config.connect_timeout = Duration::from_millis(500);
    let pg = pg_config(cluster, Some(proxy.addr()), &format!("tp-stall-{tag}"))
        .with_reset(ResetStrategy::None);
    let pool = pool::<R>(pg, config).await;
    let runtime = R::current().unwrap();
    let pid = pool.get().await.unwrap().backend_pid().await.unwrap();

    proxy.set_mode(ProxyMode::Stall);
    let conn = pool.get().await.unwrap();
    let outcome = timeout(
        &runtime,
        Duration::from_millis(500),
        conn.query_typed("SELECT 1", &[]),
    )
    .await;
    assert!(outcome.is_none(), "[{tag}] the stalled query answered");
    drop(conn);
    let started = Instant::now();
    let next = pool.get().await;
    println!(
        "[{tag}] stalled: next checkout after {:?}: {:?}",
        started.elapsed(),
        next.as_ref().map(|_| "a connection")
    );
    assert!(
        next.is_err(),
        "[{tag}] the stalled connection (or one through the stall) was handed out"
    );
    drop(next);
    let destroyed = eventually::<R, _, _>(Duration::from_secs(3), || async {
        pool.metrics().destroys_for(DestroyReason::ResetFailed) == 1
    })
    .await;
    assert!(destroyed.is_some(), "[{tag}] {:?}", pool.metrics());

    proxy.set_mode(ProxyMode::Pass);
    let served = eventually::<R, _, _>(Duration::from_secs(5), || async {
        match timeout(&runtime, Duration::from_secs(2), pool.get()).await {
            Some(Ok(conn)) => conn.backend_pid().await.is_ok_and(|p| p != pid),
            _ => false,
        }
    })
    .await;
    assert!(
        served.is_some(),
        "[{tag}] serves again: {:?}",
        pool.metrics()
    );
    pool.drain().await;
}

/// A backend terminated under a checked-out connection: the failed call marks it broken
/// and the pool destroys it on return, with no `mark_broken` from the caller.
pub(crate) async fn dead_session_destroyed_on_return<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    let pool = pool::<R>(pg_config(cluster, None, &format!("tp-dead-{tag}")), config).await;
    let conn = pool.get().await.unwrap();
    let pid = conn.backend_pid().await.unwrap();
    let q = format!("SELECT pg_terminate_backend({pid})");
    blocking(move || cluster.sql(&q).unwrap()).await;
    let err = conn.query_one("SELECT 1", &[]).await.unwrap_err();
    println!("[{tag}] query on a terminated backend: {err}");
    assert!(err.is_fatal(), "[{tag}] {err:?}");
    assert!(conn.is_broken());
    drop(conn);
    assert_eq!(pool.metrics().destroys_for(DestroyReason::Broken), 1);
    let conn = pool.get().await.unwrap();
    assert_ne!(conn.backend_pid().await.unwrap(), pid);
    drop(conn);
    pool.drain().await;
}

/// Counts rows with any tokio-postgres client.
async fn count_rows<C: GenericClient>(client: &C) -> i64 {
    client
        .query_one("SELECT count(*) FROM generate_series(1, 7)", &[])
        .await
        .unwrap()
        .get(0)
}

/// Code generic over `GenericClient` runs on a pooled connection and its transactions; the
/// session is still reset afterwards.
pub(crate) async fn generic_client_code_runs<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    let pool = pool::<R>(
        pg_config(cluster, None, &format!("tp-generic-{tag}")),
        config,
    )
    .await;
    let pid = {
        let mut conn = pool.get().await.unwrap();
        assert_eq!(count_rows(&**conn).await, 7);
        conn.batch_execute("SET work_mem = '1234kB'").await.unwrap();
        let txn = conn
            .build_transaction()
            .read_only(true)
            .start()
            .await
            .unwrap();
        assert_eq!(count_rows(&*txn).await, 7);
        txn.commit().await.unwrap();
        conn.backend_pid().await.unwrap()
    };
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.backend_pid().await.unwrap(), pid);
    let rows = conn.simple_query("SHOW work_mem").await.unwrap();
    assert_eq!(
        crate::common::first_row(&rows),
        ["4MB"],
        "[{tag}] reset after raw use"
    );
    // A transaction left open through the raw client: the checked path destroys it.
    conn.client().batch_execute("BEGIN").await.unwrap();
    drop(conn);
    let conn = pool.get().await.unwrap();
    assert_ne!(
        conn.backend_pid().await.unwrap(),
        pid,
        "[{tag}] a raw open transaction was reused"
    );
    drop(conn);
    pool.drain().await;
}

/// A transaction leaked with `mem::forget` (no `ROLLBACK` queued): the session takes the
/// checked path and is destroyed; had it been pipelined, the reset would have failed and
/// destroyed it all the same. Neither the session nor its open transaction reaches the
/// next user.
pub(crate) async fn failed_pipelined_reset_destroys<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    let pool = pool::<R>(
        pg_config(cluster, None, &format!("tp-forget-{tag}")),
        config,
    )
    .await;
    let pid = {
        let mut conn = pool.get().await.unwrap();
        let pid = conn.backend_pid().await.unwrap();
        let txn = conn.transaction().await.unwrap();
        txn.batch_execute("SET LOCAL work_mem = '2MB'")
            .await
            .unwrap();
        std::mem::forget(txn);
        pid
    };
    let conn = pool.get().await.unwrap();
    match conn.backend_pid().await {
        Ok(other) => {
            assert_ne!(
                other, pid,
                "[{tag}] the session with an open transaction was reused"
            );
            drop(conn);
        }
        Err(err) => {
            println!("[{tag}] first call after a failed pipelined reset: {err}");
            assert!(
                matches!(err, pg_pool_tokio_postgres::PgError::ResetFailed(_)),
                "[{tag}] {err:?}"
            );
            drop(conn);
            let conn = pool.get().await.unwrap();
            assert_ne!(conn.backend_pid().await.unwrap(), pid);
        }
    }
    let m = pool.metrics();
    let destroyed =
        m.destroys_for(DestroyReason::Broken) + m.destroys_for(DestroyReason::ResetFailed);
    assert_eq!(destroyed, 1, "[{tag}] {m:?}");

    // A pipelined reset that fails: the backend is terminated after the reset was queued.
    let pid = {
        let conn = pool.get().await.unwrap();
        conn.batch_execute("SET work_mem = '1234kB'").await.unwrap();
        conn.backend_pid().await.unwrap()
    };
    let q = format!("SELECT pg_terminate_backend({pid})");
    blocking(move || cluster.sql(&q).unwrap()).await;
    let conn = pool.get().await.unwrap();
    match conn
        .query_one("SELECT current_setting('work_mem')", &[])
        .await
    {
        Ok(row) => {
            let work_mem: String = row.get(0);
            println!("[{tag}] after a terminated backend: a fresh session ({work_mem})");
            assert_eq!(work_mem, "4MB", "[{tag}] the old session came back");
        }
        Err(err) => {
            println!("[{tag}] first call on a session whose queued reset failed: {err}");
            assert!(err.is_fatal(), "[{tag}] {err:?}");
        }
    }
    drop(conn);
    let conn = pool.get().await.unwrap();
    assert_ne!(conn.backend_pid().await.unwrap(), pid);
    drop(conn);
    pool.drain().await;
}
