//! The tokio adapter holds a runtime handle: a guard dropped on a thread that is not one of
//! the runtime's still gets its asynchronous return (reset) run, and building a pool outside
//! any runtime is an error value, not a panic.

use std::time::{Duration, Instant};

use pg_pool_conformance::{Control, MockConn};
use pg_pool_core::{ConnPoolConfig, LifecycleHooks, PoolError, Runtime};
use pg_pool_tokio::{ConnPool, Tokio};

#[test]
fn async_return_from_a_foreign_thread() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let (pool, control) = rt.block_on(async {
        let runtime = Tokio::current().unwrap();
        let sleeper = runtime.clone();
        let control = Control::new(move |d| sleeper.sleep(d));
        let mut config = ConnPoolConfig::default();
        config.max_size = 1;
        let pool = ConnPool::<MockConn>::builder(control.connector())
            .config(config)
            .hooks(LifecycleHooks::default())
            .runtime(runtime)
            .build()
            .await
            .unwrap();
        (pool, control)
    });
    let mut guard = rt.block_on(pool.get()).unwrap();
    guard.dirty = true;
    // Drop on a plain OS thread: the reset must be spawned through the held handle.
    std::thread::spawn(move || drop(guard)).join().unwrap();
    let started = Instant::now();
    while pool.metrics().idle != 1 {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            pool.metrics()
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    assert_eq!(control.resets(), 1, "the reset ran");
    let guard = rt.block_on(pool.get()).unwrap();
    assert!(!guard.dirty, "handed out clean");
}

#[test]
fn no_runtime_is_an_error_value() {
    let control = Control::new(|_| async {});
    let result = futures_lite::future::block_on(
        ConnPool::<MockConn>::builder(control.connector())
            .config(ConnPoolConfig::default())
            .hooks(LifecycleHooks::default())
            .build(),
    );
    match result {
        Err(pg_pool_core::BuildError::NoRuntime(e)) => {
            assert!(e.to_string().contains("tokio"), "{e}")
        }
        other => panic!("expected NoRuntime, got {other:?}"),
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap()
}

fn build_on(
    rt: &tokio::runtime::Runtime,
) -> (
    ConnPool<MockConn>,
    std::sync::Arc<pg_pool_conformance::Control>,
) {
    rt.block_on(async {
        let runtime = Tokio::current().unwrap();
        let sleeper = runtime.clone();
        let control = Control::new(move |d| sleeper.sleep(d));
        let mut config = ConnPoolConfig::default();
        config.max_size = 2;
        config.checkout_timeout = Duration::from_secs(5);
        let pool = ConnPool::<MockConn>::builder(control.connector())
            .config(config)
            .hooks(LifecycleHooks::default())
            .runtime(runtime)
            .build()
            .await
            .unwrap();
        (pool, control)
    })
}

/// The runtime a pool was built on shuts down while a connection is out. Returning it with
/// a reset due releases its capacity (the reset task is dropped unrun), and a later `get()`
/// from another runtime fails at once with `RuntimeGone` instead of hanging.
#[test]
fn pool_outlives_its_runtime_with_a_connection_out() {
    let first = runtime();
    let (pool, control) = build_on(&first);
    let mut guard = first.block_on(pool.get()).unwrap();
    guard.dirty = true;
    drop(first);
    drop(guard);
    let m = pool.metrics();
    println!("after the return: {m:?}");
    assert_eq!((m.active, m.size, m.closing), (0, 0, 0), "{m:?}");
    assert_eq!(control.live(), 0, "the connection was dropped");
    let second = runtime();
    let started = Instant::now();
    let outcome =
        second.block_on(async { tokio::time::timeout(Duration::from_secs(10), pool.get()).await });
    println!(
        "get() after the runtime shut down: {:?} in {:?}",
        outcome.as_ref().map(|r| r.as_ref().map(|_| ())),
        started.elapsed()
    );
    match outcome {
        Ok(Err(PoolError::RuntimeGone)) => {}
        other => panic!(
            "expected RuntimeGone at once, got {:?}",
            other.map(|r| r.map(|_| ()))
        ),
    }
}

/// The runtime shuts down while nothing is out: the next `get()`, which needs a connect
/// task, fails with `RuntimeGone` at once, and no capacity is left counted.
#[test]
fn pool_outlives_its_runtime_idle() {
    let first = runtime();
    let (pool, control) = build_on(&first);
    drop(first);
    let second = runtime();
    let started = Instant::now();
    let outcome =
        second.block_on(async { tokio::time::timeout(Duration::from_secs(10), pool.get()).await });
    println!("get() needing a connect: {:?}", started.elapsed());
    assert!(
        matches!(outcome, Ok(Err(PoolError::RuntimeGone))),
        "{:?}",
        outcome.map(|r| r.map(|_| ()))
    );
    let m = pool.metrics();
    assert_eq!((m.connecting, m.size, m.waiters), (0, 0, 0), "{m:?}");
    assert_eq!(control.live(), 0);
    let error = PoolError::<std::io::Error>::RuntimeGone.to_string();
    assert!(error.contains("runtime has shut down"), "{error}");
    // Drain still completes.
    let report = second.block_on(pool.drain_timeout(Duration::from_secs(2)));
    assert!(report.is_complete(), "{report:?}");
}
