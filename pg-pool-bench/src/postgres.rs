//! Workload B: real PostgreSQL. `SELECT 1` (simple query protocol) per checkout through each
//! PostgreSQL pool, and a reconnect storm when many connections reach their lifetime together.

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use pg_pool_core::{ConnPoolConfig, Connector, LifecycleHooks};
use pg_pool_tokio_postgres::{PgConfig, PgConnection, PgConnector, ResetStrategy};
use pg_pool_wire::pg_wired::ResponseCollector;
use pg_pool_wire::{AsyncWirePoolable, WireConnector, WirePoolable};
use serde::Serialize;
use tokio_postgres::NoTls;

/// A PostgreSQL pool in Workload B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PgKind {
    /// deadpool-postgres 0.14, `RecyclingMethod::Fast` (no query on recycle).
    DeadpoolPostgres,
    /// bb8 0.9 with a tokio-postgres manager equivalent to bb8-postgres', `test_on_check_out(false)`.
    Bb8Postgres,
    /// pg-pool-wire's `WirePoolable`.
    PgPoolWire,
    /// pg-pool-wire's pipelining `AsyncWirePoolable`.
    PgPoolAsyncWire,
    /// pg-pool-tokio-postgres's `PgConnection`, `ResetStrategy::None` (like deadpool's
    /// `RecyclingMethod::Fast`: no round trip on return).
    PgPoolTokioPostgres,
    /// deadpool-postgres, `RecyclingMethod::Fast`, `prepare_cached` then `query_one`.
    DeadpoolPrepareCached,
    /// deadpool-postgres, `RecyclingMethod::Fast`, plain `query_one`.
    DeadpoolQueryOne,
    /// pg-pool-tokio-postgres at its defaults (the pipelined `Full` reset), `prepare_cached`
    /// then `query_prepared`.
    TokioPostgresDefaultsPrepareCached,
    /// pg-pool-tokio-postgres at its defaults, plain `query_one`.
    TokioPostgresDefaultsQueryOne,
}

impl PgKind {
    /// Every pool, in table order.
    pub const ALL: [PgKind; 5] = [
        Self::PgPoolWire,
        Self::PgPoolAsyncWire,
        Self::PgPoolTokioPostgres,
        Self::DeadpoolPostgres,
        Self::Bb8Postgres,
    ];

    /// Name for tables.
    pub fn name(self) -> &'static str {
        match self {
            Self::DeadpoolPostgres => "deadpool-postgres",
            Self::Bb8Postgres => "bb8 + tokio-postgres",
            Self::PgPoolWire => "pg-pool-wire (WirePoolable)",
            Self::PgPoolAsyncWire => "pg-pool-wire (AsyncWirePoolable)",
            Self::PgPoolTokioPostgres => "pg-pool-tokio-postgres",
            Self::DeadpoolPrepareCached => "deadpool-postgres (prepare_cached)",
            Self::DeadpoolQueryOne => "deadpool-postgres (query_one)",
            Self::TokioPostgresDefaultsPrepareCached => {
                "pg-pool-tokio-postgres defaults (prepare_cached)"
            }
            Self::TokioPostgresDefaultsQueryOne => "pg-pool-tokio-postgres defaults (query_one)",
        }
    }
}

/// bb8's manager for tokio-postgres, written like bb8-postgres' (which would force bb8's
/// default `parking_lot` feature, and with it tokio's, on the whole build).
#[derive(Debug, Clone)]
pub struct TokioPostgresManager {
    config: tokio_postgres::Config,
    connects: Option<ConnectLog>,
}

impl bb8::ManageConnection for TokioPostgresManager {
    type Connection = tokio_postgres::Client;
    type Error = tokio_postgres::Error;

    async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        if let Some(log) = &self.connects {
            log.record();
        }
        Ok(client)
    }

    async fn is_valid(
        &self,
        conn: &mut tokio_postgres::Client,
    ) -> Result<(), tokio_postgres::Error> {
        conn.simple_query("").await.map(drop)
    }

    fn has_broken(&self, conn: &mut tokio_postgres::Client) -> bool {
        conn.is_closed()
    }
}

