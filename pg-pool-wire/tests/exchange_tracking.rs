//! Every method through which a caller reaches a connection is tracked: a future dropped
//! midway (or a row stream not read to its end) gets the connection destroyed and, for
//! `AsyncWirePoolable`, its statement cancelled; an error that proves the connection dead
//! marks it broken without the caller's help; an ordinary SQL error does neither.

mod common;

use std::time::Duration;

use bytes::BytesMut;
use common::{blocking, eventually, pool_config, wire_config, wire_pool};
use pg_pool_core::{DestroyReason, LifecycleHooks};
use pg_pool_test_support::TestCluster;
use pg_pool_tokio::ConnPool;
use pg_pool_wire::pg_wired::{FormatCode, ResponseCollector};
use pg_pool_wire::{AsyncWirePoolable, WireConnector};

type AsyncPool = ConnPool<AsyncWirePoolable>;

/// A slow statement: long enough to outlive every timeout below, short enough that a test
/// that fails to cancel it still ends.
const SLEEP: &str = "SELECT pg_sleep(5)";

/// A simple-query message.
fn q(sql: &str) -> BytesMut {
    let mut out = BytesMut::new();
    out.extend_from_slice(b"Q");
    out.extend_from_slice(&i32::try_from(sql.len() + 5).unwrap().to_be_bytes());
    out.extend_from_slice(sql.as_bytes());
    out.extend_from_slice(&[0]);
    out
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Submit,
    SubmitBatch,
    SubmitStream,
    ExecQuery,
    ExecQueryWithFormats,
    Query,
    QueryWithFormats,
    ExecTransaction,
    PipelineTransaction,
    CopyIn,
    CopyInStream,
    CopyOut,
}

const OPS: [Op; 12] = [
    Op::Submit,
    Op::SubmitBatch,
    Op::SubmitStream,
    Op::ExecQuery,
    Op::ExecQueryWithFormats,
    Op::Query,
    Op::QueryWithFormats,
    Op::ExecTransaction,
    Op::PipelineTransaction,
    Op::CopyIn,
    Op::CopyInStream,
    Op::CopyOut,
];

/// A temporary table whose `y` default sleeps: `COPY slow (x) FROM STDIN` takes 5 s a row.
const SLOW_COPY_TABLE: &str =
    "CREATE TEMP TABLE slow (x int, y int DEFAULT length(pg_sleep(5)::text))";

/// Runs `op` with a slow statement (`slow`) or a quick one; returns whether it succeeded.
async fn run(conn: &AsyncWirePoolable, op: Op, slow: bool) -> bool {
    let sql = if slow { SLEEP } else { "SELECT 1" };
    let fmts = [FormatCode::Text];
    match op {
        Op::Submit => conn.submit(q(sql), ResponseCollector::Rows).await.is_ok(),
        Op::SubmitBatch => match conn
            .submit_batch(vec![(q(sql), ResponseCollector::Rows)])
            .await
        {
            Ok(results) => results.iter().all(Result::is_ok),
            Err(_) => false,
        },
        Op::SubmitStream => match conn.submit_stream(q(sql), 4).await {
            Ok(mut rows) => {
                let mut ok = true;
                while let Some(row) = rows.recv().await {
                    ok &= row.is_ok();
                }
                ok
            }
            Err(_) => false,
        },
        Op::ExecQuery => conn.exec_query(sql, &[], &[]).await.is_ok(),
        Op::ExecQueryWithFormats => conn
            .exec_query_with_formats(sql, &[], &[], &[], &fmts)
            .await
            .is_ok(),
        Op::Query => conn.query(sql, &[], &[], b"", true).await.is_ok(),
        Op::QueryWithFormats => conn
            .query_with_formats(sql, &[], &[], &[], &fmts, b"", true)
            .await
            .is_ok(),
        Op::ExecTransaction => conn.exec_transaction("BEGIN", sql, &[], &[]).await.is_ok(),
        Op::PipelineTransaction => conn
            .pipeline_transaction("BEGIN", sql, &[], &[], b"", true)
            .await
            .is_ok(),
        Op::CopyIn | Op::CopyInStream => {
            let table = if slow { "slow (x)" } else { "quick" };
            let copy = format!("COPY {table} FROM STDIN");
            if op == Op::CopyIn {
                conn.copy_in(&copy, b"1\n").await.is_ok()
            } else {
                conn.copy_in_stream(&copy, &b"1\n"[..]).await.is_ok()
            }
        }
        Op::CopyOut => {
            let copy = format!("COPY ({sql}) TO STDOUT");
            conn.copy_out(&copy).await.is_ok()
        }
    }
}

