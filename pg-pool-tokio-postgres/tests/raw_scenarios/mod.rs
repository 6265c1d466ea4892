//! Scenarios of the raw return, written once over `R: PgRuntime`: a session used through
//! the raw `Client` is proven idle by the return's marker, without waiting for a server
//! answer; what raw use changed is still reset before the next user; a marker text written
//! by the user (guessed, or read back from `pg_stat_activity` after an earlier return)
//! proves nothing; a `COPY` left unfed and a row stream kept past the return still end in
//! a session the next user can use.

use std::future::Future;
use std::pin::pin;
use std::task::{Context, Waker};
use std::time::{Duration, Instant};

use pg_pool_core::DestroyReason;
use pg_pool_core::runtime::timeout;
use pg_pool_test_support::{FaultProxy, ProxyMode, TestCluster};
use pg_pool_tokio_postgres::tokio_postgres::Client;
use pg_pool_tokio_postgres::tokio_postgres::types::ToSql;
use pg_pool_tokio_postgres::{PgPool, PgRuntime};

use crate::common::{eventually, first_row, pg_config, pool, pool_config, sleep};
use crate::tracked::{CLEAN, MARKER_START, PROBE_SQL, RESET_START, last_query};

/// A pool of one, no test on checkout, checkin within `checkin`.
async fn single<R: PgRuntime>(
    cluster: &TestCluster,
    proxy: Option<&FaultProxy>,
    app: &str,
    checkin: Duration,
) -> PgPool<R> {
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    config.checkin_timeout = checkin;
    pool::<R>(pg_config(cluster, proxy.map(FaultProxy::addr), app), config).await
}

/// Hands `sql` to the client's connection task without waiting for anything: the request
/// is queued, and its answer will be dropped unread.
fn queue(raw: &Client, sql: &str) {
    let mut call = pin!(raw.simple_query(sql));
    let _ = call.as_mut().poll(&mut Context::from_waker(Waker::noop()));
}

/// Waits until the pool holds its one connection idle again; how long that took.
async fn back_idle<R: PgRuntime>(pool: &PgPool<R>, limit: Duration) -> Option<Duration> {
    eventually::<R, _, _>(limit, || async { pool.metrics().idle == 1 }).await
}

/// Clean raw use: the session is back in the pool with no answer from the server needed.
/// With the server's answers held back by a stalled proxy it is back at once (waiting for
/// an answer would hold it for `checkin_timeout`, 20 s here, then destroy it), is the same
/// session afterwards, and the server saw one request from the return: the marker.
pub(crate) async fn clean_raw_use_waits_for_no_answer<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let proxy = FaultProxy::start(cluster.addr()).unwrap();
    let app = format!("tp-raw-clean-{tag}");
    let pool = single::<R>(cluster, Some(&proxy), &app, Duration::from_secs(20)).await;
    let pid = pool.get().await.unwrap().backend_pid().await.unwrap();

    for stalled in [false, true] {
        let conn = pool.get().await.unwrap();
        let raw: &Client = &conn;
        let row = raw
            .query_one("SELECT 40 + $1::int4", &[&2i32])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
        if stalled {
            proxy.set_mode(ProxyMode::Stall);
        }
        let returned = Instant::now();
        drop(conn);
        let back = back_idle(&pool, Duration::from_secs(5)).await;
        println!(
            "[{tag}] stalled {stalled}: back idle after {back:?} ({:?} since the return)",
            returned.elapsed()
        );
        assert!(back.is_some(), "[{tag}] stalled {stalled}: not back");
        assert_eq!(pool.metrics().destroys, 0, "[{tag}] stalled {stalled}");
        if stalled {
            proxy.set_mode(ProxyMode::Pass);
        } else {
            sleep::<R>(Duration::from_millis(200)).await;
            let last = last_query(cluster, pid).await;
            println!("[{tag}] the server's last statement: {last:?}");
            assert!(last.starts_with(MARKER_START), "[{tag}] {last:?}");
        }
        // The marker's answer comes ahead of the next user's and is not taken for theirs.
        let conn = pool.get().await.unwrap();
        assert_eq!(conn.backend_pid().await.unwrap(), pid, "[{tag}] reused");
        let row = conn.query_one("SELECT 6 * 7", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
        let raw: &Client = &conn;
        let rows = raw.simple_query("SELECT 'next'").await.unwrap();
        assert_eq!(first_row(&rows), ["next"]);
    }
    assert_eq!(pool.metrics().destroys, 0);
    pool.drain().await;
}

