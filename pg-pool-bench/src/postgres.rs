//! Workload B: real PostgreSQL. `SELECT 1` per checkout through each PostgreSQL pool and
//! driver, every one at its defaults (what a user who sets only the pool size gets) beside
//! any tuned row, with the statement sent three ways ([`Query`]).

use std::future::Future;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use hdrhistogram::Histogram;
use pg_pool_core::ConnPoolConfig;
use pg_pool_tokio_postgres::{PgConfig, PgConnection, PgConnector, ResetStrategy, ResetWhen};
use pg_pool_wire::pg_wired::ResponseCollector;
use pg_pool_wire::{AsyncWirePoolable, WireConnector, WirePoolable};
use serde::Serialize;
use tokio_postgres::NoTls;

/// The statement each Workload B cycle runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Query {
    /// `simple_query("SELECT 1")`: one round trip, simple query protocol.
    Simple,
    /// `query_one("SELECT 1", &[])`: tokio-postgres prepares a statement, then runs it: two
    /// round trips (deadpool-postgres). pg-pool-tokio-postgres at its defaults prepares the
    /// text once per connection into its statement cache and binds it after: one round trip
    /// once warm (`pool_auto_prepare`).
    QueryOne,
    /// `prepare_cached("SELECT 1")` (a cache hit once warm), then `query_one` on the
    /// statement (pg-pool-tokio-postgres: `query_one_prepared`; the shared row:
    /// `query_prepared`): one round trip.
    Prepared,
}

impl Query {
    /// Label for tables.
    pub fn label(self) -> &'static str {
        match self {
            Self::Simple => "simple_query",
            Self::QueryOne => "query_one",
            Self::Prepared => "prepare_cached + query",
        }
    }
}

/// A PostgreSQL pool, driver, configuration and statement in Workload B.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum PgKind {
    /// deadpool-postgres 0.14 at its defaults (`RecyclingMethod::Fast`, no query on
    /// recycle), `prepare_cached` + `query_one`: the reference of the ratios.
    DeadpoolPostgresPrepared,
    /// deadpool-postgres at its defaults, plain `query_one`.
    DeadpoolPostgresQueryOne,
    /// deadpool-postgres at its defaults, `simple_query`.
    DeadpoolPostgres,
    /// bb8 0.9 at its defaults (test on check-out), tokio-postgres manager, `simple_query`.
    Bb8PostgresDefaults,
    /// bb8 with `test_on_check_out(false)`, `simple_query`.
    Bb8Postgres,
    /// pg-pool-wire's `WirePoolable` at its defaults, `simple_query`.
    PgPoolWireDefaults,
    /// pg-pool-wire's `WirePoolable`, trimmed pool config, `simple_query`.
    PgPoolWire,
    /// pg-pool-wire's pipelining `AsyncWirePoolable` at its defaults.
    PgPoolAsyncWireDefaults,
    /// pg-pool-wire's `AsyncWirePoolable`, trimmed pool config.
    PgPoolAsyncWire,
    /// pg-pool-tokio-postgres at its defaults (`PgConfig`'s and its `pool_config`'s), plain
    /// `query_one`.
    PgPoolTokioPostgresQueryOne,
    /// pg-pool-tokio-postgres at its defaults, `prepare_cached` + `query_one_prepared`.
    PgPoolTokioPostgresPrepared,
    /// pg-pool-tokio-postgres at its defaults, `simple_query`.
    PgPoolTokioPostgresSimple,
    /// pg-pool-tokio-postgres tuned: `ResetStrategy::None` (no round trip on return, like
    /// deadpool's `Fast`) and the trimmed pool config, `simple_query`.
    PgPoolTokioPostgres,
    /// pg-pool-tokio-postgres tuned as above, `prepare_cached` + `query_one_prepared`.
    PgPoolTokioPostgresPreparedTuned,
    /// pg-pool-tokio-postgres at its defaults but `pool_reset_when=used` (the reset after
    /// every use, as before the protocol tap), `prepare_cached` + `query_one_prepared`. Not in
    /// [`PgKind::ALL`]: `pg-pool-bench --postgres` runs it.
    PgPoolTokioPostgresPreparedResetUsed,
    /// As above, plain `query_one`.
    PgPoolTokioPostgresQueryOneResetUsed,
    /// pg-pool-tokio-postgres at its defaults, shared leases (`get_shared`): many tasks
    /// pipelining over the pool's connections, `prepare_cached` + `query_prepared` through
    /// the `SharedClient`.
    PgPoolTokioPostgresShared,
    /// pg-pool-wire's `AsyncWirePoolable` at its defaults, shared leases (`get_shared`):
    /// `exec_query` through the `SharedWire`, prepared once per session by the connection's
    /// statement cache. Not in [`PgKind::ALL`]: `pg-pool-bench-shared` runs it.
    PgPoolAsyncWireShared,
}

