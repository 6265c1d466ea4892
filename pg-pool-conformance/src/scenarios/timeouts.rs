//! Timeouts: one deadline per checkout across waiting, connecting and hooks; connect
//! failures reported at once; no reconnect storm while connects fail.

use std::time::{Duration, Instant};

use pg_pool_core::{ConnectError, LifecycleHooks, Phase, PoolError, Runtime};

use crate::harness::{mock_pool, settle, sleep, spawn, test_config};
use crate::mock::{Gate, MockConn, Step};

/// Connect (200 ms) plus a checkout hook (200 ms) against a 300 ms checkout timeout: the
/// checkout fails in the hook phase at about 300 ms, not 400.
pub async fn one_deadline_across_phases<R: Runtime>() {
    let hooks = LifecycleHooks::default().on_checkout(|_: &mut MockConn| {
        Box::pin(async {
            sleep::<R>(Duration::from_millis(200)).await;
            Ok(())
        })
    });
    let mut config = test_config();
    config.checkout_timeout = Duration::from_millis(300);
    let (pool, control) = mock_pool::<R>(config, hooks).await;
    control.set(Step::Connect, Gate::Slow(Duration::from_millis(200)));
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    let took = started.elapsed();
    println!("connect + hook against one 300 ms deadline: failed after {took:?}: {err}");
    assert!(
        matches!(
            err,
            PoolError::Timeout {
                phase: Phase::Hook,
                ..
            }
        ),
        "{err:?}"
    );
    assert!(
        // Without the one deadline the hook would finish at ~400 ms and the checkout would
        // succeed: the error itself proves the cut. The upper bound only catches a hang.
        took >= Duration::from_millis(290) && took < Duration::from_secs(2),
        "{took:?}"
    );
    settle(&pool, &control).await;
}

/// A connect that never finishes: the caller times out in the connect phase within its
/// checkout timeout; the attempt itself ends at the connect timeout.
pub async fn connect_never_finishes<R: Runtime>() {
    let mut config = test_config();
    config.checkout_timeout = Duration::from_millis(150);
    config.connect_timeout = Duration::from_secs(2);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    control.set(Step::Connect, Gate::Never);
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    let took = started.elapsed();
    println!("never-connecting server: checkout failed after {took:?}: {err}");
    assert!(
        matches!(
            err,
            PoolError::Timeout {
                phase: Phase::Connect,
                ..
            }
        ),
        "{err:?}"
    );
    // A timeout before the 2 s connect timeout: the checkout's own deadline cut the wait.
    assert!(
        took >= Duration::from_millis(145) && took < Duration::from_millis(1500),
        "{took:?}"
    );
    sleep::<R>(Duration::from_secs(2)).await;
    let m = settle(&pool, &control).await;
    assert_eq!(m.connect_failures, 1, "{m:?}");
}

/// The caller whose connect failed gets the driver's error at once; later callers that
/// time out carry it as the last connect error.
pub async fn connect_error_reported_at_once<R: Runtime>() {
    let mut config = test_config();
    config.checkout_timeout = Duration::from_millis(150);
    config.connect_backoff = Duration::from_secs(10);
    config.connect_backoff_max = Duration::from_secs(10);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    control.set(Step::Connect, Gate::Fail);
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    let took = started.elapsed();
    println!("failed connect reported after {took:?}: {err}");
    // The caller's own connect error, not a timeout (which the 150 ms deadline would give).
    assert!(matches!(err, PoolError::Connect(_)), "{err:?}");
    assert!(
        matches!(err.connect_error(), Some(ConnectError::Driver(_))),
        "{err:?}"
    );
    assert!(err.driver_error().is_some());
    assert!(took < Duration::from_secs(1), "{took:?}");
    // In backoff: the next caller times out, carrying the cause.
    let err = pool.get().await.unwrap_err();
    assert!(err.is_timeout());
    assert!(err.to_string().contains("Connect failed"), "{err}");
    settle(&pool, &control).await;
}

/// The pool bounds a connect by `connect_timeout` whatever the driver does.
pub async fn connect_timeout_enforced<R: Runtime>() {
    let mut config = test_config();
    config.connect_timeout = Duration::from_millis(100);
    config.checkout_timeout = Duration::from_secs(2);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    control.set(Step::Connect, Gate::Never);
    let started = Instant::now();
    let err = pool.get().await.unwrap_err();
    let took = started.elapsed();
    println!("connect timeout reported after {took:?}: {err}");
    assert!(
        matches!(err.connect_error(), Some(ConnectError::Timeout(_))),
        "{err:?}"
    );
    assert!(
        took >= Duration::from_millis(95) && took < Duration::from_secs(2),
        "{took:?}"
    );
    settle(&pool, &control).await;
}

