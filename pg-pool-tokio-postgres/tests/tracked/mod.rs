//! Scenarios of the tracked reset (`ResetWhen::Changed`, the default), written once over
//! `R: PgRuntime`: a session that did nothing to its state goes back without a reset (seen
//! from another session: the backend's last statement is still the user's), and every
//! kind of change is reset before the next user.

#![allow(dead_code)]

use std::time::Duration;

use pg_pool_core::DestroyReason;
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::tokio_postgres::{Client, GenericClient};
use pg_pool_tokio_postgres::{PgConfig, PgPool, PgRuntime, ResetWhen};

use crate::common::{
    blocking, eventually, first_row, fresh_table, pg_config, pool, pool_config, run_batch, sleep,
};

/// What a fresh session looks like: work_mem, a custom setting unset, no temp table,
/// SQL-level prepared statements, advisory locks, channels listened to.
pub(crate) const PROBE_SQL: &str = "SELECT current_setting('work_mem'), \
     coalesce(current_setting('pgpool.custom', true), '') = '', \
     to_regclass('pg_temp.tap_tmp') IS NULL, \
     (SELECT count(*) FROM pg_prepared_statements WHERE from_sql), \
     (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), \
     (SELECT count(*) FROM pg_listening_channels())";

pub(crate) const CLEAN: [&str; 6] = ["4MB", "t", "t", "0", "0", "0"];

/// The start of every pipelined reset of the default strategy.
pub(crate) const RESET_START: &str = "SELECT 1 / (pg_catalog.now()";

/// The start of the marker a raw session's return queues (an empty query: a comment).
pub(crate) const MARKER_START: &str = "/* pg-pool checkin ";

/// The last statement backend `pid` ran, as the server reports it.
pub(crate) async fn last_query(cluster: &'static TestCluster, pid: i32) -> String {
    let q = format!("SELECT query FROM pg_stat_activity WHERE pid = {pid}");
    blocking(move || cluster.sql(&q).unwrap()).await
}

/// A pool of one, no test on checkout, with `pg`.
pub(crate) async fn single<R: PgRuntime>(pg: PgConfig) -> PgPool<R> {
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    pool::<R>(pg, config).await
}

/// After a use that leaves no session state, the backend's last statement stays the
/// user's (checked after a pause long enough for a queued reset to have run), and the
/// session is reused; a `SET` is followed by the reset; `pool_reset_when=used` resets
/// after every use.
pub(crate) async fn clean_use_is_not_reset<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let table = format!("tap_rows_{tag}");
    let pool = single::<R>(pg_config(cluster, None, &format!("tp-tap-clean-{tag}"))).await;
    let pid = pool.get().await.unwrap().backend_pid().await.unwrap();
    fresh_table(&pool, &table).await;
    let insert = format!("INSERT INTO {table} VALUES ($1)");
    for what in [
        "query_one",
        "prepare_cached",
        "insert",
        "transaction",
        "simple_query",
    ] {
        let expected = {
            let mut conn = pool.get().await.unwrap();
            match what {
                "query_one" => {
                    let row = conn
                        .query_one("SELECT $1::int4 + 1", &[&41i32])
                        .await
                        .unwrap();
                    assert_eq!(row.get::<_, i32>(0), 42);
                    "SELECT $1::int4 + 1".to_owned()
                }
                "prepare_cached" => {
                    let statement = conn.prepare_cached("SELECT $1::int4 * 2").await.unwrap();
                    let rows = conn.query_prepared(&statement, &[&21i32]).await.unwrap();
                    assert_eq!(rows[0].get::<_, i32>(0), 42);
                    "SELECT $1::int4 * 2".to_owned()
                }
                "insert" => {
                    assert_eq!(conn.execute(&insert, &[&1i32]).await.unwrap(), 1);
                    insert.clone()
                }
                "transaction" => {
                    let txn = conn.transaction().await.unwrap();
                    txn.execute(&insert, &[&2i32]).await.unwrap();
                    txn.commit().await.unwrap();
                    "COMMIT".to_owned()
                }
                _ => {
                    conn.simple_query("SELECT 7").await.unwrap();
                    "SELECT 7".to_owned()
                }
            }
        };
        sleep::<R>(Duration::from_millis(300)).await;
        let last = last_query(cluster, pid).await;
        println!("[{tag}] after {what}: the backend's last statement is {last:?}");
        assert_eq!(last, expected, "[{tag}] {what}: the session was reset");
        let conn = pool.get().await.unwrap();
        assert_eq!(
            conn.backend_pid().await.unwrap(),
            pid,
            "[{tag}] {what}: reused"
        );
    }

    // A change is reset, and the same observation sees it.
    pool.get()
        .await
        .unwrap()
        .batch_execute("SET work_mem = '1234kB'")
        .await
        .unwrap();
    let reset = eventually::<R, _, _>(Duration::from_secs(3), || async {
        last_query(cluster, pid).await.starts_with(RESET_START)
    })
    .await;
    assert!(
        reset.is_some(),
        "[{tag}] {}",
        last_query(cluster, pid).await
    );
    run_batch(&pool, &format!("DROP TABLE {table}")).await;
    pool.drain().await;

    // `used`: reset after every use.
    let pg =
        pg_config(cluster, None, &format!("tp-tap-used-{tag}")).with_reset_when(ResetWhen::Used);
    let pool = single::<R>(pg).await;
    let pid = pool.get().await.unwrap().backend_pid().await.unwrap();
    pool.get()
        .await
        .unwrap()
        .query_one("SELECT 41 + 1", &[])
        .await
        .unwrap();
    let reset = eventually::<R, _, _>(Duration::from_secs(3), || async {
        last_query(cluster, pid).await.starts_with(RESET_START)
    })
    .await;
    assert!(
        reset.is_some(),
        "[{tag}] used: {}",
        last_query(cluster, pid).await
    );
    pool.drain().await;
}

