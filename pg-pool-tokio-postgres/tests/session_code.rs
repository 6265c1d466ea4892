//! Session state changed by code the server runs (`DO`, `CALL`, a user-defined function
//! called from `SELECT`, `VALUES` or a `WHERE` clause) never leaks to the next user of the
//! same backend under the default `ResetWhen::Changed`, on tokio (multi-thread), async-std
//! and smol: each statement runs through the wrapper (`query`, `execute`, `prepare_cached`)
//! and through the raw `Client` (`batch_execute`, `simple_query`) on a pool of one
//! connection, and the next checkout, on the same backend, sees the defaults
//! (`search_path`, no temporary table, no advisory lock, no `LISTEN`, `work_mem`).

mod common;

use std::sync::Once;
use std::time::Duration;

use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::tokio_postgres::Client;
use pg_pool_tokio_postgres::{PgPool, PgRuntime};

use common::{Harness, blocking, first_row, pg_config, pool, pool_config, sleep};

/// What a fresh session looks like: `search_path`, `work_mem`, whether `pg_temp.tap_code`
/// is absent, the session's advisory locks, the channels it listens to.
const PROBE_SQL: &str = "SELECT current_setting('search_path'), current_setting('work_mem'), \
     (to_regclass('pg_temp.tap_code') IS NULL)::text, \
     (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())::text, \
     (SELECT count(*) FROM pg_listening_channels())::text";

const CLEAN: [&str; 5] = ["\"$user\", public", "4MB", "true", "0", "0"];

/// Statements whose effect on the session comes from code they run, not from their
/// command tag (none of these settings is reported by `ParameterStatus`).
const CASES: &[&str] = &[
    "CALL tapcode.set_path()",
    "CALL tapcode.listen()",
    "CALL tapcode.lock()",
    "CALL tapcode.scratch()",
    "CALL tapcode.setting()",
    "SELECT tapcode.set_path_fn()",
    "SELECT tapcode.listen_fn()",
    "SELECT tapcode.lock_fn()",
    "SELECT tapcode.scratch_fn()",
    "SELECT tapcode.setting_fn()",
    "VALUES (tapcode.set_path_fn())",
    "VALUES (tapcode.listen_fn())",
    "SELECT * FROM tapcode.t WHERE x = tapcode.set_path_fn()",
    "SELECT * FROM tapcode.t WHERE x = tapcode.lock_fn()",
    "DO $$ BEGIN EXECUTE 'SET search_path TO tapcode'; END $$",
    "DO $$ BEGIN EXECUTE 'SET work_mem TO ''1234kB'''; END $$",
    "DO $$ BEGIN EXECUTE 'LISTEN tap_code'; END $$",
];

/// How each statement is run.
const WAYS: [&str; 6] = [
    "query",
    "execute",
    "prepare_cached",
    // The statement the line above cached, run again by name: its SQL is not on the wire.
    "prepare_cached again",
    "raw batch_execute",
    "raw simple_query",
];

/// Bytes of padding of the long statements: less than the longest text the tap judges
/// (they usually reach it in one write even so; split messages are covered by the tap's
/// unit tests, fed in every chunking).
const LONG: usize = 900_000;

/// The start of `sql`, for messages.
fn short(sql: &str) -> &str {
    sql.get(..70).unwrap_or(sql)
}