impl PgKind {
    /// Every row, in table order (and in the first repetition's run order).
    pub const ALL: [PgKind; 15] = [
        Self::DeadpoolPostgresPrepared,
        Self::DeadpoolPostgresQueryOne,
        Self::DeadpoolPostgres,
        Self::PgPoolTokioPostgresPrepared,
        Self::PgPoolTokioPostgresQueryOne,
        Self::PgPoolTokioPostgresSimple,
        Self::PgPoolTokioPostgresPreparedTuned,
        Self::PgPoolTokioPostgres,
        Self::PgPoolTokioPostgresShared,
        Self::PgPoolWireDefaults,
        Self::PgPoolWire,
        Self::PgPoolAsyncWireDefaults,
        Self::PgPoolAsyncWire,
        Self::Bb8PostgresDefaults,
        Self::Bb8Postgres,
    ];

    /// The rows at their defaults (what a user who sets only the pool size gets).
    pub fn at_defaults(self) -> bool {
        matches!(
            self,
            Self::DeadpoolPostgresPrepared
                | Self::DeadpoolPostgresQueryOne
                | Self::DeadpoolPostgres
                | Self::Bb8PostgresDefaults
                | Self::PgPoolWireDefaults
                | Self::PgPoolAsyncWireDefaults
                | Self::PgPoolTokioPostgresQueryOne
                | Self::PgPoolTokioPostgresPrepared
                | Self::PgPoolTokioPostgresSimple
                | Self::PgPoolTokioPostgresShared
                | Self::PgPoolAsyncWireShared
        )
    }

    /// The statement the row runs.
    pub fn query(self) -> Query {
        match self {
            Self::DeadpoolPostgresPrepared
            | Self::PgPoolTokioPostgresPrepared
            | Self::PgPoolTokioPostgresPreparedTuned
            | Self::PgPoolTokioPostgresPreparedResetUsed
            | Self::PgPoolTokioPostgresShared
            | Self::PgPoolAsyncWireShared => Query::Prepared,
            Self::DeadpoolPostgresQueryOne
            | Self::PgPoolTokioPostgresQueryOne
            | Self::PgPoolTokioPostgresQueryOneResetUsed => Query::QueryOne,
            _ => Query::Simple,
        }
    }

    /// The deadpool-postgres row running the same statement.
    pub fn same_query_reference(self) -> PgKind {
        match self.query() {
            Query::Prepared => Self::DeadpoolPostgresPrepared,
            Query::QueryOne => Self::DeadpoolPostgresQueryOne,
            Query::Simple => Self::DeadpoolPostgres,
        }
    }

