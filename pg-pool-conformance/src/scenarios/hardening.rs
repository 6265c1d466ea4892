//! A hostile or careless user: panics in every call into user code, extreme configurations,
//! evictions racing hand-offs, permanent connect errors, mass cancellation, drains during
//! connects. The pool's accounting stays exact and nothing panics, hangs or leaks.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::time::{Duration, Instant};

use futures_lite::future;
use pg_pool_core::{
    ConnPoolConfig, ConnectError, DestroyReason, Fairness, HookError, LifecycleHooks, PoolError,
    Runtime,
};

use crate::harness::{mock_pool, settle, sleep, spawn, test_config};
use crate::mock::{Gate, MockConn, Step};

/// A `retain` closure that panics: the panic reaches the caller, the connections visited so
/// far are handled, the accounting stays exact and a drain still completes.
pub async fn retain_panic_keeps_accounting<R: Runtime>() {
    let (pool, control) = mock_pool::<R>(test_config(), LifecycleHooks::default()).await;
    let mut guards = Vec::new();
    for _ in 0..3 {
        guards.push(pool.get().await.unwrap());
    }
    drop(guards);
    let mut visited = 0;
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        pool.retain(|_| {
            visited += 1;
            if visited == 2 {
                panic!("retain closure panicked");
            }
            false
        })
    }));
    assert!(outcome.is_err(), "the closure's panic reaches the caller");
    let m = settle(&pool, &control).await;
    assert_eq!(
        (m.idle, m.destroys_for(DestroyReason::Evicted)),
        (2, 1),
        "the first visited was evicted, the rest kept: {m:?}"
    );
    let report = pool.drain_timeout(Duration::from_secs(2)).await;
    println!("drain after a panicking retain: {report:?}");
    assert!(report.is_complete(), "{report:?}");
    assert_eq!(control.live(), 0);
}

/// `connect`, `ping`, `reset` and `close` that panic before returning their future never
/// escape into the caller of `get()` or `PoolGuard::drop`, and leak nothing.
pub async fn synchronous_panics_are_contained<R: Runtime>() {
    let mut config = test_config();
    config.test_on_checkout = true;
    config.test_on_checkout_after = Duration::ZERO;
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;

    control.once(Step::Connect, Gate::PanicNow);
    match pool.get().await {
        Err(PoolError::Connect(error)) => {
            assert!(matches!(*error, ConnectError::Panicked(_)), "{error}");
            assert!(error.to_string().contains("panicked"), "{error}");
        }
        other => panic!("expected the connect's panic as an error, got {other:?}"),
    }

    drop(pool.get().await.expect("a new connect serves"));
    control.once(Step::Ping, Gate::PanicNow);
    let guard = pool
        .get()
        .await
        .expect("a failed ping moves on to a new connection");
    drop(guard);
    let m = settle(&pool, &control).await;
    assert_eq!(m.destroys_for(DestroyReason::PingFailed), 1, "{m:?}");

    control.once(Step::Reset, Gate::PanicNow);
    let mut guard = pool.get().await.unwrap();
    guard.dirty = true;
    drop(guard);
    let m = settle(&pool, &control).await;
    assert_eq!(m.destroys_for(DestroyReason::ResetFailed), 1, "{m:?}");

    control.once(Step::Close, Gate::PanicNow);
    let mut guard = pool.get().await.unwrap();
    guard.broken = true;
    drop(guard);
    let m = settle(&pool, &control).await;
    assert_eq!(
        (m.destroys_for(DestroyReason::Broken), m.closing),
        (1, 0),
        "a close that panicked counts as closed: {m:?}"
    );
    let report = pool.drain_timeout(Duration::from_secs(2)).await;
    assert!(report.is_complete(), "{report:?}");
}

/// A connection handed to a waiter that has not run yet, then `evict_all`: the waiter
/// never receives the old-generation connection.
pub async fn evict_all_beats_a_pending_grant<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 1;
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let held = pool.get().await.unwrap();
    let old = held.id;
    let mut waiting = pin!(pool.get());
    assert!(
        crate::harness::poll_to_queue(&mut waiting).await.is_none(),
        "queued"
    );
    assert_eq!(pool.metrics().waiters, 1);
    drop(held); // handed straight to the queued checkout, which has not run since
    pool.evict_all();
    let guard = waiting.await.expect("served with a new connection");
    assert_ne!(guard.id, old, "an evicted connection was handed out");
    drop(guard);
    let m = settle(&pool, &control).await;
    assert_eq!(m.destroys_for(DestroyReason::Evicted), 1, "{m:?}");
}