/// 64 callers against a server that refuses every connect: attempts are capped by
/// `max_connecting` and spaced by backoff, not one per caller per moment.
pub async fn no_reconnect_storm<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 16;
    config.checkout_timeout = Duration::from_millis(500);
    config.connect_backoff = Duration::from_millis(50);
    config.connect_backoff_max = Duration::from_millis(200);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    control.set(Step::Connect, Gate::Fail);
    let mut tasks = Vec::new();
    for _ in 0..64 {
        let pool = pool.clone();
        tasks.push(spawn::<R, _>(async move { pool.get().await.map(drop) }));
    }
    let mut connect_errors = 0;
    for task in tasks {
        match task.join().await {
            Err(PoolError::Connect(_)) => connect_errors += 1,
            Err(e) if e.is_timeout() => assert!(e.connect_error().is_some(), "{e}"),
            other => panic!("unexpected {other:?}"),
        }
    }
    let m = settle(&pool, &control).await;
    println!(
        "64 callers, failing server: {} attempts in 500 ms, {connect_errors} callers got their own connect error",
        m.connect_failures
    );
    assert!(m.connect_failures <= 16, "retry storm: {m:?}");
    assert!(connect_errors >= 1);
}

/// 200 queued callers behind a held connection all time out on time, through the pool's
/// one deadline sweeper, and leave nothing queued.
pub async fn many_waiters_time_out_on_time<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 1;
    config.checkout_timeout = Duration::from_millis(100);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let held = pool.get().await.unwrap();
    let mut tasks = Vec::new();
    for _ in 0..200 {
        let pool = pool.clone();
        tasks.push(spawn::<R, _>(async move {
            let started = Instant::now();
            let err = pool.get().await.map(drop).unwrap_err();
            (err.is_timeout(), started.elapsed())
        }));
    }
    let mut slowest = Duration::ZERO;
    for task in tasks {
        let (timed_out, took) = task.join().await;
        assert!(timed_out);
        assert!(
            took >= Duration::from_millis(95),
            "timed out early: {took:?}"
        );
        slowest = slowest.max(took);
    }
    println!("200 waiters, 100 ms checkout timeout: slowest timed out after {slowest:?}");
    assert!(slowest < Duration::from_secs(2), "{slowest:?}");
    let m = pool.metrics();
    assert_eq!((m.waiters, m.timeouts), (0, 200), "{m:?}");
    drop(held);
    settle(&pool, &control).await;
}

/// A timeout explains itself: the pool's state when the time ran out, and with leak
/// detection on, where the connections held longest were checked out; Display stays one
/// line.
pub async fn timeout_explains_itself<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 2;
    config.checkout_timeout = Duration::from_millis(150);
    config.leak_detection_threshold = Some(Duration::from_secs(3600));
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let first = pool.get().await.unwrap();
    let first_line = line!() - 1;
    sleep::<R>(Duration::from_millis(20)).await;
    let second = pool.get().await.unwrap();
    let error = pool.get().await.unwrap_err();
    let text = error.to_string();
    println!("{text}");
    assert!(!text.contains('\n'), "one line: {text}");
    assert!(text.contains("2 of 2 connections in use"), "{text}");
    let PoolError::Timeout { details, phase, .. } = &error else {
        panic!("expected a timeout, got {error:?}");
    };
    assert_eq!(*phase, pg_pool_core::Phase::Wait);
    assert_eq!(
        (
            details.max_size,
            details.active,
            details.idle,
            details.connecting,
            details.waiters
        ),
        (2, 2, 0, 0, 0),
        "{details:?}"
    );
    assert_eq!(details.held_longest.len(), 2, "{details:?}");
    let longest = details.held_longest[0];
    assert!(longest.held >= details.held_longest[1].held, "{details:?}");
    assert!(longest.site.file().ends_with("timeouts.rs"), "{longest}");
    assert_eq!(
        longest.site.line(),
        first_line,
        "the first checkout is the oldest"
    );
    assert!(text.contains("held longest at"), "{text}");
    drop((first, second));
    settle(&pool, &control).await;
}
