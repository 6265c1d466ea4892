//! pgbouncer 1.18 in transaction mode in front of the throwaway cluster: the pooler-safe
//! profile serves a concurrent workload without an error and rides out a PostgreSQL restart;
//! the session profile's state and named statements leak or break through it.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{Harness, blocking, own_cluster, pool, pool_config, sleep, spawn};
use pg_pool_core::runtime::timeout;
use pg_pool_test_support::{PgBouncer, TestCluster};
use pg_pool_tokio_postgres::tokio_postgres::types::Type;
use pg_pool_tokio_postgres::{PgConfig, PgError, PgPool, PgRuntime, Profile};

const WORKERS: usize = 10;
const OPS: usize = 1_000;

async fn bouncer(cluster: &'static TestCluster) -> Arc<PgBouncer> {
    Arc::new(
        blocking(move || PgBouncer::start(cluster, "transaction").expect("pgbouncer starts")).await,
    )
}

fn bouncer_config(bouncer: &PgBouncer, app: &str, profile: Profile) -> PgConfig {
    let url = format!("{}?application_name={app}", bouncer.url());
    assert!(url.contains("@127.0.0.1:"));
    let config = PgConfig::from_url(&url).unwrap();
    match profile {
        Profile::PoolerSafe => PgConfig::pooler_safe(config.pg),
        _ => config,
    }
}

/// One operation: a parameterised query, and every 10th a transaction with `SET LOCAL`.
async fn operation<R: PgRuntime>(pool: &PgPool<R>, i: i64) -> Result<(), String> {
    let mut conn = pool.get().await.map_err(|e| e.to_string())?;
    if i % 10 == 0 {
        let txn = conn.transaction().await.map_err(|e| e.to_string())?;
        txn.batch_execute("SET LOCAL work_mem = '2MB'")
            .await
            .map_err(|e| e.to_string())?;
        let rows = txn
            .query_typed("SELECT current_setting('work_mem')", &[])
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(rows[0].get::<_, &str>(0), "2MB");
        txn.commit().await.map_err(|e| e.to_string())?;
    } else {
        let rows = conn
            .query_typed("SELECT $1::int8 + 1", &[(&i, Type::INT8)])
            .await
            .map_err(|e| e.to_string())?;
        assert_eq!(rows[0].get::<_, i64>(0), i + 1);
    }
    Ok(())
}

async fn workload<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let bouncer = bouncer(cluster).await;
    let pg = bouncer_config(&bouncer, &format!("tp-bouncer-{tag}"), Profile::PoolerSafe);
    let mut config = pg.pool_config();
    config.max_size = 5;
    let pool = pool::<R>(pg, config).await;
    let started = Instant::now();
    let workers: Vec<_> = (0..WORKERS)
        .map(|w| {
            let pool = pool.clone();
            spawn::<R, _>(async move {
                let mut errors = Vec::new();
                for op in 0..OPS {
                    if let Err(e) = operation(&pool, (w * OPS + op) as i64).await {
                        errors.push(e);
                    }
                }
                errors
            })
        })
        .collect();
    let mut errors = Vec::new();
    for worker in workers {
        errors.extend(worker.recv().await.unwrap());
    }
    let took = started.elapsed();
    let m = pool.metrics();
    println!(
        "[{tag}] pgbouncer (transaction mode), pooler-safe: {WORKERS} workers x {OPS} ops in {took:?} \
         ({:.0} ops/s), {} errors, {} connections opened",
        (WORKERS * OPS) as f64 / took.as_secs_f64(),
        errors.len(),
        m.creates
    );
    assert!(
        errors.is_empty(),
        "[{tag}] errors: {:?}",
        &errors[..errors.len().min(5)]
    );
    pool.drain().await;
}

#[test]
fn tokio_workload_through_pgbouncer() {
    common::TokioMt::block_on(workload::<pg_pool_tokio::Tokio>("tokio_mt"));
}

#[test]
fn smol_workload_through_pgbouncer() {
    common::SmolRt::block_on(workload::<pg_pool_smol::Smol>("smol"));
}

#[test]
fn async_std_workload_through_pgbouncer() {
    common::AsyncStdRt::block_on(workload::<pg_pool_async_std::AsyncStd>("async_std"));
}

