//! Session state never leaks from one user of a pooled connection to the next.

mod common;

use std::time::{Duration, Instant};

use common::{pool_config, wire_config, wire_pool};
use pg_pool_core::{DestroyReason, LifecycleHooks};
use pg_pool_test_support::TestCluster;
use pg_pool_tokio::ConnPool;
use pg_pool_wire::{AsyncWirePoolable, TransactionStatus, WireConnector};

/// What a fresh session looks like, as one row of text.
const PROBE_SQL: &str = "SELECT current_setting('work_mem'), current_setting('search_path'), \
     to_regclass('pg_temp.leak_tmp') IS NULL, \
     (SELECT count(*) FROM pg_prepared_statements), \
     (SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid()), \
     current_setting('pgpool.custom', true) IS NULL OR current_setting('pgpool.custom', true) = '', \
     (SELECT count(*) FROM pg_listening_channels())";

fn assert_clean(row: &[Option<String>], context: &str) {
    let text: Vec<&str> = row.iter().map(|v| v.as_deref().unwrap_or("NULL")).collect();
    assert_eq!(
        text,
        ["4MB", "\"$user\", public", "t", "0", "0", "t", "0"],
        "session not clean {context}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_state_never_leaks_to_the_next_checkout() {
    let cluster = TestCluster::shared();
    let app = "session-leak";
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    let pool = wire_pool(
        wire_config(cluster, None, app),
        config,
        LifecycleHooks::default(),
    )
    .await;
    {
        let mut conn = pool.get().await.unwrap();
        conn.execute("CREATE TABLE IF NOT EXISTS leak_rows (x int)")
            .await
            .unwrap();
        let row = &conn.simple_query(PROBE_SQL).await.unwrap()[0];
        assert_clean(row, "at first checkout");
    }

    // 1. Session settings, a temp table, a prepared statement, an advisory lock, LISTEN.
    let first_pid;
    {
        let mut conn = pool.get().await.unwrap();
        first_pid = conn.backend_pid();
        conn.execute(
            "SET work_mem = '1234kB'; SET search_path = pg_catalog; \
             SELECT set_config('pgpool.custom', 'dirty', false); \
             CREATE TEMP TABLE leak_tmp (x int); PREPARE leak_stmt AS SELECT 1; \
             SELECT pg_advisory_lock(42); LISTEN leak_channel",
        )
        .await
        .unwrap();
        assert!(conn.session_changed());
    }
    let started = Instant::now();
    {
        let mut conn = pool.get().await.unwrap();
        let elapsed = started.elapsed();
        assert_eq!(
            conn.backend_pid(),
            first_pid,
            "a changed session is reset, not replaced"
        );
        assert!(!conn.session_changed());
        let row = &conn.simple_query(PROBE_SQL).await.unwrap()[0];
        assert_clean(row, "after SET/TEMP/PREPARE/advisory lock/LISTEN");
        println!("checkout after a DISCARD ALL reset took {elapsed:?}");
    }

    // 2. A transaction left open (with an uncommitted row and a SET LOCAL).
    let before = pool.metrics();
    {
        let mut conn = pool.get().await.unwrap();
        conn.execute("BEGIN; INSERT INTO leak_rows VALUES (1); SET LOCAL work_mem = '2MB'")
            .await
            .unwrap();
        assert_eq!(conn.transaction_status(), TransactionStatus::InTransaction);
    }
    {
        let mut conn = pool.get().await.unwrap();
        assert_eq!(conn.transaction_status(), TransactionStatus::Idle);
        assert_ne!(
            conn.backend_pid(),
            first_pid,
            "a session left in a transaction is destroyed"
        );
        let row = &conn.simple_query(PROBE_SQL).await.unwrap()[0];
        assert_clean(row, "after a transaction left open");
        let rows = conn
            .query_value("SELECT count(*) FROM leak_rows")
            .await
            .unwrap();
        assert_eq!(
            rows.as_deref(),
            Some("0"),
            "the open transaction was rolled back"
        );
    }
    let after = pool.metrics();
    assert_eq!(
        after.destroys_for(DestroyReason::ResetFailed)
            - before.destroys_for(DestroyReason::ResetFailed),
        1
    );

    // 3. A failed transaction (error inside BEGIN).
    let pid = pool.get().await.unwrap().backend_pid();
    {
        let mut conn = pool.get().await.unwrap();
        let err = conn.execute("BEGIN; SELECT 1/0").await.unwrap_err();
        assert_eq!(err.code(), Some("22012"), "{err}");
        assert_eq!(conn.transaction_status(), TransactionStatus::Failed);
    }
    {
        let mut conn = pool.get().await.unwrap();
        assert_ne!(conn.backend_pid(), pid, "a failed transaction is destroyed");
        assert_eq!(
            conn.query_value("SELECT 1").await.unwrap().as_deref(),
            Some("1")
        );
    }

    // 4. An exchange abandoned midway (its future dropped by a timeout).
    let pid = pool.get().await.unwrap().backend_pid();
    {
        let mut conn = pool.get().await.unwrap();
        let abandoned = tokio::time::timeout(
            Duration::from_millis(100),
            conn.execute("SET work_mem = '3MB'; SELECT pg_sleep(5)"),
        )
        .await;
        assert!(abandoned.is_err());
        assert!(conn.is_broken());
    }
    {
        let mut conn = pool.get().await.unwrap();
        assert_ne!(
            conn.backend_pid(),
            pid,
            "an abandoned exchange destroys the connection"
        );
        let row = &conn.simple_query(PROBE_SQL).await.unwrap()[0];
        assert_clean(row, "after an abandoned query");
    }

    // 5. Raw use of the WireConn: reset (resynchronised) with DISCARD ALL.
    {
        let mut conn = pool.get().await.unwrap();
        // Send a statement and leave its response unread.
        conn.wire_mut()
            .send_raw(&simple_query_message("SET work_mem = '5MB'"))
            .await
            .unwrap();
    }
    {
        let mut conn = pool.get().await.unwrap();
        let row = &conn.simple_query(PROBE_SQL).await.unwrap()[0];
        assert_clean(row, "after raw use with an unread response");
    }

    // 6. A read-only user: no reset is due, the same session is reused.
    let pid = {
        let mut conn = pool.get().await.unwrap();
        conn.query_value("SELECT count(*) FROM leak_rows")
            .await
            .unwrap();
        assert!(!conn.session_changed());
        conn.backend_pid()
    };
    assert_eq!(pool.get().await.unwrap().backend_pid(), pid);

    let m = pool.metrics();
    println!(
        "destroys: reset_failed={} broken={} creates={}",
        m.destroys_for(DestroyReason::ResetFailed),
        m.destroys_for(DestroyReason::Broken),
        m.creates
    );
    assert!(m.size <= 1);
    pool.drain().await;
}

fn simple_query_message(sql: &str) -> Vec<u8> {
    let mut out = vec![b'Q'];
    out.extend_from_slice(&i32::try_from(sql.len() + 5).unwrap().to_be_bytes());
    out.extend_from_slice(sql.as_bytes());
    out.push(0);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_conn_state_never_leaks_to_the_next_checkout() {
    let cluster = TestCluster::shared();
    let wire = wire_config(cluster, None, "session-leak-async");
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    let pool = ConnPool::<AsyncWirePoolable>::builder(WireConnector::new(wire))
        .config(config)
        .hooks(LifecycleHooks::default())
        .build()
        .await
        .unwrap();
    let value = |rows: Vec<pg_pool_wire::pg_wired::protocol::types::RawRow>| {
        String::from_utf8(rows[0].cell(0).unwrap().to_vec()).unwrap()
    };

    // A changed session the caller declares: DISCARD ALL, same backend.
    let pid = {
        let conn = pool.get().await.unwrap();
        conn.mark_state_mutated();
        conn.exec_query("SELECT set_config('work_mem', '1234kB', false)", &[], &[])
            .await
            .unwrap();
        conn.backend_pid()
    };
    {
        let conn = pool.get().await.unwrap();
        assert_eq!(conn.backend_pid(), pid);
        let rows = conn
            .exec_query("SELECT current_setting('work_mem')", &[], &[])
            .await
            .unwrap();
        assert_eq!(value(rows), "4MB");
    }

    // A transaction left open: destroyed.
    {
        let conn = pool.get().await.unwrap();
        conn.exec_query("BEGIN", &[], &[]).await.unwrap();
        conn.exec_query("SELECT set_config('work_mem', '2MB', true)", &[], &[])
            .await
            .unwrap();
    }
    {
        let conn = pool.get().await.unwrap();
        assert_ne!(
            conn.backend_pid(),
            pid,
            "a session left in a transaction is destroyed"
        );
        let rows = conn
            .exec_query("SELECT current_setting('work_mem')", &[], &[])
            .await
            .unwrap();
        assert_eq!(value(rows), "4MB");
    }
    let m = pool.metrics();
    assert_eq!(m.destroys_for(DestroyReason::ResetFailed), 1);
    pool.drain().await;
    let left = common::eventually(Duration::from_secs(3), || async {
        common::backends(cluster, "session-leak-async").await == 0
    })
    .await;
    assert!(left.is_some(), "AsyncConn backends are closed on drain");
}
