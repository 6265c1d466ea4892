//! Session state never leaks from one user of a pooled connection to the next.

use std::time::Duration;

use pg_pool_core::DestroyReason;
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::{PgRuntime, ResetStrategy};

use crate::common::{blocking, first_row, pg_config, pool, pool_config};

/// What a fresh session looks like: work_mem, search_path, no temp table, prepared
/// statements (SQL-level), advisory locks, a custom setting unset, channels listened to.
const PROBE_SQL: &str = "SELECT current_setting('work_mem'), current_setting('search_path'), \
     to_regclass('pg_temp.leak_tmp') IS NULL, \
     (SELECT count(*) FROM pg_prepared_statements WHERE from_sql), \
     (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), \
     coalesce(current_setting('pgpool.custom', true), '') = '', \
     (SELECT count(*) FROM pg_listening_channels())";

const CLEAN: [&str; 7] = ["4MB", "\"$user\", public", "t", "0", "0", "t", "0"];

const DIRTY_SQL: &str = "SET work_mem = '1234kB'; SET search_path = pg_catalog; \
     SELECT set_config('pgpool.custom', 'dirty', false); \
     CREATE TEMP TABLE leak_tmp (x int); PREPARE leak_stmt AS SELECT 1; \
     SELECT pg_advisory_lock(42); LISTEN leak_channel";

