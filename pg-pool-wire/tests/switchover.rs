//! A planned switchover on real servers, under load, with one `ClusterPool` that is never
//! rebuilt: its write pool is a two-host `read-write` pool over a primary and its
//! streaming standby, its read pool a two-host `standby` pool over the same two. While
//! writers insert in transactions and readers read, the primary is stopped cleanly
//! (`-m fast`), the standby promoted, and the old primary rejoined as a standby of the new
//! one (`pg_rewind`).
//!
//! Checked: no acknowledged write is lost (every acknowledged id is on the new primary);
//! writes end on the new primary (its port, `pg_is_in_recovery()` false); reads end on the
//! rejoined standby; every task finishes within a generous bound; the measured outage is
//! printed. The read pool asks for `standby` rather than `prefer-standby`: once the
//! standby it reads from is promoted (its sessions report `in_hot_standby` off, and the
//! pool evicts them), no host is a standby until the rejoin, so the cluster's reads fall
//! back to the primary, and its background check gives them back to the read pool as soon
//! as the rejoined standby accepts a session. `prefer-standby` would have settled on the
//! new primary and stayed there for the connections' lifetime.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{blocking, pool_config};
use pg_pool_core::{ClusterPool, LifecycleHooks, ReadPolicy};
use pg_pool_test_support::ReplicatedCluster;
use pg_pool_tokio::Tokio;
use pg_pool_wire::{WireConfig, WireConnector, WirePool, WirePoolable};

const WRITERS: u32 = 4;
const READERS: u32 = 4;
/// Generous: a task finishes its current operation within this once told to stop.
const TASK_BOUND: Duration = Duration::from_secs(30);

type Cluster = ClusterPool<WirePoolable, Tokio>;

/// One acknowledged write: its id, when its COMMIT returned, and the server's port.
#[derive(Debug, Clone, Copy)]
struct Ack {
    id: i64,
    at: Duration,
    port: u16,
}

/// One read: when it finished and the server's port.
#[derive(Debug, Clone, Copy)]
struct Read {
    at: Duration,
    port: u16,
}

#[derive(Default)]
struct Log {
    acks: Mutex<Vec<Ack>>,
    reads: Mutex<Vec<Read>>,
    write_errors: Mutex<Vec<(Duration, String)>>,
    read_errors: Mutex<u64>,
}

fn member_pool(cluster: &ReplicatedCluster, attrs: &str, name: &str) -> WirePool {
    let url = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user={} password={} dbname={} sslmode=disable \
         target_session_attrs={attrs} connect_timeout=3 application_name={name}",
        cluster.member(0).unwrap().port(),
        cluster.member(1).unwrap().port(),
        cluster.user(),
        cluster.password(),
        cluster.database()
    );
    let mut config = pool_config(4);
    config.name = name.into();
    config.checkout_timeout = Duration::from_secs(10);
    config.connect_timeout = Duration::from_secs(8);
    WirePool::builder(WireConnector::new(WireConfig::from_url(&url).unwrap()))
        .config(config)
        .hooks(LifecycleHooks::default())
        .build_lazy()
        .unwrap()
}

/// Inserts `id` in a transaction on the cluster's write pool; `Some(port)` once COMMIT
/// returned. A retry of an id whose earlier COMMIT's answer was lost does nothing.
async fn write(pools: &Cluster, id: i64, writer: u32) -> Result<u16, String> {
    let mut conn = pools.get_write().await.map_err(|e| e.to_string())?;
    conn.execute("BEGIN").await.map_err(|e| e.to_string())?;
    let port = conn
        .query_value(&format!(
            "INSERT INTO switchover_t (id, writer) VALUES ({id}, {writer}) \
             ON CONFLICT (id) DO NOTHING; SELECT inet_server_port()"
        ))
        .await
        .map_err(|e| e.to_string())?;
    conn.execute("COMMIT").await.map_err(|e| e.to_string())?;
    port.and_then(|p| p.parse().ok())
        .ok_or_else(|| "no port".to_owned())
}

