//! Panics in the connection type's synchronous checks (`has_pending_data`, `needs_reset`,
//! `server_changed`, `is_permanent_connect_error`, `Shareable::is_broken` and `share`) on
//! every way a connection is taken and given back: the lock-free slot with nobody queued,
//! a hand-off to a queued caller, `get_owned`, a handle upgraded from a `WeakPool`, shared
//! leases, under strict and bounded fairness. Each panic is contained: capacity, gauges and
//! drain stay right and the next caller is served.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::time::Duration;

use pg_pool_core::{DestroyReason, Fairness, LifecycleHooks, PoolError, Runtime};

use crate::harness::{MockPool, check_invariants, mock_pool, settle, test_config};
use crate::mock::{Check, Control, Gate, Step};

/// The fairness settings every scenario here runs under.
fn fairnesses() -> [Fairness; 2] {
    [
        Fairness::Strict,
        Fairness::Bounded(Duration::from_millis(50)),
    ]
}

async fn pool<R: Runtime>(
    fairness: Fairness,
    max_size: usize,
) -> (MockPool<R>, std::sync::Arc<Control>) {
    let mut config = test_config();
    config.fairness = fairness;
    config.max_size = max_size;
    config.checkout_timeout = Duration::from_secs(2);
    mock_pool::<R>(config, LifecycleHooks::default()).await
}

/// How a return whose `check` panicked ends: the connection destroyed (and why), or kept.
fn destroyed_as(check: Check) -> Option<DestroyReason> {
    match check {
        Check::HasPendingData => Some(DestroyReason::Broken),
        Check::NeedsReset => Some(DestroyReason::ResetFailed),
        // Read as "no change": the connection goes back as it is.
        _ => None,
    }
}

/// Every way a caller gets a connection.
#[derive(Debug, Clone, Copy)]
enum Via {
    Get,
    Owned,
    Upgraded,
}

/// A return with nobody queued (the lock-free slot) and a return handed to a queued caller,
/// each with a panicking check, through `get`, `get_owned` and a handle upgraded from a
/// weak one.
pub async fn sync_check_panics_on_return<R: Runtime>() {
    for fairness in fairnesses() {
        for check in [
            Check::HasPendingData,
            Check::NeedsReset,
            Check::ServerChanged,
        ] {
            for via in [Via::Get, Via::Owned, Via::Upgraded] {
                let what = format!("{fairness:?} {check:?} {via:?}");
                let (pool, control) = pool::<R>(fairness, 2).await;
                let weak = pool.downgrade();
                let take = |pool: &MockPool<R>| {
                    let pool = pool.clone();
                    let weak = weak.clone();
                    async move {
                        match via {
                            Via::Get => pool.get().await,
                            Via::Owned => pool.get_owned().await,
                            Via::Upgraded => weak.upgrade().expect("open").get().await,
                        }
                    }
                };

                // Nobody queued: the connection goes back through the lock-free slot.
                let guard = take(&pool).await.expect("served");
                control.panic_next(check, 1);
                drop(guard);
                assert_eq!(control.panics_left(check), 0, "{what}: the check ran");
                let m = settle(&pool, &control).await;
                let expected = u64::from(destroyed_as(check).is_some());
                let reason = destroyed_as(check).unwrap_or(DestroyReason::Broken);
                assert_eq!(m.destroys_for(reason), expected, "{what}: {m:?}");
                drop(take(&pool).await.expect("the next caller is served"));

                // Full, one caller queued: the return hands it over (or a new connection).
                let a = take(&pool).await.expect("served");
                let b = take(&pool).await.expect("served");
                let mut queued = pin!(take(&pool));
                assert!(
                    crate::harness::poll_to_queue(&mut queued).await.is_none(),
                    "{what}"
                );
                assert_eq!(pool.metrics().waiters, 1, "{what}");
                control.panic_next(check, 1);
                drop(a);
                let c = queued.await.expect("the queued caller is served");
                assert_eq!(control.panics_left(check), 0, "{what}: the check ran");
                drop((b, c));
                let m = settle(&pool, &control).await;
                assert_eq!(m.destroys_for(reason), 2 * expected, "{what}: {m:?}");
                assert_eq!(m.size, m.idle, "{what}: {m:?}");
                let report = pool.drain_timeout(Duration::from_secs(2)).await;
                assert!(report.is_complete(), "{what}: {report:?}");
                assert_eq!(control.live(), 0, "{what}: drain closed everything");
            }
        }
    }
}

