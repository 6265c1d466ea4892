//! [`PgTls`]: libpq's `sslmode` for one connector, with its rustls configuration built once.

#[cfg(feature = "tls")]
use std::sync::Arc;

use pg_pool_conninfo::{ChannelBinding, SslMode, TlsSettings};

use crate::error::PgError;

/// How a connector secures its sessions: [`PgConfig::tls`](crate::PgConfig::tls) checked
/// and prepared once (certificate files read, the rustls configuration built), with
/// libpq's meaning of each `sslmode`:
///
/// - `disable`: plain text.
/// - `allow`: plain text first; if the server refuses the session (any error response
///   during startup, for example a `hostssl`-only `pg_hba.conf`), once more over TLS.
/// - `prefer`: TLS first; plain text only if the server answers the TLS request with
///   `N` (it has TLS off), never after a failed handshake.
/// - `require`: TLS or fail; the certificate chain is verified only when `sslrootcert`
///   is set (then as `verify-ca`), as in libpq.
/// - `verify-ca`: TLS, chain verified against `sslrootcert`, host name not checked.
/// - `verify-full`: TLS, chain and host name verified.
///
/// The host name verified (and sent as SNI) is the host as given (`host`), also when
/// `hostaddr` says where to dial. Unix-socket hosts never use TLS (PostgreSQL does not
/// offer it there; libpq ignores `sslmode` for them), except that on tokio a config that
/// mixes unix-socket and TCP hosts under `require` or stricter fails on its unix-socket
/// hosts (tokio-postgres asks for TLS on every host of one config).
///
/// Without the `tls` feature only `disable` is accepted: any other mode is refused by
/// [`PgTls::new`] rather than silently connecting in plain text.
///
/// # Examples
///
/// ```no_run
/// # #[cfg(all(feature = "tokio", feature = "tls"))]
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use pg_pool_core::Runtime as _;
/// use pg_pool_tokio::Tokio;
/// use pg_pool_tokio_postgres::pg_pool_conninfo::{RootCerts, SslMode};
/// use pg_pool_tokio_postgres::{PgConfig, PgConnector};
///
/// let mut config = PgConfig::from_url("postgres://app@db.example.com/shop")?;
/// config.tls.mode = SslMode::VerifyFull;
/// config.tls.root_certs = Some(RootCerts::File("/etc/ssl/db-ca.pem".into()));
/// // Refused here, not at the first connect, if the CA file is missing or unusable.
/// let connector = PgConnector::try_new(Tokio::current()?, config)?;
/// let pool = pg_pool_tokio_postgres::PgPool::<Tokio>::builder(connector).build().await?;
/// # drop(pool); Ok(()) }
/// ```
#[derive(Clone)]
pub struct PgTls {
    mode: SslMode,
    channel_binding: ChannelBinding,
    #[cfg(feature = "tls")]
    config: Option<Arc<rustls::ClientConfig>>,
}

// Manual: the rustls configuration holds the client key.
impl std::fmt::Debug for PgTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTls")
            .field("mode", &self.mode)
            .field("channel_binding", &self.channel_binding)
            .finish_non_exhaustive()
    }
}

/// What one connect attempt does about TLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Attempt {
    /// Plain text; for `allow`, a refusal by the server is followed by `Tls { required }`.
    Plain { then_tls: bool },
    /// Ask for TLS; `required` fails when the server declines, otherwise plain text then.
    Tls { required: bool },
}

impl PgTls {
    /// Checks and prepares `settings`.
    ///
    /// # Errors
    ///
    /// [`PgError::Config`] naming the setting: a mode other than `disable` without the
    /// `tls` feature; and, as libpq, `verify-ca`/`verify-full` without `sslrootcert`,
    /// `sslrootcert=system` with a mode other than `verify-full`, `sslcert` without
    /// `sslkey` (or the reverse), or a certificate or key file that cannot be read or
    /// used (the key is never quoted).
    pub fn new(settings: &TlsSettings) -> Result<Self, PgError> {
        #[cfg(feature = "tls")]
        {
            let config = pg_pool_conninfo::rustls::client_config(settings).map_err(|e| {
                let setting = match &e {
                    pg_pool_conninfo::rustls::TlsConfigError::Setting { setting, .. }
                    | pg_pool_conninfo::rustls::TlsConfigError::File { setting, .. } => setting,
                    _ => "sslcert",
                };
                PgError::config(setting, e.to_string())
            })?;
            Ok(Self {
                mode: settings.mode,
                channel_binding: settings.channel_binding,
                config,
            })
        }
        #[cfg(not(feature = "tls"))]
        {
            if settings.mode != SslMode::Disable {
                return Err(PgError::config(
                    "sslmode",
                    format!(
                        "{:?} needs TLS, and pg-pool-tokio-postgres was built without its \
                         `tls` feature; enable it, or set sslmode=disable",
                        settings.mode
                    ),
                ));
            }
            Ok(Self {
                mode: settings.mode,
                channel_binding: settings.channel_binding,
            })
        }
    }

    /// Plain text only (`sslmode=disable`).
    pub fn disabled() -> Self {
        Self {
            mode: SslMode::Disable,
            channel_binding: ChannelBinding::Prefer,
            #[cfg(feature = "tls")]
            config: None,
        }
    }

    /// The `sslmode` in effect.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// The first attempt for a TCP host.
    pub(crate) fn attempt(&self) -> Attempt {
        match self.mode {
            SslMode::Disable => Attempt::Plain { then_tls: false },
            SslMode::Allow => Attempt::Plain { then_tls: true },
            SslMode::Prefer => Attempt::Tls { required: false },
            _ => Attempt::Tls { required: true },
        }
    }

    /// `config` with this `channel_binding` and the driver's `sslmode` for `attempt`.
    pub(crate) fn driver_config(
        &self,
        config: &tokio_postgres::Config,
        attempt: Attempt,
    ) -> tokio_postgres::Config {
        use tokio_postgres::config::{ChannelBinding as Cb, SslMode as Mode};
        let mut config = config.clone();
        config.ssl_mode(match attempt {
            Attempt::Plain { .. } => Mode::Disable,
            Attempt::Tls { required: false } => Mode::Prefer,
            Attempt::Tls { required: true } => Mode::Require,
        });
        config.channel_binding(match self.channel_binding {
            ChannelBinding::Disable => Cb::Disable,
            ChannelBinding::Require => Cb::Require,
            _ => Cb::Prefer,
        });
        config
    }

    /// The rustls configuration (`None` for `disable`).
    #[cfg(feature = "tls")]
    pub(crate) fn rustls(&self) -> Result<&Arc<rustls::ClientConfig>, PgError> {
        self.config
            .as_ref()
            .ok_or_else(|| PgError::config("sslmode", "TLS was asked for under sslmode=disable"))
    }
}

/// Whether the server refused a plain-text session (it answered with an error), so
/// `allow` tries TLS; I/O errors and timeouts are not refusals.
pub(crate) fn refused_by_server(error: &PgError) -> bool {
    error.db_error().is_some()
}
