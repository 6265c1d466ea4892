//! An async-std program using a pool of tokio-postgres sessions, with no tokio runtime.
//!
//! Uses `DATABASE_URL` if set, otherwise starts a throwaway PostgreSQL from the test kit:
//!
//! ```text
//! cargo run -p pg-pool-tokio-postgres --example async_std_app
//! ```

use std::time::{Duration, Instant};

use pg_pool_async_std::AsyncStd;
use pg_pool_core::ConnPool;
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::{PgConfig, PgConnector};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, _cluster) = match std::env::var("DATABASE_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let cluster = TestCluster::start()?;
            (cluster.url().to_owned(), Some(cluster))
        }
    };
    async_std::task::block_on(async {
        assert!(
            tokio::runtime::Handle::try_current().is_err(),
            "no tokio runtime here"
        );
        let config = PgConfig::from_url(&url)?;
        let pool = ConnPool::<_, AsyncStd>::builder(PgConnector::<AsyncStd>::current(config)?)
            .build()
            .await?;
        let started = Instant::now();
        let tasks: Vec<_> = (0..4_i32)
            .map(|task| {
                let pool = pool.clone();
                async_std::task::spawn(async move {
                    let mut conn = pool.get().await?;
                    let txn = conn.transaction().await?;
                    txn.batch_execute("SET LOCAL statement_timeout = '5s'")
                        .await?;
                    let row = txn.query_one("SELECT $1::int4 + 1", &[&task]).await?;
                    txn.commit().await?;
                    Ok::<i32, Box<dyn std::error::Error + Send + Sync>>(row.get(0))
                })
            })
            .collect();
        for task in tasks {
            let value = task.await.map_err(|e| e.to_string())?;
            println!("task answered {value}");
        }
        println!(
            "4 transactions on async-std in {:?}; pool: {:?}",
            started.elapsed(),
            pool.metrics()
        );
        pool.drain_timeout(Duration::from_secs(5)).await;
        Ok(())
    })
}