    /// The pool and driver.
    pub fn pool_name(self) -> &'static str {
        match self {
            Self::DeadpoolPostgresPrepared
            | Self::DeadpoolPostgresQueryOne
            | Self::DeadpoolPostgres => "deadpool-postgres",
            Self::Bb8PostgresDefaults | Self::Bb8Postgres => "bb8 + tokio-postgres",
            Self::PgPoolWireDefaults | Self::PgPoolWire => "pg-pool-wire (WirePoolable)",
            Self::PgPoolAsyncWireDefaults | Self::PgPoolAsyncWire => {
                "pg-pool-wire (AsyncWirePoolable)"
            }
            Self::PgPoolTokioPostgresQueryOne
            | Self::PgPoolTokioPostgresPrepared
            | Self::PgPoolTokioPostgresSimple
            | Self::PgPoolTokioPostgres
            | Self::PgPoolTokioPostgresPreparedTuned
            | Self::PgPoolTokioPostgresPreparedResetUsed
            | Self::PgPoolTokioPostgresQueryOneResetUsed => "pg-pool-tokio-postgres",
            Self::PgPoolTokioPostgresShared => "pg-pool-tokio-postgres (get_shared)",
            Self::PgPoolAsyncWireShared => "pg-pool-wire (AsyncWirePoolable, get_shared)",
        }
    }

    /// What differs from the defaults, or "defaults".
    pub fn settings(self) -> &'static str {
        match self {
            Self::Bb8Postgres => "`test_on_check_out(false)`",
            Self::PgPoolWire | Self::PgPoolAsyncWire => "trimmed pool config",
            Self::PgPoolTokioPostgres | Self::PgPoolTokioPostgresPreparedTuned => {
                "`ResetStrategy::None`, trimmed pool config"
            }
            Self::PgPoolTokioPostgresPreparedResetUsed
            | Self::PgPoolTokioPostgresQueryOneResetUsed => "defaults but `pool_reset_when=used`",
            _ => "defaults",
        }
    }

    /// Name for tables and charts: pool, statement and settings.
    pub fn name(self) -> String {
        format!(
            "{}, {} ({})",
            self.pool_name(),
            self.query().label(),
            self.settings()
        )
    }
}

/// bb8's manager for tokio-postgres, written like bb8-postgres' (which would force bb8's
/// default `parking_lot` feature, and with it tokio's, on the whole build).
#[derive(Debug, Clone)]
pub struct TokioPostgresManager {
    pub(crate) config: tokio_postgres::Config,
    pub(crate) connects: Option<ConnectLog>,
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
    pub(crate) start: Instant,
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
    pub(crate) fn record(&self) {
        let at = self.start.elapsed();
        self.times
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(at);
    }

