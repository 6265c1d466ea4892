//! [`PgRuntime`]: how a runtime opens a tokio-postgres session and drives it.

use std::future::Future;

use pg_pool_core::Runtime;
use tokio_postgres::{CancelToken, Client, Config};

use crate::error::PgError;
use crate::sslmode::PgTls;

/// A pool [`Runtime`] that can open tokio-postgres sessions: it connects, then spawns the
/// driver's `Connection` future with [`Runtime::spawn`] (never a hard-coded
/// `tokio::spawn`), so the session is driven by the pool's own runtime.
///
/// Implemented for `pg_pool_tokio::Tokio` (feature `tokio`: `Config::connect`, as usual),
/// `pg_pool_smol::Smol` (feature `smol`) and `pg_pool_async_std::AsyncStd` (feature
/// `async-std`), the last two over `async-net` TCP and unix-socket streams through
/// `tokio-util`'s compat layer with `Config::connect_raw`
/// ([`connect_raw`](crate::connect_raw)), so they need no tokio runtime. For a runtime
/// of your own, implement `open` with [`connect_raw`](crate::connect_raw) and your
/// runtime's streams.
///
/// Every implementation secures sessions as [`PgTls`] says (libpq's `sslmode`).
pub trait PgRuntime: Runtime {
    /// Opens a session with `config`, secured as `tls` says, trying its hosts in order,
    /// and starts driving it on this runtime. `config`'s own `ssl_mode` is ignored.
    ///
    /// # Errors
    ///
    /// The last host's error: I/O, a failed TLS handshake (naming the certificate
    /// problem), the server's error response (for example `28P01` for a wrong
    /// password), or a session that does not match `target_session_attrs`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the half-open connection.
    fn open(
        &self,
        config: &Config,
        tls: &PgTls,
    ) -> impl Future<Output = Result<Client, PgError>> + Send;

    /// Sends a server-side cancel (`CancelRequest`) for `token`'s session, opened with
    /// `config`, dialling on this runtime: the pool cancels the query still running on a
    /// session that came back with a call abandoned mid-way.
    ///
    /// The default dials with `async-net` (features `smol` or `async-std`) and otherwise
    /// fails, in which case the session is waited for within `checkin_timeout`, then
    /// destroyed. The tokio impl dials with tokio's TCP streams.
    ///
    /// # Errors
    ///
    /// No host could be reached.
    fn cancel(
        &self,
        token: CancelToken,
        config: &Config,
    ) -> impl Future<Output = Result<(), PgError>> + Send {
        crate::cancel::cancel_default(token, config.clone())
    }
}

/// Spawns the driver's `Connection` future on `runtime`; it ends when the client is
/// dropped (after sending `Terminate`) or the connection fails.
pub(crate) fn drive<R, C>(runtime: &R, connection: C)
where
    R: Runtime,
    C: Future<Output = Result<(), tokio_postgres::Error>> + Send + 'static,
{
    runtime.spawn(async move {
        if let Err(e) = connection.await {
            tracing::debug!(error = %PgError::from(e), "tokio-postgres connection ended with an error");
        }
    });
}

#[cfg(feature = "tokio")]
impl PgRuntime for pg_pool_tokio::Tokio {
    async fn open(&self, config: &Config, tls: &PgTls) -> Result<Client, PgError> {
        use crate::sslmode::{Attempt, refused_by_server};
        // libpq ignores sslmode on unix sockets (PostgreSQL offers no TLS there).
        #[cfg(unix)]
        let only_unix = config.get_hostaddrs().is_empty()
            && config
                .get_hosts()
                .iter()
                .all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
        #[cfg(not(unix))]
        let only_unix = false;
        let attempt = if only_unix {
            Attempt::Plain { then_tls: false }
        } else {
            tls.attempt()
        };
        match attempt {
            Attempt::Plain { then_tls } => match open_tokio(self, config, tls, attempt).await {
                Err(e) if then_tls && refused_by_server(&e) => {
                    tracing::debug!(error = %e, "plain session refused under sslmode=allow; trying TLS");
                    open_tokio(self, config, tls, Attempt::Tls { required: true }).await
                }
                result => result,
            },
            Attempt::Tls { .. } => open_tokio(self, config, tls, attempt).await,
        }
    }

    async fn cancel(&self, token: CancelToken, config: &Config) -> Result<(), PgError> {
        crate::cancel::cancel_on_tokio(token, config.clone()).await
    }
}

/// One `Config::connect` on tokio for `attempt`.
#[cfg(feature = "tokio")]
async fn open_tokio(
    runtime: &pg_pool_tokio::Tokio,
    config: &Config,
    tls: &PgTls,
    attempt: crate::sslmode::Attempt,
) -> Result<Client, PgError> {
    let config = tls.driver_config(config, attempt);
    match attempt {
        crate::sslmode::Attempt::Plain { .. } => {
            let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
            drive(runtime, connection);
            Ok(client)
        }
        crate::sslmode::Attempt::Tls { .. } => {
            #[cfg(feature = "tls")]
            {
                let make = crate::tls::MakeRustlsConnect {
                    config: tls.rustls()?.clone(),
                };
                let (client, connection) = config.connect(make).await?;
                drive(runtime, connection);
                Ok(client)
            }
            #[cfg(not(feature = "tls"))]
            Err(PgError::config(
                "sslmode",
                "TLS needs the `tls` feature of pg-pool-tokio-postgres",
            ))
        }
    }
}

#[cfg(feature = "smol")]
impl PgRuntime for pg_pool_smol::Smol {
    async fn open(&self, config: &Config, tls: &PgTls) -> Result<Client, PgError> {
        crate::raw_connect::connect_raw(self, config, tls, crate::dial::dial_async_net).await
    }
}

#[cfg(feature = "async-std")]
impl PgRuntime for pg_pool_async_std::AsyncStd {
    async fn open(&self, config: &Config, tls: &PgTls) -> Result<Client, PgError> {
        crate::raw_connect::connect_raw(self, config, tls, crate::dial::dial_async_net).await
    }
}
