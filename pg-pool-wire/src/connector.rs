//! [`WireConnector`]: opens pooled pg-wired connections from a [`WireConfig`].

use std::future::Future;
use std::sync::Arc;

use pg_pool_core::{ConnPoolConfig, Connector};

use crate::async_poolable::AsyncWirePoolable;
use crate::config::WireConfig;
use crate::error::WireError;
use crate::hosts::{self, Opened};
use crate::tls::WireTls;
use crate::wire_poolable::WirePoolable;
use pg_pool_conninfo::PasswordProvider;

/// Opens [`WirePoolable`] or [`AsyncWirePoolable`] connections with a [`WireConfig`]:
/// everything `ConnPool::new` cannot pass (startup parameters such as `application_name`,
/// a URL).
///
/// Hand it to `ConnPool::builder`; the pool then ignores the address and credentials of
/// its own config. The pool bounds each attempt by its `connect_timeout` (pg-wired has
/// none), and the connector each host's by [`WireConfig::per_host_timeout`].
///
/// Every connect walks the config's hosts again, in order, as libpq does (see
/// [Several hosts](WireConfig#several-hosts)), resolving host names anew; so after a
/// server change (a failover: the pool starts a new generation) the next connects find
/// whichever host now matches `target_session_attrs`.
///
/// The TLS settings and address ([`WireTls`]) are checked and prepared once, here:
/// [`try_new`](Self::try_new) and [`from_url`](Self::from_url) report what pg-wired
/// cannot honour at once; [`new`](Self::new) keeps the problem and every connect attempt
/// reports it (nothing connects with settings it cannot honour). A [`PasswordProvider`]
/// set with [`with_password_provider`](Self::with_password_provider) supplies the
/// password of each attempt.
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
/// let mut config = connector.config().pool_config();
/// config.max_size = 20;
/// let pool = ConnPool::<WirePoolable>::builder(connector)
///     .config(config)
///     .hooks(LifecycleHooks::default())
///     .build()
///     .await?;
/// # drop(pool); Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct WireConnector {
    config: Arc<WireConfig>,
    /// The prepared TLS settings, or why they cannot be honoured (setting, reason).
    tls: Arc<Result<WireTls, (String, String)>>,
    password: Option<PasswordProvider>,
}

impl WireConnector {
    /// A connector for `config`. A TLS setting or address pg-wired cannot honour is
    /// reported by every connect attempt; use [`try_new`](Self::try_new) to see it at once.
    pub fn new(config: WireConfig) -> Self {
        let tls = WireTls::new(&config).map_err(|e| match e {
            WireError::Config { setting, reason } => (setting, reason),
            other => ("sslmode".to_owned(), other.to_string()),
        });
        Self {
            config: Arc::new(config),
            tls: Arc::new(tls),
            password: None,
        }
    }

    /// A connector for `config`, refusing TLS settings or an address pg-wired cannot honour.
    ///
    /// # Errors
    ///
    /// As [`WireTls::new`]: [`WireError::Config`] naming the setting.
    pub fn try_new(config: WireConfig) -> Result<Self, WireError> {
        let connector = Self::new(config);
        connector.tls()?;
        Ok(connector)
    }

    /// A connector for a `postgres://` URL (see [`WireConfig::from_url`]).
    ///
    /// # Errors
    ///
    /// As [`WireConfig::from_url`] and [`try_new`](Self::try_new).
    pub fn from_url(url: &str) -> Result<Self, WireError> {
        WireConfig::from_url(url).and_then(Self::try_new)
    }

    /// Fetches the password of every connect attempt from `provider` (it replaces the
    /// config's password for that attempt); for chaining.
    pub fn with_password_provider(mut self, provider: PasswordProvider) -> Self {
        self.password = Some(provider);
        self
    }

    /// The prepared TLS settings.
    ///
    /// # Errors
    ///
    /// [`WireError::Config`] when the TLS settings or the address cannot be honoured.
    pub fn tls(&self) -> Result<&WireTls, WireError> {
        self.tls
            .as_ref()
            .as_ref()
            .map_err(|(setting, reason)| WireError::Config {
                setting: setting.clone(),
                reason: reason.clone(),
            })
    }

    /// Opens a bare `WireConn`: the provider's password (if any), then the hosts in order
    /// with TLS as prepared.
    async fn open(&self) -> Result<Opened, WireError> {
        let tls = self.tls()?;
        match &self.password {
            Some(provider) => {
                let password = provider
                    .fetch()
                    .await
                    .map_err(|source| WireError::PasswordProvider { source })?;
                hosts::connect(&self.config, tls, password.expose()).await
            }
            None => hosts::connect(&self.config, tls, &self.config.password).await,
        }
    }

    /// The settings connections are opened with.
    pub fn config(&self) -> &WireConfig {
        &self.config
    }
}

impl Connector<WirePoolable> for WireConnector {
    /// [`WireConfig::pool_config`]: the sizes, timeouts and name the URL asks for.
    fn pool_config(&self) -> Option<ConnPoolConfig> {
        Some(self.config().pool_config())
    }

    /// [`WireConfig::validate`] and the TLS settings ([`WireConnector::tls`]).
    fn validate(&self) -> Result<(), WireError> {
        self.config().validate()?;
        self.tls().map(drop)
    }

    fn connect(&self) -> impl Future<Output = Result<WirePoolable, WireError>> + Send {
        let this = self.clone();
        async move {
            let opened = this.open().await?;
            Ok(WirePoolable::new(opened.conn).watching(opened.watch))
        }
    }
}

impl Connector<AsyncWirePoolable> for WireConnector {
    /// [`WireConfig::pool_config`]: the sizes, timeouts and name the URL asks for.
    fn pool_config(&self) -> Option<ConnPoolConfig> {
        Some(self.config().pool_config())
    }

    /// [`WireConfig::validate`] and the TLS settings ([`WireConnector::tls`]).
    fn validate(&self) -> Result<(), WireError> {
        self.config().validate()?;
        self.tls().map(drop)
    }

    fn connect(&self) -> impl Future<Output = Result<AsyncWirePoolable, WireError>> + Send {
        let this = self.clone();
        async move { AsyncWirePoolable::new(this.open().await?.conn) }
    }
}
