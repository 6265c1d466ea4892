//! Workload A's contestants: a no-op connection and, for each pool, the smallest manager that
//! opens it, all written the same way (create returns at once, recycling and validation do
//! nothing), so only the pools' own overhead is measured.

use std::convert::Infallible;
use std::fmt;
use std::future::Future;
use std::io;
use std::ops::Deref;
use std::time::Duration;

use std::sync::Mutex;

use pg_pool_core::{ConnPoolConfig, Fairness, LifecycleHooks, Poolable};

/// A connection that does nothing: the unit every pool hands out in Workload A.
#[derive(Debug, Default)]
pub struct Noop {
    /// Touched on every checkout so the compiler cannot drop the access.
    pub touched: u64,
}

impl Poolable for Noop {
    type Error = io::Error;
}

/// A pool under test in Workload A, reduced to "check out one connection".
pub trait BenchPool: Send + Sync + 'static {
    /// The checked-out connection; returns it on drop.
    type Guard<'a>: Deref<Target = Noop> + Send
    where
        Self: 'a;

    /// Checks out a connection; `None` when the pool reports an error.
    fn checkout(&self) -> impl Future<Output = Option<Self::Guard<'_>>> + Send;
}

/// The fairness every pg-pool built from here on gets, instead of its configuration's: set
/// by [`set_fairness`] (the `--fairness` grid), else read once from `PG_POOL_BENCH_FAIRNESS`
/// (`strict`, `bounded:1ms`), else the default.
static FAIRNESS: Mutex<Option<Fairness>> = Mutex::new(None);

/// Makes every pg-pool built from now on use `fairness` (`None`: back to
/// `PG_POOL_BENCH_FAIRNESS` or the default).
pub fn set_fairness(fairness: Option<Fairness>) {
    *FAIRNESS.lock().unwrap_or_else(|p| p.into_inner()) = fairness;
}

/// The fairness pg-pools are built with (see [`set_fairness`]).
///
/// # Panics
///
/// If `PG_POOL_BENCH_FAIRNESS` is set to something that does not parse.
pub fn fairness() -> Fairness {
    if let Some(fairness) = *FAIRNESS.lock().unwrap_or_else(|p| p.into_inner()) {
        return fairness;
    }
    std::env::var("PG_POOL_BENCH_FAIRNESS").map_or_else(
        |_| Fairness::default(),
        |text| {
            text.parse()
                .expect("PG_POOL_BENCH_FAIRNESS: strict or bounded:<duration>")
        },
    )
}

/// The cheapest pg-pool configuration for pure overhead: no test-on-checkout, no idle timeout,
/// no lifetime, no hooks; a checkout timeout long enough never to fire in a measurement.
pub fn pg_pool_config(max_size: usize) -> ConnPoolConfig {
    let mut config = ConnPoolConfig::default();
    config.max_size = max_size;
    config.fairness = fairness();
    config.test_on_checkout = false;
    config.idle_timeout = None;
    config.max_lifetime = None;
    config.checkout_timeout = Duration::from_secs(600);
    config
}

async fn open_noop() -> Result<Noop, io::Error> {
    Ok(Noop::default())
}

/// pg-pool at its defaults except the size: what a user who sets only `max_size` runs
/// (test-on-checkout after 1 s idle, idle timeout, lifetime with jitter, 30 s checkout
/// timeout, whatever [`ConnPoolConfig::default`] holds today).
pub fn pg_pool_default_config(max_size: usize) -> ConnPoolConfig {
    let mut config = ConnPoolConfig::default();
    config.max_size = max_size;
    config.fairness = fairness();
    config
}

/// Builds a pg-pool of [`Noop`] on the runtime `runtime`.
///
/// # Panics
///
/// If the pool cannot be built (it cannot fail with this config and connector).
pub async fn build_pg_pool<R: pg_pool_core::Runtime>(
    max_size: usize,
    runtime: R,
) -> pg_pool_core::ConnPool<Noop, R> {
    build_pg_pool_with(pg_pool_config(max_size), runtime).await
}

