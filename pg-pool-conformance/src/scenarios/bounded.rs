//! Bounded fairness ([`Fairness::Bounded`]): callers may overtake queued ones while the head
//! of the queue has waited at most the bound; past it, the pool is strict again.
//!
//! The first scenarios drive the pool from one task, with the queued checkouts pinned
//! locally and polled by hand, so the order of events is exact on every runtime. The last
//! two run many looping tasks and check the promise on the log of what happened.

use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pg_pool_core::{ConnectError, Fairness, LifecycleHooks, PoolError, Runtime};

use crate::harness::{
    cancel_after, check_invariants, mock_pool, settle, sleep, spawn, test_config,
};
use crate::mock::{Gate, Step};

/// A bound no scenario step comes near.
const LONG: Duration = Duration::from_secs(3600);

/// Polls a queued checkout once more; `true` if it is still pending.
async fn still_pending<F: Future + Unpin>(checkout: &mut F) -> bool {
    crate::harness::poll_to_queue(checkout).await.is_none()
}

/// Within the bound, a returned connection goes idle (the head is only nudged) and a
/// newcomer takes it; the nudged waiter finds nothing, keeps its place ahead of a later
/// waiter, and is served by the next return.
pub async fn bounded_newcomer_overtakes_within_bound<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 1;
    config.fairness = Fairness::Bounded(LONG);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let held = pool.get().await.unwrap();
    let id = held.id;
    let mut first = pin!(pool.get());
    assert!(still_pending(&mut first).await, "the pool of one is taken");
    let mut second = pin!(pool.get());
    assert!(still_pending(&mut second).await);
    assert_eq!(pool.metrics().waiters, 2);

    drop(held);
    let m = pool.metrics();
    assert_eq!(
        (m.idle, m.waiters),
        (1, 2),
        "returned to idle, not handed off: {m:?}"
    );
    let overtaker = pool
        .try_get()
        .await
        .expect("a newcomer may overtake within the bound");
    assert_eq!(overtaker.id, id);
    assert!(
        still_pending(&mut first).await,
        "the nudged waiter found nothing"
    );
    assert_eq!(pool.metrics().waiters, 2, "and kept its place");

    drop(overtaker);
    assert!(
        still_pending(&mut second).await,
        "the second waiter was not nudged: the first is still ahead"
    );
    let served = first.await.expect("the head is served by the next return");
    assert_eq!(served.id, id);
    check_invariants(&pool.metrics(), &control);
    drop(served);
    drop(second.await.expect("then the second"));
    settle(&pool, &control).await;
}

/// Past the bound, a return is a strict hand-off to the head and newcomers queue.
pub async fn bounded_strict_past_bound<R: Runtime>() {
    let bound = Duration::from_millis(5);
    let mut config = test_config();
    config.max_size = 1;
    config.fairness = Fairness::Bounded(bound);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let held = pool.get().await.unwrap();
    let mut queued = pin!(pool.get());
    assert!(still_pending(&mut queued).await);
    let since = Instant::now();
    sleep::<R>(bound * 4).await;
    println!(
        "the head has waited {:?} (bound {bound:?})",
        since.elapsed()
    );
    assert!(
        matches!(pool.try_get().await, Err(PoolError::Exhausted)),
        "nothing idle"
    );
    drop(held);
    let m = pool.metrics();
    assert_eq!(
        (m.idle, m.waiters, m.active),
        (0, 0, 1),
        "handed off: {m:?}"
    );
    assert!(
        matches!(pool.try_get().await, Err(PoolError::Exhausted)),
        "a newcomer cannot take what the starving head was handed"
    );
    drop(queued.await.expect("the head is served"));
    settle(&pool, &control).await;
}

