//! [`PgConnector`]: opens pooled sessions on the pool's own runtime.

use std::future::Future;
use std::sync::Arc;

use pg_pool_core::{ConnPool, ConnPoolConfig, Connector, LifecycleHooks, NoRuntime, PoolError};

use crate::config::PgConfig;
use crate::connection::PgConnection;
use crate::error::PgError;
use crate::runtime::PgRuntime;

/// A pool of tokio-postgres sessions on runtime `R`.
pub type PgPool<R> = ConnPool<PgConnection, R>;

/// Opens [`PgConnection`]s with a [`PgConfig`] on the runtime `R` it holds, which also
/// drives each session's `Connection` future.
///
/// Hand it to `ConnPool::build` (or use [`PgConnector::build_pool`]). The pool bounds each
/// attempt, over the whole startup, by its `connect_timeout`.
///
/// # Examples
///
/// ```no_run
/// # #[cfg(feature = "smol")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use pg_pool_smol::Smol;
/// use pg_pool_tokio_postgres::{PgConfig, PgConnector};
///
/// smol::block_on(async {
///     let config = PgConfig::from_url("postgres://app:secret@127.0.0.1/shop?application_name=api")?;
///     let pool = PgConnector::new(Smol::default(), config).build_pool(Default::default()).await?;
///     let conn = pool.get().await?;
///     let row = conn.query_one("SELECT 40 + 2", &[]).await?;
///     assert_eq!(row.get::<_, i32>(0), 42);
///     Ok(())
/// })
/// # }
/// # #[cfg(not(feature = "smol"))]
/// # fn main() {}
/// ```
#[derive(Debug, Clone)]
pub struct PgConnector<R> {
    runtime: R,
    config: Arc<PgConfig>,
}

impl<R: PgRuntime> PgConnector<R> {
    /// A connector for `config` on `runtime`.
    pub fn new(runtime: R, config: PgConfig) -> Self {
        Self {
            runtime,
            config: Arc::new(config),
        }
    }

    /// A connector for `config` on the runtime the caller runs on.
    ///
    /// # Errors
    ///
    /// [`NoRuntime`] outside a runtime `R` can find.
    pub fn current(config: PgConfig) -> Result<Self, NoRuntime> {
        Ok(Self::new(R::current()?, config))
    }

    /// The settings sessions are opened with.
    pub fn config(&self) -> &PgConfig {
        &self.config
    }

    /// The runtime sessions are opened and driven on.
    pub fn runtime(&self) -> &R {
        &self.runtime
    }

    /// Builds a pool with this connector on its runtime, opening `min_idle` sessions first.
    /// `pool` is usually [`PgConfig::pool_config`] with your sizes; `Default::default()`
    /// takes that as is.
    ///
    /// # Errors
    ///
    /// As `ConnPool::build`: an invalid pool config, or the first connect error while
    /// opening `min_idle` sessions.
    pub async fn build_pool(
        self,
        pool: Option<ConnPoolConfig>,
    ) -> Result<PgPool<R>, PoolError<PgError>> {
        self.build_pool_with_hooks(pool, LifecycleHooks::default())
            .await
    }

    /// [`build_pool`](Self::build_pool) with lifecycle hooks.
    ///
    /// # Errors
    ///
    /// As [`build_pool`](Self::build_pool).
    pub async fn build_pool_with_hooks(
        self,
        pool: Option<ConnPoolConfig>,
        hooks: LifecycleHooks<PgConnection>,
    ) -> Result<PgPool<R>, PoolError<PgError>> {
        let pool = pool.unwrap_or_else(|| self.config.pool_config());
        let runtime = self.runtime.clone();
        ConnPool::build(pool, hooks, runtime, self).await
    }
}

impl<R: PgRuntime> Connector<PgConnection> for PgConnector<R> {
    fn connect(&self) -> impl Future<Output = Result<PgConnection, PgError>> + Send {
        let runtime = self.runtime.clone();
        let config = Arc::clone(&self.config);
        async move {
            let client = runtime.open(&config.pg).await?;
            Ok(PgConnection::new(client, config).with_runtime(runtime))
        }
    }
}
