//! Passwords never leave the process: with every `tracing` event captured at `TRACE`, a
//! wrong-password connect, a server restart under load and a drain log nothing that
//! contains the password (right or wrong), and no error value carries it in its Display,
//! its Debug or its source chain; neither do the config's and connector's Debug.

use std::time::Duration;

use pg_pool_core::ConnPoolConfig;
use pg_pool_test_support::{TestCluster, TraceCapture, error_chain};
use pg_pool_tokio::Tokio;
use pg_pool_tokio_postgres::{PgConfig, PgConnector, PgPool};

const WRONG: &str = "Wr0ng-Pa55word-zyx";

fn settings(max_size: usize) -> ConnPoolConfig {
    let mut config = ConnPoolConfig::default();
    config.max_size = max_size;
    config.checkout_timeout = Duration::from_secs(3);
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_logs_or_errors() {
    let capture = TraceCapture::install_global();
    let cluster: &'static TestCluster = Box::leak(Box::new(
        tokio::task::spawn_blocking(|| TestCluster::start().expect("a throwaway cluster"))
            .await
            .unwrap(),
    ));
    let password = cluster.password().to_owned();
    assert!(
        password.len() >= 8,
        "a password distinctive enough to search for"
    );
    let mut texts: Vec<String> = Vec::new();

    let wrong_url = cluster.url().replacen(&password, WRONG, 1);
    assert!(
        wrong_url.contains(WRONG),
        "the kit's URL carries the password"
    );
    let wrong = PgConfig::from_url(&wrong_url).unwrap();
    texts.push(format!("{wrong:?} {wrong:#?}"));
    let connector = PgConnector::<Tokio>::current(wrong).unwrap();
    texts.push(format!("{connector:?} {connector:#?}"));
    let pool = PgPool::<Tokio>::builder(connector)
        .config(settings(2))
        .build_lazy()
        .unwrap();
    let error = pool.get().await.unwrap_err();
    texts.push(error_chain(&error));
    assert!(error.to_string().contains("28P01"), "{error}");
    texts.push(format!("{:?}", pool.config()));
    pool.drain().await;

    let right = PgConfig::from_url(cluster.url()).unwrap();
    texts.push(format!("{right:?} {right:#?}"));
    let pool = PgPool::<Tokio>::builder(PgConnector::<Tokio>::current(right).unwrap())
        .config(settings(3))
        .build()
        .await
        .unwrap();
    let load = tokio::spawn({
        let pool = pool.clone();
        async move {
            let mut errors = Vec::new();
            for _ in 0..300 {
                match pool.get().await {
                    Ok(conn) => {
                        if let Err(e) = conn.simple_query("SELECT 1").await {
                            errors.push(error_chain(&e));
                        }
                    }
                    Err(e) => errors.push(error_chain(&e)),
                }
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            errors
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    tokio::task::spawn_blocking(move || cluster.restart_fast().unwrap())
        .await
        .unwrap();
    let errors = load.await.unwrap();
    println!(
        "{} errors seen by the load during the restart",
        errors.len()
    );
    texts.extend(errors);
    pool.drain().await;

    let lines = capture.lines();
    println!("{} log lines captured", lines.len());
    assert!(
        lines
            .iter()
            .any(|l| l.contains("connection attempt failed")),
        "the failed connect was logged"
    );
    for text in lines.iter().chain(&texts) {
        assert!(!text.contains(&password), "the password leaked: {text}");
        assert!(!text.contains(WRONG), "the wrong password leaked: {text}");
    }
}
