//! `SharedWire` statements go to the server in batches (the requests of many users in one
//! write): against a real server, each request of a batch keeps its own answer and its own
//! error, a statement many users send for the first time at once is parsed by each, a
//! cached statement a schema change invalidated is parsed again, format codes pass through,
//! and a user that stops waiting loses only its own answer.

mod common;

use std::time::Duration;

use common::{async_wire_pool, eventually, text, wire_config};
use pg_pool_test_support::TestCluster;
use pg_pool_wire::WireError;
use pg_pool_wire::pg_wired::FormatCode;

/// Division by zero for a quarter of the requests, all pipelined on one session: each
/// failing request gets its own error, every other one its own answer, and the session
/// stays (an error ends only its own request, at its own `Sync`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_error_in_a_batch_stays_with_its_request() {
    let cluster = TestCluster::shared();
    let pool = async_wire_pool(wire_config(cluster, None, "wire-batch-errors"), 1);
    let mut tasks = Vec::new();
    for task in 0..48 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut failed = 0;
            for i in 0..10 {
                let db = pool.get_shared().await.expect("a shared lease");
                let divisor = (task + i) % 4;
                let arg = divisor.to_string();
                let result = db
                    .handle()
                    .exec_query("SELECT 120 / $1::int", &[Some(arg.as_bytes())], &[0])
                    .await;
                match result {
                    Ok(rows) => {
                        assert_ne!(divisor, 0, "a division by zero answered");
                        assert_eq!(text(&rows, 0, 0), (120 / divisor).to_string());
                    }
                    Err(error) => {
                        assert_eq!(divisor, 0, "{error:?}");
                        assert_eq!(error.code(), Some("22012"), "{error:?}");
                        assert!(!error.is_fatal(), "{error:?}");
                        failed += 1;
                    }
                }
            }
            failed
        }));
    }
    let mut failed = 0;
    for task in tasks {
        failed += task.await.expect("no task panicked");
    }
    let m = pool.metrics();
    println!("{failed} divisions by zero; {m:?}");
    assert_eq!(failed, 48 * 10 / 4);
    assert_eq!(
        (m.creates, m.destroys),
        (1, 0),
        "one session throughout: {m:?}"
    );
    pool.drain().await;
}

/// 32 users send a statement the session has never seen at the same moment: each misses
/// the statement cache and parses it under its own name, and all get their answer; the
/// next ones find it cached.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_statement_sent_by_many_at_once_is_parsed_by_each() {
    let cluster = TestCluster::shared();
    let pool = async_wire_pool(wire_config(cluster, None, "wire-batch-first"), 1);
    let mut guards = Vec::new();
    for _ in 0..32 {
        guards.push(pool.get_shared().await.expect("a shared lease"));
    }
    for round in 0..2 {
        let sql = "SELECT $1::int * 2, 'first sight'";
        let runs = guards.iter().enumerate().map(|(i, db)| async move {
            let arg = i.to_string();
            let rows = db
                .handle()
                .exec_query(sql, &[Some(arg.as_bytes())], &[0])
                .await
                .expect("the statement runs");
            assert_eq!(text(&rows, 0, 0), (i * 2).to_string(), "round {round}");
        });
        join_all(runs.collect()).await;
    }
    drop(guards);
    assert_eq!(pool.metrics().destroys, 0, "{:?}", pool.metrics());
    pool.drain().await;
}

