//! Checkout and return: reuse, limits, guards, broken and expired connections, resizing.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Duration;

use pg_pool_core::{DestroyReason, IdleOrder, LifecycleHooks, PoolError, PoolGuard, Runtime};

use crate::harness::{check_invariants, mock_pool, settle, sleep, test_config};

/// A returned connection is reused; the return is synchronous when nothing async is due.
pub async fn reuses_idle_connection<R: Runtime>() {
    let (pool, control) = mock_pool::<R>(test_config(), LifecycleHooks::default()).await;
    let first = pool.get().await.unwrap();
    let id = first.id;
    drop(first);
    // No await in between: the return happened inside `drop`.
    let m = pool.metrics();
    assert_eq!((m.idle, m.active), (1, 0), "returned synchronously: {m:?}");
    let second = pool.get().await.unwrap();
    assert_eq!(second.id, id, "the idle connection is reused");
    drop(second);
    let m = settle(&pool, &control).await;
    assert_eq!((m.creates, m.checkouts, m.destroys), (1, 2, 0));
    assert_eq!(control.connects(), 1);
}

/// The pool never exceeds `max_size`; `try_get` does not wait; a full pool times out in the
/// wait phase.
pub async fn respects_max_size<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 3;
    config.checkout_timeout = Duration::from_millis(100);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.get().await.unwrap());
    }
    check_invariants(&pool.metrics(), &control);
    assert!(matches!(pool.try_get().await, Err(PoolError::Exhausted)));
    let started = std::time::Instant::now();
    let err = pool.get().await.unwrap_err();
    let waited = started.elapsed();
    println!("full pool timed out after {waited:?}");
    match &err {
        PoolError::Timeout {
            phase,
            last_connect_error,
            ..
        } => {
            assert_eq!(*phase, pg_pool_core::Phase::Wait);
            assert!(last_connect_error.is_none());
        }
        other => panic!("expected a timeout, got {other:?}"),
    }
    assert!(err.is_timeout());
    assert!(
        err.to_string().contains("waiting for a connection"),
        "{err}"
    );
    assert!(waited >= Duration::from_millis(95) && waited < Duration::from_secs(3));
    assert_eq!(control.live(), 3);
    drop(held);
    let m = settle(&pool, &control).await;
    assert_eq!((m.idle, m.timeouts), (3, 1));
}

/// `try_get` hands out an idle connection and reports exhaustion otherwise.
pub async fn try_get_takes_idle_only<R: Runtime>() {
    let (pool, control) = mock_pool::<R>(test_config(), LifecycleHooks::default()).await;
    assert!(matches!(pool.try_get().await, Err(PoolError::Exhausted)));
    drop(pool.get().await.unwrap());
    let guard = pool.try_get().await.expect("an idle connection is there");
    drop(guard);
    settle(&pool, &control).await;
}

/// Guards dereference to the connection; detach and mark_broken take it out of the pool.
pub async fn guard_operations<R: Runtime>() {
    let (pool, control) = mock_pool::<R>(test_config(), LifecycleHooks::default()).await;
    let mut guard = pool.get().await.unwrap();
    guard.tag = Some("set through DerefMut".into());
    assert_eq!(guard.conn().tag.as_deref(), Some("set through DerefMut"));
    guard.conn_mut().tag = None;
    let age = PoolGuard::age(&guard);
    sleep::<R>(Duration::from_millis(20)).await;
    assert!(
        PoolGuard::age(&guard) >= age + Duration::from_millis(15),
        "age grows from the connection's creation"
    );
    let detached = PoolGuard::detach(guard);
    let m = pool.metrics();
    assert_eq!((m.size, m.detaches), (0, 1), "{m:?}");
    assert_eq!(
        control.live(),
        1,
        "the detached connection is the caller's now"
    );
    drop(detached);

    let mut guard = pool.get().await.unwrap();
    PoolGuard::mark_broken(&mut guard);
    drop(guard);
    let m = settle(&pool, &control).await;
    assert_eq!(m.destroys_for(DestroyReason::MarkedBroken), 1);
    assert_eq!(m.size, 0);
}

/// A connection the driver reports broken is destroyed on return and never handed out.
pub async fn broken_connection_is_destroyed<R: Runtime>() {
    let (pool, control) = mock_pool::<R>(test_config(), LifecycleHooks::default()).await;
    let mut guard = pool.get().await.unwrap();
    let id = guard.id;
    guard.broken = true;
    drop(guard);
    let guard = pool.get().await.unwrap();
    assert_ne!(guard.id, id);
    drop(guard);
    let m = settle(&pool, &control).await;
    assert_eq!(m.destroys_for(DestroyReason::Broken), 1);
}

