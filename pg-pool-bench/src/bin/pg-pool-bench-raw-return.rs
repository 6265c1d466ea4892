//! The cost of one checkout, `query_one` and return of a pooled tokio-postgres session:
//! `pg-pool-bench-raw-return MODE CYCLES [RUNTIME]`, `MODE` one of `raw` (the query through
//! the raw `Client`, as code written for `&Client`/`GenericClient` does) or `wrapper` (the
//! same query through `PgConnection`'s own method), `RUNTIME` `current` (the default: a
//! current-thread tokio runtime) or `multi` (two workers).
//!
//! One task, a pool of one, so each checkout waits for the previous return to finish:
//! the time per cycle includes the whole return path. Runs 500 warm-up cycles, then
//! `CYCLES`, and prints the mean and the quartiles of the cycle's wall-clock time. The
//! server is a throwaway cluster.

use std::time::{Duration, Instant};

use pg_pool_tokio::Tokio;
use pg_pool_tokio_postgres::tokio_postgres::Client;
use pg_pool_tokio_postgres::{PgConfig, PgConnector, PgPool};

fn main() {
    let usage = "usage: pg-pool-bench-raw-return raw|wrapper CYCLES [current|multi]";
    let args: Vec<String> = std::env::args().skip(1).collect();
    let raw = match args.first().map(String::as_str) {
        Some("raw") => true,
        Some("wrapper") => false,
        _ => panic!("{usage}"),
    };
    let cycles: usize = args.get(1).and_then(|a| a.parse().ok()).expect(usage);
    let runtime = match args.get(2).map(String::as_str) {
        None | Some("current") => tokio::runtime::Builder::new_current_thread(),
        Some("multi") => {
            let mut builder = tokio::runtime::Builder::new_multi_thread();
            builder.worker_threads(2);
            builder
        }
        Some(_) => panic!("{usage}"),
    }
    .enable_all()
    .build()
    .expect("a tokio runtime");
    let cluster = pg_pool_test_support::TestCluster::start().expect("a cluster");
    let pg = PgConfig::from_url(cluster.url()).expect("the kit's URL");
    let times = runtime.block_on(async move {
        let mut config = pg_pool_test_support::test_pool_config(1);
        config.test_on_checkout = false;
        let pool: PgPool<Tokio> = PgPool::builder(PgConnector::<Tokio>::current(pg).unwrap())
            .config(config)
            .build()
            .await
            .expect("a pool");
        let mut times = Vec::with_capacity(cycles);
        for i in 0..500 + cycles {
            let started = Instant::now();
            let conn = pool.get().await.expect("a connection");
            let value: i32 = if raw {
                let client: &Client = &conn;
                client.query_one("SELECT 1", &[]).await.unwrap().get(0)
            } else {
                conn.query_one("SELECT 1", &[]).await.unwrap().get(0)
            };
            assert_eq!(value, 1);
            drop(conn);
            if i >= 500 {
                times.push(started.elapsed());
            }
        }
        // The last return.
        drop(pool.get().await.expect("a connection"));
        let metrics = pool.metrics();
        println!(
            "creates {} destroys {} (one session throughout: {})",
            metrics.creates,
            metrics.destroys,
            metrics.creates == 1 && metrics.destroys == 0
        );
        times
    });
    let mut sorted = times.clone();
    sorted.sort();
    let mean = times.iter().sum::<Duration>() / times.len().max(1) as u32;
    let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q) as usize];
    println!(
        "{} cycles={cycles}: mean {:.1} us, p25 {:.1} us, median {:.1} us, p75 {:.1} us",
        if raw { "raw" } else { "wrapper" },
        mean.as_secs_f64() * 1e6,
        at(0.25).as_secs_f64() * 1e6,
        at(0.5).as_secs_f64() * 1e6,
        at(0.75).as_secs_f64() * 1e6,
    );
}