/// What raw use changes is reset before the next user sees it, with the strategy's reset
/// queued ahead of the next user's first statement; a transaction left open (or failed)
/// destroys the session.
pub(crate) async fn raw_changes_are_reset<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let app = format!("tp-raw-dirty-{tag}");
    let pool = single::<R>(cluster, None, &app, Duration::from_secs(5)).await;
    let pid = pool.get().await.unwrap().backend_pid().await.unwrap();
    for what in [
        "set",
        "set_config",
        "prepare",
        "listen",
        "temp table",
        "advisory lock",
        "custom setting",
    ] {
        {
            let conn = pool.get().await.unwrap();
            let raw: &Client = &conn;
            let sql = match what {
                "set" => "SET work_mem = '1234kB'",
                "set_config" => "SELECT set_config('work_mem', '1234kB', false)",
                "prepare" => "PREPARE raw_prepared AS SELECT 1",
                "listen" => "LISTEN raw_channel",
                "temp table" => "CREATE TEMP TABLE tap_tmp (x int)",
                "advisory lock" => "SELECT pg_advisory_lock(4242)",
                _ => "SET pgpool.custom = 'x'",
            };
            if what.contains("set_") || what.contains("lock") {
                let params: [&(dyn ToSql + Sync); 0] = [];
                raw.query(sql, &params).await.unwrap();
            } else {
                raw.batch_execute(sql).await.unwrap();
            }
        }
        let reset = eventually::<R, _, _>(Duration::from_secs(3), || async {
            last_query(cluster, pid).await.starts_with(RESET_START)
        })
        .await;
        println!("[{tag}] {what}: pipelined reset seen after {reset:?}");
        assert!(
            reset.is_some(),
            "[{tag}] {what}: {}",
            last_query(cluster, pid).await
        );
        let conn = pool.get().await.unwrap();
        assert_eq!(conn.backend_pid().await.unwrap(), pid, "[{tag}] {what}");
        let probe = first_row(&conn.simple_query(PROBE_SQL).await.unwrap());
        assert_eq!(probe, CLEAN, "[{tag}] {what}: leaked to the next user");
    }
    let before = pool.metrics().destroys_for(DestroyReason::ResetFailed);
    for sql in ["BEGIN", "BEGIN; SELECT 1 / 0"] {
        let pid = {
            let conn = pool.get().await.unwrap();
            let pid = conn.backend_pid().await.unwrap();
            let raw: &Client = &conn;
            let _ = raw.batch_execute(sql).await;
            pid
        };
        let conn = pool.get().await.unwrap();
        assert_ne!(
            conn.backend_pid().await.unwrap(),
            pid,
            "[{tag}] {sql} reused"
        );
        let probe = first_row(&conn.simple_query(PROBE_SQL).await.unwrap());
        assert_eq!(probe, CLEAN, "[{tag}] {sql}");
    }
    assert_eq!(
        pool.metrics().destroys_for(DestroyReason::ResetFailed) - before,
        2
    );
    pool.drain().await;
}

