//! Passwords never leave the process: with every `tracing` event captured at `TRACE`, a
//! wrong-password connect, a server restart under load and a drain log nothing that
//! contains the password (right or wrong), and no error value carries it in its Display,
//! its Debug or its source chain; neither do the configs' and connectors' Debug.

mod common;

use std::time::Duration;

use common::{blocking, own_cluster, pool_config};
use pg_pool_core::LifecycleHooks;
use pg_pool_test_support::{TraceCapture, error_chain};
use pg_pool_wire::{AsyncWirePoolable, WireConfig, WireConnector, WirePool};

const WRONG: &str = "Wr0ng-Pa55word-zyx";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passwords_never_reach_logs_or_errors() {
    let capture = TraceCapture::install_global();
    let cluster = own_cluster();
    let password = cluster.password().to_owned();
    assert!(
        password.len() >= 8,
        "a password distinctive enough to search for"
    );
    let mut texts: Vec<String> = Vec::new();

    // A wrong password: the error reaches the caller, with the server's message.
    let wrong_url = cluster.url().replacen(&password, WRONG, 1);
    assert!(
        wrong_url.contains(WRONG),
        "the kit's URL carries the password"
    );
    let wrong = WireConfig::from_url(&wrong_url).unwrap();
    texts.push(format!("{wrong:?} {wrong:#?}"));
    let connector = WireConnector::new(wrong);
    texts.push(format!("{connector:?} {connector:#?}"));
    let pool = WirePool::builder(connector)
        .config(pool_config(2))
        .hooks(LifecycleHooks::default())
        .build()
        .await
        .unwrap();
    let error = pool.get().await.unwrap_err();
    assert_eq!(
        error.driver_error().and_then(|e| e.code()),
        Some("28P01"),
        "{error}"
    );
    texts.push(error_chain(&error));
    texts.push(format!("{:?}", pool.config()));
    pool.drain().await;

    // A restart under load, on both connection kinds, then a drain.
    let right = WireConfig::from_url(cluster.url()).unwrap();
    texts.push(format!("{right:?} {right:#?}"));
    let pool = WirePool::builder(WireConnector::new(right.clone()))
        .config(pool_config(3))
        .hooks(LifecycleHooks::default())
        .build()
        .await
        .unwrap();
    let pipelined =
        pg_pool_tokio::ConnPool::<AsyncWirePoolable>::builder(WireConnector::new(right))
            .config(pool_config(2))
            .hooks(LifecycleHooks::default())
            .build()
            .await
            .unwrap();
    let load = tokio::spawn({
        let pool = pool.clone();
        let pipelined = pipelined.clone();
        async move {
            let mut errors = Vec::new();
            for _ in 0..200 {
                match pool.get().await {
                    Ok(mut conn) => {
                        if let Err(e) = conn.execute("SELECT 1").await {
                            errors.push(error_chain(&e));
                        }
                    }
                    Err(e) => errors.push(error_chain(&e)),
                }
                match pipelined.get().await {
                    Ok(conn) => {
                        if let Err(e) = conn.exec_query("SELECT 1", &[], &[]).await {
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
    blocking(move || cluster.restart_fast().unwrap()).await;
    let errors = load.await.unwrap();
    println!(
        "{} errors seen by the load during the restart",
        errors.len()
    );
    texts.extend(errors);
    pool.drain().await;
    pipelined.drain().await;

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