/// `SET` through `GenericClient` code.
async fn set_generic<C: GenericClient>(client: &C) {
    client.execute("SET work_mem = '2MB'", &[]).await.unwrap();
}

/// Each kind of session state is reset before the next user, whichever way it was made.
pub(crate) async fn changes_are_reset<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let pool = single::<R>(pg_config(cluster, None, &format!("tp-tap-dirty-{tag}"))).await;
    let pid = pool.get().await.unwrap().backend_pid().await.unwrap();
    let lock = "SELECT pg_advisory_lock($1)";
    let hidden = format!("tap_hidden_datestyle_{tag}");
    pool.get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION {hidden}() RETURNS int LANGUAGE plpgsql AS \
             $f$BEGIN PERFORM set_config('DateStyle', 'German', false); RETURN 1; END$f$"
        ))
        .await
        .unwrap();
    let call_hidden = format!("SELECT {hidden}()");
    for what in [
        "set",
        "set_config",
        "temp table",
        "advisory lock",
        "listen",
        "prepare",
        "cached advisory lock",
        "cached advisory lock again",
        "deref set",
        "generic set",
        "function call set",
    ] {
        {
            let conn = pool.get().await.unwrap();
            match what {
                "set" => conn
                    .batch_execute("SET work_mem = '1234kB'")
                    .await
                    .map(drop),
                "set_config" => conn
                    .query_one("SELECT set_config('pgpool.custom', 'dirty', false)", &[])
                    .await
                    .map(drop),
                "temp table" => conn
                    .execute("CREATE TEMP TABLE tap_tmp (x int)", &[])
                    .await
                    .map(drop),
                "advisory lock" => conn
                    .query_one("SELECT pg_advisory_lock(42)", &[])
                    .await
                    .map(drop),
                "listen" => conn.batch_execute("LISTEN tap_channel").await,
                "prepare" => conn.batch_execute("PREPARE tap_stmt AS SELECT 1").await,
                // Prepared and cached by the first; run again from the cache by the second,
                // its SQL no longer on the wire.
                "cached advisory lock" | "cached advisory lock again" => {
                    let statement = conn.prepare_cached(lock).await.unwrap();
                    assert_eq!(conn.cached_statements(), 1, "[{tag}] the cache survived");
                    conn.query_prepared(&statement, &[&7i64]).await.map(drop)
                }
                "deref set" => {
                    let raw: &Client = &conn;
                    raw.batch_execute("SET work_mem = '1234kB'").await.unwrap();
                    Ok(())
                }
                "generic set" => {
                    set_generic(&**conn).await;
                    Ok(())
                }
                // A reported setting changed out of sight (inside a function): the server
                // says so with a ParameterStatus.
                _ => conn.query_one(&call_hidden, &[]).await.map(drop),
            }
            .unwrap_or_else(|e| panic!("[{tag}] {what}: {e}"));
        }
        let conn = pool.get().await.unwrap();
        assert_eq!(
            conn.backend_pid().await.unwrap(),
            pid,
            "[{tag}] {what}: reset, not replaced"
        );
        let probe = first_row(&conn.simple_query(PROBE_SQL).await.unwrap());
        assert_eq!(probe, CLEAN, "[{tag}] {what}: leaked to the next user");
        let datestyle = conn.query_one("SHOW DateStyle", &[]).await.unwrap();
        assert_eq!(datestyle.get::<_, String>(0), "ISO, MDY", "[{tag}] {what}");
    }

    // Raw use that changed nothing: the return's marker proves the session idle, no reset.
    {
        let conn = pool.get().await.unwrap();
        let raw: &Client = &conn;
        raw.query_one("SELECT 3", &[]).await.unwrap();
    }
    sleep::<R>(Duration::from_millis(300)).await;
    let last = last_query(cluster, pid).await;
    println!("[{tag}] after raw clean use: {last:?}");
    assert!(
        last.starts_with(MARKER_START),
        "[{tag}] raw clean use: proven idle, not reset: {last:?}"
    );
    pool.get()
        .await
        .unwrap()
        .batch_execute(&format!("DROP FUNCTION {hidden}()"))
        .await
        .unwrap();

    // A transaction left open through the raw client, and through the wrapper: destroyed.
    let before = pool.metrics().destroys_for(DestroyReason::ResetFailed);
    for raw in [true, false] {
        let pid = {
            let conn = pool.get().await.unwrap();
            if raw {
                conn.client().batch_execute("BEGIN").await.unwrap();
            } else {
                conn.batch_execute("BEGIN; SELECT 1").await.unwrap();
            }
            conn.backend_pid().await.unwrap()
        };
        let conn = pool.get().await.unwrap();
        assert_ne!(
            conn.backend_pid().await.unwrap(),
            pid,
            "[{tag}] raw {raw}: open transaction reused"
        );
    }
    assert_eq!(
        pool.metrics().destroys_for(DestroyReason::ResetFailed) - before,
        2
    );
    pool.drain().await;
}