/// A nudged waiter that gives up before looking passes the nudge on: the next waiter is
/// served without any further return. One whose deadline passes before it looks is handed
/// the idle connection rather than timed out.
pub async fn bounded_dropped_nudged_waiter_passes_it_on<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 1;
    config.fairness = Fairness::Bounded(LONG);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let held = pool.get().await.unwrap();
    let mut first = Box::pin(pool.get());
    assert!(still_pending(&mut first).await);
    let mut second = pin!(pool.get());
    assert!(still_pending(&mut second).await);
    drop(held);
    assert_eq!(pool.metrics().idle, 1, "idle, the first waiter nudged");
    drop(first);
    let served = cancel_after::<R, _>(Duration::from_secs(5), second)
        .await
        .expect("the nudge passed on to the second waiter (not stranded)")
        .expect("served");
    drop(served);
    settle(&pool, &control).await;

    // A nudged waiter whose deadline passes before it has looked is not timed out while
    // its connection sits idle: the sweeper hands the connection over, as strict fairness
    // would have on the return; the caller queued behind it is served in turn.
    let mut config = test_config();
    config.max_size = 1;
    config.checkout_timeout = Duration::from_millis(300);
    config.fairness = Fairness::Bounded(LONG);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let held = pool.get().await.unwrap();
    let started = Instant::now();
    let mut first = pin!(pool.get());
    assert!(still_pending(&mut first).await);
    sleep::<R>(Duration::from_millis(150)).await;
    let late = spawn::<R, _>({
        let pool = pool.clone();
        async move { pool.get().await.map(drop) }
    });
    while pool.metrics().waiters < 2 {
        sleep::<R>(Duration::from_millis(1)).await;
    }
    drop(held); // idle; `first` nudged, but not polled again until its deadline has passed
    while pool.metrics().idle > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the sweeper ran"
        );
        sleep::<R>(Duration::from_millis(5)).await;
    }
    let m = pool.metrics();
    println!("after {:?}: {m:?}", started.elapsed());
    assert_eq!((m.active, m.waiters, m.timeouts), (1, 1, 0), "{m:?}");
    drop(
        first
            .await
            .expect("handed the idle connection, not timed out"),
    );
    let result = late.join().await;
    println!("late waiter: {result:?}");
    assert!(result.is_ok(), "then the caller behind it");
    settle(&pool, &control).await;
}

#[derive(Clone, Copy, Debug)]
enum Event {
    Queued(usize, Instant),
    Served(usize, Instant),
}

/// Tasks looping checkouts on a pool of 2 with a 2 ms bound, half of them holding across
/// a yield, half across a 5 ms sleep, so waits run from nothing to tens of milliseconds.
/// From the log: no waiter is overtaken (another task that queued after it, or did not
/// queue at all, is served) once it has waited longer than the bound, give or take a
/// printed tolerance for the time between the pool's decision and the log entry (which
/// also leaves out tasks that queued within the tolerance of each other, whose order in
/// the pool the log cannot tell).
pub async fn bounded_never_overtaken_past_bound<R: Runtime>() {
    const TASKS: usize = 32;
    let bound = Duration::from_millis(2);
    let tolerance = Duration::from_millis(20);
    let mut config = test_config();
    config.max_size = 2;
    config.fairness = Fairness::Bounded(bound);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let log: Arc<Mutex<Vec<Event>>> = Arc::default();
    let stop = Instant::now() + Duration::from_millis(500);
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let pool = pool.clone();
        let log = Arc::clone(&log);
        tasks.push(spawn::<R, _>(async move {
            let mut cycles = 0u64;
            while Instant::now() < stop {
                let mut checkout = pin!(pool.get());
                let guard = match crate::harness::poll_to_queue(&mut checkout).await {
                    Some(guard) => guard.unwrap(),
                    None => {
                        log.lock()
                            .unwrap()
                            .push(Event::Queued(task, Instant::now()));
                        checkout.await.unwrap()
                    }
                };
                log.lock()
                    .unwrap()
                    .push(Event::Served(task, Instant::now()));
                if task % 2 == 0 {
                    futures_lite::future::yield_now().await;
                } else {
                    sleep::<R>(Duration::from_millis(5)).await;
                }
                drop(guard);
                cycles += 1;
                futures_lite::future::yield_now().await;
            }
            cycles
        }));
    }
    let mut cycles = Vec::new();
    for task in tasks {
        cycles.push(task.join().await);
    }
    let log = log.lock().unwrap().clone();
    // For each Served entry: the index of the Queued entry of that checkout (None if it was
    // served on its first poll, without queueing).
    let mut open: [Option<(usize, Instant)>; TASKS] = [None; TASKS];
    let mut served_from = vec![None; log.len()];
    for (index, event) in log.iter().enumerate() {
        match *event {
            Event::Queued(task, at) => open[task] = Some((index, at)),
            Event::Served(task, _) => served_from[index] = open[task].take(),
        }
    }
    // For every queued checkout, every other checkout served while it waited that was not
    // ahead of it (queued earlier): an overtake, allowed only within the bound.
    let (mut within, mut past_checked, mut worst_past) = (0u64, 0u64, None::<Duration>);
    for (index, event) in log.iter().enumerate() {
        let (Event::Served(..), Some((from, since))) = (*event, served_from[index]) else {
            continue;
        };
        let mut went_past = false;
        for j in from + 1..index {
            let Event::Served(_, at) = log[j] else {
                continue;
            };
            let waited = at.saturating_duration_since(since);
            went_past |= waited > bound + tolerance;
            // Queued before it, or so close after it that the log cannot tell the pool's
            // order (log entries trail the pool's decisions by up to the tolerance): not
            // an overtake.
            let ahead = served_from[j].is_some_and(|(q, at)| {
                q < from || at.saturating_duration_since(since) <= tolerance
            });
            if ahead {
                continue;
            }
            if waited > bound + tolerance {
                println!(
                    "overtaken: entry {index} (queued at entry {from}) by entry {j} ({:?}), waited {waited:?}; log around: {:?}",
                    served_from[j].map(|(q, at)| (q, at.saturating_duration_since(since))),
                    &log[from.saturating_sub(2)..(from + 6).min(log.len())]
                );
                worst_past = worst_past.max(Some(waited));
            } else {
                within += 1;
            }
        }
        past_checked += u64::from(went_past);
    }
    let (least, most) = (cycles.iter().min().unwrap(), cycles.iter().max().unwrap());
    println!(
        "bound {bound:?}, tolerance {tolerance:?}: {within} overtakes within the bound; \
         {past_checked} waits went past bound + tolerance while others were served; \
         overtaken past it: {worst_past:?}; cycles per task {least}..{most}"
    );
    assert_eq!(worst_past, None, "a waiter was overtaken past the bound");
    assert!(
        past_checked > 0,
        "the scenario must produce waits past the bound to check anything"
    );
    assert!(*least > 0, "a task starved");
    settle(&pool, &control).await;
}