/// Timestamps of completed connects.
#[derive(Debug, Clone)]
pub struct ConnectLog {
    start: Instant,
    times: Arc<Mutex<Vec<Duration>>>,
}

impl Default for ConnectLog {
    fn default() -> Self {
        Self {
            start: Instant::now(),
            times: Arc::default(),
        }
    }
}

impl ConnectLog {
    fn record(&self) {
        let at = self.start.elapsed();
        self.times
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(at);
    }

    fn snapshot(&self) -> Vec<Duration> {
        self.times
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

trait PgBench: Send + Sync + 'static {
    /// Checks out, runs `SELECT 1`, returns; the checkout wait, `None` on error.
    fn cycle(&self) -> impl Future<Output = Option<Duration>> + Send;
}

fn simple_query_message(sql: &str) -> BytesMut {
    let mut buf = BytesMut::with_capacity(sql.len() + 6);
    buf.extend_from_slice(b"Q");
    let len = i32::try_from(sql.len() + 5).unwrap_or(i32::MAX);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.extend_from_slice(sql.as_bytes());
    buf.extend_from_slice(&[0]);
    buf
}

struct Deadpool(deadpool_postgres::Pool);
struct Bb8(bb8::Pool<TokioPostgresManager>);
struct Wire(pg_pool_tokio::ConnPool<WirePoolable>);
struct AsyncWire(pg_pool_tokio::ConnPool<AsyncWirePoolable>);
struct TokioPostgres(pg_pool_tokio::ConnPool<PgConnection>);
struct DeadpoolPrepared(deadpool_postgres::Pool);
struct DeadpoolOne(deadpool_postgres::Pool);
struct TokioPostgresPrepared(pg_pool_tokio::ConnPool<PgConnection>);
struct TokioPostgresOne(pg_pool_tokio::ConnPool<PgConnection>);

impl PgBench for DeadpoolPrepared {
    async fn cycle(&self) -> Option<Duration> {
        let started = quanta::Instant::now();
        let client = self.0.get().await.ok()?;
        let waited = started.elapsed();
        let statement = client.prepare_cached("SELECT 1").await.ok()?;
        client.query_one(&statement, &[]).await.ok()?;
        Some(waited)
    }
}

impl PgBench for TokioPostgresPrepared {
    async fn cycle(&self) -> Option<Duration> {
        let started = quanta::Instant::now();
        let conn = self.0.get().await.ok()?;
        let waited = started.elapsed();
        let statement = conn.prepare_cached("SELECT 1").await.ok()?;
        conn.query_prepared(&statement, &[]).await.ok()?;
        Some(waited)
    }
}

/// The same cycle for every pool: a timed checkout, one `SELECT 1`, the return.
macro_rules! select_one_cycle {
    ($pool:ty, $conn:ident => $query:expr) => {
        impl PgBench for $pool {
            async fn cycle(&self) -> Option<Duration> {
                let started = quanta::Instant::now();
                // Only pg-wired's `WireConn` queries through `&mut`.
                #[allow(unused_mut)]
                let mut $conn = self.0.get().await.ok()?;
                let waited = started.elapsed();
                $query.await.ok()?;
                Some(waited)
            }
        }
    };
}

select_one_cycle!(TokioPostgres, conn => conn.simple_query("SELECT 1"));
select_one_cycle!(Deadpool, client => client.simple_query("SELECT 1"));
select_one_cycle!(DeadpoolOne, client => client.query_one("SELECT 1", &[]));
select_one_cycle!(TokioPostgresOne, conn => conn.query_one("SELECT 1", &[]));
select_one_cycle!(Bb8, client => client.simple_query("SELECT 1"));
select_one_cycle!(Wire, conn => conn.simple_query("SELECT 1"));
select_one_cycle!(AsyncWire, conn => conn.submit(simple_query_message("SELECT 1"), ResponseCollector::Rows));

/// pg-pool's configuration for Workload B: its cheapest (no test-on-checkout; connections
/// never sit idle for its 1 s threshold under this load anyway), no idle timeout or lifetime.
pub fn pg_pool_config(url: &str, max_size: usize) -> ConnPoolConfig {
    let mut config = WireConnector::from_url(url)
        .expect("cluster URL parses")
        .config()
        .pool_config();
    config.max_size = max_size;
    config.test_on_checkout = false;
    config.idle_timeout = None;
    config.max_lifetime = None;
    config.checkout_timeout = Duration::from_secs(60);
    config
}

/// One Workload B measurement.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PgRun {
    /// Queries per second.
    pub qps: f64,
    /// Checkout wait percentiles, nanoseconds.
    pub wait_p50_ns: u64,
    /// 99th percentile.
    pub wait_p99_ns: u64,
    /// 99.9th percentile.
    pub wait_p999_ns: u64,
    /// Maximum.
    pub wait_max_ns: u64,
    /// Failed cycles.
    pub errors: u64,
}