/// `DISCARD ALL` and the statement-keeping clean sequence both wipe every kind of session
/// state but prepared statements, which only the latter keeps (with the statement cache); a session left in a transaction (open
/// or failed) is destroyed under every strategy; an unused session is not reset at all.
pub(crate) async fn state_never_leaks<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    // (strategy, `None` for the default configuration untouched; whether the statement
    // cache survives; whether SQL-level prepared statements survive)
    for (strategy, keeps_cache, keeps_sql_prepared) in [
        (None, true, false),
        (Some(ResetStrategy::DiscardAll), false, false),
        (Some(ResetStrategy::Clean), true, true),
    ] {
        let app = format!(
            "tp-session-{tag}-{}{}",
            keeps_cache as u8, keeps_sql_prepared as u8
        );
        let mut config = pool_config(1);
        config.test_on_checkout = false;
        let pg = match &strategy {
            Some(strategy) => pg_config(cluster, None, &app).with_reset(strategy.clone()),
            None => pg_config(cluster, None, &app),
        };
        let strategy = strategy.unwrap_or_default();
        assert_eq!(pg.reset, strategy, "the default is {strategy:?}");
        let pool = pool::<R>(pg, config).await;

        // 1. Settings, a temp table, a prepared statement, an advisory lock, LISTEN, and a
        //    statement in the cache.
        let (pid, cached) = {
            let conn = pool.get().await.unwrap();
            assert_eq!(
                first_row(&conn.simple_query(PROBE_SQL).await.unwrap()),
                CLEAN
            );
            conn.batch_execute(DIRTY_SQL).await.unwrap();
            let cached = conn.prepare_cached("SELECT $1::int4 * 2").await.unwrap();
            assert_eq!(conn.cached_statements(), 1);
            (conn.backend_pid().await.unwrap(), cached)
        };
        {
            let conn = pool.get().await.unwrap();
            assert_eq!(
                conn.backend_pid().await.unwrap(),
                pid,
                "{strategy:?}: reset, not replaced"
            );
            // The clean sequence keeps prepared statements by design, SQL-level ones too.
            let mut expected = CLEAN.map(str::to_owned);
            if keeps_sql_prepared {
                expected[3] = "1".into();
            }
            assert_eq!(
                first_row(&conn.simple_query(PROBE_SQL).await.unwrap()),
                expected,
                "{strategy:?}: session not clean"
            );
            if keeps_sql_prepared {
                conn.batch_execute("DEALLOCATE leak_stmt").await.unwrap();
            }
            if keeps_cache {
                assert_eq!(conn.cached_statements(), 1);
                let again = conn.prepare_cached("SELECT $1::int4 * 2").await.unwrap();
                let rows = conn.query_prepared(&again, &[&21i32]).await.unwrap();
                assert_eq!(
                    rows[0].get::<_, i32>(0),
                    42,
                    "the kept statement still runs"
                );
            } else {
                assert_eq!(conn.cached_statements(), 0, "DISCARD ALL clears the cache");
                let err = conn.query_prepared(&cached, &[&21i32]).await.unwrap_err();
                assert_eq!(
                    err.code(),
                    Some("26000"),
                    "the discarded statement is gone: {err}"
                );
                let fresh = conn.prepare_cached("SELECT $1::int4 * 2").await.unwrap();
                let rows = conn.query_prepared(&fresh, &[&21i32]).await.unwrap();
                assert_eq!(rows[0].get::<_, i32>(0), 42);
            }
        }

        // 2. A transaction left open, with an uncommitted SET LOCAL: destroyed.
        let before = pool.metrics().destroys_for(DestroyReason::ResetFailed);
        let pid = {
            let conn = pool.get().await.unwrap();
            conn.batch_execute("BEGIN; SET LOCAL work_mem = '2MB'")
                .await
                .unwrap();
            conn.backend_pid().await.unwrap()
        };
        {
            let conn = pool.get().await.unwrap();
            assert_ne!(
                conn.backend_pid().await.unwrap(),
                pid,
                "{strategy:?}: open transaction reused"
            );
            assert_eq!(
                first_row(&conn.simple_query(PROBE_SQL).await.unwrap()),
                CLEAN
            );
        }
        // 3. A failed transaction: destroyed.
        let pid = {
            let conn = pool.get().await.unwrap();
            let pid = conn.backend_pid().await.unwrap();
            conn.batch_execute("BEGIN").await.unwrap();
            let err = conn.batch_execute("SELECT 1/0").await.unwrap_err();
            assert_eq!(err.code(), Some("22012"), "{err}");
            pid
        };
        {
            let conn = pool.get().await.unwrap();
            assert_ne!(
                conn.backend_pid().await.unwrap(),
                pid,
                "{strategy:?}: failed transaction reused"
            );
        }
        assert_eq!(
            pool.metrics().destroys_for(DestroyReason::ResetFailed) - before,
            2
        );

        // 4. A transaction through the wrapper, dropped uncommitted: rolled back, session kept.
        let pid = {
            let mut conn = pool.get().await.unwrap();
            let txn = conn.transaction().await.unwrap();
            txn.batch_execute("SET LOCAL work_mem = '3MB'")
                .await
                .unwrap();
            drop(txn);
            conn.backend_pid().await.unwrap()
        };
        {
            let conn = pool.get().await.unwrap();
            assert_eq!(
                conn.backend_pid().await.unwrap(),
                pid,
                "a rolled-back transaction keeps the session"
            );
            assert_eq!(
                first_row(&conn.simple_query(PROBE_SQL).await.unwrap()),
                CLEAN
            );
        }

        // 5. A checkout that sends nothing is not reset: the server's last statement for
        //    the session is still ours, not the reset.
        let pid = {
            let conn = pool.get().await.unwrap();
            conn.backend_pid().await.unwrap()
        };
        let conn = pool.get().await.unwrap();
        assert!(!conn.is_dirty());
        drop(conn);
        let q = format!("SELECT query FROM pg_stat_activity WHERE pid = {pid}");
        let last = blocking(move || cluster.sql(&q).unwrap()).await;
        assert_eq!(
            last, "SELECT pg_backend_pid()",
            "an unused session was reset"
        );
        assert!(
            pool.drain_timeout(Duration::from_secs(5))
                .await
                .is_complete()
        );
    }

    // The `None` strategy: state carries over, but an open transaction still destroys.
    let app = format!("tp-session-{tag}-none");
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    let pool = pool::<R>(
        pg_config(cluster, None, &app).with_reset(ResetStrategy::None),
        config,
    )
    .await;
    let pid = {
        let conn = pool.get().await.unwrap();
        conn.batch_execute("SET work_mem = '1234kB'").await.unwrap();
        conn.backend_pid().await.unwrap()
    };
    {
        let conn = pool.get().await.unwrap();
        assert_eq!(conn.backend_pid().await.unwrap(), pid);
        assert_eq!(
            first_row(&conn.simple_query("SHOW work_mem").await.unwrap()),
            ["1234kB"]
        );
        conn.batch_execute("BEGIN").await.unwrap();
    }
    let conn = pool.get().await.unwrap();
    assert_ne!(
        conn.backend_pid().await.unwrap(),
        pid,
        "None strategy: open transaction reused"
    );
    drop(conn);
    pool.drain().await;

    // The default's documented gap: SQL `PREPARE` run by dynamic SQL inside a function,
    // called with SQL that does not say `PREPARE`, survives the reset.
    let app = format!("tp-session-{tag}-gap");
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    let pool = crate::common::pool::<R>(pg_config(cluster, None, &app), config).await;
    let function = format!("tp_dynamic_prepare_{tag}");
    pool.get()
        .await
        .unwrap()
        .batch_execute(&format!(
            "CREATE OR REPLACE FUNCTION {function}() RETURNS void LANGUAGE plpgsql AS \
             $f$BEGIN EXECUTE 'PREPARE gap_stmt AS SELECT 1'; END$f$"
        ))
        .await
        .unwrap();
    pool.get()
        .await
        .unwrap()
        .query(&format!("SELECT {function}()"), &[])
        .await
        .unwrap();
    let conn = pool.get().await.unwrap();
    let survived = first_row(
        &conn
            .simple_query("SELECT count(*) FROM pg_prepared_statements WHERE from_sql")
            .await
            .unwrap(),
    );
    assert_eq!(survived, ["1"], "the documented gap of ResetStrategy::Full");
    conn.batch_execute(&format!("DEALLOCATE ALL; DROP FUNCTION {function}()"))
        .await
        .unwrap();
    drop(conn);
    pool.drain().await;
}
