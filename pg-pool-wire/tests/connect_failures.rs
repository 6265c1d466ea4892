//! Connect failures: a wrong password is reported at once with the server's message and
//! without a retry storm; a closed port fails clearly within the connect timeout; a
//! blackholed host and a silent server time out within the checkout timeout for every one
//! of 64 concurrent callers, and leave nothing behind.

mod common;

use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{eventually, pool_config, wire_config, wire_pool};
use pg_pool_core::{ConnectError, LifecycleHooks, PoolError};
use pg_pool_test_support::{FaultProxy, ProxyMode, TestCluster};
use pg_pool_wire::{WireError, WirePool};

const CALLERS: usize = 64;

/// Runs `CALLERS` concurrent `get()`s; returns each one's error and how long it took.
async fn concurrent_gets(pool: &WirePool) -> Vec<(Duration, PoolError<WireError>)> {
    let mut tasks = Vec::new();
    for _ in 0..CALLERS {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let started = Instant::now();
            let result = pool.get().await;
            (started.elapsed(), result.map(drop))
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        let (took, result) = task.await.unwrap();
        out.push((took, result.expect_err("no server behind this pool")));
    }
    out
}

/// Waits for in-flight connects to end, then checks that nothing is left over.
async fn assert_nothing_leaks(pool: &WirePool, limit: Duration) {
    let clean = eventually(limit, || async {
        let m = pool.metrics();
        m.size == 0 && m.waiters == 0 && m.active == 0 && m.connecting == 0
    })
    .await;
    let m = pool.metrics();
    println!(
        "after the failures: size={} waiters={} connecting={} timeouts={} connect_failures={}",
        m.size, m.waiters, m.connecting, m.timeouts, m.connect_failures
    );
    assert!(clean.is_some(), "capacity leaked: {m:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_fails_at_once_with_the_server_message_and_no_retry_storm() {
    let cluster = TestCluster::shared();
    let proxy = FaultProxy::start(cluster.addr()).unwrap();
    let mut wire = wire_config(cluster, Some(proxy.addr()), "wrong-password");
    wire.password = "not-the-password".into();
    let mut config = pool_config(8);
    config.checkout_timeout = Duration::from_secs(2);
    config.connect_backoff = Duration::from_millis(50);
    config.connect_backoff_max = Duration::from_secs(1);
    let pool = wire_pool(wire, config, LifecycleHooks::default()).await;

    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    let took = started.elapsed();
    println!("wrong password: error after {took:?}: {err}");
    assert!(matches!(err, PoolError::Connect(_)), "{err:?}");
    let driver = err.driver_error().expect("the driver's error is attached");
    assert_eq!(driver.code(), Some("28P01"), "{driver:?}");
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );
    assert!(
        took < Duration::from_secs(1),
        "reported at once, not after a timeout"
    );

    // 64 callers at once: every one fails, none after the checkout timeout, each with the
    // password error at hand, and the server sees a trickle of attempts, not a storm.
    let before = proxy.accepted();
    let window = Instant::now();
    let results = concurrent_gets(&pool).await;
    let elapsed = window.elapsed();
    let attempts = proxy.accepted() - before;
    let slowest = results.iter().map(|(took, _)| *took).max().unwrap();
    let immediate = results
        .iter()
        .filter(|(_, e)| matches!(e, PoolError::Connect(_)))
        .count();
    println!(
        "{CALLERS} concurrent callers: {immediate} got the connect error directly, {} timed out \
         carrying it; slowest {slowest:?}; {attempts} connection attempts in {elapsed:?} \
         (per 250 ms: {:?})",
        CALLERS - immediate,
        proxy.accepted_per_bucket(Duration::from_millis(250)),
    );
    for (_, e) in &results {
        let driver = e
            .driver_error()
            .unwrap_or_else(|| panic!("no driver error in {e:?}"));
        assert_eq!(driver.code(), Some("28P01"));
    }
    assert!(slowest < Duration::from_millis(2500), "{slowest:?}");
    assert!(
        attempts <= 16,
        "retry storm: {attempts} attempts in {elapsed:?}"
    );
    assert_nothing_leaks(&pool, Duration::from_secs(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_port_fails_clearly_within_the_connect_timeout() {
    let cluster = TestCluster::shared();
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let wire = wire_config(cluster, Some(port), "closed-port");
    let config = pool_config(4);
    let pool = wire_pool(wire, config.clone(), LifecycleHooks::default()).await;
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    let took = started.elapsed();
    println!("closed port: error after {took:?}: {err}");
    assert!(took < config.connect_timeout, "{took:?}");
    assert!(matches!(err, PoolError::Connect(_)), "{err:?}");
    assert!(err.to_string().to_lowercase().contains("refused"), "{err}");
    assert_nothing_leaks(&pool, Duration::from_secs(2)).await;
}

/// 64 callers against a proxy in `mode`: all time out within the checkout timeout.
async fn silent_upstream_times_out(mode: ProxyMode, app: &str) {
    let cluster = TestCluster::shared();
    let proxy = FaultProxy::start(cluster.addr()).unwrap();
    proxy.set_mode(mode);
    let mut config = pool_config(8);
    config.checkout_timeout = Duration::from_millis(1500);
    config.connect_timeout = Duration::from_millis(1000);
    let pool = wire_pool(
        wire_config(cluster, Some(proxy.addr()), app),
        config,
        LifecycleHooks::default(),
    )
    .await;

    let results = concurrent_gets(&pool).await;
    let slowest = results.iter().map(|(took, _)| *took).max().unwrap();
    let fastest = results.iter().map(|(took, _)| *took).min().unwrap();
    let connect_timeouts = results
        .iter()
        .filter(|(_, e)| matches!(e.connect_error(), Some(ConnectError::Timeout(_))))
        .count();
    println!(
        "{mode:?}: {CALLERS} callers failed in {fastest:?}..{slowest:?}; {connect_timeouts} carry a \
         connect timeout; first error: {}",
        results[0].1
    );
    for (took, e) in &results {
        let timed_out =
            e.is_timeout() || matches!(e.connect_error(), Some(ConnectError::Timeout(_)));
        assert!(timed_out, "{mode:?}: expected a timeout, got {e:?}");
        assert!(
            *took < Duration::from_millis(2500),
            "{mode:?}: a caller waited {took:?}"
        );
    }
    assert_nothing_leaks(&pool, Duration::from_secs(3)).await;
    drop(pool);
    println!("{mode:?}: proxy accepted {} connections", proxy.accepted());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blackholed_host_times_out_every_caller() {
    silent_upstream_times_out(ProxyMode::Blackhole, "blackhole").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_server_times_out_every_caller() {
    silent_upstream_times_out(ProxyMode::AcceptThenSilence, "accept-then-silence").await;
}
