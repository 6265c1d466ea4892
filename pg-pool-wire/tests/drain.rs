//! Drain under load: every commit reported is durable, none is reported after `drain()`
//! returns, and no backend of the pool is left on the server.

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{backends, blocking, pool_config, wire_config, wire_pool};
use pg_pool_core::{LifecycleHooks, PoolError};
use pg_pool_test_support::TestCluster;

const TASKS: i64 = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_under_load_loses_no_commit_and_leaves_no_backend() {
    let cluster = TestCluster::shared();
    let app = "drain-load";
    let mut config = pool_config(6);
    config.min_idle = 2;
    let pool = wire_pool(
        wire_config(cluster, None, app),
        config,
        LifecycleHooks::default(),
    )
    .await;
    pool.get()
        .await
        .unwrap()
        .execute("DROP TABLE IF EXISTS drain_rows; CREATE TABLE drain_rows (task int, seq int, PRIMARY KEY (task, seq))")
        .await
        .unwrap();

    // (task, seq, when the commit was reported)
    let committed = Arc::new(Mutex::new(Vec::<(i64, i64, Instant)>::new()));
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let (pool, committed) = (pool.clone(), Arc::clone(&committed));
        tasks.push(tokio::spawn(async move {
            let mut closed_seen = false;
            for seq in 0.. {
                let mut conn = match pool.get().await {
                    Ok(conn) => conn,
                    Err(PoolError::Closed) => {
                        closed_seen = true;
                        break;
                    }
                    Err(e) => panic!("unexpected checkout error: {e}"),
                };
                let sql = format!(
                    "BEGIN; INSERT INTO drain_rows VALUES ({task}, {seq}); \
                     SELECT pg_sleep(0.002); COMMIT"
                );
                match conn.execute(&sql).await {
                    // Reported while the connection is still held: drain must wait for it.
                    Ok(tag) if tag == "COMMIT" => {
                        committed.lock().unwrap().push((task, seq, Instant::now()))
                    }
                    other => panic!("transaction failed: {other:?}"),
                }
                drop(conn);
                tokio::task::yield_now().await;
            }
            closed_seen
        }));
    }

    tokio::time::sleep(Duration::from_millis(800)).await;
    let drain_started = Instant::now();
    pool.drain().await;
    let drained = Instant::now();
    let backends_right_after = backends(cluster, app).await;
    let in_drain = committed
        .lock()
        .unwrap()
        .iter()
        .filter(|&&(_, _, at)| at >= drain_started)
        .count();
    println!(
        "drain took {:?}; {in_drain} commits finished during the drain; {backends_right_after} \
         backends right after it returned",
        drained - drain_started
    );

    for task in tasks {
        assert!(
            task.await.unwrap(),
            "every task ends with PoolError::Closed"
        );
    }
    let committed = committed.lock().unwrap().clone();
    assert!(
        committed.len() > 50,
        "the load ran: {} commits",
        committed.len()
    );
    let late = committed.iter().filter(|&&(_, _, at)| at > drained).count();
    assert_eq!(late, 0, "commits reported after drain() returned");

    // Read back through psql as the test role, in the test database.
    let in_table = blocking(move || {
        let out = cluster
            .psql()
            .args(["-c", "SELECT task, seq FROM drain_rows"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    })
    .await;
    let rows: std::collections::HashSet<(i64, i64)> = in_table
        .lines()
        .map(|l| {
            let (t, s) = l.split_once('|').unwrap();
            (t.parse().unwrap(), s.parse().unwrap())
        })
        .collect();
    let missing = committed
        .iter()
        .filter(|(t, s, _)| !rows.contains(&(*t, *s)))
        .count();
    println!(
        "{} commits reported, {} rows in the table, {missing} missing",
        committed.len(),
        rows.len()
    );
    assert_eq!(missing, 0, "a reported commit is not in the table");
    assert_eq!(
        rows.len(),
        committed.len(),
        "no unreported row was committed"
    );

    assert!(pool.get().await.unwrap_err().is_closed());
    let m = pool.metrics();
    assert_eq!((m.size, m.closing, m.waiters), (0, 0, 0), "{m:?}");
    // Terminate has been sent for every connection when drain() returns; the server's
    // backends exit a moment later.
    let gone = common::eventually(Duration::from_secs(2), || async {
        backends(cluster, app).await == 0
    })
    .await;
    println!(
        "server backends gone {gone:?} after the drain returned (count right after: {backends_right_after})"
    );
    assert!(
        gone.is_some(),
        "no backend tagged {app} remains after drain()"
    );
}
