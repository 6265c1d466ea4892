//! [`PgConnector`]: opens pooled sessions on the pool's own runtime.

use std::future::Future;
use std::sync::Arc;

use pg_pool_core::{ConnPool, ConnPoolConfig, Connector, runtime::NoRuntime};

use crate::config::PgConfig;
use crate::connection::PgConnection;
use crate::error::PgError;
use crate::runtime::PgRuntime;
use crate::sslmode::PgTls;
use pg_pool_conninfo::PasswordProvider;

/// A pool of tokio-postgres sessions on runtime `R`.
pub type PgPool<R> = ConnPool<PgConnection, R>;

/// Opens [`PgConnection`]s with a [`PgConfig`] on the runtime `R` it holds, which also
/// drives each session's `Connection` future.
///
/// Hand it to [`ConnPool::builder`], which takes the pool settings of the connection
/// string ([`PgConfig::pool_config`]) unless given others; pass the connector's runtime
/// with `.runtime(..)` when it is not the one the caller runs on. The pool bounds each
/// attempt, over the whole startup (TLS handshake included), by its `connect_timeout`.
///
/// TLS settings ([`PgConfig::tls`]) are checked and prepared once, here:
/// [`try_new`](Self::try_new) reports a problem at once; [`new`](Self::new) keeps it and
/// every connect attempt reports it (nothing connects with settings it cannot honour). A [`PasswordProvider`] set with
/// [`with_password_provider`](Self::with_password_provider) supplies the password of
/// each attempt.
///
/// # Examples
///
/// ```no_run
/// # #[cfg(feature = "smol")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use pg_pool_smol::Smol;
/// use pg_pool_tokio_postgres::{PgConfig, PgConnector, PgPool};
///
/// smol::block_on(async {
///     let config = PgConfig::from_url("postgres://app:secret@127.0.0.1/shop?application_name=api")?;
///     let connector = PgConnector::try_new(Smol::default(), config)?;
///     let pool: PgPool<Smol> = PgPool::builder(connector).build().await?;
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
    /// The prepared TLS settings, or why they cannot be honoured (setting, reason).
    tls: Arc<Result<PgTls, (String, String)>>,
    password: Option<PasswordProvider>,
}

impl<R: PgRuntime> PgConnector<R> {
    /// A connector for `config` on `runtime`. A problem with the TLS settings is reported
    /// by every connect attempt; use
    /// [`try_new`](Self::try_new) to see it at once.
    pub fn new(runtime: R, config: PgConfig) -> Self {
        let tls = PgTls::new(&effective_tls(&config)).map_err(|e| match e {
            PgError::Config { setting, reason } => (setting, reason),
            other => ("sslmode".to_owned(), other.to_string()),
        });
        Self {
            runtime,
            config: Arc::new(config),
            tls: Arc::new(tls),
            password: None,
        }
    }

    /// A connector for `config` on `runtime`, refusing a config that does not validate
    /// ([`PgConfig::validate`]: a NUL byte in a startup value, ...) and TLS settings it
    /// cannot honour.
    ///
    /// # Errors
    ///
    /// [`PgConfig::validate`]'s error, or as [`PgTls::new`]: [`PgError::Config`] naming the
    /// setting.
    pub fn try_new(runtime: R, config: PgConfig) -> Result<Self, PgError> {
        config.validate()?;
        let connector = Self::new(runtime, config);
        connector.tls()?;
        Ok(connector)
    }

    /// A connector for `config` on the runtime the caller runs on.
    ///
    /// # Errors
    ///
    /// [`NoRuntime`] outside a runtime `R` can find.
    pub fn current(config: PgConfig) -> Result<Self, NoRuntime> {
        Ok(Self::new(R::current()?, config))
    }

    /// Fetches the password of every connect attempt from `provider` (it replaces the
    /// config's password for that attempt); for chaining.
    pub fn with_password_provider(mut self, provider: PasswordProvider) -> Self {
        self.password = Some(provider);
        self
    }

    /// The settings sessions are opened with.
    pub fn config(&self) -> &PgConfig {
        &self.config
    }

    /// The runtime sessions are opened and driven on.
    pub fn runtime(&self) -> &R {
        &self.runtime
    }

    /// The password provider, if one was set.
    pub(crate) fn password_provider(&self) -> Option<&PasswordProvider> {
        self.password.as_ref()
    }

    /// The prepared TLS settings.
    ///
    /// # Errors
    ///
    /// [`PgError::Config`] when the TLS settings cannot be honoured.
    pub fn tls(&self) -> Result<&PgTls, PgError> {
        self.tls
            .as_ref()
            .as_ref()
            .map_err(|(setting, reason)| PgError::Config {
                setting: setting.clone(),
                reason: reason.clone(),
            })
    }
}

/// [`PgConfig::tls`], made at least as strict as `pg`'s own `ssl_mode` and
/// `channel_binding` (which tokio-postgres's URL parser sets), so that a `require` said
/// there is never weakened.
fn effective_tls(config: &PgConfig) -> pg_pool_conninfo::TlsSettings {
    use pg_pool_conninfo::{ChannelBinding, SslMode};
    use tokio_postgres::config::{ChannelBinding as Cb, SslMode as Mode};
    let mut tls = config.tls.clone();
    if config.pg.get_ssl_mode() == Mode::Require
        && matches!(
            tls.mode,
            SslMode::Disable | SslMode::Allow | SslMode::Prefer
        )
    {
        tls.mode = SslMode::Require;
    }
    if config.pg.get_channel_binding() == Cb::Require {
        tls.channel_binding = ChannelBinding::Require;
    }
    tls
}

impl<R: PgRuntime> Connector<PgConnection> for PgConnector<R> {
    /// [`PgConfig::pool_config`]: the sizes, timeouts and name the connection string asks
    /// for.
    fn pool_config(&self) -> Option<ConnPoolConfig> {
        Some(self.config.pool_config())
    }

    /// [`PgConfig::validate`] and the TLS settings ([`PgConnector::tls`]).
    fn validate(&self) -> Result<(), PgError> {
        self.config.validate()?;
        self.tls().map(drop)
    }

    fn connect(&self) -> impl Future<Output = Result<PgConnection, PgError>> + Send {
        let this = self.clone();
        async move {
            // Nothing unchecked reaches a startup message, whoever built the config.
            this.config.validate()?;
            let tls = this.tls()?;
            let options = this.config.session_options();
            let session = match &this.password {
                Some(provider) => {
                    let password = provider
                        .fetch()
                        .await
                        .map_err(|source| PgError::PasswordProvider { source })?;
                    let mut pg = this.config.pg.clone();
                    pg.password(password.expose());
                    this.runtime.open(&pg, tls, &options).await?
                }
                None => this.runtime.open(&this.config.pg, tls, &options).await?,
            };
            let tls = tls.clone();
            Ok(PgConnection::from_session(session, this.config)
                .with_session_runtime(this.runtime, tls))
        }
    }
}
