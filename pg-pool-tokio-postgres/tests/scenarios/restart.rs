//! A server restart: the pool serves again once PostgreSQL is back.

use std::time::{Duration, Instant};

use pg_pool_tokio_postgres::PgRuntime;

use crate::common::{blocking, own_cluster, pg_config, pool, pool_config, sleep};

pub(crate) async fn serves_again_after_restart<R: PgRuntime>(tag: &'static str) {
    let cluster = own_cluster().await;
    let app = format!("tp-restart-{tag}");
    let mut config = pool_config(4);
    config.min_idle = 2;
    config.test_on_checkout_after = Duration::ZERO;
    let pool = pool::<R>(pg_config(cluster, None, &app), config).await;
    for _ in 0..4 {
        pool.get()
            .await
            .unwrap()
            .execute("SELECT 1", &[])
            .await
            .unwrap();
    }
    let restart = Instant::now();
    blocking(move || cluster.restart_fast().unwrap()).await;
    let restarted = restart.elapsed();
    let back = Instant::now();
    let mut errors = 0;
    loop {
        let result = async {
            pool.get()
                .await
                .map_err(|e| e.to_string())?
                .execute("SELECT 1", &[])
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(_) => break,
            Err(e) => {
                errors += 1;
                assert!(
                    back.elapsed() < Duration::from_secs(5),
                    "[{tag}] not serving 5 s after restart: {e}"
                );
                sleep::<R>(Duration::from_millis(10)).await;
            }
        }
    }
    let recovery = back.elapsed();
    println!(
        "[{tag}] restart_fast took {restarted:?}; first successful query {recovery:?} after the server was back ({errors} failed attempts)"
    );
    for _ in 0..20 {
        pool.get()
            .await
            .expect("serving")
            .execute("SELECT 1", &[])
            .await
            .expect("serving");
    }
    pool.drain().await;
}
