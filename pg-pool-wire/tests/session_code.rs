//! Session state changed by code the server runs (`DO`, `CALL`, a user-defined function
//! called from `SELECT` or `VALUES`) never leaks to the next user of the same backend:
//! each case runs on a pool of one connection, and the next checkout, on the same
//! backend, sees the defaults (`search_path`, no temporary table, no advisory lock, no
//! `LISTEN`). A plain `SELECT` still costs no reset.

mod common;

use std::sync::Once;

use common::{pool_config, wire_config, wire_pool};
use pg_pool_core::LifecycleHooks;
use pg_pool_test_support::TestCluster;
use pg_pool_tokio::ConnPool;
use pg_pool_wire::{AsyncWirePoolable, WireConnector};

/// What a fresh session looks like: `search_path`, whether `pg_temp.leak_code` is absent,
/// the session's advisory locks, the channels it listens to.
const PROBE_SQL: &str = "SELECT current_setting('search_path'), \
     (to_regclass('pg_temp.leak_code') IS NULL)::text, \
     (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid())::text, \
     (SELECT count(*) FROM pg_listening_channels())::text";

const CLEAN: [&str; 4] = ["\"$user\", public", "true", "0", "0"];

/// Statements whose effect on the session comes from code they run, not from their
/// command tag; each must be reset before the next user.
const CASES: &[&str] = &[
    "DO $$ BEGIN EXECUTE 'SET search_path TO leakcode'; END $$",
    "DO $$ BEGIN PERFORM set_config('search_path', 'leakcode', false); END $$",
    "DO $$ BEGIN CREATE TEMP TABLE leak_code (x int); END $$",
    "DO $$ BEGIN PERFORM pg_advisory_lock(4242); END $$",
    "DO $$ BEGIN EXECUTE 'LISTEN leak_code'; END $$",
    "CALL leakcode.set_path()",
    "CALL leakcode.listen()",
    "SELECT leakcode.set_path_fn()",
    "SELECT leakcode.set_config_fn()",
    "SELECT leakcode.temp_table_fn()",
    "SELECT leakcode.lock_fn()",
    "SELECT leakcode.listen_fn()",
    "SELECT * FROM leakcode.listen_fn()",
    "VALUES (leakcode.set_path_fn())",
    "SELECT 1 WHERE leakcode.lock_fn() IS NULL",
];