/// The user writes marker texts itself: a guessed nonce, and the one of an earlier return
/// read back from `pg_stat_activity` (spent). Queued ahead of a `SET` that may not be on the
/// wire yet when the return starts, or sent after it: the `SET` is reset all the same.
pub(crate) async fn forged_markers_do_not_fool_the_return<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let app = format!("tp-raw-forged-{tag}");
    let pool = single::<R>(cluster, None, &app, Duration::from_secs(5)).await;
    let pid = pool.get().await.unwrap().backend_pid().await.unwrap();
    {
        let conn = pool.get().await.unwrap();
        let raw: &Client = &conn;
        raw.batch_execute("SELECT 1").await.unwrap();
    }
    let spent = eventually::<R, _, _>(Duration::from_secs(3), || async {
        last_query(cluster, pid).await.starts_with(MARKER_START)
    })
    .await;
    assert!(spent.is_some(), "[{tag}] no marker seen");
    let spent = last_query(cluster, pid).await;
    let guessed = format!("{MARKER_START}{} */", "0".repeat(32));
    assert_eq!(spent.len(), guessed.len(), "[{tag}] {spent:?}");
    for how in [
        "spent, queued",
        "guessed, queued",
        "spent, after",
        "guessed, inline",
    ] {
        {
            let conn = pool.get().await.unwrap();
            let raw: &Client = &conn;
            match how {
                "spent, queued" => {
                    queue(raw, &spent);
                    queue(raw, "SET work_mem = '1234kB'");
                }
                "guessed, queued" => {
                    queue(raw, &guessed);
                    queue(raw, "SET work_mem = '1234kB'");
                }
                "spent, after" => {
                    raw.batch_execute("SET work_mem = '1234kB'").await.unwrap();
                    raw.batch_execute(&spent).await.unwrap();
                }
                _ => {
                    let sql = format!("SET work_mem = '1234kB'; {guessed}");
                    raw.batch_execute(&sql).await.unwrap();
                }
            }
        }
        let reset = eventually::<R, _, _>(Duration::from_secs(3), || async {
            last_query(cluster, pid).await.starts_with(RESET_START)
        })
        .await;
        println!("[{tag}] {how}: reset after {reset:?}");
        let conn = pool.get().await.unwrap();
        assert_eq!(conn.backend_pid().await.unwrap(), pid, "[{tag}] {how}");
        let probe = first_row(&conn.simple_query(PROBE_SQL).await.unwrap());
        assert_eq!(probe, CLEAN, "[{tag}] {how}: the SET leaked");
        assert!(reset.is_some(), "[{tag}] {how}");
    }
    pool.drain().await;
}

/// Checks the next user gets a session that answers its own statements.
async fn next_user_is_served<R: PgRuntime>(tag: &str, what: &str, pool: &PgPool<R>) -> i32 {
    let runtime = R::current().unwrap();
    let started = Instant::now();
    let served = timeout(&runtime, Duration::from_secs(10), async {
        let conn = pool.get().await.unwrap();
        let row = conn.query_one("SELECT 41 + 1", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 42, "[{tag}] {what}");
        let raw: &Client = &conn;
        let rows = raw.simple_query("SELECT 'own answer'").await.unwrap();
        assert_eq!(first_row(&rows), ["own answer"], "[{tag}] {what}");
        conn.backend_pid().await.unwrap()
    })
    .await;
    println!(
        "[{tag}] {what}: next user served after {:?}",
        started.elapsed()
    );
    served.unwrap_or_else(|| panic!("[{tag}] {what}: the next user hangs"))
}

/// `COPY FROM STDIN` through the raw client (finished, abandoned, and sent as a plain
/// query that never feeds it: the server then takes the request written behind it as a
/// protocol violation), and a row stream kept unread past the return: the next user is
/// served, by the same session where it was proven idle, by a new one otherwise.
pub(crate) async fn raw_copy_and_held_streams<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let app = format!("tp-raw-copy-{tag}");
    let pool = single::<R>(cluster, None, &app, Duration::from_secs(1)).await;
    let table = format!("raw_copy_{tag}");
    pool.get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (x int)"
        ))
        .await
        .unwrap();
    let copy = format!("COPY {table} FROM STDIN");
    let pid = pool.get().await.unwrap().backend_pid().await.unwrap();

    // Boxed: the copy's futures are large, and the test thread's stack is small.
    Box::pin(async {
        let conn = pool.get().await.unwrap();
        let raw: &Client = &conn;
        let sink = raw.copy_in::<_, &'static [u8]>(&copy).await.unwrap();
        let mut sink = pin!(sink);
        let rows = std::future::poll_fn(|cx| sink.as_mut().poll_finish(cx))
            .await
            .unwrap();
        assert_eq!(rows, 0);
    })
    .await;
    assert_eq!(
        Box::pin(next_user_is_served(tag, "copy finished", &pool)).await,
        pid
    );

    Box::pin(async {
        let conn = pool.get().await.unwrap();
        let raw: &Client = &conn;
        drop(raw.copy_in::<_, &'static [u8]>(&copy).await.unwrap());
    })
    .await;
    assert_eq!(
        Box::pin(next_user_is_served(tag, "copy abandoned", &pool)).await,
        pid
    );

    let destroyed = pool.metrics().destroys;
    {
        let conn = pool.get().await.unwrap();
        let raw: &Client = &conn;
        assert!(
            raw.simple_query(&copy).await.is_err(),
            "[{tag}] copy as a query"
        );
    }
    let after = Box::pin(next_user_is_served(tag, "copy never fed", &pool)).await;
    println!("[{tag}] copy never fed: session {pid} -> {after}");
    assert!(
        after != pid && pool.metrics().destroys > destroyed,
        "[{tag}] a session whose request was swallowed was reused"
    );

    let pid = after;
    let held = {
        let conn = pool.get().await.unwrap();
        let raw: &Client = &conn;
        let params: [&(dyn ToSql + Sync); 0] = [];
        raw.query_raw(
            "SELECT repeat('x', 1000) FROM generate_series(1, 20000)",
            params,
        )
        .await
        .unwrap()
    };
    let after = Box::pin(next_user_is_served(tag, "row stream held", &pool)).await;
    println!("[{tag}] row stream held: session {pid} -> {after}");
    assert_ne!(
        after, pid,
        "[{tag}] a session still answering a held stream was reused"
    );
    drop(held);
    pool.get()
        .await
        .unwrap()
        .batch_execute(&format!("DROP TABLE {table}"))
        .await
        .unwrap();
    pool.drain().await;
}