/// Creates the schema, table, functions and procedures of [`CASES`] once per process.
fn setup(cluster: &TestCluster) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let out = cluster
            .admin_psql()
            .arg("-d")
            .arg(cluster.database())
            .arg("-c")
            .arg(
                "CREATE SCHEMA IF NOT EXISTS tapcode; \
                 GRANT USAGE ON SCHEMA tapcode TO PUBLIC; \
                 CREATE TABLE IF NOT EXISTS tapcode.t (x int); \
                 GRANT SELECT ON tapcode.t TO PUBLIC; \
                 INSERT INTO tapcode.t SELECT 1 WHERE NOT EXISTS (SELECT FROM tapcode.t); \
                 CREATE OR REPLACE PROCEDURE tapcode.set_path() LANGUAGE plpgsql AS \
                   $$ BEGIN SET search_path TO tapcode; END $$; \
                 CREATE OR REPLACE PROCEDURE tapcode.listen() LANGUAGE plpgsql AS \
                   $$ BEGIN EXECUTE 'LISTEN tap_code'; END $$; \
                 CREATE OR REPLACE PROCEDURE tapcode.lock() LANGUAGE plpgsql AS \
                   $$ BEGIN PERFORM pg_advisory_lock(4343); END $$; \
                 CREATE OR REPLACE PROCEDURE tapcode.scratch() LANGUAGE plpgsql AS \
                   $$ BEGIN CREATE TEMP TABLE tap_code (x int); END $$; \
                 CREATE OR REPLACE PROCEDURE tapcode.setting() LANGUAGE plpgsql AS \
                   $$ BEGIN PERFORM set_config('work_mem', '1234kB', false); END $$; \
                 CREATE OR REPLACE FUNCTION tapcode.set_path_fn() RETURNS int LANGUAGE plpgsql AS \
                   $$ BEGIN EXECUTE 'SET search_path TO tapcode'; RETURN 1; END $$; \
                 CREATE OR REPLACE FUNCTION tapcode.listen_fn() RETURNS int LANGUAGE plpgsql AS \
                   $$ BEGIN EXECUTE 'LISTEN tap_code'; RETURN 1; END $$; \
                 CREATE OR REPLACE FUNCTION tapcode.lock_fn() RETURNS int LANGUAGE sql AS \
                   $$ SELECT pg_advisory_lock(4343); SELECT 1 $$; \
                 CREATE OR REPLACE FUNCTION tapcode.scratch_fn() RETURNS int LANGUAGE plpgsql AS \
                   $$ BEGIN CREATE TEMP TABLE tap_code (x int); RETURN 1; END $$; \
                 CREATE OR REPLACE FUNCTION tapcode.setting_fn() RETURNS int LANGUAGE plpgsql AS \
                   $$ BEGIN PERFORM set_config('work_mem', '1234kB', false); RETURN 1; END $$;",
            )
            .output()
            .expect("run psql");
        assert!(
            out.status.success(),
            "create the test functions: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    });
}