/// One pool's result in one Workload B cell.
#[derive(Debug, Clone, Serialize)]
pub struct PgCellResult {
    /// The pool.
    pub pool: PgKind,
    /// Pool size.
    pub max_size: usize,
    /// Concurrent tasks.
    pub tasks: usize,
    /// Every repetition (`None`: stalled).
    pub runs: Vec<Option<PgRun>>,
    /// Field-by-field medians of the finished runs.
    pub median: Option<PgRun>,
}

async fn pg_task<P: PgBench>(pool: Arc<P>, phase: Arc<AtomicU8>) -> (u64, u64, Histogram<u32>) {
    let mut hist = Histogram::<u32>::new_with_bounds(1, 600_000_000_000, 2).expect("valid bounds");
    let (mut done, mut errors) = (0, 0);
    loop {
        let now = phase.load(Ordering::Relaxed);
        if now == 2 {
            break;
        }
        let result = pool.cycle().await;
        let ended_after_start = phase.load(Ordering::Relaxed) != 0;
        match result {
            Some(waited) => {
                if now == 1 {
                    done += 1;
                }
                // Also a checkout that began during warm-up and ended after the measurement
                // started: a pool that starves a task from the start must not hide its wait.
                if now == 1 || ended_after_start {
                    hist.saturating_record(
                        u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX).max(1),
                    );
                }
            }
            None if now == 1 => errors += 1,
            None => {}
        }
    }
    (done, errors, hist)
}

/// Runs `tasks` tasks against `pool` on `rt` for `measure` after `warm`; `None` if the tasks do
/// not finish within 20 s of being told to stop.
fn drive<P: PgBench>(
    rt: &tokio::runtime::Runtime,
    pool: Arc<P>,
    tasks: usize,
    warm: Duration,
    measure: Duration,
) -> Option<PgRun> {
    let phase = Arc::new(AtomicU8::new(0));
    let handles: Vec<_> = (0..tasks)
        .map(|_| rt.spawn(pg_task(Arc::clone(&pool), Arc::clone(&phase))))
        .collect();
    thread::sleep(warm);
    phase.store(1, Ordering::Relaxed);
    let started = Instant::now();
    thread::sleep(measure);
    phase.store(2, Ordering::Relaxed);
    let elapsed = started.elapsed();
    rt.block_on(async {
        tokio::time::timeout(Duration::from_secs(20), async {
            let mut hist =
                Histogram::<u32>::new_with_bounds(1, 600_000_000_000, 2).expect("valid bounds");
            let (mut done, mut errors) = (0, 0);
            for handle in handles {
                let (d, e, h) = handle.await.ok()?;
                done += d;
                errors += e;
                hist.add(&h).ok()?;
            }
            Some(PgRun {
                qps: done as f64 / elapsed.as_secs_f64(),
                wait_p50_ns: hist.value_at_quantile(0.5),
                wait_p99_ns: hist.value_at_quantile(0.99),
                wait_p999_ns: hist.value_at_quantile(0.999),
                wait_max_ns: hist.max(),
                errors,
            })
        })
        .await
        .ok()
        .flatten()
    })
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime builds")
}

