//! [`WireConnector`]: opens pooled pg-wired connections from a [`WireConfig`].

use std::future::Future;
use std::sync::Arc;

use pg_pool_core::Connector;

use crate::async_poolable::AsyncWirePoolable;
use crate::config::WireConfig;
use crate::error::WireError;
use crate::wire_poolable::WirePoolable;

/// Opens [`WirePoolable`] or [`AsyncWirePoolable`] connections with a [`WireConfig`]:
/// everything `ConnPool::new` cannot pass (startup parameters such as `application_name`,
/// a URL).
///
/// Hand it to `ConnPool::with_connector`; the pool then ignores the address and
/// credentials of its own config. The pool bounds each attempt by its `connect_timeout`
/// (pg-wired has none).
///
/// # Examples
///
/// ```no_run
/// use pg_pool_core::LifecycleHooks;
/// use pg_pool_tokio::ConnPool;
/// use pg_pool_wire::{WireConnector, WirePoolable};
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let connector = WireConnector::from_url("postgres://app:secret@127.0.0.1/shop?application_name=api")?;
/// let config = connector.config().pool_config();
/// let pool = ConnPool::<WirePoolable>::with_connector(config, LifecycleHooks::default(), connector).await?;
/// # drop(pool); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct WireConnector {
    config: Arc<WireConfig>,
}

impl WireConnector {
    /// A connector for `config`.
    pub fn new(config: WireConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }

    /// A connector for a `postgres://` URL (see [`WireConfig::from_url`]).
    ///
    /// # Errors
    ///
    /// As [`WireConfig::from_url`].
    pub fn from_url(url: &str) -> Result<Self, WireError> {
        WireConfig::from_url(url).map(Self::new)
    }

    /// The settings connections are opened with.
    pub fn config(&self) -> &WireConfig {
        &self.config
    }
}

impl Connector<WirePoolable> for WireConnector {
    fn connect(&self) -> impl Future<Output = Result<WirePoolable, WireError>> + Send {
        let config = Arc::clone(&self.config);
        async move { WirePoolable::open(&config).await }
    }
}

impl Connector<AsyncWirePoolable> for WireConnector {
    fn connect(&self) -> impl Future<Output = Result<AsyncWirePoolable, WireError>> + Send {
        let config = Arc::clone(&self.config);
        async move { AsyncWirePoolable::open(&config).await }
    }
}