/// Polls every future to its end, concurrently, on the current task.
async fn join_all<F: std::future::Future<Output = ()>>(futures: Vec<F>) {
    let mut futures: Vec<_> = futures.into_iter().map(Box::pin).map(Some).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for slot in &mut futures {
            if let Some(fut) = slot {
                if fut.as_mut().poll(cx).is_ready() {
                    *slot = None;
                } else {
                    pending = true;
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
}

/// A column added to a table makes the server refuse the cached statement of `SELECT *`
/// (`0A000`, cached plan must not change result type): the statement is parsed again once
/// and answers with the new column; the session stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_statement_invalidated_by_a_schema_change_is_parsed_again() {
    let cluster = TestCluster::shared();
    let pool = async_wire_pool(wire_config(cluster, None, "wire-batch-reparse"), 2);
    // The table is made and changed on an exclusive connection of the same pool (the same
    // database and user as the shared one).
    let admin = pool.get().await.expect("an exclusive connection");
    for ddl in [
        "DROP TABLE IF EXISTS wire_batch_reparse",
        "CREATE TABLE wire_batch_reparse (a int)",
        "INSERT INTO wire_batch_reparse VALUES (1)",
    ] {
        admin.exec_query(ddl, &[], &[]).await.expect(ddl);
    }
    let db = pool.get_shared().await.expect("a shared lease");
    let sql = "SELECT * FROM wire_batch_reparse";
    let rows = db.handle().exec_query(sql, &[], &[]).await.expect("runs");
    assert_eq!(rows[0].len(), 1);
    admin
        .exec_query(
            "ALTER TABLE wire_batch_reparse ADD COLUMN b text DEFAULT 'x'",
            &[],
            &[],
        )
        .await
        .expect("column added");
    let rows = db
        .handle()
        .exec_query(sql, &[], &[])
        .await
        .expect("parsed again and run");
    assert_eq!((rows[0].len(), text(&rows, 0, 1)), (2, "x".to_owned()));
    let rows = db
        .handle()
        .exec_query(sql, &[], &[])
        .await
        .expect("cached again");
    assert_eq!(rows[0].len(), 2);
    assert!(!db.handle().is_broken());
    drop(db);
    admin
        .exec_query("DROP TABLE wire_batch_reparse", &[], &[])
        .await
        .expect("table dropped");
    drop(admin);
    assert_eq!(pool.metrics().destroys, 0, "{:?}", pool.metrics());
    pool.drain().await;
}

/// Binary parameters and results go through the batch as asked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn format_codes_pass_through_the_batch() {
    let cluster = TestCluster::shared();
    let pool = async_wire_pool(wire_config(cluster, None, "wire-batch-formats"), 1);
    let db = pool.get_shared().await.expect("a shared lease");
    let arg = 41i32.to_be_bytes();
    let rows = db
        .handle()
        .exec_query_with_formats(
            "SELECT $1::int4 + 1, 'text too'",
            &[Some(&arg)],
            &[23],
            &[FormatCode::Binary],
            &[FormatCode::Binary, FormatCode::Text],
        )
        .await
        .expect("runs");
    assert_eq!(rows[0].cell(0), Some(&42i32.to_be_bytes()[..]));
    assert_eq!(text(&rows, 0, 1), "text too");
    let refused = db
        .handle()
        .exec_query_with_formats("SET x.y = 1", &[], &[], &[], &[])
        .await
        .expect_err("refused");
    assert!(
        matches!(refused, WireError::NotShareable { .. }),
        "{refused:?}"
    );
    drop(db);
    pool.drain().await;
}

/// One user gives up on a slow statement (a timeout drops its future); the users
/// pipelined behind it on the same session still get their own answers, none shifted by
/// the abandoned one. The session, which still ran the abandoned statement, is destroyed
/// once its users are gone, and the next lease gets a fresh one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_that_stops_waiting_loses_only_its_own_answer() {
    let cluster = TestCluster::shared();
    let pool = async_wire_pool(wire_config(cluster, None, "wire-batch-abandon"), 1);
    let first = pool.get_shared().await.expect("a shared lease");
    let pid = text(
        &first
            .handle()
            .exec_query("SELECT pg_backend_pid()", &[], &[])
            .await
            .expect("runs"),
        0,
        0,
    );
    let handle = first.handle();
    let slow = tokio::time::timeout(
        Duration::from_millis(50),
        handle.exec_query("SELECT pg_sleep(0.5)::text || 'slow'", &[], &[]),
    );
    let mut others = Vec::new();
    for i in 0..8 {
        let pool = pool.clone();
        others.push(tokio::spawn(async move {
            let db = pool.get_shared().await.expect("a shared lease");
            let arg = format!("user {i}");
            let rows = db
                .handle()
                .exec_query("SELECT $1::text", &[Some(arg.as_bytes())], &[0])
                .await
                .expect("runs behind the slow one");
            assert_eq!(text(&rows, 0, 0), arg);
        }));
    }
    assert!(slow.await.is_err(), "the slow statement timed out");
    for other in others {
        other.await.expect("no user got another's answer");
    }
    drop(first);
    let destroyed = eventually(Duration::from_secs(30), || async {
        pool.metrics().destroys == 1
    })
    .await;
    println!("the abandoned session destroyed after {destroyed:?}");
    assert!(destroyed.is_some(), "{:?}", pool.metrics());
    let next = pool.get_shared().await.expect("a new lease");
    let rows = next
        .handle()
        .exec_query("SELECT pg_backend_pid()", &[], &[])
        .await
        .expect("runs");
    assert_ne!(text(&rows, 0, 0), pid, "a fresh session");
    drop(next);
    pool.drain().await;
}