    pub(crate) fn snapshot(&self) -> Vec<Duration> {
        self.times
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

pub(crate) trait PgBench: Send + Sync + 'static {
    /// Checks out, runs the statement, returns; the checkout wait, `None` on error.
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

struct Deadpool(deadpool_postgres::Pool, Query);
pub(crate) struct Bb8(pub(crate) bb8::Pool<TokioPostgresManager>);
pub(crate) struct Wire(pub(crate) pg_pool_tokio::ConnPool<WirePoolable>);
struct AsyncWire(pg_pool_tokio::ConnPool<AsyncWirePoolable>);
struct TokioPostgres(pg_pool_tokio::ConnPool<PgConnection>, Query);
struct TokioPostgresShared(pg_pool_tokio::ConnPool<PgConnection>);
struct AsyncWireShared(pg_pool_tokio::ConnPool<AsyncWirePoolable>);

// Every cycle: a checkout timed with `std::time::Instant`, the statement, the return.

impl PgBench for Deadpool {
    async fn cycle(&self) -> Option<Duration> {
        let started = Instant::now();
        let client = self.0.get().await.ok()?;
        let waited = started.elapsed();
        match self.1 {
            Query::Simple => drop(client.simple_query("SELECT 1").await.ok()?),
            Query::QueryOne => drop(client.query_one("SELECT 1", &[]).await.ok()?),
            Query::Prepared => {
                let statement = client.prepare_cached("SELECT 1").await.ok()?;
                drop(client.query_one(&statement, &[]).await.ok()?);
            }
        }
        Some(waited)
    }
}

impl PgBench for Bb8 {
    async fn cycle(&self) -> Option<Duration> {
        let started = Instant::now();
        let client = self.0.get().await.ok()?;
        let waited = started.elapsed();
        client.simple_query("SELECT 1").await.ok()?;
        Some(waited)
    }
}

impl PgBench for Wire {
    async fn cycle(&self) -> Option<Duration> {
        let started = Instant::now();
        let mut conn = self.0.get().await.ok()?;
        let waited = started.elapsed();
        conn.simple_query("SELECT 1").await.ok()?;
        Some(waited)
    }
}

impl PgBench for AsyncWire {
    async fn cycle(&self) -> Option<Duration> {
        let started = Instant::now();
        let conn = self.0.get().await.ok()?;
        let waited = started.elapsed();
        conn.submit(simple_query_message("SELECT 1"), ResponseCollector::Rows)
            .await
            .ok()?;
        Some(waited)
    }
}

impl PgBench for TokioPostgres {
    async fn cycle(&self) -> Option<Duration> {
        let started = Instant::now();
        let conn = self.0.get().await.ok()?;
        let waited = started.elapsed();
        match self.1 {
            Query::Simple => drop(conn.simple_query("SELECT 1").await.ok()?),
            Query::QueryOne => drop(conn.query_one("SELECT 1", &[]).await.ok()?),
            Query::Prepared => {
                let statement = conn.prepare_cached("SELECT 1").await.ok()?;
                drop(conn.query_one_prepared(&statement, &[]).await.ok()?);
            }
        }
        Some(waited)
    }
}

impl PgBench for TokioPostgresShared {
    async fn cycle(&self) -> Option<Duration> {
        let started = Instant::now();
        let db = self.0.get_shared().await.ok()?;
        let waited = started.elapsed();
        let client = db.handle();
        let statement = client.prepare_cached("SELECT 1").await.ok()?;
        drop(client.query_prepared(&statement, &[]).await.ok()?);
        Some(waited)
    }
}

impl PgBench for AsyncWireShared {
    async fn cycle(&self) -> Option<Duration> {
        let started = Instant::now();
        let db = self.0.get_shared().await.ok()?;
        let waited = started.elapsed();
        db.handle().exec_query("SELECT 1", &[], &[]).await.ok()?;
        Some(waited)
    }
}

/// pg-pool's trimmed configuration for Workload B: its cheapest (no test-on-checkout;
/// connections never sit idle for its 1 s threshold under this load anyway), no idle
/// timeout or lifetime.
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
    /// Median over repetitions of (this row's qps / deadpool-postgres with `prepare_cached`)
    /// in the same repetition.
    pub ratio_to_reference: Option<f64>,
    /// The same against deadpool-postgres running the same statement.
    pub ratio_same_query: Option<f64>,
}

pub(crate) async fn pg_task<P: PgBench>(
    pool: Arc<P>,
    phase: Arc<AtomicU8>,
) -> (u64, u64, Histogram<u32>) {
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
pub(crate) fn drive<P: PgBench>(
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

pub(crate) fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime builds")
}

fn deadpool_postgres(url: &str, max_size: usize, query: Query) -> Deadpool {
    let config: tokio_postgres::Config = url.parse().expect("cluster URL parses");
    let manager = deadpool_postgres::Manager::from_config(
        config,
        NoTls,
        deadpool_postgres::ManagerConfig::default(),
    );
    let pool = deadpool_postgres::Pool::builder(manager)
        .max_size(max_size)
        .build()
        .expect("deadpool-postgres builds");
    Deadpool(pool, query)
}

async fn bb8_postgres(url: &str, max_size: usize, defaults: bool) -> Bb8 {
    let manager = TokioPostgresManager {
        config: url.parse().expect("cluster URL parses"),
        connects: None,
    };
    let builder = bb8::Pool::builder().max_size(u32::try_from(max_size).unwrap_or(u32::MAX));
    let builder = if defaults {
        builder
    } else {
        builder
            .test_on_check_out(false)
            .max_lifetime(None)
            .idle_timeout(None)
            .connection_timeout(Duration::from_secs(60))
    };
    Bb8(builder.build(manager).await.expect("bb8 builds"))
}

/// pg-pool-wire's pool config: its defaults except the size, or the trimmed one.
fn wire_config(url: &str, max_size: usize, defaults: bool) -> ConnPoolConfig {
    if defaults {
        let mut config = WireConnector::from_url(url)
            .expect("cluster URL parses")
            .config()
            .pool_config();
        config.max_size = max_size;
        config
    } else {
        pg_pool_config(url, max_size)
    }
}

async fn tokio_postgres_pool(
    url: &str,
    max_size: usize,
    defaults: bool,
    query: Query,
    reset_when: ResetWhen,
) -> TokioPostgres {
    let config = PgConfig::from_url(url)
        .expect("cluster URL parses")
        .with_reset_when(reset_when);
    let pool = if defaults {
        // `PgConfig`'s defaults and its own pool config, whatever they are: what a user who
        // sets only the pool size gets.
        let mut pool_config = config.pool_config();
        pool_config.max_size = max_size;
        pg_pool_tokio::ConnPool::<PgConnection>::builder(
            PgConnector::<pg_pool_tokio::Tokio>::current(config).expect("inside the runtime"),
        )
        .config(pool_config)
        .build()
        .await
    } else {
        let connector =
            PgConnector::<pg_pool_tokio::Tokio>::current(config.with_reset(ResetStrategy::None))
                .expect("inside the runtime");
        pg_pool_tokio::ConnPool::<PgConnection>::builder(connector)
            .config(pg_pool_config(url, max_size))
            .build()
            .await
    };
    TokioPostgres(pool.expect("pg-pool builds"), query)
}

/// Measures one pool once: builds it, drives `tasks` tasks, then drops it.
pub fn run_once(
    kind: PgKind,
    url: &str,
    max_size: usize,
    tasks: usize,
    warm: Duration,
    measure: Duration,
) -> Option<PgRun> {
    run_plan(
        kind,
        url,
        max_size,
        Plan::Timed {
            tasks,
            warm,
            measure,
        },
    )
}

/// How a run is driven.
#[derive(Debug, Clone, Copy)]
pub enum Plan {
    /// `tasks` tasks for `measure` after `warm` (the throughput figures).
    Timed {
        /// Concurrent tasks.
        tasks: usize,
        /// Warm-up, not counted.
        warm: Duration,
        /// Measured time.
        measure: Duration,
    },
    /// `tasks` tasks sharing `cycles` cycles, then stop (the cost of a cycle, counted from
    /// outside the process: instructions, allocations).
    Cycles {
        /// Concurrent tasks.
        tasks: usize,
        /// Cycles in all.
        cycles: u64,
    },
}

impl Plan {
    fn drive<P: PgBench>(self, rt: &tokio::runtime::Runtime, pool: Arc<P>) -> Option<PgRun> {
        match self {
            Self::Timed {
                tasks,
                warm,
                measure,
            } => drive(rt, pool, tasks, warm, measure),
            Self::Cycles { tasks, cycles } => {
                crate::postgres_cycles::drive_cycles(rt, pool, tasks, cycles)
            }
        }
    }
}

/// Measures one pool once as `plan` says: builds it, drives it, then drops it.
pub fn run_plan(kind: PgKind, url: &str, max_size: usize, plan: Plan) -> Option<PgRun> {
    let rt = runtime();
    let defaults = kind.at_defaults();
    let query = kind.query();
    let result = match kind {
        PgKind::DeadpoolPostgresPrepared
        | PgKind::DeadpoolPostgresQueryOne
        | PgKind::DeadpoolPostgres => {
            let pool = rt.block_on(async { deadpool_postgres(url, max_size, query) });
            plan.drive(&rt, Arc::new(pool))
        }
        PgKind::Bb8PostgresDefaults | PgKind::Bb8Postgres => {
            let pool = rt.block_on(bb8_postgres(url, max_size, defaults));
            plan.drive(&rt, Arc::new(pool))
        }
        PgKind::PgPoolWireDefaults | PgKind::PgPoolWire => {
            let connector = WireConnector::from_url(url).expect("cluster URL parses");
            let pool = rt.block_on(
                pg_pool_tokio::ConnPool::<WirePoolable>::builder(connector)
                    .config(wire_config(url, max_size, defaults))
                    .build(),
            );
            plan.drive(&rt, Arc::new(Wire(pool.expect("pg-pool builds"))))
        }
        PgKind::PgPoolAsyncWireDefaults | PgKind::PgPoolAsyncWire => {
            let connector = WireConnector::from_url(url).expect("cluster URL parses");
            let pool = rt.block_on(
                pg_pool_tokio::ConnPool::<AsyncWirePoolable>::builder(connector)
                    .config(wire_config(url, max_size, defaults))
                    .build(),
            );
            plan.drive(&rt, Arc::new(AsyncWire(pool.expect("pg-pool builds"))))
        }
        PgKind::PgPoolTokioPostgresQueryOne
        | PgKind::PgPoolTokioPostgresPrepared
        | PgKind::PgPoolTokioPostgresSimple
        | PgKind::PgPoolTokioPostgres
        | PgKind::PgPoolTokioPostgresPreparedTuned
        | PgKind::PgPoolTokioPostgresPreparedResetUsed
        | PgKind::PgPoolTokioPostgresQueryOneResetUsed => {
            let reset_when = match kind {
                PgKind::PgPoolTokioPostgresPreparedResetUsed
                | PgKind::PgPoolTokioPostgresQueryOneResetUsed => ResetWhen::Used,
                _ => ResetWhen::default(),
            };
            let defaults = defaults || reset_when == ResetWhen::Used;
            let pool = rt.block_on(tokio_postgres_pool(
                url, max_size, defaults, query, reset_when,
            ));
            plan.drive(&rt, Arc::new(pool))
        }
        PgKind::PgPoolTokioPostgresShared => {
            let pool = rt.block_on(tokio_postgres_pool(
                url,
                max_size,
                true,
                query,
                ResetWhen::Changed,
            ));
            if let Some(max) = shared_max_in_flight() {
                pool.0
                    .set_shared_max_in_flight(max)
                    .expect("a valid per-connection limit");
            }
            plan.drive(&rt, Arc::new(TokioPostgresShared(pool.0)))
        }
        PgKind::PgPoolAsyncWireShared => {
            let connector = WireConnector::from_url(url).expect("cluster URL parses");
            let pool = rt
                .block_on(
                    pg_pool_tokio::ConnPool::<AsyncWirePoolable>::builder(connector)
                        .config(wire_config(url, max_size, true))
                        .build(),
                )
                .expect("pg-pool builds");
            if let Some(max) = shared_max_in_flight() {
                pool.set_shared_max_in_flight(max)
                    .expect("a valid per-connection limit");
            }
            plan.drive(&rt, Arc::new(AsyncWireShared(pool)))
        }
    };
    // Let closes finish (pg-pool and the drivers close sessions in spawned tasks).
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(50)).await });
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

/// The shared rows' per-connection limit: the pool's default unless
/// `PG_POOL_BENCH_SHARED_MAX_IN_FLIGHT` asks for another.
fn shared_max_in_flight() -> Option<usize> {
    std::env::var("PG_POOL_BENCH_SHARED_MAX_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
}