/// A checkout cancelled during its idle ping destroys the connection as `Cancelled`, never
/// as a hook rejection when no hook exists.
pub async fn cancelled_validation_is_counted_cancelled<R: Runtime>() {
    let mut config = test_config();
    config.test_on_checkout = true;
    config.test_on_checkout_after = Duration::ZERO;
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    drop(pool.get().await.unwrap());
    control.once(Step::Ping, Gate::Never);
    let cancelled =
        crate::harness::cancel_after::<R, _>(Duration::from_millis(30), pool.get()).await;
    assert!(cancelled.is_none(), "the ping never finishes");
    let m = settle(&pool, &control).await;
    assert_eq!(m.destroys_for(DestroyReason::Cancelled), 1, "{m:?}");
    assert_eq!(m.destroys_for(DestroyReason::HookRejected), 0, "{m:?}");
}

/// A connection the create hook rejects is a create and a destroy, so creates minus
/// destroys is always the live count.
pub async fn create_hook_rejection_is_counted<R: Runtime>() {
    let hooks = LifecycleHooks::<MockConn>::default()
        .on_create(|_| Box::pin(async { Err(HookError::new("not today")) }));
    let mut config = test_config();
    config.checkout_timeout = Duration::from_millis(300);
    let (pool, control) = mock_pool::<R>(config, hooks).await;
    let error = pool.get().await.unwrap_err();
    assert!(
        matches!(&error, PoolError::Connect(e) if matches!(**e, ConnectError::Hook(_))),
        "{error:?}"
    );
    let m = settle(&pool, &control).await;
    assert!(m.creates >= 1, "{m:?}");
    assert_eq!(
        m.creates,
        m.destroys_for(DestroyReason::HookRejected),
        "{m:?}"
    );
    assert_eq!(control.live(), 0);
}

/// A permanent connect error (wrong password and the like) reaches every caller queued at
/// that moment at once, not only the one whose attempt failed; and nothing retries in a
/// loop. Under strict and bounded fairness: with bounded fairness the one connection that
/// opened goes idle and the head is only nudged, and the error that follows must not fail
/// the head while that connection sits idle.
pub async fn permanent_connect_error_fails_every_waiter<R: Runtime>() {
    for fairness in [
        Fairness::Strict,
        Fairness::Bounded(Duration::from_secs(3600)),
    ] {
        println!("fairness {fairness}");
        permanent_connect_error_case::<R>(fairness).await;
    }
}

async fn permanent_connect_error_case<R: Runtime>(fairness: Fairness) {
    const CALLERS: usize = 8;
    let mut config = test_config();
    config.fairness = fairness;
    config.max_connecting = 1;
    config.checkout_timeout = Duration::from_secs(10);
    config.connect_backoff = Duration::from_millis(200);
    config.connect_backoff_max = Duration::from_secs(1);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    // The first attempt succeeds slowly, so that every caller queues behind it; each
    // attempt after it is refused for good.
    control.once(Step::Connect, Gate::Slow(Duration::from_millis(300)));
    control.set(Step::Connect, Gate::Refuse);
    let started = Instant::now();
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let pool = pool.clone();
            spawn::<R, _>(async move {
                let outcome = pool.get().await;
                let at = Instant::now();
                if outcome.is_ok() {
                    // Hold it, so that nobody else is served by returns.
                    sleep::<R>(Duration::from_millis(300)).await;
                }
                (outcome.map(drop), at)
            })
        })
        .collect();
    let mut served = 0;
    let mut refused = 0;
    let mut slowest = Duration::ZERO;
    for caller in callers {
        let (outcome, at) = caller.join().await;
        match outcome {
            Ok(()) => served += 1,
            Err(error) => {
                let permanent = error
                    .connect_error()
                    .is_some_and(|e| matches!(e, ConnectError::Driver(d) if d.is_permanent()));
                assert!(permanent, "the permanent error, not a timeout: {error}");
                refused += 1;
                slowest = slowest.max(at - started);
            }
        }
    }
    let m = settle(&pool, &control).await;
    println!(
        "{served} served, {refused} got the permanent error, the last after {slowest:?}; {} connect failures",
        m.connect_failures
    );
    assert_eq!(served, 1, "only the first attempt succeeded");
    assert_eq!(refused, CALLERS - 1);
    assert!(
        slowest < Duration::from_secs(5),
        "callers waited for attempts of their own: {slowest:?}"
    );
    assert!(
        m.connect_failures <= 3,
        "no retry storm on a permanent error: {m:?}"
    );
}

