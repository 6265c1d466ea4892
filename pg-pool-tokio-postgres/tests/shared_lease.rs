//! Shared leases (`get_shared`) on a real PostgreSQL, on tokio, async-std and smol: many
//! tasks pipelining over two connections, a backend killed under in-flight queries, a
//! server restart, exclusive and shared checkouts under one `max_size`, session changes
//! undone on return.

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use pg_pool_core::{DestroyReason, SharedGuard};
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::{PgError, PgRuntime};

use common::{
    Harness, backends, blocking, own_cluster, pg_config, pool, pool_config, sleep, spawn,
};

/// Many tasks over a pool of two shared connections: every answer right, never more than
/// two sessions, statements prepared once per connection; SQL that may open a transaction
/// refused.
async fn many_tasks_right_answers<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let app = format!("tp-shared-many-{tag}");
    let pool = pool::<R>(pg_config(cluster, None, &app), pool_config(2)).await;
    pool.set_shared_max_in_flight(16).unwrap();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..64i32 {
        let pool = pool.clone();
        tasks.push(spawn::<R, _>(async move {
            for i in 0..20i32 {
                let db = pool
                    .get_shared()
                    .await
                    .expect("room on a shared connection");
                let client = db.handle();
                let statement = client
                    .prepare_cached("SELECT $1::int + $2::int")
                    .await
                    .unwrap();
                let rows = client
                    .query_prepared(&statement, &[&task, &i])
                    .await
                    .unwrap();
                assert_eq!(rows[0].get::<_, i32>(0), task + i);
                let row = client
                    .query_one(
                        "SELECT $1::text || '-' || $2::text",
                        &[&task.to_string(), &i.to_string()],
                    )
                    .await
                    .unwrap();
                assert_eq!(row.get::<_, String>(0), format!("{task}-{i}"));
            }
        }));
    }
    let mut most = 0;
    for task in tasks {
        most = most.max(backends(cluster, &app).await);
        task.recv().await.expect("the task finished");
    }
    let stats = pool.shared_stats();
    let m = pool.metrics();
    println!(
        "[{tag}] 64 tasks x 20 shared rounds (2 statements each) in {:?}; most sessions seen {most}; {stats:?}; pool checkouts {}",
        started.elapsed(),
        m.checkouts
    );
    assert!(most <= 2, "[{tag}] {most} sessions");
    assert_eq!(stats.handed_out, 64 * 20);
    assert!(m.creates <= 2, "[{tag}] {m:?}");

    let db = pool.get_shared().await.unwrap();
    for sql in [
        "BEGIN",
        "start transaction",
        "DO $$ BEGIN PERFORM 1; END $$",
    ] {
        let refused = db.handle().execute(sql, &[]).await;
        assert!(
            matches!(refused, Err(PgError::NotShareable { .. })),
            "[{tag}] {sql}: {refused:?}"
        );
        let text = refused.unwrap_err().to_string();
        assert!(text.contains("shared connection"), "{text}");
    }
    drop(db);
    pool.drain().await;
}