/// Creates the schema, functions and procedures of [`CASES`] once per test process.
fn setup(cluster: &TestCluster) {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let out = cluster
            .admin_psql()
            .arg("-d")
            .arg(cluster.database())
            .arg("-c")
            .arg(
                "CREATE SCHEMA IF NOT EXISTS leakcode; \
                 GRANT USAGE ON SCHEMA leakcode TO PUBLIC; \
                 CREATE OR REPLACE PROCEDURE leakcode.set_path() LANGUAGE plpgsql AS \
                   $$ BEGIN SET search_path TO leakcode; END $$; \
                 CREATE OR REPLACE PROCEDURE leakcode.listen() LANGUAGE plpgsql AS \
                   $$ BEGIN EXECUTE 'LISTEN leak_code'; END $$; \
                 CREATE OR REPLACE FUNCTION leakcode.set_path_fn() RETURNS int LANGUAGE plpgsql AS \
                   $$ BEGIN SET search_path TO leakcode; RETURN 1; END $$; \
                 CREATE OR REPLACE FUNCTION leakcode.set_config_fn() RETURNS text LANGUAGE sql AS \
                   $$ SELECT set_config('search_path', 'leakcode', false) $$; \
                 CREATE OR REPLACE FUNCTION leakcode.temp_table_fn() RETURNS int LANGUAGE plpgsql AS \
                   $$ BEGIN CREATE TEMP TABLE leak_code (x int); RETURN 1; END $$; \
                 CREATE OR REPLACE FUNCTION leakcode.lock_fn() RETURNS void LANGUAGE sql AS \
                   $$ SELECT pg_advisory_lock(4242) $$; \
                 CREATE OR REPLACE FUNCTION leakcode.listen_fn() RETURNS int LANGUAGE plpgsql AS \
                   $$ BEGIN EXECUTE 'LISTEN leak_code'; RETURN 1; END $$;",
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_run_by_the_server_never_leaks_through_wire_conn() {
    let cluster = TestCluster::shared();
    common::blocking(move || setup(cluster)).await;
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    let pool = wire_pool(
        wire_config(cluster, None, "session-code"),
        config,
        LifecycleHooks::default(),
    )
    .await;
    let pid = pool.get().await.unwrap().backend_pid();
    let mut leaks = Vec::new();
    let mut unseen = Vec::new();
    for sql in CASES {
        {
            let mut conn = pool.get().await.unwrap();
            if let Err(e) = conn.execute(sql).await {
                leaks.push(format!("{sql}: failed: {e}"));
            }
            if !conn.session_changed() {
                unseen.push(*sql);
            }
        }
        let mut conn = pool.get().await.unwrap();
        assert_eq!(conn.backend_pid(), pid, "{sql}: reset, not replaced");
        let row: Vec<String> = conn.simple_query(PROBE_SQL).await.unwrap()[0]
            .iter()
            .map(|v| v.clone().unwrap_or_default())
            .collect();
        println!("{sql}: next user sees {row:?}");
        if row != CLEAN {
            leaks.push(format!("{sql}: {row:?}"));
        }
        if conn.session_changed() {
            leaks.push(format!(
                "the probe (built-ins only) counted as a change after {sql}"
            ));
        }
    }
    assert!(leaks.is_empty(), "leaked to the next user: {leaks:#?}");
    assert!(unseen.is_empty(), "not seen as a change: {unseen:#?}");
    let m = pool.metrics();
    println!("resets: creates={} (one backend throughout)", m.creates);
    assert_eq!(m.creates, 1, "every case was reset on the same backend");
    pool.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn code_run_by_the_server_never_leaks_through_async_conn() {
    let cluster = TestCluster::shared();
    common::blocking(move || setup(cluster)).await;
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    let pool = ConnPool::<AsyncWirePoolable>::builder(WireConnector::new(wire_config(
        cluster,
        None,
        "session-code-async",
    )))
    .config(config)
    .build()
    .await
    .unwrap();
    let pid = pool.get().await.unwrap().backend_pid();
    let mut leaks = Vec::new();
    let mut unseen = Vec::new();
    // Every case through the statement cache (extended protocol), a plain `SET` too, and
    // a few as raw `Query` messages through `submit`.
    let mut cases: Vec<(&str, bool)> = CASES.iter().map(|sql| (*sql, false)).collect();
    cases.push(("SET search_path TO leakcode", false));
    cases.push(("SET search_path TO leakcode", true));
    cases.push(("SELECT leakcode.set_path_fn()", true));
    cases.push(("CALL leakcode.listen()", true));
    for (sql, raw_message) in cases {
        {
            let conn = pool.get().await.unwrap();
            if raw_message {
                let ran = conn
                    .submit(
                        query_message(sql),
                        pg_pool_wire::pg_wired::ResponseCollector::Rows,
                    )
                    .await;
                if let Err(e) = ran {
                    leaks.push(format!("{sql}: failed: {e}"));
                }
            } else if let Err(e) = conn.exec_query(sql, &[], &[]).await {
                leaks.push(format!("{sql}: failed: {e}"));
            }
            if !conn.is_state_mutated() {
                unseen.push(sql);
            }
        }
        let conn = pool.get().await.unwrap();
        assert_eq!(conn.backend_pid(), pid, "{sql}: reset, not replaced");
        let rows = conn.exec_query(PROBE_SQL, &[], &[]).await.unwrap();
        let row: Vec<String> = (0..4)
            .map(|i| String::from_utf8(rows[0].cell(i).unwrap().to_vec()).unwrap())
            .collect();
        println!("{sql} (raw message: {raw_message}): next user sees {row:?}");
        if row != CLEAN {
            leaks.push(format!("{sql}: {row:?}"));
        }
        if conn.is_state_mutated() {
            leaks.push(format!(
                "the probe (built-ins only) counted as a change after {sql}"
            ));
        }
    }
    assert!(leaks.is_empty(), "leaked to the next user: {leaks:#?}");
    assert!(unseen.is_empty(), "not seen as a change: {unseen:#?}");
    assert_eq!(
        pool.metrics().creates,
        1,
        "every case was reset on the same backend"
    );
    pool.drain().await;
}

/// A simple `Query` message.
fn query_message(sql: &str) -> bytes::BytesMut {
    let mut out = bytes::BytesMut::new();
    out.extend_from_slice(b"Q");
    out.extend_from_slice(&i32::try_from(sql.len() + 5).unwrap().to_be_bytes());
    out.extend_from_slice(sql.as_bytes());
    out.extend_from_slice(&[0]);
    out
}