/// Builds a pg-pool of [`Noop`] with `config` on the runtime `runtime`.
///
/// # Panics
///
/// If the pool cannot be built (it cannot fail with a valid config and this connector).
pub async fn build_pg_pool_with<R: pg_pool_core::Runtime>(
    config: ConnPoolConfig,
    runtime: R,
) -> pg_pool_core::ConnPool<Noop, R> {
    pg_pool_core::ConnPool::builder(open_noop)
        .config(config)
        .hooks(LifecycleHooks::default())
        .runtime(runtime)
        .build()
        .await
        .expect("a no-op pool builds")
}

/// pg-pool on any runtime.
#[derive(Debug)]
pub struct PgPool<R: pg_pool_core::Runtime>(pub pg_pool_core::ConnPool<Noop, R>);

impl<R: pg_pool_core::Runtime> BenchPool for PgPool<R> {
    type Guard<'a> = pg_pool_core::PoolGuard<Noop, R>;

    async fn checkout(&self) -> Option<Self::Guard<'_>> {
        self.0.get().await.ok()
    }
}

/// pg-pool on tokio at its default configuration ([`pg_pool_default_config`]).
#[derive(Debug)]
pub struct PgPoolDefaults(pub pg_pool_core::ConnPool<Noop, pg_pool_tokio::Tokio>);

impl BenchPool for PgPoolDefaults {
    type Guard<'a> = pg_pool_core::PoolGuard<Noop, pg_pool_tokio::Tokio>;

    async fn checkout(&self) -> Option<Self::Guard<'_>> {
        self.0.get().await.ok()
    }
}

/// deadpool's managed pool with a manager whose `recycle` does nothing.
#[derive(Debug)]
pub struct DeadpoolManager;

impl deadpool::managed::Manager for DeadpoolManager {
    type Type = Noop;
    type Error = Infallible;

    async fn create(&self) -> Result<Noop, Infallible> {
        Ok(Noop::default())
    }

    async fn recycle(
        &self,
        _: &mut Noop,
        _: &deadpool::managed::Metrics,
    ) -> deadpool::managed::RecycleResult<Infallible> {
        Ok(())
    }
}

/// deadpool: no timeouts (waits forever), FIFO queue (its default).
pub struct Deadpool(pub deadpool::managed::Pool<DeadpoolManager>);

// Manual impl: deadpool's `Pool` is not `Debug` for every manager.
impl fmt::Debug for Deadpool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Deadpool { .. }")
    }
}

impl Deadpool {
    /// A deadpool of `max_size` no-op connections.
    ///
    /// # Panics
    ///
    /// If deadpool rejects the config (it does not for a positive size).
    pub fn new(max_size: usize) -> Self {
        Self(
            deadpool::managed::Pool::builder(DeadpoolManager)
                .max_size(max_size)
                .build()
                .expect("deadpool builds"),
        )
    }
}

impl BenchPool for Deadpool {
    type Guard<'a> = deadpool::managed::Object<DeadpoolManager>;

    async fn checkout(&self) -> Option<Self::Guard<'_>> {
        self.0.get().await.ok()
    }
}

/// bb8's manager: connecting returns at once, nothing is ever broken.
#[derive(Debug)]
pub struct Bb8Manager;

impl bb8::ManageConnection for Bb8Manager {
    type Connection = Noop;
    type Error = Infallible;

    async fn connect(&self) -> Result<Noop, Infallible> {
        Ok(Noop::default())
    }

    async fn is_valid(&self, _: &mut Noop) -> Result<(), Infallible> {
        Ok(())
    }

    fn has_broken(&self, _: &mut Noop) -> bool {
        false
    }
}

/// bb8 with `test_on_check_out(false)`, no lifetime or idle timeout, and a 600 s connection
/// timeout so that it never fires in a measurement.
#[derive(Debug)]
pub struct Bb8(pub bb8::Pool<Bb8Manager>);