async fn async_pool(app: &str) -> AsyncPool {
    let cluster = TestCluster::shared();
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    config.checkin_timeout = Duration::from_millis(500);
    AsyncPool::builder(WireConnector::new(wire_config(cluster, None, app)))
        .config(config)
        .hooks(LifecycleHooks::default())
        .build()
        .await
        .expect("pool builds")
}

/// Whether the server runs a statement for backend `pid`.
async fn active(pid: i32) -> bool {
    let cluster = TestCluster::shared();
    let q = format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {pid} AND state = 'active'");
    blocking(move || cluster.sql(&q).expect("pg_stat_activity")).await != "0"
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_async_request_method_dropped_midway_is_destroyed_and_cancelled() {
    let pool = async_pool("track-abandon-async").await;
    for (i, op) in OPS.into_iter().enumerate() {
        let conn = pool.get().await.expect("checkout");
        let pid = conn.backend_pid();
        conn.exec_query("CREATE TEMP TABLE quick (x int)", &[], &[])
            .await
            .unwrap();
        conn.exec_query(SLOW_COPY_TABLE, &[], &[]).await.unwrap();
        assert!(run(&conn, op, false).await, "{op:?} works");
        assert!(
            !conn.is_broken(),
            "{op:?}: a finished request leaves nothing behind"
        );
        let dropped = tokio::time::timeout(Duration::from_millis(200), run(&conn, op, true)).await;
        assert!(
            dropped.is_err(),
            "{op:?}: the slow request outlived the timeout"
        );
        assert!(conn.is_broken(), "{op:?}: the abandoned exchange is seen");
        let running = eventually(Duration::from_secs(3), || active(pid)).await;
        assert!(
            running.is_some(),
            "{op:?}: the statement runs on the server"
        );
        drop(conn);
        let m = pool.metrics();
        assert_eq!(
            m.destroys_for(DestroyReason::Broken),
            i as u64 + 1,
            "{op:?}: {m:?}"
        );
        let stopped = eventually(Duration::from_secs(4), || async { !active(pid).await }).await;
        println!("{op:?}: the abandoned statement stopped on the server after {stopped:?}");
        assert!(
            stopped.is_some(),
            "{op:?}: the abandoned statement was not cancelled"
        );
        let conn = pool.get().await.expect("checkout");
        assert_ne!(conn.backend_pid(), pid, "{op:?}: the connection was reused");
    }
    pool.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_stream_is_an_exchange_until_its_end() {
    let pool = async_pool("track-stream").await;
    let sql = "SELECT generate_series(1, 100000)";

    // Read to its end: nothing outstanding, the connection is reused.
    let pid = {
        let conn = pool.get().await.unwrap();
        let mut rows = conn.submit_stream(q(sql), 16).await.unwrap();
        let mut n = 0;
        while let Some(row) = rows.recv().await {
            row.unwrap();
            n += 1;
        }
        assert_eq!(n, 100_000);
        assert!(!conn.is_broken());
        conn.backend_pid()
    };
    // Dropped after one row, or still open when the guard goes back: destroyed.
    let mut pid = pid;
    for keep_open in [false, true] {
        let conn = pool.get().await.unwrap();
        assert_eq!(
            conn.backend_pid(),
            pid,
            "the previous connection is reusable"
        );
        let mut rows = conn.submit_stream(q(sql), 1).await.unwrap();
        assert!(rows.recv().await.unwrap().is_ok());
        let kept = if keep_open {
            Some(rows)
        } else {
            drop(rows);
            None
        };
        assert!(
            conn.is_broken(),
            "keep_open={keep_open}: the stream is outstanding"
        );
        drop(conn);
        drop(kept);
        let conn = pool.get().await.unwrap();
        assert_ne!(conn.backend_pid(), pid, "keep_open={keep_open}: reused");
        pid = conn.backend_pid();
    }
    let m = pool.metrics();
    assert_eq!(m.destroys_for(DestroyReason::Broken), 2, "{m:?}");
    pool.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_that_prove_death_mark_the_async_connection_broken() {
    let cluster = TestCluster::shared();
    let pool = async_pool("track-dead-async").await;
    for (i, op) in OPS.into_iter().enumerate() {
        let conn = pool.get().await.expect("checkout");
        let pid = conn.backend_pid();
        if matches!(op, Op::CopyIn | Op::CopyInStream) {
            conn.exec_query("CREATE TEMP TABLE quick (x int)", &[], &[])
                .await
                .unwrap();
        }
        let q = format!("SELECT pg_terminate_backend({pid}, 5000)");
        assert_eq!(blocking(move || cluster.sql(&q).unwrap()).await, "t");
        assert!(
            !run(&conn, op, false).await,
            "{op:?} on a terminated backend"
        );
        assert!(
            conn.is_broken(),
            "{op:?}: the error marks the connection broken"
        );
        drop(conn);
        let m = pool.metrics();
        assert_eq!(
            m.destroys_for(DestroyReason::Broken),
            i as u64 + 1,
            "{op:?}: {m:?}"
        );
    }
    // An ordinary SQL error does not.
    let conn = pool.get().await.unwrap();
    let pid = conn.backend_pid();
    assert!(
        conn.exec_query("SELECT * FROM no_such_table", &[], &[])
            .await
            .is_err()
    );
    assert!(!conn.is_broken());
    drop(conn);
    assert_eq!(pool.get().await.unwrap().backend_pid(), pid);
    pool.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn raw_async_access_is_checked_at_checkin() {
    let pool = async_pool("track-raw-async").await;
    // Raw use that finished: DISCARD ALL at checkin, the connection is reused.
    let pid = {
        let conn = pool.get().await.unwrap();
        conn.async_conn()
            .exec_query("SELECT 1", &[], &[])
            .await
            .unwrap();
        conn.backend_pid()
    };
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.backend_pid(), pid);
    // Raw use abandoned midway: the reset waits behind the statement past checkin_timeout,
    // the connection is destroyed and the statement cancelled.
    let raw = conn.async_conn();
    let dropped =
        tokio::time::timeout(Duration::from_millis(200), raw.exec_query(SLEEP, &[], &[])).await;
    assert!(dropped.is_err());
    drop(conn);
    let stopped = eventually(Duration::from_secs(4), || async { !active(pid).await }).await;
    println!("raw abandoned statement stopped after {stopped:?}");
    assert!(stopped.is_some());
    let conn = pool.get().await.unwrap();
    assert_ne!(conn.backend_pid(), pid);
    let m = pool.metrics();
    assert_eq!(m.destroys_for(DestroyReason::ResetFailed), 1, "{m:?}");
    drop(conn);
    pool.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_wire_method_dropped_midway_is_destroyed() {
    let cluster = TestCluster::shared();
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    config.checkin_timeout = Duration::from_millis(500);
    let pool = wire_pool(
        wire_config(cluster, None, "track-abandon-wire"),
        config,
        LifecycleHooks::default(),
    )
    .await;
    for (i, method) in ["simple_query", "execute", "query_value", "raw"]
        .into_iter()
        .enumerate()
    {
        let mut conn = pool.get().await.unwrap();
        let pid = conn.backend_pid();
        let dropped = tokio::time::timeout(Duration::from_millis(200), async {
            match method {
                "simple_query" => drop(conn.simple_query(SLEEP).await),
                "execute" => drop(conn.execute(SLEEP).await),
                "query_value" => drop(conn.query_value(SLEEP).await),
                _ => {
                    let raw = conn.wire_mut();
                    raw.send_raw(&q(SLEEP)).await.unwrap();
                    drop(raw.recv_msg().await);
                    drop(raw.recv_msg().await);
                }
            }
        })
        .await;
        assert!(
            dropped.is_err(),
            "{method}: the slow statement outlived the timeout"
        );
        if method != "raw" {
            assert!(conn.is_broken(), "{method}: the abandoned exchange is seen");
            assert!(matches!(
                conn.simple_query("SELECT 1").await,
                Err(pg_pool_wire::WireError::Broken)
            ));
        }
        drop(conn);
        let conn = pool.get().await.unwrap();
        assert_ne!(
            conn.backend_pid(),
            pid,
            "{method}: the connection was reused"
        );
        let m = pool.metrics();
        let reason = if method == "raw" {
            DestroyReason::ResetFailed
        } else {
            DestroyReason::Broken
        };
        assert!(m.destroys_for(reason) >= 1, "{method}: {m:?}");
        assert_eq!(
            m.destroys_for(DestroyReason::Broken) + m.destroys_for(DestroyReason::ResetFailed),
            i as u64 + 1,
            "{method}: {m:?}"
        );
    }
    pool.drain().await;
}
