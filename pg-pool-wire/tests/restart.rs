//! Server restarts (fast and immediate) under 64 concurrent tasks: nothing hangs past its
//! timeouts, and the pool serves again shortly after the server is back.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{blocking, own_cluster, pool_config, wire_config, wire_pool};
use pg_pool_core::{LifecycleHooks, PoolError};
use pg_pool_test_support::TestCluster;
use pg_pool_wire::WirePool;

const TASKS: usize = 64;
/// An operation slower than this counts as a hang (checkout timeout plus ample slack).
const HANG: Duration = Duration::from_secs(6);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Ok,
    Timeout,
    ConnectFailed,
    QueryFailed,
    Hung,
}

#[derive(Debug, Clone, Copy)]
struct Op {
    started: Instant,
    took: Duration,
    outcome: Outcome,
}

async fn one_op(pool: &WirePool) -> Outcome {
    let op = async {
        let mut conn = match pool.get().await {
            Ok(conn) => conn,
            Err(PoolError::Timeout { .. }) => return Outcome::Timeout,
            Err(_) => return Outcome::ConnectFailed,
        };
        match conn.query_value("SELECT 1").await {
            Ok(Some(v)) if v == "1" => Outcome::Ok,
            _ => Outcome::QueryFailed,
        }
    };
    tokio::time::timeout(HANG, op)
        .await
        .unwrap_or(Outcome::Hung)
}

/// Restarts the server with `restart` while the load runs; returns (restart duration,
/// recovery time after the server is back, the instant it recovered).
async fn restart_and_recover(
    pool: &WirePool,
    cluster: &'static TestCluster,
    name: &str,
    restart: fn(&TestCluster) -> Result<(), pg_pool_test_support::Error>,
) -> Instant {
    let started = Instant::now();
    blocking(move || restart(cluster).expect("restart")).await;
    let back = Instant::now();
    let recovered = loop {
        if one_op(pool).await == Outcome::Ok {
            break Instant::now();
        }
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "pool did not recover within 10 s"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    println!(
        "restart {name}: pg_ctl took {:?}; pool served again {:?} after the server was back",
        back - started,
        recovered - back
    );
    assert!(
        recovered - back < Duration::from_secs(3),
        "slow recovery after {name} restart"
    );
    recovered
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_under_load_never_hang_and_recover_quickly() {
    let cluster = own_cluster();
    let mut config = pool_config(16);
    config.min_idle = 4;
    config.checkout_timeout = Duration::from_secs(2);
    config.connect_timeout = Duration::from_secs(1);
    config.max_connecting = 4;
    let pool = wire_pool(
        wire_config(cluster, None, "restart-load"),
        config,
        LifecycleHooks::default(),
    )
    .await;

    let stop = Arc::new(AtomicBool::new(false));
    let ops = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for _ in 0..TASKS {
        let (pool, stop, ops) = (pool.clone(), Arc::clone(&stop), Arc::clone(&ops));
        tasks.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let started = Instant::now();
                let outcome = one_op(&pool).await;
                ops.lock().unwrap().push(Op {
                    started,
                    took: started.elapsed(),
                    outcome,
                });
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }));
    }

    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_fast = restart_and_recover(&pool, cluster, "fast", TestCluster::restart_fast).await;
    tokio::time::sleep(Duration::from_millis(1800)).await;
    let after_immediate =
        restart_and_recover(&pool, cluster, "immediate", TestCluster::restart_immediate).await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.store(true, Ordering::Relaxed);
    for task in tasks {
        task.await.unwrap();
    }

    let ops = ops.lock().unwrap().clone();
    let count = |o: Outcome| ops.iter().filter(|op| op.outcome == o).count();
    let slowest = ops.iter().map(|op| op.took).max().unwrap_or_default();
    println!(
        "{} ops by {TASKS} tasks: ok={} timeout={} connect_failed={} query_failed={} hung={}; slowest {slowest:?}",
        ops.len(),
        count(Outcome::Ok),
        count(Outcome::Timeout),
        count(Outcome::ConnectFailed),
        count(Outcome::QueryFailed),
        count(Outcome::Hung),
    );
    assert_eq!(count(Outcome::Hung), 0, "an operation hung");
    assert!(
        slowest < Duration::from_secs(4),
        "an operation outlived its timeouts: {slowest:?}"
    );
    // Once recovered (plus a second for connections idle since before the restart to be
    // used and replaced), every operation succeeds.
    for after in [after_fast, after_immediate] {
        let settle = after + Duration::from_millis(1000);
        let window: Vec<&Op> = ops
            .iter()
            .filter(|op| op.started > settle && op.started < settle + Duration::from_millis(400))
            .collect();
        assert!(!window.is_empty(), "load kept running after recovery");
        let failed = window.iter().filter(|op| op.outcome != Outcome::Ok).count();
        assert_eq!(
            failed,
            0,
            "{failed} of {} ops failed a second after recovery",
            window.len()
        );
    }
    let m = pool.metrics();
    println!("metrics after restarts: {m:?}");
    assert_eq!(m.waiters, 0);
    assert!(m.size <= m.max_size);
    pool.drain().await;
}