/// Tasks looping checkouts on a pool of 1 in bounded mode (1 ms): every task is served;
/// most and least cycles per task, and the worst wait, are printed.
pub async fn bounded_no_task_starves<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 1;
    config.fairness = Fairness::Bounded(Duration::from_millis(1));
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let stop = Instant::now() + Duration::from_millis(400);
    let mut tasks = Vec::new();
    for _ in 0..32 {
        let pool = pool.clone();
        tasks.push(spawn::<R, _>(async move {
            let (mut cycles, mut worst) = (0u64, Duration::ZERO);
            while Instant::now() < stop {
                let asked = Instant::now();
                let guard = pool.get().await.unwrap();
                worst = worst.max(asked.elapsed());
                futures_lite::future::yield_now().await;
                drop(guard);
                cycles += 1;
                futures_lite::future::yield_now().await;
            }
            (cycles, worst)
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.join().await);
    }
    let least = results.iter().map(|r| r.0).min().unwrap();
    let most = results.iter().map(|r| r.0).max().unwrap();
    let worst = results.iter().map(|r| r.1).max().unwrap();
    println!(
        "cycles per task: least {least}, most {most} (most/least {:.2}); worst wait {worst:?}",
        most as f64 / least.max(1) as f64
    );
    assert!(least > 0, "a task starved");
    assert!(worst < Duration::from_secs(2), "a task waited {worst:?}");
    settle(&pool, &control).await;
}

/// A connection that opens goes idle and only nudges the head; a permanent connect error
/// that follows before the head has looked fails the callers queued behind it, but never
/// the head, whose connection is sitting idle: it is handed over first.
pub async fn bounded_connect_error_spares_the_nudged_head<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 4;
    config.max_connecting = 1;
    config.fairness = Fairness::Bounded(LONG);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    pool.evict_all();
    control.once(Step::Connect, Gate::Slow(Duration::from_millis(50)));
    control.set(Step::Connect, Gate::Refuse);
    let mut head = pin!(pool.get());
    assert!(
        still_pending(&mut head).await,
        "queued, its connect under way"
    );
    let mut behind = pin!(pool.get());
    assert!(still_pending(&mut behind).await);
    // Neither is polled while the slow connect opens (idle, head nudged) and the next
    // attempt is refused.
    let started = Instant::now();
    while pool.metrics().connect_failures == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the refusal came"
        );
        sleep::<R>(Duration::from_millis(5)).await;
    }
    let served = head
        .await
        .expect("the head gets the connection that opened");
    let error = behind.await.expect_err("the caller behind gets the error");
    println!("behind the head: {error}");
    assert!(
        error
            .connect_error()
            .is_some_and(|e| matches!(e, ConnectError::Driver(d) if d.is_permanent())),
        "{error}"
    );
    drop(served);
    control.set(Step::Connect, Gate::Pass);
    settle(&pool, &control).await;
}
