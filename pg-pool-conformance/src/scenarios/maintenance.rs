//! Maintenance: idle timeout, lifetime with jitter, min-idle refill, the health probe, and
//! background tasks that end with the pool.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pg_pool_core::{DestroyReason, LifecycleHooks, Runtime};

use crate::harness::{mock_pool, settle, sleep, test_config};
use crate::mock::{Gate, MockConn, Step};

async fn wait_for<R: Runtime>(
    what: &str,
    limit: Duration,
    mut done: impl FnMut() -> bool,
) -> Duration {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "timed out waiting for {what}");
        sleep::<R>(Duration::from_millis(5)).await;
    }
    started.elapsed()
}

/// Idle connections above `min_idle` are closed after `idle_timeout`.
pub async fn idle_timeout_keeps_min_idle<R: Runtime>() {
    let mut config = test_config();
    config.min_idle = 1;
    config.idle_timeout = Some(Duration::from_millis(50));
    config.reaper_interval = Duration::from_millis(20);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let held: Vec<_> = [
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
    ]
    .into();
    drop(held);
    let took = wait_for::<R>("idle timeout", Duration::from_secs(3), || {
        pool.metrics().idle == 1
    })
    .await;
    println!("idle connections reaped down to min_idle in {took:?}");
    sleep::<R>(Duration::from_millis(100)).await;
    let m = settle(&pool, &control).await;
    assert_eq!(m.idle, 1, "min_idle is kept: {m:?}");
    assert!(m.destroys_for(DestroyReason::IdleTimeout) >= 2, "{m:?}");
}

/// Connections created together expire spread over the jitter window, not together.
pub async fn lifetime_jitter_spreads_expiry<R: Runtime>() {
    let expiries: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let e = expiries.clone();
    let hooks = LifecycleHooks::default().on_destroy(move |_: &MockConn, reason| {
        if reason == DestroyReason::Lifetime {
            e.lock().unwrap().push(Instant::now());
        }
    });
    let mut config = test_config();
    config.max_size = 20;
    config.max_connecting = 20;
    config.max_lifetime = Some(Duration::from_millis(400));
    config.max_lifetime_jitter = Duration::from_millis(300);
    config.reaper_interval = Duration::from_millis(5);
    let (pool, control) = mock_pool::<R>(config, hooks).await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(pool.get().await.unwrap());
    }
    drop(held);
    wait_for::<R>("all lifetimes", Duration::from_secs(3), || {
        expiries.lock().unwrap().len() == 20
    })
    .await;
    let times = expiries.lock().unwrap().clone();
    let spread = *times.iter().max().unwrap() - *times.iter().min().unwrap();
    println!("20 connections created together expired over {spread:?} (jitter window 300 ms)");
    assert!(
        spread >= Duration::from_millis(100),
        "expiries bunched together: {spread:?}"
    );
    settle(&pool, &control).await;
}

/// The pool opens `min_idle` connections up front and refills after losing some.
pub async fn min_idle_refill<R: Runtime>() {
    let mut config = test_config();
    config.min_idle = 3;
    config.reaper_interval = Duration::from_millis(20);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    assert_eq!(pool.metrics().idle, 3, "prefilled before new() returned");
    let mut guard = pool.get().await.unwrap();
    guard.broken = true;
    drop(guard);
    let took = wait_for::<R>("refill", Duration::from_secs(3), || {
        let m = pool.metrics();
        m.idle == 3 && m.connecting == 0
    })
    .await;
    println!("refilled to min_idle in {took:?}");
    let m = settle(&pool, &control).await;
    assert_eq!((m.idle, m.creates), (3, 4), "{m:?}");
}

/// The probe pings idle connections and evicts those that fail or hang, within the probe
/// interval plus the probe timeout.
pub async fn probe_evicts_failures<R: Runtime>() {
    for gate in [Gate::Fail, Gate::Never] {
        let mut config = test_config();
        config.health_check_interval = Some(Duration::from_millis(40));
        config.probe_timeout = Duration::from_millis(50);
        let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
        let (a, b) = (pool.get().await.unwrap(), pool.get().await.unwrap());
        drop((a, b));
        control.set(Step::Ping, gate);
        let took = wait_for::<R>("probe eviction", Duration::from_secs(3), || {
            pool.metrics().destroys_for(DestroyReason::PingFailed) == 2
        })
        .await;
        println!(
            "probe evicted 2 connections ({gate:?}) in {took:?} (interval 40 ms + probe timeout 50 ms)"
        );
        assert!(took < Duration::from_secs(1), "{took:?}");
        settle(&pool, &control).await;
    }
}