async fn writer(pools: Cluster, log: Arc<Log>, stop: Arc<AtomicBool>, start: Instant, n: u32) {
    let mut seq = 0i64;
    while !stop.load(Ordering::Relaxed) {
        let id = i64::from(n) * 1_000_000 + seq;
        match write(&pools, id, n).await {
            Ok(port) => {
                log.acks.lock().unwrap().push(Ack {
                    id,
                    at: start.elapsed(),
                    port,
                });
                seq += 1;
            }
            Err(e) => {
                // The application retries the same id after a short pause.
                log.write_errors.lock().unwrap().push((start.elapsed(), e));
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

async fn reader(pools: Cluster, log: Arc<Log>, stop: Arc<AtomicBool>, start: Instant) {
    while !stop.load(Ordering::Relaxed) {
        let result = async {
            let mut conn = pools.get_read().await.map_err(|e| e.to_string())?;
            conn.query_value("SELECT inet_server_port()")
                .await
                .map_err(|e| e.to_string())
        }
        .await;
        match result {
            Ok(Some(port)) => log.reads.lock().unwrap().push(Read {
                at: start.elapsed(),
                port: port.parse().unwrap(),
            }),
            _ => {
                *log.read_errors.lock().unwrap() += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switchover_under_load_loses_no_acknowledged_write() {
    let cluster: &'static ReplicatedCluster = Box::leak(Box::new(
        blocking(|| ReplicatedCluster::start(1).expect("a primary and a standby")).await,
    ));
    let (old, new) = (
        cluster.member(0).unwrap().port(),
        cluster.member(1).unwrap().port(),
    );
    let mut policy = ReadPolicy::default();
    policy.check_interval = Duration::from_millis(200);
    let pools: Cluster = ClusterPool::new(
        member_pool(cluster, "read-write", "switchover-write"),
        vec![member_pool(cluster, "standby", "switchover-read")],
        policy,
    )
    .unwrap();
    pools
        .get_write()
        .await
        .unwrap()
        .execute("CREATE TABLE switchover_t (id bigint PRIMARY KEY, writer int NOT NULL)")
        .await
        .unwrap();
    blocking(move || cluster.wait_for_replay(1, Duration::from_secs(30)).unwrap()).await;

    let log = Arc::new(Log::default());
    let stop = Arc::new(AtomicBool::new(false));
    let start = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..WRITERS {
        let task = writer(pools.clone(), log.clone(), stop.clone(), start, n);
        tasks.push((format!("writer {n}"), tokio::spawn(task)));
    }
    for n in 0..READERS {
        let task = reader(pools.clone(), log.clone(), stop.clone(), start);
        tasks.push((format!("reader {n}"), tokio::spawn(task)));
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let stopping = start.elapsed();
    blocking(move || cluster.stop(0).expect("stop the primary")).await;
    let stopped = start.elapsed();
    blocking(move || cluster.promote(1).expect("promote the standby")).await;
    let promoted = start.elapsed();
    let method = blocking(move || cluster.rejoin(0).expect("rejoin the old primary")).await;
    let rejoined = start.elapsed();
    println!(
        "stop {stopping:?}..{stopped:?}, promoted at {promoted:?}, rejoined ({method:?}) at \
         {rejoined:?}"
    );
    // Load goes on until the rejoined standby has served reads (or a generous deadline).
    let served = common::eventually(Duration::from_secs(20), || {
        let log = log.clone();
        async move {
            let reads = log.reads.lock().unwrap();
            reads
                .iter()
                .filter(|r| r.at > rejoined && r.port == old)
                .count()
                >= 20
        }
    })
    .await;
    println!("the rejoined standby served reads {served:?} after the rejoin");
    tokio::time::sleep(Duration::from_millis(500)).await;

    stop.store(true, Ordering::Relaxed);
    let told = Instant::now();
    for (name, task) in tasks {
        let finished = tokio::time::timeout(TASK_BOUND, task).await;
        let took = told.elapsed();
        println!("{name} finished {took:?} after being told to stop");
        assert!(
            matches!(finished, Ok(Ok(()))),
            "{name} hung or panicked: {finished:?}"
        );
    }

    let acks = log.acks.lock().unwrap().clone();
    let reads = log.reads.lock().unwrap().clone();
    let write_errors = log.write_errors.lock().unwrap().clone();
    let read_errors = *log.read_errors.lock().unwrap();

    // The outage: the last write the old primary acknowledged, to the first on the new.
    let last_on_old = acks.iter().filter(|a| a.port == old).map(|a| a.at).max();
    let first_on_new = acks.iter().filter(|a| a.port == new).map(|a| a.at).min();
    println!(
        "{} writes acknowledged, {} write errors (retried), {} reads, {} read errors",
        acks.len(),
        write_errors.len(),
        reads.len(),
        read_errors
    );
    if let (Some(before), Some(after)) = (last_on_old, first_on_new) {
        println!(
            "outage: last write on the old primary at {before:?}, first on the new at \
             {after:?}: {:?}; the stop took {:?} (from {stopping:?}), the promotion {:?}; the \
             first write came {:?} after the promotion returned",
            after.saturating_sub(before),
            stopped - stopping,
            promoted - stopped,
            after.saturating_sub(promoted)
        );
    }
    for (at, e) in write_errors.iter().take(3) {
        println!("write error at {at:?}: {e}");
    }
    let mut per_port: BTreeMap<(&str, u16), usize> = BTreeMap::new();
    for r in &reads {
        let phase = if r.at <= stopping {
            "before"
        } else if r.at <= rejoined {
            "during"
        } else {
            "after rejoin"
        };
        *per_port.entry((phase, r.port)).or_default() += 1;
    }
    println!("reads by phase and port (old {old}, new {new}): {per_port:?}");
    for (role, pool) in pools.members() {
        println!("{role:?} {}: {:?}", pool.config().name, pool.metrics());
    }

    // Writes end on the new primary, through the same pool.
    let mut conn = pools.get_write().await.expect("a write connection");
    let rows = conn
        .simple_query("SELECT inet_server_port(), pg_is_in_recovery()")
        .await
        .unwrap();
    assert_eq!(rows[0][0].as_deref(), Some(new.to_string().as_str()));
    assert_eq!(rows[0][1].as_deref(), Some("f"));
    assert!(
        first_on_new.is_some_and(|at| at > stopped),
        "no write on the new primary after the stop"
    );
    let last = acks.iter().max_by_key(|a| a.at).unwrap();
    assert_eq!(last.port, new, "the last write went to {last:?}");
    assert!(
        acks.iter().all(|a| a.port == old || a.at > stopping),
        "a write was acknowledged by the new primary before the switchover"
    );

    // No acknowledged write is lost.
    let stored: HashSet<i64> = conn
        .simple_query("SELECT id FROM switchover_t")
        .await
        .unwrap()
        .iter()
        .map(|row| row[0].as_deref().unwrap().parse().unwrap())
        .collect();
    drop(conn);
    let lost: Vec<i64> = acks
        .iter()
        .map(|a| a.id)
        .filter(|id| !stored.contains(id))
        .collect();
    println!(
        "{} rows on the new primary, {} acknowledged, {} lost",
        stored.len(),
        acks.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
    assert!(
        acks.iter().any(|a| a.at < stopping),
        "no write before the stop"
    );

    // Reads end spread over the rejoined standby.
    let on_rejoined = reads
        .iter()
        .filter(|r| r.at > rejoined && r.port == old)
        .count();
    assert!(
        on_rejoined > 0,
        "the rejoined standby served no read: {per_port:?}"
    );
    assert!(
        reads.iter().any(|r| r.at <= stopping && r.port == new),
        "reads did not start on the standby: {per_port:?}"
    );
    // The read pool noticed the promotion and the write pool the stop; neither was rebuilt.
    let changes: Vec<u64> = pools
        .members()
        .map(|(_, pool)| pool.metrics().server_changes)
        .collect();
    assert!(
        changes.iter().all(|&c| c >= 1),
        "server changes: {changes:?}"
    );
    pools.drain().await;
}