/// `pg_terminate_backend` of one shared connection while queries are in flight on both:
/// every query on the killed one fails, every one on the other succeeds, the killed one
/// leaves the set and is destroyed, and later `get_shared` calls get a live session.
async fn killed_backend_fails_only_its_users<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let app = format!("tp-shared-kill-{tag}");
    let pool = pool::<R>(pg_config(cluster, None, &app), pool_config(2)).await;
    pool.set_shared_max_in_flight(6).unwrap();
    let mut guards = Vec::new();
    for _ in 0..12 {
        guards.push(pool.get_shared().await.unwrap());
    }
    let mut pids = Vec::new();
    for guard in &guards {
        pids.push(guard.handle().backend_pid().await.unwrap());
    }
    let victim = pids[0];
    let counts = pids.iter().fold(HashMap::new(), |mut counts, pid| {
        *counts.entry(*pid).or_insert(0) += 1;
        counts
    });
    assert_eq!(counts.len(), 2, "[{tag}] two shared sessions: {counts:?}");
    assert_eq!(counts[&victim], 6, "[{tag}] six users on each: {counts:?}");
    let mut tasks = Vec::new();
    for (guard, pid) in guards.into_iter().zip(pids) {
        tasks.push((
            pid,
            spawn::<R, _>(async move {
                let result = guard
                    .handle()
                    .query_one("SELECT pg_sleep(1)::text, pg_backend_pid()", &[])
                    .await
                    .map(|row| row.get::<_, i32>(1));
                (result, guard)
            }),
        ));
    }
    sleep::<R>(Duration::from_millis(300)).await;
    let killed = blocking(move || {
        cluster
            .sql(&format!("SELECT pg_terminate_backend({victim})"))
            .unwrap()
    })
    .await;
    assert_eq!(killed, "t", "[{tag}] the backend was terminated");
    let mut victims = Vec::new();
    let mut others = Vec::new();
    for (pid, task) in tasks {
        let (result, guard) = task.recv().await.expect("the task finished");
        if pid == victim {
            let error = result.expect_err("a query on the killed session fails");
            println!("[{tag}] in flight on the killed session: {error}");
            assert!(error.is_fatal(), "[{tag}] a fatal error: {error:?}");
            victims.push(guard);
        } else {
            assert_eq!(result.expect("the other session is unaffected"), pid);
            others.push(guard);
        }
    }
    // The first of its users to let go finds it dead: it leaves the set at once, and is
    // destroyed when the last one lets go.
    drop(victims.pop());
    let stats = pool.shared_stats();
    assert_eq!(
        (stats.connections, stats.retired),
        (1, 1),
        "[{tag}] the killed one left the set: {stats:?}"
    );
    assert_eq!(
        pool.metrics().destroys,
        0,
        "[{tag}] five users still hold it"
    );
    drop(victims);
    let m = pool.metrics();
    assert_eq!(m.destroys, 1, "[{tag}] the killed one is destroyed: {m:?}");
    // The other is full (six users): the next caller gets a replacement from the pool.
    let replacement = pool
        .get_shared()
        .await
        .expect("get_shared succeeds after the kill");
    let pid = replacement.handle().backend_pid().await.unwrap();
    assert!(pid != victim && !others.is_empty());
    drop((others, replacement));
    for _ in 0..20 {
        let db = pool
            .get_shared()
            .await
            .expect("get_shared succeeds after the kill");
        let pid = db.handle().backend_pid().await.expect("a live session");
        assert_ne!(
            pid, victim,
            "[{tag}] the killed session is never handed out"
        );
    }
    let m = pool.metrics();
    println!(
        "[{tag}] after the kill: destroys broken={} evicted={}, {:?}",
        m.destroys_for(DestroyReason::Broken),
        m.destroys_for(DestroyReason::Evicted),
        pool.shared_stats()
    );
    pool.drain().await;
}

/// A server restart: shared users get errors while it is down; the pool serves shared
/// leases again once it is back.
async fn serves_shared_again_after_restart<R: PgRuntime>(tag: &'static str) {
    let cluster = own_cluster().await;
    let app = format!("tp-shared-restart-{tag}");
    let pool = pool::<R>(pg_config(cluster, None, &app), pool_config(2)).await;
    pool.set_shared_max_in_flight(4).unwrap();
    let mut held = Vec::new();
    for _ in 0..8 {
        held.push(pool.get_shared().await.unwrap());
    }
    for guard in &held {
        guard.handle().execute("SELECT 1", &[]).await.unwrap();
    }
    // Users still hold their leases through the restart.
    blocking(move || cluster.restart_fast().unwrap()).await;
    let mut failed = 0;
    for guard in &held {
        if guard.handle().execute("SELECT 1", &[]).await.is_err() {
            failed += 1;
        }
    }
    assert_eq!(failed, 8, "[{tag}] every old session is gone");
    drop(held);
    let stats = pool.shared_stats();
    assert_eq!(
        (stats.connections, stats.in_flight),
        (0, 0),
        "[{tag}] {stats:?}"
    );
    let back = Instant::now();
    let mut errors = 0;
    loop {
        let result = async {
            let db = pool.get_shared().await.map_err(|e| e.to_string())?;
            db.handle()
                .execute("SELECT 1", &[])
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(_) => break,
            Err(e) => {
                errors += 1;
                assert!(
                    back.elapsed() < Duration::from_secs(5),
                    "[{tag}] not serving 5 s after restart: {e}"
                );
                sleep::<R>(Duration::from_millis(10)).await;
            }
        }
    }
    println!(
        "[{tag}] shared lease served {:?} after the restart ({errors} failed attempts)",
        back.elapsed()
    );
    for _ in 0..20 {
        let db = pool.get_shared().await.expect("serving");
        db.handle().execute("SELECT 1", &[]).await.expect("serving");
    }
    pool.drain().await;
}

