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
        let pool = ConnPool::<MockConn>::build(
            config,
            LifecycleHooks::default(),
            runtime,
            control.connector(),
        )
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
    let result = futures_lite::future::block_on(ConnPool::<MockConn>::with_connector(
        ConnPoolConfig::default(),
        LifecycleHooks::default(),
        control.connector(),
    ));
    match result {
        Err(PoolError::NoRuntime(e)) => assert!(e.to_string().contains("tokio"), "{e}"),
        other => panic!("expected NoRuntime, got {other:?}"),
    }
}