/// PostgreSQL restarts behind pgbouncer: the pool's links to pgbouncer stay up, and the
/// pool serves again once PostgreSQL is back, within a measured bound.
async fn restart_behind_bouncer<R: PgRuntime>(tag: &'static str) {
    let cluster = own_cluster().await;
    let bouncer = bouncer(cluster).await;
    let pg = bouncer_config(
        &bouncer,
        &format!("tp-bouncer-restart-{tag}"),
        Profile::PoolerSafe,
    );
    let mut config = pg.pool_config();
    config.max_size = 4;
    config.min_idle = 2;
    let pool = pool::<R>(pg, config).await;
    for i in 0..20 {
        operation(&pool, i).await.unwrap();
    }
    let restart = Instant::now();
    let restarting = spawn::<R, _>(blocking(move || cluster.restart_fast().unwrap()));
    // Keep operating through the restart; each attempt bounded by 3 s.
    let runtime = R::current().unwrap();
    let mut errors = 0;
    let mut last_error = String::new();
    let mut restarted = None;
    let mut consecutive = 0;
    while consecutive < 50 {
        if restarted.is_none() && restarting.try_recv().is_ok() {
            restarted = Some(restart.elapsed());
        }
        match timeout(&runtime, Duration::from_secs(3), operation(&pool, 1)).await {
            Some(Ok(())) => consecutive += 1,
            outcome => {
                consecutive = 0;
                errors += 1;
                last_error = outcome.map_or("timed out after 3 s".into(), |r| r.unwrap_err());
                sleep::<R>(Duration::from_millis(20)).await;
            }
        }
        assert!(
            restart.elapsed() < Duration::from_secs(15),
            "[{tag}] not serving: {last_error}"
        );
    }
    if restarted.is_none() {
        restarting.recv().await.unwrap();
        restarted = Some(restart.elapsed());
    }
    let serving = restart.elapsed();
    println!(
        "[{tag}] PostgreSQL restarted behind pgbouncer: pg_ctl restart took {restarted:?}; 50 consecutive \
         successes by {serving:?} after the restart began; {errors} failed operations (last: {last_error})"
    );
    assert!(
        serving < Duration::from_secs(10),
        "[{tag}] recovery took {serving:?}"
    );
    pool.drain().await;
}

#[test]
fn tokio_restart_behind_pgbouncer() {
    common::TokioMt::block_on(restart_behind_bouncer::<pg_pool_tokio::Tokio>("tokio_mt"));
}

#[test]
fn smol_restart_behind_pgbouncer() {
    common::SmolRt::block_on(restart_behind_bouncer::<pg_pool_smol::Smol>("smol"));
}

/// What the session profile leaks through pgbouncer in transaction mode, and that the
/// pooler-safe profile does not.
async fn session_profile_leaks<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let bouncer = bouncer(cluster).await;
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    let session = pool::<R>(
        bouncer_config(&bouncer, &format!("tp-leak-s-{tag}"), Profile::Session),
        config.clone(),
    )
    .await;
    let observer = pool::<R>(
        bouncer_config(&bouncer, &format!("tp-leak-o-{tag}"), Profile::PoolerSafe),
        config.clone(),
    )
    .await;
    let safe = pool::<R>(
        bouncer_config(&bouncer, &format!("tp-leak-p-{tag}"), Profile::PoolerSafe),
        config,
    )
    .await;
    let show_work_mem = || async {
        let conn = observer.get().await.unwrap();
        let rows = conn.query_typed("SHOW work_mem", &[]).await.unwrap();
        rows[0].get::<_, String>(0)
    };

    // 1. A session-level SET is seen by another client: pgbouncer hands the server session
    //    on once the statement ends. (The reset at checkin cannot help: it may well run on
    //    another server session.)
    let seen = {
        let conn = session.get().await.unwrap();
        conn.batch_execute("SET work_mem = '1234kB'").await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(show_work_mem().await);
        }
        seen
    };
    println!("[{tag}] another client's SHOW work_mem after a session-profile SET: {seen:?}");
    assert!(
        seen.iter().any(|v| v == "1234kB"),
        "[{tag}] the SET did not leak: {seen:?}"
    );
    // Clean up the server session we dirtied, for the next steps.
    for _ in 0..4 {
        observer
            .get()
            .await
            .unwrap()
            .batch_execute("RESET ALL")
            .await
            .unwrap();
    }

    // The pooler-safe profile cannot stop a session-level SET from leaking either (its
    // docs say so): another client sees it.
    let seen = {
        let conn = safe.get().await.unwrap();
        conn.batch_execute("SET work_mem = '1235kB'").await.unwrap();
        drop(conn);
        let mut seen = Vec::new();
        for _ in 0..5 {
            seen.push(show_work_mem().await);
        }
        seen
    };
    println!("[{tag}] another client's SHOW work_mem after a pooler-safe SET: {seen:?}");
    assert!(
        seen.iter().any(|v| v == "1235kB"),
        "[{tag}] the documented leak did not happen: {seen:?}"
    );
    for _ in 0..4 {
        observer
            .get()
            .await
            .unwrap()
            .batch_execute("RESET ALL")
            .await
            .unwrap();
    }

    // The pooler-safe way: SET LOCAL inside a transaction, never seen by anyone else.
    {
        let mut conn = safe.get().await.unwrap();
        let txn = conn.transaction().await.unwrap();
        txn.batch_execute("SET LOCAL work_mem = '2345kB'")
            .await
            .unwrap();
        txn.commit().await.unwrap();
    }
    for _ in 0..5 {
        assert_ne!(
            show_work_mem().await,
            "2345kB",
            "[{tag}] a pooler-safe SET LOCAL leaked"
        );
    }

    // 2. A named prepared statement breaks once another client holds the server session it
    //    was prepared on.
    let conn = session.get().await.unwrap();
    let statement = conn.prepare_cached("SELECT $1::int4 + 1").await.unwrap();
    let mut holder = observer.get().await.unwrap();
    let held = holder.transaction().await.unwrap();
    held.query_typed("SELECT 1", &[]).await.unwrap();
    let err = conn.query_prepared(&statement, &[&1i32]).await.unwrap_err();
    println!("[{tag}] session profile, named statement through pgbouncer: {err}");
    assert_eq!(err.code(), Some("26000"), "[{tag}] {err:?}");
    drop(conn);

    // The pooler-safe profile refuses named statements up front and runs unnamed ones fine,
    // whichever server session it gets.
    let conn = safe.get().await.unwrap();
    let refused = conn
        .prepare_cached("SELECT $1::int4 + 1")
        .await
        .unwrap_err();
    assert!(
        matches!(refused, PgError::NamedStatementsDisabled { .. }),
        "{refused:?}"
    );
    let rows = conn
        .query_typed("SELECT $1::int4 + 1", &[(&1i32, Type::INT4)])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), 2);
    held.rollback().await.unwrap();
    drop(holder);
    drop(conn);
    for pool in [session, observer, safe] {
        pool.drain().await;
    }
}