/// Runs `sql` on a checked-out connection, `way` as in [`WAYS`].
async fn run<R: PgRuntime>(pool: &PgPool<R>, sql: &str, way: &str) -> Result<(), String> {
    let conn = pool.get().await.map_err(|e| e.to_string())?;
    let ran = match way {
        "query" => conn
            .query(sql, &[])
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        "execute" => conn
            .execute(sql, &[])
            .await
            .map(drop)
            .map_err(|e| e.to_string()),
        "prepare_cached" | "prepare_cached again" => {
            let before = conn.cached_statements();
            match conn.prepare_cached(sql).await {
                // The second time, the statement comes from the cache: nothing is prepared.
                Ok(_) if way == "prepare_cached again" && conn.cached_statements() != before => {
                    Err("not found in the statement cache".to_owned())
                }
                Ok(statement) => conn
                    .query_prepared(&statement, &[])
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
        "raw batch_execute" => {
            let raw: &Client = &conn;
            raw.batch_execute(sql).await.map_err(|e| e.to_string())
        }
        _ => {
            let raw: &Client = &conn;
            raw.simple_query(sql)
                .await
                .map(drop)
                .map_err(|e| e.to_string())
        }
    };
    drop(conn);
    ran
}

/// Every case, every way: the next user on the same backend sees a fresh session.
async fn code_run_by_the_server_never_leaks<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    blocking(move || setup(cluster)).await;
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    let pool = pool::<R>(pg_config(cluster, None, &format!("tp-code-{tag}")), config).await;
    let pid = pool.get().await.unwrap().backend_pid().await.unwrap();
    let mut leaks = Vec::new();
    // One more, long (judged whole, not counted unread).
    let long = format!("SELECT tapcode.set_path_fn() /* {} */", "x".repeat(LONG));
    for sql in CASES.iter().copied().chain([long.as_str()]) {
        let sql_shown = short(sql);
        for way in WAYS {
            if let Err(e) = run(&pool, sql, way).await {
                leaks.push(format!("{way} {sql_shown}: failed: {e}"));
            }
            let conn = pool.get().await.unwrap();
            assert_eq!(
                conn.backend_pid().await.unwrap(),
                pid,
                "[{tag}] {way} {sql_shown}: reset, not replaced"
            );
            let probe = first_row(&conn.simple_query(PROBE_SQL).await.unwrap());
            println!("[{tag}] {way} {sql_shown}: next user sees {probe:?}");
            if probe != CLEAN {
                leaks.push(format!("{way} {sql_shown}: {probe:?}"));
            }
            drop(conn);
            if probe != CLEAN {
                // Start the next case from a clean session whatever this one left, keeping
                // the statement cache (no `DISCARD ALL`).
                let conn = pool.get().await.unwrap();
                conn.batch_execute(
                    "RESET ALL; UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP",
                )
                .await
                .unwrap();
            }
        }
    }
    assert!(
        leaks.is_empty(),
        "[{tag}] leaked to the next user ({} of {}): {leaks:#?}",
        leaks.len(),
        (CASES.len() + 1) * WAYS.len()
    );
    pool.drain().await;
}

/// Statements calling only built-ins, or naming the judge's words only inside string
/// constants, still go back without a reset: the backend's last statement stays the
/// user's.
async fn harmless_sql_is_not_reset<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    let pool = pool::<R>(
        pg_config(cluster, None, &format!("tp-code-clean-{tag}")),
        config,
    )
    .await;
    let pid = pool.get().await.unwrap().backend_pid().await.unwrap();
    let long = format!("SELECT 2 /* {} */", "x".repeat(LONG));
    for sql in [
        "SELECT 'a temporary advisory set_config note'::text",
        "SELECT lower('X'), now() IS NOT NULL, coalesce(NULL, 1)",
        "VALUES (1, 'temp')",
        &long,
    ] {
        let sql_shown = short(sql);
        for way in ["query", "prepare_cached"] {
            run(&pool, sql, way).await.unwrap();
            sleep::<R>(Duration::from_millis(300)).await;
            let q = format!("SELECT query FROM pg_stat_activity WHERE pid = {pid}");
            let last = blocking(move || cluster.sql(&q).unwrap()).await;
            println!(
                "[{tag}] {way} {sql_shown}: the backend's last statement is {:?}",
                short(&last)
            );
            // The server shows the first `track_activity_query_size` bytes of a statement.
            assert!(
                !last.is_empty() && sql.starts_with(&last) && last.len() >= sql.len().min(500),
                "[{tag}] {way} {sql_shown}: the session was reset: {}",
                short(&last)
            );
        }
    }
    pool.drain().await;
}

macro_rules! on_runtime {
    ($module:ident, $harness:ty) => {
        mod $module {
            use super::*;

            #[test]
            fn code_run_by_the_server_never_leaks() {
                type Rt = <$harness as Harness>::Rt;
                <$harness>::block_on(super::code_run_by_the_server_never_leaks::<Rt>(stringify!(
                    $module
                )));
            }

            #[test]
            fn harmless_sql_is_not_reset() {
                type Rt = <$harness as Harness>::Rt;
                <$harness>::block_on(super::harmless_sql_is_not_reset::<Rt>(stringify!($module)));
            }
        }
    };
}

on_runtime!(tokio_mt, common::TokioMt);
on_runtime!(async_std, common::AsyncStdRt);
on_runtime!(smol, common::SmolRt);