/// A connection whose holder panicked is destroyed, never reused.
pub async fn panicking_holder_destroys_connection<R: Runtime>() {
    let (pool, control) = mock_pool::<R>(test_config(), LifecycleHooks::default()).await;
    let guard = pool.get().await.unwrap();
    let outcome = catch_unwind(AssertUnwindSafe(move || {
        let _guard = guard;
        panic!("holder panics");
    }));
    assert!(outcome.is_err());
    let m = settle(&pool, &control).await;
    assert_eq!(m.destroys_for(DestroyReason::Panicked), 1);
    assert_eq!((m.size, control.live()), (0, 0));
}

/// `max_lifetime` is enforced when a connection comes back, not only by the reaper.
pub async fn lifetime_enforced_on_checkin<R: Runtime>() {
    let mut config = test_config();
    config.max_lifetime = Some(Duration::from_millis(40));
    config.max_lifetime_jitter = Duration::ZERO;
    config.reaper_interval = Duration::from_secs(3600);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let guard = pool.get().await.unwrap();
    sleep::<R>(Duration::from_millis(60)).await;
    drop(guard);
    let m = settle(&pool, &control).await;
    assert_eq!(m.destroys_for(DestroyReason::Lifetime), 1, "{m:?}");
    assert_eq!(m.idle, 0);
}

/// LIFO hands out the most recently returned connection, FIFO the least recently returned.
pub async fn idle_order<R: Runtime>() {
    for (order, expect_first) in [(IdleOrder::Lifo, true), (IdleOrder::Fifo, false)] {
        let mut config = test_config();
        config.idle_order = order;
        let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
        let a = pool.get().await.unwrap();
        let b = pool.get().await.unwrap();
        let (a_id, b_id) = (a.id, b.id);
        drop(a);
        drop(b);
        let next = pool.get().await.unwrap();
        let expected = if expect_first { b_id } else { a_id };
        assert_eq!(next.id, expected, "{order:?}");
        drop(next);
        settle(&pool, &control).await;
    }
}

/// Resize down destroys surplus idle connections at once and checked-out ones on return;
/// resize up serves waiters.
pub async fn resize_down_and_up<R: Runtime>() {
    let (pool, control) = mock_pool::<R>(test_config(), LifecycleHooks::default()).await;
    let mut held = Vec::new();
    for _ in 0..4 {
        held.push(pool.get().await.unwrap());
    }
    drop(held.pop());
    drop(held.pop());
    pool.resize(1).unwrap();
    assert_eq!(
        pool.config().max_size,
        1,
        "config() shows the size in force"
    );
    let m = pool.metrics();
    assert_eq!((m.max_size, m.idle, m.active), (1, 0, 2), "{m:?}");
    drop(held.pop());
    drop(held.pop());
    let m = settle(&pool, &control).await;
    assert_eq!((m.size, m.idle), (1, 1), "{m:?}");
    assert_eq!(m.destroys_for(DestroyReason::Evicted), 3);

    let a = pool.get().await.unwrap();
    let waiting = crate::harness::spawn::<R, _>({
        let pool = pool.clone();
        async move { pool.get().await.map(drop).is_ok() }
    });
    sleep::<R>(Duration::from_millis(20)).await;
    assert_eq!(pool.metrics().waiters, 1);
    pool.resize(2).unwrap();
    assert!(waiting.join().await, "growing the pool served the waiter");
    drop(a);
    settle(&pool, &control).await;
}

/// `retain` evicts idle connections by predicate; `evict_all` evicts idle ones now and
/// checked-out ones when they return.
pub async fn retain_and_evict_all<R: Runtime>() {
    let (pool, control) = mock_pool::<R>(test_config(), LifecycleHooks::default()).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        held.push(pool.get().await.unwrap());
    }
    let keep = held[0].id;
    held.clear();
    assert_eq!(pool.retain(|c| c.id == keep), 2);
    assert_eq!(pool.metrics().idle, 1);

    let out = pool.get().await.unwrap();
    drop(pool.get().await.unwrap());
    pool.evict_all();
    assert_eq!(pool.metrics().idle, 0);
    let old = out.id;
    drop(out);
    let fresh = pool.get().await.unwrap();
    assert_ne!(
        fresh.id, old,
        "an evicted generation is never handed out again"
    );
    drop(fresh);
    let m = settle(&pool, &control).await;
    assert_eq!(m.destroys_for(DestroyReason::Evicted), 4, "{m:?}");
}

