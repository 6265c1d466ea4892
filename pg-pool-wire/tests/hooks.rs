//! Lifecycle hooks take effect on the server: `SET application_name` at checkout is seen in
//! `pg_stat_activity`, and `RESET ALL` at checkin puts the startup value back.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{backends, eventually, pool_config, wire_config, wire_pool};
use pg_pool_core::{DestroyReason, HookError, LifecycleHooks, PoolError};
use pg_pool_test_support::TestCluster;
use pg_pool_wire::WirePoolable;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hooks_take_effect_on_the_server() {
    let cluster = TestCluster::shared();
    let startup_app = "hooks-startup";
    let checkout_app = "hooks-checked-out";
    let destroyed = Arc::new(Mutex::new(Vec::new()));
    let destroyed_in_hook = Arc::clone(&destroyed);
    let created = Arc::new(Mutex::new(0_u64));
    let created_in_hook = Arc::clone(&created);
    let hooks = LifecycleHooks::<WirePoolable>::default()
        .on_create(move |conn| {
            let created = Arc::clone(&created_in_hook);
            Box::pin(async move {
                // Runs once per connection, on a working session.
                conn.execute("SELECT 1")
                    .await
                    .map_err(HookError::from_error)?;
                *created.lock().unwrap() += 1;
                Ok(())
            })
        })
        .on_checkout(move |conn| {
            Box::pin(async move {
                conn.execute(&format!("SET application_name = '{checkout_app}'"))
                    .await
                    .map(drop)
                    .map_err(HookError::from_error)
            })
        })
        .on_checkin(|conn| {
            Box::pin(async move {
                conn.execute("RESET ALL")
                    .await
                    .map(drop)
                    .map_err(HookError::from_error)
            })
        })
        .on_destroy(move |conn, reason| {
            destroyed_in_hook
                .lock()
                .unwrap()
                .push((conn.backend_pid(), reason));
        });
    let mut config = pool_config(2);
    config.min_idle = 1;
    let pool = wire_pool(wire_config(cluster, None, startup_app), config, hooks).await;

    // Idle after prefill: the startup name.
    assert_eq!(backends(cluster, startup_app).await, 1);
    assert_eq!(backends(cluster, checkout_app).await, 0);

    let mut conn = pool.get().await.unwrap();
    let pid = conn.backend_pid();
    let seen = conn.query_value("SHOW application_name").await.unwrap();
    assert_eq!(seen.as_deref(), Some(checkout_app));
    let server_view = cluster
        .sql(&format!(
            "SELECT application_name FROM pg_stat_activity WHERE pid = {pid}"
        ))
        .unwrap();
    println!("pg_stat_activity while checked out: pid {pid} application_name={server_view}");
    assert_eq!(server_view, checkout_app);
    assert_eq!(backends(cluster, checkout_app).await, 1);
    assert_eq!(*created.lock().unwrap(), pool.metrics().creates);
    drop(conn);

    // After checkin (DISCARD ALL and RESET ALL) the session shows its startup name again.
    let took = eventually(Duration::from_secs(3), || async {
        backends(cluster, checkout_app).await == 0 && backends(cluster, startup_app).await >= 1
    })
    .await;
    println!("application_name back to the startup value {took:?} after checkin");
    assert!(
        took.is_some(),
        "RESET ALL at checkin restores application_name"
    );
    let server_view = cluster
        .sql(&format!(
            "SELECT application_name FROM pg_stat_activity WHERE pid = {pid}"
        ))
        .unwrap();
    assert_eq!(server_view, startup_app, "the same backend, reset");

    // A checkout hook that rejects a used connection destroys it and the caller gets a
    // fresh one; a hook that rejects even fresh connections fails the checkout at once.
    let reject_next = Arc::new(AtomicBool::new(false));
    let always = Arc::new(AtomicBool::new(false));
    let (flag, always_flag) = (Arc::clone(&reject_next), Arc::clone(&always));
    let reject = LifecycleHooks::<WirePoolable>::default().on_checkout(move |conn| {
        let reject = flag.swap(false, Ordering::SeqCst) || always_flag.load(Ordering::SeqCst);
        Box::pin(async move {
            let sql = if reject {
                "SELECT no_such_column"
            } else {
                "SELECT 1"
            };
            conn.execute(sql)
                .await
                .map(drop)
                .map_err(HookError::from_error)
        })
    });
    let strict = wire_pool(
        wire_config(cluster, None, "hooks-reject"),
        pool_config(2),
        reject,
    )
    .await;
    let first = strict.get().await.unwrap().backend_pid();
    reject_next.store(true, Ordering::SeqCst);
    let second = strict.get().await.unwrap().backend_pid();
    assert_ne!(first, second, "the rejected connection was replaced");
    assert_eq!(
        strict.metrics().destroys_for(DestroyReason::HookRejected),
        1
    );
    always.store(true, Ordering::SeqCst);
    let started = std::time::Instant::now();
    let err = strict.get().await.unwrap_err();
    println!(
        "always-rejecting checkout hook failed the checkout after {:?}: {err}",
        started.elapsed()
    );
    assert!(matches!(err, PoolError::Hook(_)), "{err:?}");
    assert!(err.to_string().contains("no_such_column"), "{err}");
    strict.drain().await;

    pool.drain().await;
    assert!(
        destroyed
            .lock()
            .unwrap()
            .iter()
            .any(|&(p, r)| p == pid && r == DestroyReason::Closed)
    );
    let gone = eventually(Duration::from_secs(3), || async {
        backends(cluster, startup_app).await == 0
    })
    .await;
    assert!(gone.is_some(), "drain closes every backend");
}
