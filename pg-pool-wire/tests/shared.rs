//! `get_shared` on `AsyncWirePoolable` against a real server: many tasks pipelined on a
//! few sessions get their own answers; statements that could open a transaction or change
//! the session for everyone are refused before anything is sent; a killed backend fails
//! only the requests in flight on it and is replaced; a server restart is survived.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{async_wire_pool, backends, blocking, own_cluster, text, wire_config};
use pg_pool_core::SharedGuard;
use pg_pool_test_support::TestCluster;
use pg_pool_wire::WireError;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_tasks_share_two_sessions_and_get_their_own_answers() {
    let cluster = TestCluster::shared();
    let app = "wire-shared-many";
    let pool = async_wire_pool(wire_config(cluster, None, app), 2);
    let mut tasks = Vec::new();
    for task in 0..64 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..20 {
                let db = pool.get_shared().await.expect("a shared lease");
                let arg = (task * 100 + i).to_string();
                let rows = db
                    .handle()
                    .exec_query("SELECT $1::int + 1", &[Some(arg.as_bytes())], &[0])
                    .await
                    .expect("the query runs");
                assert_eq!(text(&rows, 0, 0), (task * 100 + i + 1).to_string());
            }
        }));
    }
    for task in tasks {
        task.await.expect("no task panicked");
    }
    let stats = pool.shared_stats();
    let m = pool.metrics();
    println!("shared: {stats:?}; pool creates {}", m.creates);
    assert_eq!(stats.handed_out, 64 * 20);
    assert!(m.creates <= 2, "{m:?}");
    assert!(backends(cluster, app).await <= 2);
    pool.drain().await;
    assert_eq!(
        backends(cluster, app).await,
        0,
        "drain closed every session"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn session_level_statements_are_refused_before_anything_is_sent() {
    let cluster = TestCluster::shared();
    let pool = async_wire_pool(wire_config(cluster, None, "wire-shared-refused"), 1);
    let db = pool.get_shared().await.expect("a shared lease");
    let other = pool.get_shared().await.expect("a second user");
    let before = db
        .handle()
        .exec_query("SELECT pg_backend_pid()", &[], &[])
        .await
        .expect("runs");
    for sql in [
        "BEGIN",
        "start transaction",
        "SET search_path TO nowhere",
        "LISTEN channel",
        "DO $$ BEGIN PERFORM set_config('search_path', 'nowhere', false); END $$",
        "/* SELECT */ COMMIT",
        "SELECT 1; BEGIN",
    ] {
        let error = db.handle().exec_query(sql, &[], &[]).await.expect_err(sql);
        println!("{sql:?}: {error}");
        // A multi-statement text is refused by the server (extended protocol), the rest
        // by the handle before anything is sent.
        assert!(
            matches!(error, WireError::NotShareable { .. }) || error.code() == Some("42601"),
            "{sql:?}: {error:?}"
        );
    }
    let nul = db
        .handle()
        .exec_query("SELECT 1\0; BEGIN", &[], &[])
        .await
        .expect_err("a NUL byte");
    assert!(matches!(nul, WireError::InvalidStatement { .. }), "{nul:?}");
    // Nothing reached the session: no transaction is open, the other user is unaffected.
    let rows = other
        .handle()
        .exec_query(
            "SELECT pg_backend_pid(), current_setting('search_path')",
            &[],
            &[],
        )
        .await
        .expect("the session is fine");
    assert_eq!(text(&rows, 0, 0), text(&before, 0, 0), "the same session");
    assert_ne!(text(&rows, 0, 1), "nowhere");
    let pid = text(&rows, 0, 0);
    let state = blocking(move || {
        cluster.sql(&format!(
            "SELECT state FROM pg_stat_activity WHERE pid = {pid}"
        ))
    })
    .await
    .expect("pg_stat_activity");
    assert_eq!(state, "idle", "no transaction block is open");
    assert!(!db.handle().is_broken());
    drop((db, other));
    assert_eq!(pool.metrics().destroys, 0, "{:?}", pool.metrics());
    pool.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_backend_fails_only_its_users() {
    let cluster = own_cluster();
    let app = "wire-shared-kill";
    let pool = async_wire_pool(wire_config(cluster, None, app), 2);
    pool.set_shared_max_in_flight(6).unwrap();
    let mut guards = Vec::new();
    for _ in 0..12 {
        guards.push(pool.get_shared().await.unwrap());
    }
    let pids: Vec<i32> = guards.iter().map(|g| g.handle().backend_pid()).collect();
    let victim = pids[0];
    let counts = pids.iter().fold(HashMap::new(), |mut counts, pid| {
        *counts.entry(*pid).or_insert(0) += 1;
        counts
    });
    assert_eq!(counts.len(), 2, "two shared sessions: {counts:?}");
    assert_eq!(counts[&victim], 6, "six users on each: {counts:?}");
    let mut tasks = Vec::new();
    for (guard, pid) in guards.into_iter().zip(pids) {
        tasks.push((
            pid,
            tokio::spawn(async move {
                let result = guard
                    .handle()
                    .exec_query("SELECT pg_sleep(1)::text, pg_backend_pid()", &[], &[])
                    .await
                    .map(|rows| text(&rows, 0, 1));
                (result, guard)
            }),
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed =
        blocking(move || cluster.sql(&format!("SELECT pg_terminate_backend({victim})"))).await;
    assert_eq!(killed.unwrap(), "t", "the backend was terminated");
    let mut victims = Vec::new();
    let mut others = Vec::new();
    for (pid, task) in tasks {
        let (result, guard) = task.await.expect("the task finished");
        if pid == victim {
            let error = result.expect_err("a query on the killed session fails");
            println!("in flight on the killed session: {error}");
            assert!(error.is_fatal(), "a fatal error: {error:?}");
            victims.push(guard);
        } else {
            assert_eq!(
                result.expect("the other session is unaffected"),
                pid.to_string()
            );
            others.push(guard);
        }
    }
    assert_eq!((victims.len(), others.len()), (6, 6));
    assert!(victims.iter().all(|g| g.handle().is_broken()));
    drop(victims);
    let m = pool.metrics();
    assert_eq!(
        m.destroys, 1,
        "the killed one is destroyed once its users let go: {m:?}"
    );
    // The other is full: the next caller gets a replacement, never the killed session.
    let replacement = pool.get_shared().await.expect("served after the kill");
    assert_ne!(replacement.handle().backend_pid(), victim);
    assert_eq!(SharedGuard::in_flight(&replacement), 1);
    drop((others, replacement));
    for _ in 0..20 {
        let db = pool.get_shared().await.expect("served after the kill");
        let rows = db
            .handle()
            .exec_query("SELECT pg_backend_pid()", &[], &[])
            .await
            .expect("a live session");
        assert_ne!(text(&rows, 0, 0), victim.to_string());
    }
    println!("after the kill: {:?}", pool.shared_stats());
    pool.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_leases_are_served_again_after_a_restart() {
    let cluster = own_cluster();
    let app = "wire-shared-restart";
    let pool = async_wire_pool(wire_config(cluster, None, app), 2);
    pool.set_shared_max_in_flight(4).unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(pool.get_shared().await.unwrap());
    }
    blocking(move || cluster.restart_fast())
        .await
        .expect("restart");
    let mut failed = 0;
    for guard in &held {
        if guard
            .handle()
            .exec_query("SELECT 1", &[], &[])
            .await
            .is_err()
        {
            failed += 1;
        }
    }
    assert_eq!(failed, 8, "every old session is gone");
    drop(held);
    let started = std::time::Instant::now();
    let mut served = None;
    while started.elapsed() < Duration::from_secs(10) {
        if let Ok(db) = pool.get_shared().await
            && db.handle().exec_query("SELECT 1", &[], &[]).await.is_ok()
        {
            served = Some(started.elapsed());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let served = served.expect("shared leases are served again within 10 s");
    println!("served again {served:?} after the restart returned");
    pool.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_nul_byte_is_refused_and_the_connection_stays_usable() {
    let cluster = TestCluster::shared();
    let pool = async_wire_pool(wire_config(cluster, None, "wire-nul"), 1);
    let conn = pool.get().await.unwrap();
    for sql in ["SELECT 1\0 garbage", "SELECT 2\0"] {
        let error = WireError::from(
            conn.exec_query(sql, &[], &[])
                .await
                .expect_err("a NUL byte is refused"),
        );
        assert_eq!(error.code(), Some("22021"), "{error:?}");
        assert!(!error.is_fatal(), "{error:?}");
    }
    let copy = conn.copy_out("COPY (SELECT 1) TO STDOUT\0").await;
    assert!(copy.is_err(), "{copy:?}");
    let rows = conn
        .exec_query("SELECT 3", &[], &[])
        .await
        .expect("the session is unaffected");
    assert_eq!(text(&rows, 0, 0), "3");
    assert!(!conn.is_broken());
    drop(conn);
    let m = pool.metrics();
    assert_eq!((m.destroys, m.server_changes), (0, 0), "{m:?}");
    pool.drain().await;
}

/// A protocol violation (here a malformed message sent raw) ends that one session; it is
/// not a sign that the server changed, so the pool's other connections stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_protocol_violation_ends_one_session_not_the_pool() {
    let cluster = TestCluster::shared();
    let pool = async_wire_pool(wire_config(cluster, None, "wire-violation"), 2);
    let bad = pool.get().await.unwrap();
    let good = pool.get().await.unwrap();
    let mut message = bytes::BytesMut::new();
    // A simple query whose length leaves out its text.
    message.extend_from_slice(b"Q");
    message.extend_from_slice(&4i32.to_be_bytes());
    let Err(error) = bad.submit(message, pg_wired::ResponseCollector::Rows).await else {
        panic!("the server accepted a malformed message");
    };
    let error = WireError::from(error);
    println!("malformed message: {error}");
    assert!(error.is_fatal(), "{error:?}");
    assert!(bad.is_broken());
    drop(bad);
    let rows = good
        .exec_query("SELECT 1", &[], &[])
        .await
        .expect("the other session is unaffected");
    assert_eq!(text(&rows, 0, 0), "1");
    drop(good);
    let m = pool.metrics();
    assert_eq!(m.server_changes, 0, "no pool-wide eviction: {m:?}");
    assert_eq!(
        (m.destroys, m.idle),
        (1, 1),
        "only the violating one went: {m:?}"
    );
    pool.drain().await;
}
