//! Graceful drain on Ctrl-C: stop handing out connections, let in-flight work finish,
//! close every connection, exit.
//!
//! ```text
//! cargo run --example drain            # runs until Ctrl-C
//! cargo run --example drain -- --demo  # drains by itself after 3 s (also PG_POOL_DEMO=1)
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use pg_pool::wire::{WireConnector, WirePoolable};
use pg_pool::{ConnPool, LifecycleHooks, PoolError};
use pg_pool_examples::Database;

const WORKERS: usize = 8;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let demo = std::env::args().any(|a| a == "--demo")
        || std::env::var("PG_POOL_DEMO").is_ok_and(|v| !v.is_empty() && v != "0");
    let db = tokio::task::spawn_blocking(Database::from_env_or_throwaway).await??;
    let connector = WireConnector::new(db.wire_config("drain-example")?);
    let mut config = connector.config().pool_config();
    config.max_size = 4;
    let pool = ConnPool::<WirePoolable>::builder(connector)
        .config(config)
        .hooks(LifecycleHooks::default())
        .build()
        .await?;
    pool.get()
        .await?
        .execute("CREATE TABLE IF NOT EXISTS drain_example (id bigserial PRIMARY KEY, worker int)")
        .await?;

    let commits = Arc::new(AtomicU64::new(0));
    let mut workers = Vec::new();
    for worker in 0..WORKERS {
        let (pool, commits) = (pool.clone(), Arc::clone(&commits));
        workers.push(tokio::spawn(async move {
            loop {
                let mut conn = match pool.get().await {
                    Ok(conn) => conn,
                    Err(PoolError::Closed) => return "pool closed",
                    Err(_) => continue,
                };
                let sql = format!(
                    "BEGIN; INSERT INTO drain_example (worker) VALUES ({worker}); \
                     SELECT pg_sleep(0.02); COMMIT"
                );
                if conn.execute(&sql).await.is_ok() {
                    commits.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }

    if demo {
        println!("working; draining by itself in 3 s (demo mode)");
        tokio::time::sleep(Duration::from_secs(3)).await;
    } else {
        println!("working; press Ctrl-C to drain");
        tokio::signal::ctrl_c().await?;
    }

    let m = pool.metrics();
    println!(
        "draining: {} commits so far, {} connections checked out, {} callers waiting",
        commits.load(Ordering::Relaxed),
        m.active,
        m.waiters
    );
    let report = pool.drain_timeout(Duration::from_secs(10)).await;
    println!(
        "drain {} in {:?} ({} outstanding); {} commits in total",
        if report.is_complete() {
            "complete"
        } else {
            "timed out"
        },
        report.elapsed,
        report.outstanding,
        commits.load(Ordering::Relaxed)
    );
    for worker in workers {
        let why = worker.await?;
        assert_eq!(why, "pool closed");
    }
    println!(
        "all {WORKERS} workers stopped; get() now fails with: {}",
        pool.get().await.map(drop).unwrap_err()
    );
    Ok(())
}