/// 20,000 queued callers dropped newest first: removal is amortised O(1), so it takes
/// milliseconds, not a quadratic scan of the queue.
pub async fn mass_cancellation_is_cheap<R: Runtime>() {
    const CALLERS: usize = 20_000;
    let mut config = test_config();
    config.max_size = 1;
    config.checkout_timeout = Duration::from_secs(60);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let held = pool.get().await.unwrap();
    let mut waiting: Vec<_> = (0..CALLERS).map(|_| Box::pin(pool.get())).collect();
    queue_all(&pool, &mut waiting).await;
    let started = Instant::now();
    while let Some(checkout) = waiting.pop() {
        drop(checkout);
    }
    let newest_first = started.elapsed();
    // Again, oldest first and from the middle out.
    let mut waiting: Vec<_> = (0..CALLERS).map(|_| Box::pin(pool.get())).collect();
    queue_all(&pool, &mut waiting).await;
    let started = Instant::now();
    let middle = waiting.split_off(CALLERS / 2);
    drop(waiting);
    drop(middle);
    let other_orders = started.elapsed();
    println!(
        "dropping {CALLERS} queued callers: newest first {newest_first:?}, oldest first {other_orders:?}"
    );
    assert_eq!(pool.metrics().waiters, 0);
    // Generous: a linear scan per removal takes seconds here; amortised O(1) takes ms.
    assert!(newest_first < Duration::from_secs(2), "{newest_first:?}");
    assert!(other_orders < Duration::from_secs(2), "{other_orders:?}");
    drop(held);
    let guard = pool.get().await.expect("the pool still serves");
    drop(guard);
    settle(&pool, &control).await;
}

/// Polls each checkout until it has queued (a runtime's cooperative budget may make the
/// first poll return before the checkout starts).
async fn queue_all<R: Runtime, F: std::future::Future + Unpin>(
    pool: &crate::harness::MockPool<R>,
    checkouts: &mut [F],
) {
    for (index, checkout) in checkouts.iter_mut().enumerate() {
        while pool.metrics().waiters <= index {
            assert!(future::poll_once(&mut *checkout).await.is_none());
            if pool.metrics().waiters <= index {
                future::yield_now().await;
            }
        }
    }
    assert_eq!(pool.metrics().waiters, checkouts.len());
}

