//! Raw returns that go wrong: a `COPY` left unfed, a row stream kept past the return, a
//! backend terminated under the session, a return cut short by `checkin_timeout`.

use std::pin::pin;
use std::time::{Duration, Instant};

use pg_pool_core::runtime::timeout;
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::tokio_postgres::Client;
use pg_pool_tokio_postgres::tokio_postgres::types::ToSql;
use pg_pool_tokio_postgres::{PgPool, PgRuntime};

use super::single;
use crate::common::{first_row, fresh_table, run_batch, sleep};

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
    fresh_table(&pool, &table).await;
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
    run_batch(&pool, &format!("DROP TABLE {table}")).await;
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
