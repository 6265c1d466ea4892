//! Fairness: strict FIFO with direct hand-off ([`Fairness::Strict`], set explicitly here
//! whatever the default); no task starves; newcomers never barge.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pg_pool_core::{Fairness, LifecycleHooks, PoolError, Runtime};

use crate::harness::{mock_pool, settle, sleep, spawn, test_config};

/// Pool of 1, 32 queued tasks: they are served exactly in the order they queued.
pub async fn fifo_order_of_service<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 1;
    config.fairness = Fairness::Strict;
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let held = pool.get().await.unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for i in 0..32 {
        let task_pool = pool.clone();
        let order = Arc::clone(&order);
        tasks.push(spawn::<R, _>(async move {
            let guard = task_pool.get().await.unwrap();
            order.lock().unwrap().push(i);
            sleep::<R>(Duration::from_millis(1)).await;
            drop(guard);
        }));
        // Wait until task i is queued before starting the next.
        let started = Instant::now();
        while pool.metrics().waiters < i + 1 {
            assert!(started.elapsed() < Duration::from_secs(5));
            sleep::<R>(Duration::from_millis(1)).await;
        }
    }
    drop(held);
    for task in tasks {
        task.join().await;
    }
    let order = order.lock().unwrap().clone();
    assert_eq!(order, (0..32).collect::<Vec<_>>(), "served in queue order");
    settle(&pool, &control).await;
}

/// Pool of 1, 32 tasks looping checkout/return for a while: every task is served, and no
/// task is overtaken twice. From the moment a task is known to be queued (its checkout's
/// first poll returned pending) until it is served, every other task is served at most
/// once. This checks the pool's order directly, whatever the executor's (or the OS's)
/// scheduling does to the cycle counts, which are printed.
pub async fn no_task_starves<R: Runtime>() {
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Event {
        Queued(usize),
        Served(usize),
    }
    let mut config = test_config();
    config.max_size = 1;
    config.fairness = Fairness::Strict;
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let log: Arc<Mutex<Vec<Event>>> = Arc::default();
    let stop = Instant::now() + Duration::from_millis(400);
    let mut tasks = Vec::new();
    for task in 0..32 {
        let pool = pool.clone();
        let log = Arc::clone(&log);
        tasks.push(spawn::<R, _>(async move {
            let mut cycles = 0u64;
            let mut max_wait = Duration::ZERO;
            while Instant::now() < stop {
                let asked = Instant::now();
                let mut checkout = std::pin::pin!(pool.get());
                let guard = match crate::harness::poll_to_queue(&mut checkout).await {
                    Some(guard) => guard.unwrap(),
                    None => {
                        log.lock().unwrap().push(Event::Queued(task));
                        checkout.await.unwrap()
                    }
                };
                log.lock().unwrap().push(Event::Served(task));
                max_wait = max_wait.max(asked.elapsed());
                futures_lite::future::yield_now().await;
                drop(guard);
                cycles += 1;
                futures_lite::future::yield_now().await;
            }
            (cycles, max_wait)
        }));
    }
    let mut results = Vec::new();
    for task in tasks {
        results.push(task.join().await);
    }
    let min = results.iter().map(|r| r.0).min().unwrap();
    let max = results.iter().map(|r| r.0).max().unwrap();
    let worst_wait = results.iter().map(|r| r.1).max().unwrap();
    println!("cycles per task: min {min}, max {max}; worst wait {worst_wait:?}");
    assert!(min > 0, "a task starved");
    assert!(
        worst_wait < Duration::from_secs(2),
        "a task waited {worst_wait:?}"
    );

    let log = log.lock().unwrap().clone();
    let mut asked_at = [None::<usize>; 32];
    let mut checked = 0;
    for (index, event) in log.iter().enumerate() {
        match *event {
            Event::Queued(task) => asked_at[task] = Some(index),
            Event::Served(task) => {
                let Some(from) = asked_at[task].take() else {
                    continue; // served on its first poll: never queued
                };
                let mut served = [0u32; 32];
                for other in &log[from..index] {
                    if let Event::Served(other) = *other {
                        served[other] += 1;
                        assert!(
                            served[other] <= 1,
                            "task {other} was served twice while task {task} waited (log {from}..{index})"
                        );
                    }
                }
                checked += 1;
            }
        }
    }
    println!("{checked} checkouts checked for overtaking");
    assert!(
        checked > 32,
        "the scenario must queue tasks to check anything"
    );
    settle(&pool, &control).await;
}

/// While callers are queued, a newcomer does not take a returned connection.
pub async fn newcomer_never_barges<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 1;
    config.fairness = Fairness::Strict;
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    let held = pool.get().await.unwrap();
    let id = held.id;
    let waiter = spawn::<R, _>({
        let pool = pool.clone();
        async move {
            let guard = pool.get().await.unwrap();
            sleep::<R>(Duration::from_millis(20)).await;
            guard.id
        }
    });
    while pool.metrics().waiters == 0 {
        sleep::<R>(Duration::from_millis(1)).await;
    }
    drop(held);
    // The connection now belongs to the waiter, even if it has not run yet.
    assert!(matches!(pool.try_get().await, Err(PoolError::Exhausted)));
    assert_eq!(waiter.join().await, id);
    settle(&pool, &control).await;
}

/// A task whose checkouts never wait (an idle connection is always there) still yields to
/// the other tasks on its thread: the runtime's cooperative budget is spent per checkout.
pub async fn checkout_loop_yields<R: Runtime>() {
    use std::sync::atomic::{AtomicBool, Ordering};
    let (pool, control) = mock_pool::<R>(test_config(), LifecycleHooks::default()).await;
    drop(pool.get().await.unwrap());
    let other_ran = Arc::new(AtomicBool::new(false));
    let looping = spawn::<R, _>({
        let pool = pool.clone();
        let other_ran = Arc::clone(&other_ran);
        async move {
            for done in 0..100_000u32 {
                drop(pool.get().await.unwrap());
                if other_ran.load(Ordering::SeqCst) {
                    return done;
                }
            }
            100_000
        }
    });
    let other = spawn::<R, _>({
        let other_ran = Arc::clone(&other_ran);
        async move { other_ran.store(true, Ordering::SeqCst) }
    });
    let done = looping.join().await;
    other.join().await;
    println!("the looping task yielded after {done} checkouts");
    assert!(done < 100_000, "a checkout loop kept its thread to itself");
    settle(&pool, &control).await;
}
