//! Metrics while under load: gauges and percentiles every half second, then the Prometheus
//! text exposition under OpenTelemetry's `db_client_connection_*` names (see
//! `metrics_server` for a live `/metrics` endpoint).
//!
//! ```text
//! cargo run --example metrics
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use pg_pool::metrics::Pools;
use pg_pool::metrics::prometheus::PrometheusExporter;
use pg_pool::wire::{WireConnector, WirePoolable};
use pg_pool::{ConnPool, LifecycleHooks};
use pg_pool_examples::Database;

const WORKERS: usize = 24;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let db = tokio::task::spawn_blocking(Database::from_env_or_throwaway).await??;
    let connector = WireConnector::new(db.wire_config("metrics-example")?);
    let mut config = connector.config().pool_config();
    config.name = "orders".into();
    config.max_size = 4;
    config.min_idle = 2;
    config.checkout_timeout = Duration::from_millis(300);
    let pool = ConnPool::<WirePoolable>::builder(connector)
        .config(config)
        .hooks(LifecycleHooks::default())
        .build()
        .await?;

    // More workers than connections: they queue, and some checkouts time out.
    let stop = Arc::new(AtomicBool::new(false));
    let (done, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut workers = Vec::new();
    for i in 0..WORKERS {
        let (pool, stop, done, failed) = (pool.clone(), stop.clone(), done.clone(), failed.clone());
        workers.push(tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let result = async {
                    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
                    let sleep = format!("SELECT pg_sleep({})", 0.005 + (i % 4) as f64 * 0.005);
                    conn.execute(&sleep).await.map_err(|e| e.to_string())
                }
                .await;
                match result {
                    Ok(_) => done.fetch_add(1, Ordering::Relaxed),
                    Err(_) => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }

    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let m = pool.metrics();
        println!(
            "t={:>4}ms size={} idle={} active={} waiters={:>2} checkouts={:>5} timeouts={:>3} \
             wait p50={:?} p99={:?} usage p99={:?}",
            started.elapsed().as_millis(),
            m.size,
            m.idle,
            m.active,
            m.waiters,
            m.checkouts,
            m.timeouts,
            m.wait_time.percentile(0.5),
            m.wait_time.percentile(0.99),
            m.usage_time.percentile(0.99),
        );
    }
    stop.store(true, Ordering::Relaxed);
    for worker in workers {
        worker.await?;
    }
    println!(
        "{} queries done, {} failed (a checkout waiting over 300 ms times out)\n",
        done.load(Ordering::Relaxed),
        failed.load(Ordering::Relaxed)
    );
    let pools = Pools::new();
    pools.add(pool.clone());
    println!("{}", PrometheusExporter::new(pools).render());
    pool.drain().await;
    Ok(())
}