/// Exclusive and shared checkouts mixed under load never open more than `max_size`
/// sessions (counted by the server).
async fn mixed_respect_max_size<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let app = format!("tp-shared-mixed-{tag}");
    let pool = pool::<R>(pg_config(cluster, None, &app), pool_config(3)).await;
    pool.set_shared_max_in_flight(4).unwrap();
    let mut tasks = Vec::new();
    for task in 0..16 {
        let pool = pool.clone();
        tasks.push(spawn::<R, _>(async move {
            for i in 0..30 {
                if (task + i) % 3 == 0 {
                    let conn = pool.get().await.expect("an exclusive connection");
                    conn.execute("SELECT pg_sleep(0.002)", &[]).await.unwrap();
                } else {
                    let db = pool.get_shared().await.expect("a shared lease");
                    db.handle()
                        .execute("SELECT pg_sleep(0.002)", &[])
                        .await
                        .unwrap();
                }
            }
        }));
    }
    let mut most = 0;
    let mut most_size = 0;
    for task in tasks {
        most = most.max(backends(cluster, &app).await);
        most_size = most_size.max(pool.metrics().size);
        task.recv().await.expect("the task finished");
    }
    let m = pool.metrics();
    println!(
        "[{tag}] mixed exclusive/shared: most sessions seen {most}, most pool size {most_size}, {m:?}"
    );
    assert!(most <= 3, "[{tag}] {most} sessions for max_size 3");
    assert!(most_size <= 3);
    pool.drain().await;
}

/// A session setting changed through a shared handle is seen by the other users until the
/// connection goes back; the reset on return undoes it.
async fn session_change_undone_on_return<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let app = format!("tp-shared-set-{tag}");
    let pool = pool::<R>(pg_config(cluster, None, &app), pool_config(1)).await;
    let one = pool.get_shared().await.unwrap();
    let two = pool.get_shared().await.unwrap();
    assert_eq!(SharedGuard::in_flight(&one), 2);
    one.handle()
        .query("SELECT set_config('work_mem', '1234kB', false)", &[])
        .await
        .unwrap();
    let seen: String = two
        .handle()
        .query_one("SHOW work_mem", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(
        seen, "1234kB",
        "[{tag}] the documented leak among sharing users"
    );
    drop((one, two));
    let conn = pool.get().await.unwrap();
    let after: String = conn.query_one("SHOW work_mem", &[]).await.unwrap().get(0);
    assert_ne!(after, "1234kB", "[{tag}] the reset on return undid it");
    drop(conn);
    pool.drain().await;
}

macro_rules! on_runtime {
    ($module:ident, $harness:ty) => {
        mod $module {
            use crate::common::Harness;

            on_runtime!(@tests $module, $harness;
                many_tasks_right_answers,
                killed_backend_fails_only_its_users,
                serves_shared_again_after_restart,
                mixed_respect_max_size,
                session_change_undone_on_return,
            );
        }
    };
    (@tests $module:ident, $harness:ty; $($name:ident),* $(,)?) => {
        $(
            #[test]
            fn $name() {
                type Rt = <$harness as Harness>::Rt;
                <$harness>::block_on(crate::$name::<Rt>(stringify!($module)));
            }
        )*
    };
}

on_runtime!(tokio_mt, crate::common::TokioMt);
on_runtime!(async_std, crate::common::AsyncStdRt);
on_runtime!(smol, crate::common::SmolRt);

// The harness trait is used by the macro's expansion.
#[allow(dead_code)]
fn _uses<H: Harness>() {}
