//! `AsyncWirePoolable` through server restarts (fast and immediate), with callers retrying
//! back to back: each connection that died fails at most one checkout, because the failing
//! request itself marks it broken and the pool destroys it on return.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{blocking, own_cluster, pool_config, wire_config};
use pg_pool_core::LifecycleHooks;
use pg_pool_test_support::TestCluster;
use pg_pool_wire::{AsyncWirePool, WireConnector};

const TASKS: usize = 4;

/// One checkout and what the query on it did.
#[derive(Debug, Clone, Copy)]
struct Checkout {
    at: Instant,
    pid: i32,
    ok: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_dead_connection_fails_at_most_one_checkout() {
    let cluster = own_cluster();
    let app = "async-restart";
    let mut config = pool_config(TASKS);
    config.min_idle = TASKS;
    // No ping on checkout: only the requests themselves can reveal a dead connection.
    config.test_on_checkout = false;
    config.checkout_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(1);
    let pool = AsyncWirePool::builder(WireConnector::new(wire_config(cluster, None, app)))
        .config(config)
        .hooks(LifecycleHooks::default())
        .build()
        .await
        .expect("pool builds");

    let stop = Arc::new(AtomicBool::new(false));
    let log = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (pool, stop, log) = (pool.clone(), Arc::clone(&stop), Arc::clone(&log));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                // Back to back: no pause between attempts, failed or not.
                let Ok(conn) = pool.get().await else {
                    tokio::task::yield_now().await;
                    continue;
                };
                let ok = conn.exec_query("SELECT 1", &[], &[]).await.is_ok();
                let entry = Checkout {
                    at: Instant::now(),
                    pid: conn.backend_pid(),
                    ok,
                };
                drop(conn);
                log.lock().unwrap().push(entry);
            }
        }));
    }

    let mut restarts = Vec::new();
    for (name, restart) in [
        ("fast", TestCluster::restart_fast as fn(&TestCluster) -> _),
        ("immediate", TestCluster::restart_immediate),
    ] {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let before: HashSet<i32> = {
            let log = log.lock().unwrap();
            let recent = Instant::now() - Duration::from_millis(300);
            log.iter()
                .filter(|c| c.at > recent)
                .map(|c| c.pid)
                .collect()
        };
        let started = Instant::now();
        blocking(move || restart(cluster).expect("restart")).await;
        println!(
            "restart {name}: pg_ctl took {:?}; {} connections in use before it",
            started.elapsed(),
            before.len()
        );
        restarts.push((name, started, Instant::now()));
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }

    let log = log.lock().unwrap().clone();
    let mut failures: HashMap<i32, usize> = HashMap::new();
    for c in log.iter().filter(|c| !c.ok) {
        *failures.entry(c.pid).or_default() += 1;
    }
    for (i, (name, started, _)) in restarts.iter().enumerate() {
        let until = restarts.get(i + 1).map(|r| r.1);
        let after: Vec<&Checkout> = log
            .iter()
            .filter(|c| c.at > *started && until.is_none_or(|u| c.at < u))
            .collect();
        let failed = after.iter().filter(|c| !c.ok).count();
        let dead: HashSet<i32> = after.iter().filter(|c| !c.ok).map(|c| c.pid).collect();
        println!(
            "after the {name} restart: {} checkouts, {failed} got a dead connection, \
             {} distinct dead connections",
            after.len(),
            dead.len()
        );
    }
    let total_failed: usize = failures.values().sum();
    println!(
        "{} checkouts in all, {total_failed} failed on {} connections that died; \
         most failures on one connection: {}",
        log.len(),
        failures.len(),
        failures.values().max().copied().unwrap_or(0)
    );
    assert!(
        total_failed > 0,
        "the restarts killed connections in use (else the test proves nothing)"
    );
    for (pid, n) in &failures {
        assert_eq!(
            *n, 1,
            "connection {pid} was handed out {n} times after it died"
        );
    }
    // Served again once the server was back.
    let back = restarts.last().unwrap().2;
    let served = log.iter().filter(|c| c.ok && c.at > back).count();
    assert!(served > 0, "the pool serves after the restarts");
    pool.drain().await;
}
