//! Cancellation: dropping a checkout at any await point, under every gate of every step,
//! leaks no capacity and loses no connection.

use std::time::Duration;

use pg_pool_core::{ConnPoolConfig, DestroyReason, LifecycleHooks, Runtime};

use crate::harness::{
    cancel_after, check_invariants, mock_pool, poll_once_then_drop, settle, sleep, spawn,
    test_config,
};
use crate::mock::{Gate, Step};

const SLOW: Duration = Duration::from_millis(30);

/// When the checkout is dropped.
#[derive(Debug, Clone, Copy)]
enum DropAt {
    /// After its first poll (queued, connect just started).
    FirstPoll,
    /// While the step is in progress.
    Midway,
    /// After the slow step would have finished.
    Late,
}

const DROP_POINTS: [DropAt; 3] = [DropAt::FirstPoll, DropAt::Midway, DropAt::Late];

async fn checkout_dropped_at<R: Runtime>(pool: &crate::harness::MockPool<R>, at: DropAt) {
    match at {
        DropAt::FirstPoll => {
            let _ = poll_once_then_drop(pool.get()).await;
        }
        DropAt::Midway => {
            let _ = cancel_after::<R, _>(SLOW / 3, pool.get()).await;
        }
        DropAt::Late => {
            let _ = cancel_after::<R, _>(SLOW * 3, pool.get()).await;
        }
    }
}

fn config_for(step: Step) -> ConnPoolConfig {
    let mut config = test_config();
    config.max_size = 2;
    config.checkout_timeout = Duration::from_millis(500);
    config.connect_timeout = Duration::from_millis(200);
    config.checkin_timeout = Duration::from_millis(100);
    if step == Step::Ping {
        config.test_on_checkout = true;
        config.test_on_checkout_after = Duration::ZERO;
    }
    config
}

/// Every gate of connect, ping, reset and close, times every drop point: after each, the
/// accounting invariants hold, the pool settles with no leaked capacity or connection, and
/// it still serves.
pub async fn every_gate_every_drop_point<R: Runtime>() {
    for step in [Step::Connect, Step::Ping, Step::Reset, Step::Close] {
        for gate in Gate::all(SLOW) {
            for at in DROP_POINTS {
                let (pool, control) =
                    mock_pool::<R>(config_for(step), LifecycleHooks::default()).await;
                control.reset_every_return(true);
                if step != Step::Connect {
                    // Make a connection exist first, so ping/reset/close have one to act on.
                    drop(pool.get().await.unwrap());
                    settle(&pool, &control).await;
                }
                control.set(step, gate);
                checkout_dropped_at(&pool, at).await;
                check_invariants(&pool.metrics(), &control);
                // Return path with the gate in place: a connection goes back, reset runs.
                if let Some(Ok(guard)) = cancel_after::<R, _>(SLOW * 3, pool.get()).await {
                    drop(guard);
                }
                check_invariants(&pool.metrics(), &control);
                // Everything in flight finishes or times out; then nothing is lost.
                sleep::<R>(Duration::from_millis(50)).await;
                control.set(step, Gate::Pass);
                let m = settle(&pool, &control).await;
                assert!(m.size <= 2, "{step:?} {gate:?} {at:?}: {m:?}");
                let guard = pool
                    .get()
                    .await
                    .unwrap_or_else(|e| panic!("{step:?} {gate:?} {at:?}: pool still serves: {e}"));
                drop(guard);
                let m = settle(&pool, &control).await;
                println!("{step:?} {gate:?} {at:?}: {m:?}");
            }
        }
    }
}

/// A connect started for a caller that gave up finishes and goes to the idle set.
pub async fn abandoned_connect_goes_idle<R: Runtime>() {
    let (pool, control) = mock_pool::<R>(test_config(), LifecycleHooks::default()).await;
    control.set(Step::Connect, Gate::Slow(SLOW));
    assert!(cancel_after::<R, _>(SLOW / 3, pool.get()).await.is_none());
    let m = pool.metrics();
    assert_eq!(
        (m.connecting, m.waiters),
        (1, 0),
        "the attempt outlives its caller: {m:?}"
    );
    sleep::<R>(SLOW * 2).await;
    let m = settle(&pool, &control).await;
    assert_eq!(
        (m.idle, m.creates),
        (1, 1),
        "the connection was kept, not dropped: {m:?}"
    );
}

/// A connect started for a caller that gave up is handed to the next waiter.
pub async fn abandoned_connect_serves_next_waiter<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 1;
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    control.set(Step::Connect, Gate::Slow(SLOW));
    let _ = poll_once_then_drop(pool.get()).await;
    let next = pool
        .get()
        .await
        .expect("the next waiter gets the abandoned connect's result");
    drop(next);
    let m = settle(&pool, &control).await;
    assert_eq!(m.creates, 1, "one connect, not one per caller: {m:?}");
}

/// A waiter dropped after a connection was handed to it, before it ran, passes the
/// connection on to the next waiter.
pub async fn granted_then_dropped_waiter_passes_it_on<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 1;
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let held = pool.get().await.unwrap();
    let mut first = Box::pin(pool.get());
    assert!(crate::harness::poll_to_queue(&mut first).await.is_none());
    let second = spawn::<R, _>({
        let pool = pool.clone();
        async move { pool.get().await.map(|g| g.id) }
    });
    sleep::<R>(Duration::from_millis(10)).await;
    assert_eq!(pool.metrics().waiters, 2);
    let id = held.id;
    drop(held); // handed to `first`, which never runs again
    drop(first);
    assert_eq!(second.join().await.unwrap(), id);
    let m = settle(&pool, &control).await;
    assert_eq!(m.creates, 1);
}

/// A checkout dropped while its checkout hook runs destroys that connection (its session
/// state is unknown) and frees the capacity.
pub async fn dropped_during_checkout_hook<R: Runtime>() {
    let hooks = LifecycleHooks::default().on_checkout(|conn: &mut crate::mock::MockConn| {
        Box::pin(async move {
            conn.tag = Some("half-configured".into());
            std::future::pending::<()>().await;
            Ok(())
        })
    });
    let (pool, control) = mock_pool::<R>(test_config(), hooks).await;
    assert!(
        cancel_after::<R, _>(Duration::from_millis(20), pool.get())
            .await
            .is_none()
    );
    let m = settle(&pool, &control).await;
    assert_eq!(
        m.destroys_for(DestroyReason::Cancelled),
        1,
        "destroyed because its checkout was cancelled: {m:?}"
    );
    assert_eq!(
        m.destroys_for(DestroyReason::HookRejected),
        0,
        "the hook never rejected it: {m:?}"
    );
    assert_eq!((m.size, control.live()), (0, 0));
}

/// Thousands of abandoned waiters leave nothing behind in the queue.
pub async fn abandoned_waiters_leave_no_trace<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 1;
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let held = pool.get().await.unwrap();
    for _ in 0..2000 {
        let _ = poll_once_then_drop(pool.get()).await;
    }
    let m = pool.metrics();
    assert_eq!(m.waiters, 0, "{m:?}");
    drop(held);
    settle(&pool, &control).await;
}