/// A user's own `DISCARD ALL` or `DEALLOCATE ALL` drops the server's prepared statements:
/// the statement cache is emptied on return, so the next user's `prepare_cached` prepares
/// again instead of handing out a statement the server forgot.
pub(crate) async fn discarded_statements_leave_the_cache<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let pool = single::<R>(pg_config(cluster, None, &format!("tp-tap-discard-{tag}"))).await;
    const SQL: &str = "SELECT $1::int + 1";
    let conn = pool.get().await.unwrap();
    let pid = conn.backend_pid().await.unwrap();
    let statement = conn.prepare_cached(SQL).await.unwrap();
    let row = &conn.query_prepared(&statement, &[&1]).await.unwrap()[0];
    assert_eq!(row.get::<_, i32>(0), 2);
    drop(conn);
    for (how, sql) in [("wrapper", "DISCARD ALL"), ("raw", "DEALLOCATE ALL")] {
        let conn = pool.get().await.unwrap();
        assert_eq!(
            conn.backend_pid().await.unwrap(),
            pid,
            "[{tag}] one session"
        );
        if how == "raw" {
            let raw: &pg_pool_tokio_postgres::tokio_postgres::Client = &conn;
            raw.batch_execute(sql).await.unwrap();
        } else {
            conn.batch_execute(sql).await.unwrap();
        }
        drop(conn);
        let conn = pool.get().await.unwrap();
        assert_eq!(
            conn.backend_pid().await.unwrap(),
            pid,
            "[{tag}] one session"
        );
        let statement = conn.prepare_cached(SQL).await.unwrap();
        let rows = conn.query_prepared(&statement, &[&41]).await;
        let rows = rows.unwrap_or_else(|e| {
            panic!("[{tag}] {how} {sql}: a forgotten statement was handed out: {e}")
        });
        assert_eq!(rows[0].get::<_, i32>(0), 42);
        drop(conn);
    }
    pool.drain().await;
}

