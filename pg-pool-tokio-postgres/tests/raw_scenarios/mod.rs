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
use pg_pool_test_support::{FaultProxy, ProxyMode, TestCluster};
use pg_pool_tokio_postgres::tokio_postgres::Client;
use pg_pool_tokio_postgres::tokio_postgres::types::ToSql;
use pg_pool_tokio_postgres::{PgPool, PgRuntime};

use crate::common::{eventually, first_row, pg_config, pool, pool_config, sleep};
use crate::tracked::{CLEAN, MARKER_START, PROBE_SQL, RESET_START, last_query};

mod failures;

pub(crate) use failures::{
    cancelled_returns_destroy_or_prove, raw_copy_and_held_streams, raw_dead_session_is_destroyed,
};

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