/// A panicking `has_pending_data` on an idle connection being handed out: it counts as
/// broken and the caller gets another connection.
pub async fn sync_check_panics_on_checkout<R: Runtime>() {
    for fairness in fairnesses() {
        let (pool, control) = pool::<R>(fairness, 1).await;
        drop(pool.get().await.expect("served"));
        control.panic_next(Check::HasPendingData, 1);
        let guard = pool.get().await.expect("served despite the panic");
        let panicked = control.panics_left(Check::HasPendingData) == 0;
        drop(guard);
        let m = settle(&pool, &control).await;
        assert_eq!(
            m.destroys_for(DestroyReason::Broken),
            u64::from(panicked),
            "{fairness:?}: {m:?}"
        );
        drop(pool.get_owned().await.expect("the next caller is served"));
        let report = pool.drain_timeout(Duration::from_secs(2)).await;
        assert!(report.is_complete(), "{fairness:?}: {report:?}");
    }
}

/// Shared leases: a panicking `Shareable::is_broken` or `server_changed` when the last user
/// lets go, and a panicking `share` in `handle()`; the lease ends, nothing is leaked, and
/// the next shared and exclusive callers are served.
pub async fn shared_sync_check_panics<R: Runtime>() {
    for fairness in fairnesses() {
        for check in [Check::IsBroken, Check::ServerChanged, Check::Share] {
            let what = format!("{fairness:?} {check:?}");
            let (pool, control) = pool::<R>(fairness, 2).await;
            pool.set_shared_max_in_flight(4).unwrap();
            let first = pool.get_shared().await.expect("a shared lease");
            let second = pool.get_shared().await.expect("a second user");
            control.panic_next(check, 1);
            if check == Check::Share {
                let handle = catch_unwind(AssertUnwindSafe(|| first.handle().id()));
                assert!(handle.is_err(), "{what}: share panicked to its caller");
            }
            drop(first);
            drop(second);
            assert_eq!(control.panics_left(check), 0, "{what}: the check ran");
            let m = settle(&pool, &control).await;
            check_invariants(&m, &control);
            let next = pool.get_shared().await.expect("the next shared caller");
            next.handle()
                .statement(Duration::ZERO)
                .await
                .expect("a statement runs");
            drop(next);
            drop(pool.get().await.expect("the next exclusive caller"));
            let m = settle(&pool, &control).await;
            assert_eq!(m.size, m.idle, "{what}: {m:?}");
            let report = pool.drain_timeout(Duration::from_secs(2)).await;
            assert!(report.is_complete(), "{what}: {report:?}");
            assert_eq!(control.live(), 0, "{what}: drain closed everything");
        }
    }
}

/// A panicking `Shareable::is_broken` or `server_changed` while a second user joins a
/// lease: the lease counts as dead, the newcomer gets another connection, and the first
/// user's lease ends cleanly.
pub async fn shared_join_check_panics<R: Runtime>() {
    for fairness in fairnesses() {
        for check in [Check::IsBroken, Check::ServerChanged] {
            let what = format!("{fairness:?} {check:?}");
            let (pool, control) = pool::<R>(fairness, 2).await;
            pool.set_shared_max_in_flight(4).unwrap();
            let first = pool.get_shared().await.expect("a shared lease");
            control.panic_next(check, 1);
            let second = pool.get_shared().await.expect("a second user is served");
            assert_eq!(control.panics_left(check), 0, "{what}: the check ran");
            assert_ne!(
                first.handle().id(),
                second.handle().id(),
                "{what}: a lease whose check panicked takes no new user"
            );
            drop((first, second));
            let m = settle(&pool, &control).await;
            assert_eq!(m.size, m.idle, "{what}: {m:?}");
            drop(pool.get().await.expect("the next exclusive caller"));
            let report = pool.drain_timeout(Duration::from_secs(2)).await;
            assert!(report.is_complete(), "{what}: {report:?}");
            assert_eq!(control.live(), 0, "{what}: drain closed everything");
        }
    }
}

/// A panicking `is_permanent_connect_error` after a failed connect: the attempt's capacity
/// comes back, the caller hears of it (an error or its timeout), and the next caller is
/// served.
pub async fn permanent_error_check_panic_keeps_capacity<R: Runtime>() {
    for fairness in fairnesses() {
        let mut config = test_config();
        config.fairness = fairness;
        config.max_size = 1;
        config.checkout_timeout = Duration::from_millis(500);
        let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
        control.once(Step::Connect, Gate::Fail);
        control.panic_next(Check::PermanentError, 1);
        match pool.get().await {
            Err(PoolError::Connect(_) | PoolError::Timeout { .. }) => {}
            other => panic!("{fairness:?}: expected an error, got {other:?}"),
        }
        assert_eq!(
            control.panics_left(Check::PermanentError),
            0,
            "the check ran"
        );
        let m = settle(&pool, &control).await;
        assert_eq!((m.connecting, m.size), (0, m.idle), "{fairness:?}: {m:?}");
        drop(pool.get().await.expect("the next caller is served"));
        let report = pool.drain_timeout(Duration::from_secs(2)).await;
        assert!(report.is_complete(), "{fairness:?}: {report:?}");
    }
}