/// Nonsense configuration is an error value, never a panic.
pub async fn config_errors<R: Runtime>() {
    let runtime = R::current().unwrap();
    let mut config = test_config();
    config.max_size = 0;
    let control = crate::mock::Control::new(|_| async {});
    let err = pg_pool_core::ConnPool::builder(control.connector())
        .config(config)
        .hooks(LifecycleHooks::default())
        .runtime(runtime.clone())
        .build()
        .await
        .unwrap_err();
    assert!(
        matches!(err, pg_pool_core::BuildError::Config(ref e) if e.field() == "max_size"),
        "{err}"
    );
    let mut config = test_config();
    config.min_idle = 9;
    let err = pg_pool_core::ConnPool::builder(control.connector())
        .config(config)
        .hooks(LifecycleHooks::default())
        .runtime(runtime.clone())
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("min_idle"), "{err}");
    let mut config = test_config();
    config.checkout_timeout = Duration::ZERO;
    let err = pg_pool_core::ConnPool::builder(control.connector())
        .config(config)
        .hooks(LifecycleHooks::default())
        .runtime(runtime)
        .build()
        .await
        .unwrap_err();
    assert!(err.to_string().contains("checkout_timeout"), "{err}");
}

/// Checkouts with a name (`OwnedCheckout`): stored in a `Vec`, `'static`, served in order,
/// cancel safe, and keeping the pool open while pending.
pub async fn owned_checkouts<R: Runtime>() {
    fn is_static_send<F: std::future::Future + Send + 'static>(_: &F) {}

    let mut config = test_config();
    config.max_size = 1;
    config.checkout_timeout = Duration::from_secs(5);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let held = pool.get().await.unwrap();
    let id = held.id;
    let mut pending: Vec<pg_pool_core::OwnedCheckout<crate::MockConn, R>> =
        (0..3).map(|_| pool.get_owned()).collect();
    is_static_send(&pending[0]);
    // Polled once each, they queue in order.
    for checkout in &mut pending {
        assert!(crate::harness::poll_to_queue(checkout).await.is_none());
    }
    assert_eq!(pool.metrics().waiters, 3);
    // The first is dropped while queued: its place is given up, nothing is lost.
    drop(pending.remove(0));
    let waiting = pool.metrics().waiters;
    assert_eq!(waiting, 2, "a dropped owned checkout leaves the queue");
    // The pool's own handle goes away; the pending checkouts keep the pool open.
    let metrics_handle = pool.clone();
    drop(pool);
    drop(held);
    let first = pending
        .remove(0)
        .await
        .expect("served while the pool is open");
    assert_eq!(first.id, id, "the one connection, handed on");
    drop(first);
    let second = pending.remove(0).await.expect("the next one in the queue");
    drop(second);
    let m = settle(&metrics_handle, &control).await;
    assert_eq!((m.creates, m.active, m.waiters), (1, 0, 0), "{m:?}");
    check_invariants(&m, &control);
}

/// Weak handles observe a pool without keeping it open; upgrading one while the pool is
/// open gives a full handle that keeps it open; a closed pool never reopens.
pub async fn weak_handles<R: Runtime>() {
    let (pool, control) = mock_pool::<R>(test_config(), LifecycleHooks::default()).await;
    let weak = pool.downgrade();
    drop(pool.get().await.unwrap());
    assert_eq!(weak.metrics().map(|m| m.checkouts), Some(1));
    assert_eq!(weak.name().as_deref(), Some(pool.config().name.as_str()));
    let upgraded = weak.upgrade().expect("open");
    drop(pool);
    // The upgraded handle is a real one: the pool is still open and serves checkouts.
    drop(upgraded.get().await.expect("still open"));
    assert_eq!(weak.metrics().map(|m| m.checkouts), Some(2));
    check_invariants(&upgraded.metrics(), &control);
    drop(upgraded);
    assert!(weak.upgrade().is_none(), "closed with its last handle");
    assert!(weak.metrics().is_none());
    assert!(weak.clone().name().is_none());
    assert!(format!("{weak:?}").contains("open: false"), "{weak:?}");
}
