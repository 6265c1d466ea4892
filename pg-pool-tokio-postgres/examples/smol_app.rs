//! A smol program using a pool of tokio-postgres sessions, with no tokio runtime anywhere.
//!
//! Uses `DATABASE_URL` if set, otherwise starts a throwaway PostgreSQL from the test kit:
//!
//! ```text
//! cargo run -p pg-pool-tokio-postgres --example smol_app
//! ```

use std::time::{Duration, Instant};

use pg_pool_core::ConnPool;
use pg_pool_smol::Smol;
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::tokio_postgres::types::Type;
use pg_pool_tokio_postgres::{PgConfig, PgConnector, ResetStrategy};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Keep a throwaway cluster alive for the whole program when no URL is given.
    let (url, _cluster) = match std::env::var("DATABASE_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let cluster = TestCluster::start()?;
            (cluster.url().to_owned(), Some(cluster))
        }
    };
    smol::block_on(async {
        assert!(
            tokio::runtime::Handle::try_current().is_err(),
            "no tokio runtime here"
        );
        let config = PgConfig::from_url(&url)?.with_reset(ResetStrategy::Clean);
        let mut pool_config = config.pool_config();
        pool_config.max_size = 4;
        pool_config.min_idle = 1;
        let pool = ConnPool::<_, Smol>::builder(PgConnector::new(Smol::default(), config))
            .config(pool_config)
            .build()
            .await?;

        // Eight tasks share four connections.
        let started = Instant::now();
        let tasks: Vec<_> = (0..8_i64)
            .map(|task| {
                let pool = pool.clone();
                smol::spawn(async move {
                    let mut sum = 0;
                    for i in 0..100 {
                        let conn = pool.get().await?;
                        let statement = conn.prepare_cached("SELECT $1::int8 * 2").await?;
                        let rows = conn
                            .query_prepared(&statement, &[&(task * 100 + i)])
                            .await?;
                        sum += rows[0].get::<_, i64>(0);
                    }
                    Ok::<_, Box<dyn std::error::Error + Send + Sync>>(sum)
                })
            })
            .collect();
        let mut total = 0;
        for task in tasks {
            total += task.await.map_err(|e| e.to_string())?;
        }
        println!(
            "800 queries on smol in {:?}, sum {total}",
            started.elapsed()
        );

        let conn = pool.get().await?;
        let rows = conn.query_typed("SELECT version()", &[]).await?;
        println!("server: {}", rows[0].get::<_, &str>(0));
        let rows = conn
            .query_typed("SELECT $1::text || ' from smol'", &[(&"hello", Type::TEXT)])
            .await?;
        println!("{}", rows[0].get::<_, &str>(0));
        drop(conn);
        println!("pool: {:?}", pool.metrics());
        let report = pool.drain_timeout(Duration::from_secs(5)).await;
        println!("drained in {:?}", report.elapsed);
        Ok(())
    })
}
