//! Driver swap: one application, written once against the pool, run with pg-pool-wire or
//! pg-pool-tokio-postgres by changing only the connection type (and the connector that
//! opens it).
//!
//! The pool side (config, hooks, metrics, drain) is generic over the connection; the only
//! driver-specific part is the two-method [`Sql`] trait, implemented here for both drivers.

use std::error::Error;
use std::future::Future;
use std::time::Duration;

use pg_pool::pg_pool_core::ConnPool;
use pg_pool::wire::WirePoolable;
use pg_pool::{BoxFuture, ConnPoolConfig, HookError, LifecycleHooks, Poolable, Runtime};
use pg_pool_tokio_postgres::PgConnection;

/// An error from either driver.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// What the application needs from a connection: run a statement, read one value.
pub trait Sql: Poolable {
    /// Runs `sql`, ignoring any rows.
    fn exec(&mut self, sql: &str) -> impl Future<Output = Result<(), BoxError>> + Send;
    /// Runs `sql` and returns the first column of the first row as text.
    fn scalar(&mut self, sql: &str) -> impl Future<Output = Result<String, BoxError>> + Send;
}

impl Sql for WirePoolable {
    async fn exec(&mut self, sql: &str) -> Result<(), BoxError> {
        self.execute(sql).await?;
        Ok(())
    }

    async fn scalar(&mut self, sql: &str) -> Result<String, BoxError> {
        Ok(self.query_value(sql).await?.unwrap_or_default())
    }
}

impl Sql for PgConnection {
    async fn exec(&mut self, sql: &str) -> Result<(), BoxError> {
        self.batch_execute(sql).await?;
        Ok(())
    }

    async fn scalar(&mut self, sql: &str) -> Result<String, BoxError> {
        let rows = self.simple_query(sql).await?;
        let value = rows.iter().find_map(|message| match message {
            tokio_postgres::SimpleQueryMessage::Row(row) => row.get(0).map(str::to_owned),
            _ => None,
        });
        Ok(value.unwrap_or_default())
    }
}

/// The application's pool configuration, the same for every driver.
pub fn app_config() -> ConnPoolConfig {
    let mut config = ConnPoolConfig::default();
    config.name = "swap-app".into();
    config.max_size = 4;
    config.min_idle = 1;
    config.checkout_timeout = Duration::from_secs(10);
    config
}

/// The application's hooks, the same for every driver: tag the session at checkout, clean
/// it at checkin.
pub fn app_hooks<T: Sql>() -> LifecycleHooks<T> {
    fn run<'a, T: Sql>(conn: &'a mut T, sql: &'static str) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(async move {
            conn.exec(sql)
                .await
                .map_err(|e| HookError::new(e.to_string()))
        })
    }
    LifecycleHooks::default()
        .on_checkout(|conn: &mut T| run(conn, "SET application_name = 'swap-app'"))
        .on_checkin(|conn: &mut T| run(conn, "RESET ALL"))
}

/// What one run of the application observed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppReport {
    /// Queries that succeeded.
    pub queries: usize,
    /// `application_name` as the server saw it inside each checkout (all equal).
    pub application_names: Vec<String>,
    /// Connections the pool opened.
    pub creates: u64,
    /// Connections still open after drain.
    pub left_after_drain: usize,
}

/// The application: 8 tasks x 10 checkouts, each reading a value and the session's
/// `application_name`; then the metrics, then a drain. Generic over the driver.
pub async fn run_app<T: Sql, R: Runtime>(pool: ConnPool<T, R>) -> Result<AppReport, BoxError> {
    let mut tasks = Vec::new();
    for task in 0..8 {
        let pool = pool.clone();
        tasks.push(tokio::spawn(async move {
            let mut names = Vec::new();
            for i in 0..10 {
                let mut conn = pool.get().await?;
                let sum = conn.scalar(&format!("SELECT {task} + {i}")).await?;
                assert_eq!(sum, (task + i).to_string());
                names.push(
                    conn.scalar("SELECT current_setting('application_name')")
                        .await?,
                );
            }
            Ok::<_, BoxError>(names)
        }));
    }
    let mut application_names = Vec::new();
    for task in tasks {
        application_names.extend(task.await??);
    }
    application_names.dedup();
    let metrics = pool.metrics();
    println!(
        "{}",
        metrics
            .render_prometheus("swap-app")
            .lines()
            .filter(|l| l.starts_with("pg_pool_c"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    pool.drain().await;
    let after = pool.metrics();
    Ok(AppReport {
        queries: 80 * 2,
        application_names,
        creates: metrics.creates,
        left_after_drain: after.size + after.closing,
    })
}