/// The runtime the connection was opened on shuts down while a user still holds a shared
/// lease: a statement made from another runtime fails (the connection is closed), instead
/// of waiting forever for a batch task that can no longer run.
#[test]
fn a_connection_whose_runtime_is_gone_fails_instead_of_hanging() {
    let cluster = TestCluster::shared();
    let first = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a runtime");
    let pool =
        first.block_on(async { async_wire_pool(wire_config(cluster, None, "wire-batch-gone"), 1) });
    let db = first.block_on(async {
        let db = pool.get_shared().await.expect("a shared lease");
        db.handle()
            .exec_query("SELECT 1", &[], &[])
            .await
            .expect("runs");
        db
    });
    first.shutdown_timeout(Duration::from_secs(5));
    let second = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let started = std::time::Instant::now();
    let handle = db.handle();
    let result = second.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(60),
            handle.exec_query("SELECT 1", &[], &[]),
        )
        .await
    });
    println!("answered after {:?}: {result:?}", started.elapsed());
    let error = result
        .expect("an answer, not a hang")
        .expect_err("the connection's tasks are gone");
    assert!(error.is_fatal(), "{error:?}");
    assert!(db.handle().is_broken());
}

/// A fast statement and a slow one in the same batch, the fast one first: its answer comes
/// as soon as the server sends it, not when the whole batch is done. One thread, so that
/// the batch task runs only once both statements are in the outbox.
#[tokio::test(flavor = "current_thread")]
async fn an_answer_is_handed_over_before_the_rest_of_its_batch() {
    let cluster = TestCluster::shared();
    let pool = async_wire_pool(wire_config(cluster, None, "wire-batch-early"), 1);
    let fast_user = pool.get_shared().await.expect("a shared lease");
    let slow_user = pool.get_shared().await.expect("a second user");
    let (fast_handle, slow_handle) = (fast_user.handle(), slow_user.handle());
    // Both polled for the first time in the same poll of this task: one batch, fast first.
    let mut fast = Box::pin(fast_handle.exec_query("SELECT 'fast'", &[], &[]));
    let mut slow = Box::pin(slow_handle.exec_query("SELECT pg_sleep(5)::text", &[], &[]));
    let started = std::time::Instant::now();
    let (mut fast_done, mut slow_done) = (None, None);
    std::future::poll_fn(|cx| {
        if fast_done.is_none()
            && let std::task::Poll::Ready(result) = fast.as_mut().poll(cx)
        {
            fast_done = Some((result, started.elapsed()));
        }
        if slow_done.is_none()
            && let std::task::Poll::Ready(result) = slow.as_mut().poll(cx)
        {
            slow_done = Some((result, started.elapsed()));
        }
        if fast_done.is_some() && slow_done.is_some() {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    let (fast_result, fast_after) = fast_done.expect("done");
    let (slow_result, slow_after) = slow_done.expect("done");
    println!("fast answered after {fast_after:?}, slow after {slow_after:?}");
    assert_eq!(text(&fast_result.expect("fast runs"), 0, 0), "fast");
    slow_result.expect("slow runs");
    // The slow statement ends 5 s after it was sent at the earliest, and it was sent after
    // `started`: a fast answer before 5 s did not wait for it.
    assert!(slow_after >= Duration::from_secs(5), "{slow_after:?}");
    assert!(
        fast_after < Duration::from_secs(5),
        "the fast answer waited for the slow statement: {fast_after:?}"
    );
    drop((fast, slow));
    drop((fast_user, slow_user));
    pool.drain().await;
}

/// 150 users on one session (the per-connection limit raised to 200) put their statements
/// in the outbox before any batch task runs: they go out in several batches, and each user
/// gets its own answer.
#[tokio::test(flavor = "current_thread")]
async fn a_full_outbox_is_sent_in_several_batches() {
    let cluster = TestCluster::shared();
    let pool = async_wire_pool(wire_config(cluster, None, "wire-batch-many"), 1);
    pool.set_shared_max_in_flight(200).expect("a valid limit");
    let mut guards = Vec::new();
    for _ in 0..150 {
        guards.push(pool.get_shared().await.expect("a shared lease"));
    }
    let runs = guards.iter().enumerate().map(|(i, db)| async move {
        let arg = i.to_string();
        let rows = db
            .handle()
            .exec_query("SELECT $1::int + 1000", &[Some(arg.as_bytes())], &[0])
            .await
            .expect("runs");
        assert_eq!(text(&rows, 0, 0), (i + 1000).to_string());
    });
    let started = std::time::Instant::now();
    tokio::time::timeout(Duration::from_secs(120), join_all(runs.collect()))
        .await
        .expect("every statement answered, none left in the outbox");
    println!("150 statements answered in {:?}", started.elapsed());
    assert_eq!(pool.shared_stats().connections, 1);
    drop(guards);
    assert_eq!(pool.metrics().destroys, 0, "{:?}", pool.metrics());
    pool.drain().await;
}
