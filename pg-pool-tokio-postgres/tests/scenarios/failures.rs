//! Connect failures: a wrong password is reported at once with the server's message; a
//! blackholed host times out within the checkout timeout and leaves nothing behind.

use std::time::{Duration, Instant};

use pg_pool_core::{ConnectError, PoolError};
use pg_pool_test_support::{FaultProxy, ProxyMode, TestCluster};
use pg_pool_tokio_postgres::{PgPool, PgRuntime};

use crate::common::{eventually, pg_config, pool, pool_config, spawn};

async fn assert_nothing_leaks<R: PgRuntime>(pool: &PgPool<R>) {
    let clean = eventually::<R, _, _>(Duration::from_secs(3), || async {
        let m = pool.metrics();
        m.size == 0 && m.waiters == 0 && m.active == 0 && m.connecting == 0
    })
    .await;
    assert!(clean.is_some(), "capacity leaked: {:?}", pool.metrics());
}

pub(crate) async fn wrong_password_fails_at_once<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let mut pg = pg_config(cluster, None, &format!("tp-password-{tag}"));
    pg.pg.password("not-the-password");
    let pool = pool::<R>(pg, pool_config(4)).await;
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    let took = started.elapsed();
    println!("[{tag}] wrong password: error after {took:?}: {err}");
    assert!(matches!(err, PoolError::Connect(_)), "{err:?}");
    assert_eq!(
        err.driver_error().and_then(|e| e.code()),
        Some("28P01"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );
    assert!(
        took < Duration::from_secs(1),
        "reported at once, not after a timeout"
    );
    assert_nothing_leaks(&pool).await;
}

pub(crate) async fn blackhole_times_out<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let proxy = FaultProxy::start(cluster.addr()).unwrap();
    proxy.set_mode(ProxyMode::Blackhole);
    let mut config = pool_config(4);
    config.checkout_timeout = Duration::from_millis(1500);
    config.connect_timeout = Duration::from_millis(1000);
    let pool = pool::<R>(
        pg_config(cluster, Some(proxy.addr()), &format!("tp-blackhole-{tag}")),
        config,
    )
    .await;
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let pool = pool.clone();
            spawn::<R, _>(async move {
                let started = Instant::now();
                let result = pool.get().await.map(drop);
                (started.elapsed(), result)
            })
        })
        .collect();
    let mut slowest = Duration::ZERO;
    for caller in callers {
        let (took, result) = caller.recv().await.unwrap();
        let err = result.expect_err("nothing answers behind a blackhole");
        let timed_out =
            err.is_timeout() || matches!(err.connect_error(), Some(ConnectError::Timeout(_)));
        assert!(timed_out, "[{tag}] expected a timeout, got {err:?}");
        assert!(
            took < Duration::from_millis(2200),
            "[{tag}] a caller waited {took:?}"
        );
        slowest = slowest.max(took);
    }
    println!(
        "[{tag}] blackhole: 8 callers timed out, slowest after {slowest:?} (checkout timeout 1.5 s)"
    );
    assert_nothing_leaks(&pool).await;
    drop(pool);
}
