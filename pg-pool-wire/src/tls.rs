//! [`WireTls`]: libpq's `sslmode` mapped onto what pg-wired can do.

#[cfg(feature = "tls")]
use pg_pool_conninfo::RootCerts;
use pg_pool_conninfo::{ChannelBinding, SslMode};
use pg_wired::{PgWireError, TlsMode, WireConn};

use crate::config::WireConfig;
use crate::error::WireError;

/// A [`WireConfig`]'s TLS settings and address, checked and prepared once (certificate
/// files read), mapped onto pg-wired.
///
/// pg-wired dials TCP only, and whenever it uses TLS it verifies the server certificate's
/// chain **and** host name (against `sslrootcert`, or without one against the Mozilla
/// roots bundled in `webpki-roots`); it has no way to skip either check. So:
///
/// | `sslmode` | on pg-wired |
/// |---|---|
/// | `disable` | plain text |
/// | `allow` | plain text; if the server refuses the session, once more over TLS, verified as `verify-full` |
/// | `prefer` | TLS first, verified as `verify-full`; plain text only if the server declines TLS (`N`), never after a failed handshake |
/// | `require` | TLS, verified as `verify-full` (stricter than libpq, which checks nothing without `sslrootcert`) |
/// | `verify-ca` | refused: pg-wired cannot skip the host-name check |
/// | `verify-full` | as libpq |
///
/// A server whose certificate libpq would accept unverified (`prefer`, `require`) is
/// therefore refused with an error naming the certificate problem, never used in plain
/// text: give `sslrootcert` (its CA), or set `sslmode=disable` where plain text is meant.
///
/// Also refused when built: a unix-socket address (a host starting with `/`: pg-wired
/// connects with `TcpStream` only); `channel_binding=disable` with a mode that may use TLS
/// (pg-wired always uses `SCRAM-SHA-256-PLUS` over TLS when the server offers it); any
/// mode but `disable` without the `tls` feature. `channel_binding=require` is checked
/// after authentication (the session is dropped unless `SCRAM-SHA-256-PLUS` was used).
///
/// # Examples
///
/// ```no_run
/// use pg_pool_wire::pg_pool_conninfo::{RootCerts, SslMode};
/// use pg_pool_wire::{WireConfig, WireConnector};
///
/// let mut config = WireConfig::from_url("postgres://app@db.example.com/shop")?;
/// config.tls.mode = SslMode::VerifyFull;
/// config.tls.root_certs = Some(RootCerts::System);
/// let connector = WireConnector::try_new(config)?;
/// assert_eq!(connector.tls()?.mode(), SslMode::VerifyFull);
///
/// let mut config = WireConfig::default();
/// config.tls.mode = SslMode::VerifyCa; // pg-wired cannot skip the host-name check
/// assert!(WireConnector::try_new(config).is_err());
/// # Ok::<(), pg_pool_wire::WireError>(())
/// ```
#[derive(Clone)]
pub struct WireTls {
    mode: SslMode,
    channel_binding: ChannelBinding,
    #[cfg(feature = "tls")]
    config: pg_wired::TlsConfig,
}

impl std::fmt::Debug for WireTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireTls")
            .field("mode", &self.mode)
            .field("channel_binding", &self.channel_binding)
            .finish_non_exhaustive()
    }
}