/// A drain cancels connection attempts in flight instead of waiting out a connect that
/// never finishes.
pub async fn drain_cancels_connects_in_flight<R: Runtime>() {
    let mut config = test_config();
    config.connect_timeout = Duration::from_secs(30);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    control.set(Step::Connect, Gate::Never);
    let pending = spawn::<R, _>({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    sleep::<R>(Duration::from_millis(20)).await;
    assert_eq!(pool.metrics().connecting, 1);
    let report = pool.drain_timeout(Duration::from_secs(5)).await;
    println!("drain with a connect that never finishes: {report:?}");
    assert!(report.is_complete(), "{report:?}");
    assert!(report.elapsed < Duration::from_secs(3), "{report:?}");
    assert!(matches!(pending.join().await, Err(PoolError::Closed)));
    assert_eq!(control.live(), 0);
}

/// Every duration at `Duration::MAX` and the largest size accepted: the pool works (checks
/// out, queues, backs off, returns, drains); sizes outside the range are errors naming
/// `max_size`, and a refused resize leaves the pool as it was.
pub async fn extreme_configs_work<R: Runtime>() {
    let mut config = test_config();
    config.max_size = ConnPoolConfig::MAX_SIZE_LIMIT;
    config.max_connecting = usize::MAX;
    config.checkout_timeout = Duration::MAX;
    config.connect_timeout = Duration::MAX;
    config.idle_timeout = Some(Duration::MAX);
    config.max_lifetime = Some(Duration::MAX);
    config.max_lifetime_jitter = Duration::MAX - Duration::from_nanos(1);
    config.reaper_interval = Duration::MAX;
    config.health_check_interval = Some(Duration::MAX);
    config.probe_timeout = Duration::MAX;
    config.test_on_checkout = true;
    config.test_on_checkout_after = Duration::MAX;
    config.connect_backoff = Duration::MAX;
    config.connect_backoff_max = Duration::MAX;
    config.leak_detection_threshold = Some(Duration::MAX);
    config.slow_checkout_threshold = Duration::MAX;
    config.checkin_timeout = Duration::MAX;
    config.validate().expect("valid");
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let a = pool.get().await.unwrap();
    let mut b = pool.get().await.unwrap();
    b.dirty = true;
    drop(b);
    drop(a);
    settle(&pool, &control).await;
    // A failed connect starts a backoff of `Duration::MAX`.
    let held: Vec<_> = vec![pool.get().await.unwrap(), pool.get().await.unwrap()];
    control.once(Step::Connect, Gate::Fail);
    assert!(
        matches!(pool.get().await, Err(PoolError::Connect(_))),
        "the failed connect is reported at once"
    );
    drop(held);
    let m = settle(&pool, &control).await;
    assert_eq!(m.max_size, ConnPoolConfig::MAX_SIZE_LIMIT);

    for bad in [0, ConnPoolConfig::MAX_SIZE_LIMIT + 1, 1 << 40, usize::MAX] {
        let error = pool.resize(bad).expect_err("out of range");
        assert_eq!(error.field(), "max_size", "{error}");
        assert!(error.to_string().contains("between 1 and"), "{error}");
        let mut config = test_config();
        config.max_size = bad;
        assert_eq!(config.validate().unwrap_err().field(), "max_size");
    }
    assert_eq!(pool.metrics().max_size, ConnPoolConfig::MAX_SIZE_LIMIT);
    pool.resize(3).unwrap();
    assert_eq!(pool.metrics().max_size, 3);
    let report = pool.drain_timeout(Duration::from_secs(2)).await;
    assert!(report.is_complete(), "{report:?}");
}

/// `set_min_idle` raises and lowers the warm set at run time, capped at `max_size`.
pub async fn set_min_idle_at_run_time<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 3;
    config.reaper_interval = Duration::from_millis(20);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    assert_eq!(pool.metrics().idle, 0);
    pool.set_min_idle(10);
    let started = Instant::now();
    while pool.metrics().idle < 3 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            pool.metrics()
        );
        sleep::<R>(Duration::from_millis(5)).await;
    }
    sleep::<R>(Duration::from_millis(50)).await;
    let m = settle(&pool, &control).await;
    assert_eq!((m.idle, m.creates), (3, 3), "capped at max_size: {m:?}");
    // Lowered to zero: taking every connection opens no replacement.
    pool.set_min_idle(0);
    let held: Vec<_> = vec![
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
        pool.get().await.unwrap(),
    ];
    sleep::<R>(Duration::from_millis(50)).await;
    let m = pool.metrics();
    assert_eq!((m.connecting, m.creates), (0, 3), "{m:?}");
    drop(held);
    settle(&pool, &control).await;
}

/// A connection that shows the server changed (a failover) evicts every pooled connection
/// at once, ends the connect backoff, and counts it; new connections serve at once.
pub async fn server_change_evicts_everything<R: Runtime>() {
    let mut config = test_config();
    config.connect_backoff = Duration::from_secs(5);
    config.connect_backoff_max = Duration::from_secs(5);
    config.checkout_timeout = Duration::from_secs(3);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let mut guards = Vec::new();
    for _ in 0..4 {
        guards.push(pool.get().await.unwrap());
    }
    let mut witness = guards.pop().unwrap();
    let other = guards.pop().unwrap();
    drop(guards); // two idle
    // An outage: a failed connect starts a five-second backoff.
    pool.resize(5).unwrap();
    let extra: Vec<_> = vec![pool.get().await.unwrap(), pool.get().await.unwrap()];
    control.once(Step::Connect, Gate::Fail);
    assert!(matches!(pool.get().await, Err(PoolError::Connect(_))));
    drop(extra); // two more idle, old generation
    let old = other.id;
    witness.changed = Some("25006 read_only_sql_transaction");
    drop(witness);
    let m = pool.metrics();
    assert_eq!(m.server_changes, 1, "{m:?}");
    assert_eq!(m.idle, 0, "every idle connection evicted at once: {m:?}");
    // The backoff is over: a new connection is opened at once, not in five seconds.
    let started = Instant::now();
    let fresh = pool.get().await.expect("a new connection at once");
    println!(
        "first checkout after the server change: {:?}",
        started.elapsed()
    );
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_ne!(fresh.id, old);
    drop(other); // old generation: destroyed on return
    drop(fresh);
    let m = settle(&pool, &control).await;
    assert_eq!(m.idle, 1, "only the new connection is kept: {m:?}");
    // Two idle, the witness, and the other one out: every connection of the old server.
    assert_eq!(m.destroys_for(DestroyReason::Evicted), 4, "{m:?}");
}
