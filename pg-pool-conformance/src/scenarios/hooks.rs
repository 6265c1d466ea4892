//! Hooks: the order they fire in on each path, rejection, and panics.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use pg_pool_core::{DestroyReason, HookError, LifecycleHooks, PoolError, Runtime};

use crate::harness::{mock_pool, settle, sleep, test_config};
use crate::mock::MockConn;

type Log = Arc<Mutex<Vec<String>>>;

fn recording_hooks(log: &Log) -> LifecycleHooks<MockConn> {
    let (a, b, c, d, e, f) = (
        log.clone(),
        log.clone(),
        log.clone(),
        log.clone(),
        log.clone(),
        log.clone(),
    );
    LifecycleHooks::default()
        .on_create(move |conn: &mut MockConn| {
            let log = a.clone();
            Box::pin(async move {
                log.lock().unwrap().push(format!("create {}", conn.id));
                Ok(())
            })
        })
        .on_acquire(move |conn| {
            b.lock().unwrap().push(format!("acquire {}", conn.id));
            Ok(())
        })
        .on_checkout(move |conn: &mut MockConn| {
            let log = c.clone();
            Box::pin(async move {
                log.lock().unwrap().push(format!("checkout {}", conn.id));
                Ok(())
            })
        })
        .on_checkin(move |conn: &mut MockConn| {
            let log = d.clone();
            Box::pin(async move {
                log.lock().unwrap().push(format!("checkin {}", conn.id));
                Ok(())
            })
        })
        .on_release(move |conn| {
            e.lock().unwrap().push(format!("release {}", conn.id));
            Ok(())
        })
        .on_destroy(move |conn, reason| {
            f.lock()
                .unwrap()
                .push(format!("destroy {} {reason}", conn.id));
        })
}

/// create → acquire → checkout on a new connection; checkin → release on return;
/// acquire → checkout on reuse; destroy (with its reason) last.
pub async fn hook_order<R: Runtime>() {
    let log: Log = Arc::default();
    let (pool, control) = mock_pool::<R>(test_config(), recording_hooks(&log)).await;
    let guard = pool.get().await.unwrap();
    drop(guard);
    settle(&pool, &control).await;
    let guard = pool.get().await.unwrap();
    drop(guard);
    settle(&pool, &control).await;
    pool.evict_all();
    settle(&pool, &control).await;
    let log = log.lock().unwrap().clone();
    assert_eq!(
        log,
        [
            "create 0",
            "acquire 0",
            "checkout 0",
            "checkin 0",
            "release 0",
            "acquire 0",
            "checkout 0",
            "checkin 0",
            "release 0",
            "destroy 0 evicted"
        ],
    );
}

/// A hook rejecting a used connection destroys it and the checkout moves on to another; a
/// hook rejecting even fresh connections fails the checkout with its error at once.
pub async fn rejection_moves_on<R: Runtime>() {
    let reject: Arc<Mutex<Option<u64>>> = Arc::default();
    let r = reject.clone();
    let hooks = LifecycleHooks::default().on_checkout(move |conn: &mut MockConn| {
        let r = r.clone();
        Box::pin(async move {
            if *r.lock().unwrap() == Some(conn.id) {
                Err(HookError::new("not this one"))
            } else {
                Ok(())
            }
        })
    });
    let (pool, control) = mock_pool::<R>(test_config(), hooks).await;
    let first = pool.get().await.unwrap();
    let id = first.id;
    drop(first);
    *reject.lock().unwrap() = Some(id);
    let second = pool.get().await.unwrap();
    assert_ne!(second.id, id, "the rejected connection was skipped");
    drop(second);
    let m = settle(&pool, &control).await;
    assert_eq!(m.destroys_for(DestroyReason::HookRejected), 1);

    let hooks =
        LifecycleHooks::default().on_acquire(|_: &mut MockConn| Err(HookError::new("never")));
    let (pool, control) = mock_pool::<R>(test_config(), hooks).await;
    let err = pool.get().await.unwrap_err();
    assert!(matches!(err, PoolError::Hook(_)), "{err:?}");
    assert!(err.to_string().contains("never"), "{err}");
    let m = settle(&pool, &control).await;
    assert_eq!(m.creates, 1, "no connection storm: {m:?}");
}

/// A panicking hook counts as a rejection; the pool's accounting survives it.
pub async fn panicking_hooks<R: Runtime>() {
    let hooks = LifecycleHooks::default()
        .on_checkin(|_: &mut MockConn| Box::pin(async { panic!("checkin hook panics") }))
        .on_release(|_| panic!("never reached"));
    let (pool, control) = mock_pool::<R>(test_config(), hooks).await;
    drop(pool.get().await.unwrap());
    let m = settle(&pool, &control).await;
    assert_eq!(m.destroys_for(DestroyReason::HookRejected), 1, "{m:?}");

    let hooks =
        LifecycleHooks::default().on_release(|_: &mut MockConn| panic!("release hook panics"));
    let (pool, control) = mock_pool::<R>(test_config(), hooks).await;
    drop(pool.get().await.unwrap());
    let m = settle(&pool, &control).await;
    assert_eq!(m.destroys_for(DestroyReason::HookRejected), 1, "{m:?}");

    let hooks = LifecycleHooks::default()
        .on_create(|_: &mut MockConn| Box::pin(async { panic!("create hook panics") }));
    let (pool, control) = mock_pool::<R>(test_config(), hooks).await;
    let err = pool.get().await.unwrap_err();
    assert!(err.to_string().contains("create hook panicked"), "{err}");
    settle(&pool, &control).await;
    assert_eq!(control.live(), 0);
}

/// Async checkin work (reset, checkin hook) runs on a task; the connection stays counted
/// until it is done, and is reused afterwards.
pub async fn async_checkin_keeps_accounting<R: Runtime>() {
    let hooks = LifecycleHooks::default().on_checkin(|conn: &mut MockConn| {
        Box::pin(async move {
            conn.tag = None;
            Ok(())
        })
    });
    let (pool, control) = mock_pool::<R>(test_config(), hooks).await;
    control.reset_every_return(true);
    control.set(
        crate::mock::Step::Reset,
        crate::mock::Gate::Slow(Duration::from_millis(30)),
    );
    let mut guard = pool.get().await.unwrap();
    guard.tag = Some("dirty".into());
    let id = guard.id;
    drop(guard);
    let m = pool.metrics();
    assert_eq!((m.active, m.idle), (1, 0), "counted while resetting: {m:?}");
    sleep::<R>(Duration::from_millis(60)).await;
    let guard = pool.get().await.unwrap();
    assert_eq!((guard.id, guard.tag.clone()), (id, None));
    drop(guard);
    settle(&pool, &control).await;
    assert!(control.resets() >= 1);
}