impl Bb8 {
    /// A bb8 pool of `max_size` no-op connections.
    pub fn new(max_size: usize) -> Self {
        Self(
            bb8::Pool::builder()
                .max_size(u32::try_from(max_size).unwrap_or(u32::MAX))
                .test_on_check_out(false)
                .max_lifetime(None)
                .idle_timeout(None)
                .connection_timeout(Duration::from_secs(600))
                .build_unchecked(Bb8Manager),
        )
    }
}

impl BenchPool for Bb8 {
    type Guard<'a> = bb8::PooledConnection<'a, Bb8Manager>;

    async fn checkout(&self) -> Option<Self::Guard<'_>> {
        self.0.get().await.ok()
    }
}

/// bb8 at its defaults except the size (test on check-out, which calls the no-op
/// `is_valid`; 30 s connection timeout; lifetime and idle timeout).
#[derive(Debug)]
pub struct Bb8Defaults(pub bb8::Pool<Bb8Manager>);

impl Bb8Defaults {
    /// A bb8 pool of `max_size` no-op connections, builder defaults otherwise.
    pub fn new(max_size: usize) -> Self {
        Self(
            bb8::Pool::builder()
                .max_size(u32::try_from(max_size).unwrap_or(u32::MAX))
                .build_unchecked(Bb8Manager),
        )
    }
}

impl BenchPool for Bb8Defaults {
    type Guard<'a> = bb8::PooledConnection<'a, Bb8Manager>;

    async fn checkout(&self) -> Option<Self::Guard<'_>> {
        self.0.get().await.ok()
    }
}

/// mobc's manager: connecting returns at once, the health check does nothing.
#[derive(Debug)]
pub struct MobcManager;

#[mobc::async_trait]
impl mobc::Manager for MobcManager {
    type Connection = Noop;
    type Error = io::Error;

    async fn connect(&self) -> Result<Noop, io::Error> {
        Ok(Noop::default())
    }

    async fn check(&self, conn: Noop) -> Result<Noop, io::Error> {
        Ok(conn)
    }
}

/// mobc with `test_on_check_out(false)`, every connection kept idle (`max_idle = max_open`),
/// no lifetimes, no get timeout.
pub struct Mobc(pub mobc::Pool<MobcManager>);

// Manual impl: mobc's `Pool` is `Debug` only for some managers.
impl fmt::Debug for Mobc {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Mobc { .. }")
    }
}

impl Mobc {
    /// A mobc pool of `max_size` no-op connections. Must run inside a tokio runtime (mobc
    /// spawns its cleaner task).
    pub fn new(max_size: usize) -> Self {
        let max = u64::try_from(max_size).unwrap_or(u64::MAX);
        Self(
            mobc::Pool::builder()
                .max_open(max)
                .max_idle(max)
                .test_on_check_out(false)
                .max_lifetime(None)
                .max_idle_lifetime(None)
                .get_timeout(None)
                .health_check_interval(None)
                .build(MobcManager),
        )
    }
}

impl BenchPool for Mobc {
    type Guard<'a> = mobc::Connection<MobcManager>;

    async fn checkout(&self) -> Option<Self::Guard<'_>> {
        self.0.get().await.ok()
    }
}

/// qp's manager: creation returns at once, validation says yes without work.
#[derive(Debug)]
pub struct QpManager;

#[qp::async_trait]
impl qp::resource::Manage for QpManager {
    type Output = Noop;
    type Error = Infallible;

    async fn try_create(&self) -> Result<Noop, Infallible> {
        Ok(Noop::default())
    }
}

/// qp, checked out with `acquire_unchecked` (no validation): its cheapest path.
pub struct Qp(pub qp::Pool<QpManager>);

// Manual impl: qp's `Pool` is not `Debug`.
impl fmt::Debug for Qp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Qp { .. }")
    }
}

impl Qp {
    /// A qp pool of `max_size` no-op connections.
    pub fn new(max_size: usize) -> Self {
        Self(qp::Pool::new(QpManager, max_size))
    }
}

impl BenchPool for Qp {
    type Guard<'a> = qp::Pooled<'a, QpManager>;

    async fn checkout(&self) -> Option<Self::Guard<'_>> {
        self.0.acquire_unchecked().await.ok()
    }
}
