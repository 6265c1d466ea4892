//! Serves the series of two pools, `primary` and `replica`, under a small load, for a real
//! Prometheus to scrape.
//!
//! ```text
//! cargo run --example metrics_server -- --listen 127.0.0.1:9187 --seconds 60
//! curl -s http://127.0.0.1:9187/metrics | promtool check metrics
//! ```
//!
//! `--seconds 0` runs until Ctrl-C. Without `DATABASE_URL`, a throwaway PostgreSQL is
//! started and removed on exit. The Grafana dashboard in `examples/grafana-dashboard.json`
//! shows these series.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use pg_pool_examples::Database;
use pg_pool_examples::metrics_server::{BoxError, Load, Options, serve};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let options = match Options::parse(std::env::args().skip(1)) {
        Ok(options) => options,
        Err(e) => {
            eprintln!("metrics_server: {e}");
            std::process::exit(2);
        }
    };
    let db = tokio::task::spawn_blocking(Database::from_env_or_throwaway).await??;
    let load = Load::start(&db.wire_config("metrics-server")?).await?;
    let listener = tokio::net::TcpListener::bind(options.listen).await?;
    let addr = listener.local_addr()?;
    match options.duration {
        Some(d) => println!("serving http://{addr}/metrics for {} s", d.as_secs()),
        None => println!("serving http://{addr}/metrics until Ctrl-C"),
    }
    let shutdown = async move {
        match options.duration {
            Some(d) => tokio::select! {
                () = tokio::time::sleep(d) => {}
                _ = tokio::signal::ctrl_c() => {}
            },
            None => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    };
    serve(listener, Arc::clone(&load.exporter), shutdown).await?;
    let (queries, failures) = (
        load.queries.load(Ordering::Relaxed),
        load.failures.load(Ordering::Relaxed),
    );
    load.stop().await;
    println!("{queries} queries, {failures} failed checkouts or queries; pools drained");
    Ok(())
}