#[test]
fn tokio_session_profile_leaks_through_pgbouncer() {
    common::TokioMt::block_on(session_profile_leaks::<pg_pool_tokio::Tokio>("tokio_mt"));
}

#[test]
fn smol_session_profile_leaks_through_pgbouncer() {
    common::SmolRt::block_on(session_profile_leaks::<pg_pool_smol::Smol>("smol"));
}

/// Pooler-safe profile through pgbouncer: a query abandoned by its caller's timeout is
/// cancelled (the cancel request goes through pgbouncer) and the connection is not handed
/// out until its exchange has ended.
async fn abandoned_query_through_bouncer<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let bouncer = bouncer(cluster).await;
    let pg = bouncer_config(
        &bouncer,
        &format!("tp-bouncer-cancel-{tag}"),
        Profile::PoolerSafe,
    );
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    let pool = pool::<R>(pg, config).await;
    let runtime = R::current().unwrap();
    let marker = format!("tp-bouncer-cancel-{tag}");
    let sql = format!("SELECT pg_sleep(30) /* {marker} */");
    let conn = pool.get().await.unwrap();
    let outcome = timeout(
        &runtime,
        Duration::from_millis(100),
        conn.query_typed(&sql, &[]),
    )
    .await;
    assert!(outcome.is_none(), "[{tag}] the sleep finished early?");
    drop(conn);
    let dropped = Instant::now();
    let running = move || {
        let q = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%{marker}%' AND pid <> pg_backend_pid()"
        );
        cluster.sql(&q).unwrap()
    };
    let mut still = String::new();
    while dropped.elapsed() < Duration::from_secs(3) {
        still = blocking(running.clone()).await;
        if still == "0" {
            break;
        }
        sleep::<R>(Duration::from_millis(20)).await;
    }
    let cancelled_after = dropped.elapsed();
    println!(
        "[{tag}] pgbouncer: abandoned pg_sleep(30) gone from the server after {cancelled_after:?}"
    );
    assert_eq!(
        still,
        "0",
        "[{tag}] the abandoned query still runs; pgbouncer log: {}",
        bouncer.log_tail(3000)
    );
    assert!(
        cancelled_after < Duration::from_secs(1),
        "[{tag}] {cancelled_after:?}"
    );
    let started = Instant::now();
    let conn = match pool.get().await {
        Ok(conn) => conn,
        Err(e) => panic!("[{tag}] {e}; pgbouncer log: {}", bouncer.log_tail(3000)),
    };
    let rows = conn.query_typed("SELECT 1", &[]).await.unwrap();
    assert_eq!(rows[0].get::<_, i32>(0), 1);
    println!(
        "[{tag}] pgbouncer: next checkout and query took {:?}",
        started.elapsed()
    );
    drop(conn);
    pool.drain().await;
}

#[test]
fn tokio_abandoned_query_through_pgbouncer() {
    common::TokioMt::block_on(abandoned_query_through_bouncer::<pg_pool_tokio::Tokio>(
        "tokio_mt",
    ));
}

#[test]
fn smol_abandoned_query_through_pgbouncer() {
    common::SmolRt::block_on(abandoned_query_through_bouncer::<pg_pool_smol::Smol>(
        "smol",
    ));
}