/// Background tasks hold only a weak reference: the pool is freed once its last handle is
/// dropped, and drain stops them.
pub async fn background_tasks_end<R: Runtime>() {
    let mut config = test_config();
    config.idle_timeout = Some(Duration::from_secs(60));
    config.health_check_interval = Some(Duration::from_millis(10));
    let (pool, control) = mock_pool::<R>(config.clone(), LifecycleHooks::default()).await;
    assert_eq!(pool.metrics().background_tasks, 2);
    drop(pool.get().await.unwrap());
    pool.drain().await;
    wait_for::<R>("tasks to stop after drain", Duration::from_secs(3), || {
        pool.metrics().background_tasks == 0
    })
    .await;
    assert_eq!(control.live(), 0);

    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    drop(pool.get().await.unwrap());
    let baseline = Arc::strong_count(&control);
    drop(pool);
    wait_for::<R>("the pool to be freed", Duration::from_secs(3), || {
        Arc::strong_count(&control) < baseline && control.live() == 0
    })
    .await;
    let pings = control.pings();
    sleep::<R>(Duration::from_millis(50)).await;
    assert_eq!(
        control.pings(),
        pings,
        "no task runs after the pool is gone"
    );
}

/// A connection held past the leak threshold is reported (once) by the reaper, naming the
/// checkout site; with no background feature configured, no task runs at all.
pub async fn leak_detection_and_no_idle_tasks<R: Runtime>() {
    let mut config = test_config();
    config.leak_detection_threshold = Some(Duration::from_millis(30));
    config.reaper_interval = Duration::from_millis(10);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    assert_eq!(
        pool.metrics().background_tasks,
        1,
        "the reaper scans for leaks"
    );
    let held = pool.get().await.unwrap();
    let quick = pool.get().await.unwrap();
    drop(quick);
    let took = wait_for::<R>("a leak report", Duration::from_secs(3), || {
        pool.metrics().leaks == 1
    })
    .await;
    println!("leak reported {took:?} after checkout (threshold 30 ms)");
    sleep::<R>(Duration::from_millis(60)).await;
    assert_eq!(
        pool.metrics().leaks,
        1,
        "reported once, and only the one held too long"
    );
    drop(held);
    settle(&pool, &control).await;

    let (pool, control) = mock_pool::<R>(test_config(), LifecycleHooks::default()).await;
    drop(pool.get().await.unwrap());
    assert_eq!(
        pool.metrics().background_tasks,
        0,
        "nothing configured, nothing running"
    );
    settle(&pool, &control).await;
}

/// Connections being probed still count as supply: a reaper pass during a slow probe does
/// not open connections towards `min_idle` that the probe is about to give back.
pub async fn probe_does_not_inflate_min_idle<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 6;
    config.min_idle = 2;
    config.idle_timeout = Some(Duration::from_secs(60));
    config.reaper_interval = Duration::from_millis(10);
    config.health_check_interval = Some(Duration::from_millis(30));
    config.probe_timeout = Duration::from_secs(1);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    assert_eq!(pool.metrics().idle, 2);
    control.set(Step::Ping, Gate::Slow(Duration::from_millis(100)));
    // Several probes and many reaper passes, each probe holding both connections 100 ms.
    sleep::<R>(Duration::from_millis(400)).await;
    let m = pool.metrics();
    println!(
        "after 400 ms of slow probes: {m:?}, pings {}",
        control.pings()
    );
    assert!(control.pings() >= 2, "the probe ran");
    assert_eq!(
        m.creates, 2,
        "no connection opened while the probe held them: {m:?}"
    );
    control.set(Step::Ping, Gate::Pass);
    pool.drain().await;
}