impl WireTls {
    /// Checks `config`'s TLS settings and address and reads the certificate files.
    ///
    /// # Errors
    ///
    /// [`WireError::Config`] naming the setting, for what pg-wired cannot honour (see
    /// above) and for what libpq refuses (`verify-full` without `sslrootcert`,
    /// `sslrootcert=system` with another mode, `sslcert` without `sslkey`, unreadable
    /// files; a key is never quoted).
    pub fn new(config: &WireConfig) -> Result<Self, WireError> {
        let bad = |setting: &str, reason: String| WireError::Config {
            setting: setting.to_owned(),
            reason,
        };
        if crate::hosts::split_addrs(&config.addr)
            .any(|addr| addr.starts_with('/') || addr.starts_with('@'))
        {
            return Err(bad("host", crate::hosts::UNIX_SOCKETS.to_owned()));
        }
        let settings = &config.tls;
        if settings.mode == SslMode::VerifyCa {
            return Err(bad(
                "sslmode",
                "verify-ca cannot be honoured by pg-wired, which always checks the host name \
                 too; use verify-full (with a certificate for the host name you connect to), \
                 or pg-pool-tokio-postgres"
                    .to_owned(),
            ));
        }
        if settings.mode != SslMode::Disable && settings.channel_binding == ChannelBinding::Disable
        {
            return Err(bad(
                "channel_binding",
                "pg-wired always uses channel binding over TLS when the server offers it; \
                 channel_binding=disable needs sslmode=disable"
                    .to_owned(),
            ));
        }
        #[cfg(feature = "tls")]
        {
            use pg_pool_conninfo::rustls as tls;
            let config_error = |e: tls::TlsConfigError| {
                let setting = match &e {
                    tls::TlsConfigError::Setting { setting, .. }
                    | tls::TlsConfigError::File { setting, .. } => setting,
                    _ => "sslcert",
                };
                bad(setting, e.to_string())
            };
            tls::verification(settings).map_err(config_error)?;
            let mut wired = pg_wired::TlsConfig::default();
            if let Some(root) = &settings.root_certs {
                let roots = tls::load_root_certs(root).map_err(config_error)?;
                wired.root_certs = roots.iter().map(|c| c.as_ref().to_vec()).collect();
                if wired.root_certs.is_empty() && *root != RootCerts::System {
                    return Err(bad("sslrootcert", "holds no certificate".to_owned()));
                }
            }
            if let Some((chain, key)) = tls::load_client_identity(settings).map_err(config_error)? {
                let chain = chain.iter().map(|c| c.as_ref().to_vec()).collect();
                wired.client_cert = Some((chain, key.secret_der().to_vec()));
            }
            Ok(Self {
                mode: settings.mode,
                channel_binding: settings.channel_binding,
                config: wired,
            })
        }
        #[cfg(not(feature = "tls"))]
        {
            if settings.mode != SslMode::Disable {
                return Err(bad(
                    "sslmode",
                    format!(
                        "{:?} needs TLS, and pg-pool-wire was built without its `tls` feature; \
                         enable it, or set sslmode=disable",
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

    /// The `sslmode` in effect.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// Opens a `WireConn` to `addr` (one host of `config`) with `password`, as the mode
    /// says; TLS verifies the certificate against that host's name.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future closes the half-open socket.
    pub(crate) async fn connect(
        &self,
        config: &WireConfig,
        addr: &str,
        password: &str,
    ) -> Result<WireConn, WireError> {
        let conn = match self.mode {
            SslMode::Disable => self.open(config, addr, password, TlsMode::Disable).await?,
            SslMode::Allow => match self.open(config, addr, password, TlsMode::Disable).await {
                Err(WireError::Driver(e)) if matches!(*e, PgWireError::Pg(_)) => {
                    self.open(config, addr, password, TlsMode::Require).await?
                }
                other => other?,
            },
            SslMode::Prefer => self.open(config, addr, password, TlsMode::Prefer).await?,
            _ => self.open(config, addr, password, TlsMode::Require).await?,
        };
        if self.channel_binding == ChannelBinding::Require
            && conn.auth_mechanism() != "SCRAM-SHA-256-PLUS"
        {
            return Err(WireError::Config {
                setting: "channel_binding".to_owned(),
                reason: format!(
                    "channel_binding=require, but the server authenticated the session with {} \
                     (SCRAM-SHA-256-PLUS over TLS is required)",
                    conn.auth_mechanism()
                ),
            });
        }
        Ok(conn)
    }

    async fn open(
        &self,
        config: &WireConfig,
        addr: &str,
        password: &str,
        mode: TlsMode,
    ) -> Result<WireConn, WireError> {
        let params = config.startup_params();
        #[cfg(feature = "tls")]
        let result = WireConn::connect_with_tls_config(
            addr,
            &config.user,
            password,
            &config.database,
            &params,
            mode,
            &self.config,
        )
        .await;
        #[cfg(not(feature = "tls"))]
        let result = WireConn::connect_with_options(
            addr,
            &config.user,
            password,
            &config.database,
            &params,
            mode,
        )
        .await;
        result.map_err(|e| tls_error(addr, mode, e))
    }
}

/// The driver's error, as [`WireError::Tls`] when it is about TLS.
fn tls_error(addr: &str, mode: TlsMode, error: PgWireError) -> WireError {
    let reason = match &error {
        _ if mode == TlsMode::Disable => None,
        PgWireError::Protocol(msg) if msg.contains("does not support TLS") => {
            Some("the server does not offer TLS, and sslmode requires it".to_owned())
        }
        PgWireError::Protocol(msg) if msg.contains("hostname") || msg.contains("TLS") => {
            Some(msg.clone())
        }
        #[cfg(feature = "tls")]
        PgWireError::Io(io) => io
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>())
            .map(|e| {
                let why = pg_pool_conninfo::rustls::explain_handshake_error(e)
                    .unwrap_or("the TLS handshake failed");
                format!(
                    "{why}: {e} (pg-wired verifies the chain and host name of every TLS \
                     certificate; set sslrootcert to the server's CA, or sslmode=disable)"
                )
            }),
        _ => None,
    };
    match reason {
        Some(reason) => WireError::Tls {
            addr: addr.to_owned(),
            reason,
            source: Box::new(error),
        },
        None => error.into(),
    }
}