/// Measures one pool once: builds it (filled to `max_size` by a burst of checkouts), drives
/// `tasks` tasks, then drops it.
pub fn run_once(
    kind: PgKind,
    url: &str,
    max_size: usize,
    tasks: usize,
    warm: Duration,
    measure: Duration,
) -> Option<PgRun> {
    let rt = runtime();
    let result = match kind {
        PgKind::DeadpoolPrepareCached | PgKind::DeadpoolQueryOne => {
            let config: tokio_postgres::Config = url.parse().expect("cluster URL parses");
            let manager = deadpool_postgres::Manager::from_config(
                config,
                NoTls,
                deadpool_postgres::ManagerConfig {
                    recycling_method: deadpool_postgres::RecyclingMethod::Fast,
                },
            );
            let pool = deadpool_postgres::Pool::builder(manager)
                .max_size(max_size)
                .build()
                .expect("deadpool-postgres builds");
            if kind == PgKind::DeadpoolQueryOne {
                drive(&rt, Arc::new(DeadpoolOne(pool)), tasks, warm, measure)
            } else {
                drive(&rt, Arc::new(DeadpoolPrepared(pool)), tasks, warm, measure)
            }
        }
        PgKind::TokioPostgresDefaultsPrepareCached | PgKind::TokioPostgresDefaultsQueryOne => {
            // Every setting at its default but the pool size.
            let config = PgConfig::from_url(url).expect("cluster URL parses");
            let mut pool_config = config.pool_config();
            pool_config.max_size = max_size;
            let pool = rt
                .block_on(async {
                    pg_pool_core::ConnPool::builder(
                        PgConnector::<pg_pool_tokio::Tokio>::current(config)
                            .expect("inside the runtime"),
                    )
                    .config(pool_config)
                    .build()
                    .await
                })
                .expect("pg-pool builds");
            if kind == PgKind::TokioPostgresDefaultsQueryOne {
                drive(&rt, Arc::new(TokioPostgresOne(pool)), tasks, warm, measure)
            } else {
                drive(
                    &rt,
                    Arc::new(TokioPostgresPrepared(pool)),
                    tasks,
                    warm,
                    measure,
                )
            }
        }
        PgKind::DeadpoolPostgres => {
            let config: tokio_postgres::Config = url.parse().expect("cluster URL parses");
            let manager = deadpool_postgres::Manager::from_config(
                config,
                NoTls,
                deadpool_postgres::ManagerConfig {
                    recycling_method: deadpool_postgres::RecyclingMethod::Fast,
                },
            );
            let pool = deadpool_postgres::Pool::builder(manager)
                .max_size(max_size)
                .build()
                .expect("deadpool-postgres builds");
            drive(&rt, Arc::new(Deadpool(pool)), tasks, warm, measure)
        }
        PgKind::Bb8Postgres => {
            let manager = TokioPostgresManager {
                config: url.parse().expect("cluster URL parses"),
                connects: None,
            };
            let pool = rt.block_on(
                bb8::Pool::builder()
                    .max_size(u32::try_from(max_size).unwrap_or(u32::MAX))
                    .test_on_check_out(false)
                    .max_lifetime(None)
                    .idle_timeout(None)
                    .connection_timeout(Duration::from_secs(60))
                    .build(manager),
            );
            drive(
                &rt,
                Arc::new(Bb8(pool.expect("bb8 builds"))),
                tasks,
                warm,
                measure,
            )
        }
        PgKind::PgPoolWire => {
            let connector = WireConnector::from_url(url).expect("cluster URL parses");
            let pool = rt.block_on(
                pg_pool_tokio::ConnPool::<WirePoolable>::builder(connector)
                    .config(pg_pool_config(url, max_size))
                    .hooks(LifecycleHooks::default())
                    .build(),
            );
            drive(
                &rt,
                Arc::new(Wire(pool.expect("pg-pool builds"))),
                tasks,
                warm,
                measure,
            )
        }
        PgKind::PgPoolAsyncWire => {
            let connector = WireConnector::from_url(url).expect("cluster URL parses");
            let pool = rt.block_on(
                pg_pool_tokio::ConnPool::<AsyncWirePoolable>::builder(connector)
                    .config(pg_pool_config(url, max_size))
                    .hooks(LifecycleHooks::default())
                    .build(),
            );
            drive(
                &rt,
                Arc::new(AsyncWire(pool.expect("pg-pool builds"))),
                tasks,
                warm,
                measure,
            )
        }
        PgKind::PgPoolTokioPostgres => {
            let config = PgConfig::from_url(url)
                .expect("cluster URL parses")
                .with_reset(ResetStrategy::None);
            let pool = rt.block_on(async {
                let connector = PgConnector::<pg_pool_tokio::Tokio>::current(config)
                    .expect("inside the runtime");
                pg_pool_tokio::ConnPool::<PgConnection>::builder(connector)
                    .config(pg_pool_config(url, max_size))
                    .hooks(LifecycleHooks::default())
                    .build()
                    .await
            });
            drive(
                &rt,
                Arc::new(TokioPostgres(pool.expect("pg-pool builds"))),
                tasks,
                warm,
                measure,
            )
        }
    };
    // Let closes finish (pg-pool and the drivers close sessions in spawned tasks).
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

/// A reconnect storm measurement.
#[derive(Debug, Clone, Serialize)]
pub struct StormResult {
    /// Which pool and settings.
    pub label: String,
    /// Connections in the pool.
    pub size: usize,
    /// Max lifetime, seconds.
    pub lifetime_s: f64,
    /// How long filling the pool took, seconds.
    pub fill_s: f64,
    /// Connects completed in the observation window (lifetime plus 3 s after the pool was full).
    pub reconnects: usize,
    /// Most connects completed in any 100 ms, as a rate per second.
    pub peak_connects_per_s: f64,
    /// Time from the first to the last reconnect of the first wave (the first `size`), seconds.
    pub wave_s: f64,
    /// Checkout wait p99 of a 64-task `SELECT 1` load during the window, nanoseconds.
    pub wait_p99_ns: u64,
    /// Checkout wait maximum during the window, nanoseconds.
    pub wait_max_ns: u64,
    /// Queries per second of that load during the window.
    pub qps: f64,
}

fn storm_stats(
    label: String,
    size: usize,
    lifetime: Duration,
    fill: Duration,
    log: &ConnectLog,
    from: Duration,
    run: Option<PgRun>,
) -> StormResult {
    let times: Vec<Duration> = log.snapshot().into_iter().filter(|t| *t >= from).collect();
    let mut peak = 0;
    for (i, t) in times.iter().enumerate() {
        let within = times[i..]
            .iter()
            .take_while(|u| **u < *t + Duration::from_millis(100))
            .count();
        peak = peak.max(within);
    }
    let wave: Vec<&Duration> = times.iter().take(size).collect();
    let wave_s = match (wave.first(), wave.last()) {
        (Some(a), Some(b)) => (**b - **a).as_secs_f64(),
        _ => 0.0,
    };
    StormResult {
        label,
        size,
        lifetime_s: lifetime.as_secs_f64(),
        fill_s: fill.as_secs_f64(),
        reconnects: times.len(),
        peak_connects_per_s: peak as f64 * 10.0,
        wave_s,
        wait_p99_ns: run.map_or(0, |r| r.wait_p99_ns),
        wait_max_ns: run.map_or(0, |r| r.wait_max_ns),
        qps: run.map_or(0.0, |r| r.qps),
    }
}

/// pg-pool's storm settings: lifetime, jitter, `max_connecting`.
#[derive(Debug, Clone, Copy)]
pub struct PgPoolStorm {
    /// `max_lifetime_jitter`.
    pub jitter: Duration,
    /// `max_connecting`.
    pub max_connecting: usize,
}

/// A storm against pg-pool-wire: `size` connections kept by `min_idle = size`, all opened at
/// start, with `lifetime`; a 64-task `SELECT 1` load runs through the lifetime and 3 s more.
pub fn storm_pg_pool(
    url: &str,
    size: usize,
    lifetime: Duration,
    settings: PgPoolStorm,
) -> StormResult {
    let rt = runtime();
    let log = ConnectLog::default();
    let mut config = pg_pool_config(url, size);
    config.min_idle = size;
    config.max_lifetime = Some(lifetime);
    config.max_lifetime_jitter = settings.jitter;
    config.max_connecting = settings.max_connecting;
    config.reaper_interval = Duration::from_millis(250);
    let connector = WireConnector::from_url(url).expect("cluster URL parses");
    let counted = {
        let log = log.clone();
        move || {
            let (connector, log) = (connector.clone(), log.clone());
            async move {
                let conn = Connector::<WirePoolable>::connect(&connector).await?;
                log.record();
                Ok(conn)
            }
        }
    };
    let fill_started = log.start.elapsed();
    let pool = rt
        .block_on(
            pg_pool_tokio::ConnPool::<WirePoolable>::builder(counted)
                .config(config)
                .hooks(LifecycleHooks::default())
                .runtime(pg_pool_tokio::Tokio::from_handle(rt.handle().clone()))
                .build(),
        )
        .expect("pg-pool builds");
    let full = log.start.elapsed();
    let run = drive(
        &rt,
        Arc::new(Wire(pool)),
        64,
        Duration::ZERO,
        lifetime + Duration::from_secs(3),
    );
    let label = format!(
        "pg-pool-wire, jitter {} ms, max_connecting {}",
        settings.jitter.as_millis(),
        settings.max_connecting
    );
    let result = storm_stats(label, size, lifetime, full - fill_started, &log, full, run);
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

/// The same storm against bb8 (tokio-postgres): `min_idle = size`, `max_lifetime`, reaper
/// every 250 ms.
pub fn storm_bb8(url: &str, size: usize, lifetime: Duration) -> StormResult {
    let rt = runtime();
    let log = ConnectLog::default();
    let manager = TokioPostgresManager {
        config: url.parse().expect("cluster URL parses"),
        connects: Some(log.clone()),
    };
    let pool = rt
        .block_on(
            bb8::Pool::builder()
                .max_size(u32::try_from(size).unwrap_or(u32::MAX))
                .min_idle(u32::try_from(size).unwrap_or(u32::MAX))
                .test_on_check_out(false)
                .max_lifetime(lifetime)
                .idle_timeout(None)
                .reaper_rate(Duration::from_millis(250))
                .connection_timeout(Duration::from_secs(60))
                .build(manager),
        )
        .expect("bb8 builds");
    // bb8's build returns before `min_idle` is reached: wait for it.
    let fill_deadline = Instant::now() + Duration::from_secs(30);
    while (pool.state().connections as usize) < size && Instant::now() < fill_deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let full = log.start.elapsed();
    let first = log.snapshot().first().copied().unwrap_or_default();
    let run = drive(
        &rt,
        Arc::new(Bb8(pool)),
        64,
        Duration::ZERO,
        lifetime + Duration::from_secs(3),
    );
    let result = storm_stats(
        "bb8 + tokio-postgres (no jitter, no connect cap)".into(),
        size,
        lifetime,
        full.saturating_sub(first),
        &log,
        full,
        run,
    );
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}