/// A backend terminated under a session used raw: whether the return finds the client
/// closed or the connection task fails on the server's `FATAL` before it writes the
/// marker, the session is destroyed and the next user gets a new one.
pub(crate) async fn raw_dead_session_is_destroyed<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let app = format!("tp-raw-dead-{tag}");
    let pool = single::<R>(cluster, None, &app, Duration::from_secs(5)).await;
    for wait in [false, true] {
        let conn = pool.get().await.unwrap();
        let pid = conn.backend_pid().await.unwrap();
        let raw: &Client = &conn;
        raw.simple_query("SELECT 1").await.unwrap();
        // Waits until the backend is gone: its `FATAL` and the socket's end are on their
        // way (a backend ending while the return runs is no different from one ending
        // just after: the next user's first statement finds it closed).
        let q = format!("SELECT pg_terminate_backend({pid}, 5000)");
        crate::common::blocking(move || cluster.sql(&q).unwrap()).await;
        if wait {
            // Let the connection task see the socket close first.
            sleep::<R>(Duration::from_millis(200)).await;
        }
        let destroyed = pool.metrics().destroys;
        drop(conn);
        let next = Box::pin(next_user_is_served(tag, "terminated", &pool)).await;
        println!("[{tag}] terminated (waited {wait}): session {pid} -> {next}");
        assert_ne!(next, pid, "[{tag}] a terminated session was handed out");
        assert!(pool.metrics().destroys > destroyed);
    }
    pool.drain().await;
}

/// Returns cut short at any point: with a `checkin_timeout` of a few microseconds to a
/// millisecond, a raw return is cancelled wherever it happens to be (queueing the marker,
/// waiting for the tap, queueing the reset). Each session comes back proven or is destroyed,
/// capacity is never lost, and no next user sees what the last one changed.
pub(crate) async fn cancelled_returns_destroy_or_prove<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    for micros in [20, 100, 300, 1_000] {
        let app = format!("tp-raw-cut-{tag}");
        let pool = single::<R>(cluster, None, &app, Duration::from_micros(micros)).await;
        for i in 0..30 {
            {
                let conn = pool.get().await.unwrap();
                let raw: &Client = &conn;
                if i % 2 == 0 {
                    raw.batch_execute("SET work_mem = '1234kB'").await.unwrap();
                } else {
                    raw.query_one("SELECT 1", &[]).await.unwrap();
                }
            }
            let conn = pool.get().await.expect("capacity is back");
            let work_mem = conn.query_one("SHOW work_mem", &[]).await.unwrap();
            assert_eq!(
                work_mem.get::<_, String>(0),
                "4MB",
                "[{tag}] {micros} us, cycle {i}: the SET leaked"
            );
        }
        let metrics = pool.metrics();
        println!(
            "[{tag}] checkin_timeout {micros} us: creates {}, destroys {}, idle {}, active {}",
            metrics.creates, metrics.destroys, metrics.idle, metrics.active
        );
        assert_eq!(
            metrics.creates,
            metrics.destroys + (metrics.idle + metrics.active) as u64,
            "[{tag}] {micros} us: the ledger does not balance"
        );
        assert!(metrics.idle + metrics.active <= 1);
        pool.drain().await;
    }
}
