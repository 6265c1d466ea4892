//! Every lifecycle hook panicking, in its synchronous part or in its future, on the newer
//! ways a connection is taken and given back: the lock-free slot, `get_owned`, shared
//! leases, under strict and bounded fairness. The caller gets a connection or an error, and
//! afterwards capacity, gauges, drain and the next caller are all right.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pg_pool_core::{Fairness, LifecycleHooks, Runtime, SharedGuard};

use crate::harness::{MockPool, check_invariants, mock_pool, settle, test_config};
use crate::mock::{Control, MockConn};

/// Which hook panics, and where.
#[derive(Debug, Clone, Copy)]
enum Hook {
    CreateFuture,
    CreateCall,
    Acquire,
    CheckoutFuture,
    CheckoutCall,
    CheckinFuture,
    CheckinCall,
    Release,
    Destroy,
}

const HOOKS: [Hook; 9] = [
    Hook::CreateFuture,
    Hook::CreateCall,
    Hook::Acquire,
    Hook::CheckoutFuture,
    Hook::CheckoutCall,
    Hook::CheckinFuture,
    Hook::CheckinCall,
    Hook::Release,
    Hook::Destroy,
];

/// Takes one planned panic, if any is left.
fn take(left: &AtomicUsize) -> bool {
    left.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
}

/// Hooks that all pass, but `hook` panics while `left` is above zero.
fn hooks(hook: Hook, left: &Arc<AtomicUsize>) -> LifecycleHooks<MockConn> {
    let l = Arc::clone(left);
    let panics = move || take(&l);
    let (p1, p2, p3, p4, p5) = (
        panics.clone(),
        panics.clone(),
        panics.clone(),
        panics.clone(),
        panics,
    );
    let (call, future) = (
        |panics: bool, name: &str| assert!(!panics, "{name} hook panics"),
        |panics: bool, name: &'static str| {
            Box::pin(async move {
                assert!(!panics, "{name} hook future panics");
                Ok(())
            })
        },
    );
    let defaults = LifecycleHooks::default();
    match hook {
        Hook::CreateFuture => defaults.on_create(move |_| future(p1(), "create")),
        Hook::CreateCall => defaults.on_create(move |_| {
            call(p1(), "create");
            future(false, "create")
        }),
        Hook::Acquire => defaults.on_acquire(move |_| {
            call(p2(), "acquire");
            Ok(())
        }),
        Hook::CheckoutFuture => defaults.on_checkout(move |_| future(p3(), "checkout")),
        Hook::CheckoutCall => defaults.on_checkout(move |_| {
            call(p3(), "checkout");
            future(false, "checkout")
        }),
        Hook::CheckinFuture => defaults.on_checkin(move |_| future(p4(), "checkin")),
        Hook::CheckinCall => defaults.on_checkin(move |_| {
            call(p4(), "checkin");
            future(false, "checkin")
        }),
        Hook::Release => defaults.on_release(move |_| {
            call(p5(), "release");
            Ok(())
        }),
        Hook::Destroy => defaults.on_destroy(move |_, _| call(p5(), "destroy")),
    }
}

/// How the connection is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Via {
    Get,
    Owned,
    Shared,
}

/// Takes a connection `via` and gives it back (marked broken, so that it is destroyed, for
/// the destroy hook); whether the caller was served.
async fn round_trip<R: Runtime>(pool: &MockPool<R>, via: Via, destroy: bool) -> bool {
    match via {
        Via::Get | Via::Owned => {
            let got = if via == Via::Get {
                pool.get().await
            } else {
                pool.get_owned().await
            };
            match got {
                Ok(mut guard) => {
                    guard.broken = destroy;
                    true
                }
                Err(_) => false,
            }
        }
        Via::Shared => match pool.get_shared().await {
            Ok(guard) => {
                if destroy {
                    SharedGuard::mark_broken(&guard);
                }
                true
            }
            Err(_) => false,
        },
    }
}

async fn pool<R: Runtime>(
    fairness: Fairness,
    hooks: LifecycleHooks<MockConn>,
) -> (MockPool<R>, Arc<Control>) {
    let mut config = test_config();
    config.fairness = fairness;
    config.max_size = 2;
    config.checkout_timeout = Duration::from_secs(2);
    mock_pool::<R>(config, hooks).await
}

/// Each hook panics once on each path; the pool recovers every time.
pub async fn hook_panics_on_new_paths<R: Runtime>() {
    for fairness in [
        Fairness::Strict,
        Fairness::Bounded(Duration::from_millis(50)),
    ] {
        for hook in HOOKS {
            for via in [Via::Get, Via::Owned, Via::Shared] {
                let what = format!("{fairness:?} {hook:?} {via:?}");
                let left = Arc::new(AtomicUsize::new(1));
                let (pool, control) = pool::<R>(fairness, hooks(hook, &left)).await;
                let destroy = matches!(hook, Hook::Destroy);
                let mut rounds = 0;
                while left.load(Ordering::SeqCst) > 0 {
                    rounds += 1;
                    assert!(rounds <= 4, "{what}: the hook never ran");
                    round_trip(&pool, via, destroy).await;
                    let m = settle(&pool, &control).await;
                    check_invariants(&m, &control);
                }
                // The panic is behind us: the next callers are served.
                assert!(round_trip(&pool, via, false).await, "{what}: next caller");
                assert!(
                    round_trip(&pool, Via::Get, false).await,
                    "{what}: exclusive"
                );
                let m = settle(&pool, &control).await;
                assert_eq!(
                    (m.size, m.active, m.waiters),
                    (m.idle, 0, 0),
                    "{what}: {m:?}"
                );
                let report = pool.drain_timeout(Duration::from_secs(2)).await;
                assert!(report.is_complete(), "{what}: {report:?}");
                assert_eq!(control.live(), 0, "{what}: drain closed everything");
            }
        }
    }
}
