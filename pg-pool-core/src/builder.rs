//! The one way to make a pool: [`ConnPool::builder`].

use std::fmt;

use crate::config::ConnPoolConfig;
use crate::error::BuildError;
use crate::hooks::LifecycleHooks;
use crate::pool::ConnPool;
use crate::poolable::{Connector, Poolable};
use crate::runtime::Runtime;

/// Builds a [`ConnPool`]: a connector, then optionally a config, hooks and a runtime
/// handle.
///
/// The config defaults to the connector's own suggestion ([`Connector::pool_config`]: the
/// PostgreSQL drivers derive one from their connection string), else to
/// `ConnPoolConfig::default()`. The runtime defaults to the one the caller runs on
/// ([`Runtime::current`]).
///
/// # Examples
///
/// ```
/// # use std::time::Duration;
/// # use pg_pool_core::{ConnPool, ConnPoolConfig, LifecycleHooks, Poolable};
/// # use pg_pool_core::runtime::{NoRuntime, Runtime};
/// # #[derive(Clone)] struct Threads;
/// # impl Runtime for Threads {
/// #     type Sleep = std::future::Pending<()>;
/// #     fn current() -> Result<Self, NoRuntime> { Ok(Threads) }
/// #     fn sleep(&self, _: Duration) -> Self::Sleep { std::future::pending() }
/// #     fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(&self, f: F) {
/// #         std::thread::spawn(move || futures_lite::future::block_on(f));
/// #     }
/// # }
/// #[derive(Debug)]
/// struct Session;
/// impl Poolable for Session {
///     type Error = std::io::Error;
/// }
///
/// let mut config = ConnPoolConfig::default();
/// config.max_size = 4;
/// let pool: ConnPool<Session, Threads> = ConnPool::builder(|| async { Ok(Session) })
///     .config(config)
///     .hooks(LifecycleHooks::default())
///     .build_lazy()?;
/// assert_eq!(pool.config().max_size, 4);
/// # Ok::<(), pg_pool_core::BuildError<std::io::Error>>(())
/// ```
#[must_use = "a builder does nothing until `build` or `build_lazy`"]
pub struct Builder<T: Poolable, R: Runtime, C> {
    connector: C,
    config: Option<ConnPoolConfig>,
    hooks: LifecycleHooks<T>,
    runtime: Option<R>,
}

// Manual impl: a derive would require `C: Debug` and `R: Debug`.
impl<T: Poolable, R: Runtime, C> fmt::Debug for Builder<T, R, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("config", &self.config)
            .field("hooks", &self.hooks)
            .field("runtime", &self.runtime.is_some())
            .finish_non_exhaustive()
    }
}

impl<T: Poolable, R: Runtime> ConnPool<T, R> {
    /// Starts building a pool that opens connections with `connector` (a driver's
    /// connector, or any `Fn() -> impl Future<Output = Result<T, T::Error>>`).
    pub fn builder<C: Connector<T>>(connector: C) -> Builder<T, R, C> {
        Builder {
            connector,
            config: None,
            hooks: LifecycleHooks::default(),
            runtime: None,
        }
    }
}

impl<T: Poolable, R: Runtime, C: Connector<T>> Builder<T, R, C> {
    /// Uses `config` instead of the connector's suggestion.
    pub fn config(mut self, config: ConnPoolConfig) -> Self {
        self.config = Some(config);
        self
    }

    /// Sets the lifecycle hooks. Default: none.
    pub fn hooks(mut self, hooks: LifecycleHooks<T>) -> Self {
        self.hooks = hooks;
        self
    }

    /// Runs the pool on `runtime` instead of the runtime the caller runs on.
    pub fn runtime(mut self, runtime: R) -> Self {
        self.runtime = Some(runtime);
        self
    }

    /// Builds the pool and opens `min_idle` connections before returning, so that a bad
    /// address or password fails here with its real error.
    ///
    /// # Errors
    ///
    /// [`BuildError::Config`] for an invalid config, [`BuildError::Connector`] for connector
    /// settings that cannot work, [`BuildError::NoRuntime`] when no runtime was given and
    /// none is running, [`BuildError::Connect`] when one of the first `min_idle` connections
    /// cannot be opened.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the pool being built, with the connections opened so far.
    pub async fn build(self) -> Result<ConnPool<T, R>, BuildError<T::Error>> {
        let pool = self.create()?;
        let min_idle = pool.shared().config.min_idle;
        for _ in 0..min_idle {
            pool.shared()
                .open_idle()
                .await
                .map_err(BuildError::Connect)?;
        }
        pool.start();
        Ok(pool)
    }

    /// Builds the pool without opening any connection: `min_idle` is reached in the
    /// background.
    ///
    /// # Errors
    ///
    /// [`BuildError::Config`], [`BuildError::Connector`] or [`BuildError::NoRuntime`].
    pub fn build_lazy(self) -> Result<ConnPool<T, R>, BuildError<T::Error>> {
        let pool = self.create()?;
        pool.start();
        Ok(pool)
    }

    fn create(self) -> Result<ConnPool<T, R>, BuildError<T::Error>> {
        let config = match self.config {
            Some(config) => config,
            None => self.connector.pool_config().unwrap_or_default(),
        };
        config.validate()?;
        self.connector.validate().map_err(BuildError::Connector)?;
        let runtime = match self.runtime {
            Some(runtime) => runtime,
            None => R::current()?,
        };
        Ok(ConnPool::from_parts(
            config,
            self.hooks,
            runtime,
            Box::new(self.connector),
        ))
    }
}
