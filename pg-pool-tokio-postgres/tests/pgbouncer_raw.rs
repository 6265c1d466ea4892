//! Raw (`Deref`) use of the pooler-safe profile behind pgbouncer in transaction mode: the
//! return's marker goes through pgbouncer like any empty query, sessions come back without
//! being destroyed under a concurrent raw workload, and one left inside a transaction is
//! destroyed.

mod common;

use std::time::Duration;

use common::{Harness, blocking, pool, pool_config, spawn};
use pg_pool_core::DestroyReason;
use pg_pool_test_support::{PgBouncer, TestCluster};
use pg_pool_tokio_postgres::tokio_postgres::Client;
use pg_pool_tokio_postgres::tokio_postgres::types::Type;
use pg_pool_tokio_postgres::{PgConfig, PgPool, PgRuntime};

const WORKERS: usize = 4;
const OPS: usize = 200;

async fn raw_through_bouncer<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let bouncer =
        blocking(move || PgBouncer::start(cluster, "transaction").expect("pgbouncer")).await;
    let url = format!("{}?application_name=tp-bouncer-raw-{tag}", bouncer.url());
    assert!(url.contains("@127.0.0.1:"));
    let pg = PgConfig::pooler_safe(PgConfig::from_url(&url).unwrap().pg);
    let mut config = pool_config(2);
    config.test_on_checkout = false;
    let pool: PgPool<R> = pool::<R>(pg, config).await;

    let mut workers = Vec::new();
    for w in 0..WORKERS {
        let pool = pool.clone();
        workers.push(spawn::<R, _>(async move {
            for i in 0..OPS {
                let conn = pool.get().await.map_err(|e| e.to_string())?;
                let raw: &Client = &conn;
                let n = (w * OPS + i) as i64;
                let rows = raw
                    .query_typed("SELECT $1::int8 + 1", &[(&n, Type::INT8)])
                    .await
                    .map_err(|e| e.to_string())?;
                if rows[0].get::<_, i64>(0) != n + 1 {
                    return Err(format!("worker {w}: a wrong answer"));
                }
            }
            Ok::<(), String>(())
        }));
    }
    for worker in workers {
        worker.recv().await.unwrap().unwrap();
    }
    let metrics = pool.metrics();
    println!(
        "[{tag}] {} raw checkouts behind pgbouncer: creates {}, destroys {}",
        WORKERS * OPS,
        metrics.creates,
        metrics.destroys
    );
    assert_eq!(metrics.destroys, 0, "[{tag}] clean raw returns destroyed");

    // A transaction left open through the raw client: destroyed, never handed out.
    let before = pool.metrics().destroys_for(DestroyReason::ResetFailed);
    {
        let conn = pool.get().await.unwrap();
        let raw: &Client = &conn;
        raw.batch_execute("BEGIN").await.unwrap();
    }
    let destroyed = pg_pool_test_support::eventually::<R, _, _>(Duration::from_secs(5), || async {
        pool.metrics().destroys_for(DestroyReason::ResetFailed) > before
    })
    .await;
    println!("[{tag}] open transaction destroyed after {destroyed:?}");
    assert!(destroyed.is_some(), "[{tag}] an open transaction came back");
    for _ in 0..2 {
        let conn = pool.get().await.unwrap();
        let raw: &Client = &conn;
        let rows = raw.simple_query("SELECT 1").await.unwrap();
        assert!(!rows.is_empty());
        // Outside a transaction block each statement of a simple query starts its own
        // transaction: the two timestamps are then the same.
        let status = conn
            .simple_query("SELECT now() = statement_timestamp()")
            .await
            .unwrap();
        assert_eq!(
            common::first_row(&status),
            ["t"],
            "[{tag}] a session inside a transaction"
        );
    }
    pool.drain().await;
    drop(bouncer);
}

#[test]
fn tokio_raw_returns_through_pgbouncer() {
    common::TokioMt::block_on(raw_through_bouncer::<<common::TokioMt as Harness>::Rt>(
        "tokio",
    ));
}

#[test]
fn smol_raw_returns_through_pgbouncer() {
    common::SmolRt::block_on(raw_through_bouncer::<<common::SmolRt as Harness>::Rt>(
        "smol",
    ));
}