/// `query_one`/`query_opt` and their `_prepared` forms read every row (keeping the first),
/// so a wrong row count is a `RowCount` error naming the count and the session is still
/// idle and clean: it goes back without a reset (its last statement stays the user's) and
/// is reused.
pub(crate) async fn one_row_calls<R: PgRuntime>(tag: &'static str) {
    use pg_pool_tokio_postgres::PgError;

    let cluster = TestCluster::shared();
    let pool = single::<R>(pg_config(cluster, None, &format!("tp-one-row-{tag}"))).await;
    let none = "SELECT 1 WHERE false";
    let two = "SELECT generate_series(1, 2)";
    let count = |e: PgError| match e {
        PgError::RowCount { got, .. } => got,
        other => panic!("[{tag}] not a row count: {other}"),
    };
    let pid = {
        let conn = pool.get().await.unwrap();
        let pid = conn.backend_pid().await.unwrap();
        let row = conn.query_one("SELECT 41 + 1", &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
        let err = conn.query_one(none, &[]).await.unwrap_err();
        assert_eq!(err.to_string(), "query_one expected one row, got 0 rows");
        assert_eq!(count(conn.query_one(two, &[]).await.unwrap_err()), 2);
        assert!(conn.query_opt(none, &[]).await.unwrap().is_none());
        let row = conn.query_opt("SELECT 7", &[]).await.unwrap().unwrap();
        assert_eq!(row.get::<_, i32>(0), 7);
        assert_eq!(count(conn.query_opt(two, &[]).await.unwrap_err()), 2);
        pid
    };
    {
        let conn = pool.get().await.unwrap();
        assert_eq!(conn.backend_pid().await.unwrap(), pid, "[{tag}] reused");
        let plus_one = conn.prepare_cached("SELECT $1::int4 + 1").await.unwrap();
        let empty = conn.prepare_cached(none).await.unwrap();
        let pair = conn.prepare_cached(two).await.unwrap();
        let row = conn.query_one_prepared(&plus_one, &[&41i32]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 42);
        assert_eq!(
            count(conn.query_one_prepared(&empty, &[]).await.unwrap_err()),
            0
        );
        assert_eq!(
            count(conn.query_one_prepared(&pair, &[]).await.unwrap_err()),
            2
        );
        assert!(
            conn.query_opt_prepared(&empty, &[])
                .await
                .unwrap()
                .is_none()
        );
        let row = conn.query_opt_prepared(&plus_one, &[&6i32]).await.unwrap();
        assert_eq!(row.unwrap().get::<_, i32>(0), 7);
        let err = conn.query_opt_prepared(&pair, &[]).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "query_opt_prepared expected at most one row, got 2 rows"
        );
        conn.query_one("SELECT 'one-row-last'", &[]).await.unwrap();
    }
    sleep::<R>(Duration::from_millis(300)).await;
    let last = last_query(cluster, pid).await;
    println!("[{tag}] after the one-row calls: {last:?}");
    assert_eq!(
        last, "SELECT 'one-row-last'",
        "[{tag}] a clean session was reset"
    );
    let conn = pool.get().await.unwrap();
    assert_eq!(
        conn.backend_pid().await.unwrap(),
        pid,
        "[{tag}] reused again"
    );
    assert_eq!(
        first_row(&conn.simple_query(PROBE_SQL).await.unwrap()),
        CLEAN,
        "[{tag}] clean"
    );
}
