//! [`PgRuntime`]: how a runtime opens a tokio-postgres session and drives it.

use std::future::Future;

use pg_pool_core::Runtime;
use tokio_postgres::{CancelToken, Client, Config};

use crate::error::PgError;

/// A pool [`Runtime`] that can open tokio-postgres sessions: it connects, then spawns the
/// driver's `Connection` future with [`Runtime::spawn`] (never a hard-coded
/// `tokio::spawn`), so the session is driven by the pool's own runtime.
///
/// Implemented for `pg_pool_tokio::Tokio` (feature `tokio`: `Config::connect`, as usual),
/// `pg_pool_smol::Smol` (feature `smol`) and `pg_pool_async_std::AsyncStd` (feature
/// `async-std`), the last two over `async-net` TCP streams through `tokio-util`'s compat
/// layer with `Config::connect_raw` ([`connect_raw`](crate::connect_raw)), so they need no
/// tokio runtime. For a runtime of your own, implement `open` with
/// [`connect_raw`](crate::connect_raw) and your runtime's TCP stream.
pub trait PgRuntime: Runtime {
    /// Opens a session with `config`, trying its hosts in order, and starts driving it on
    /// this runtime.
    ///
    /// # Errors
    ///
    /// The last host's error: I/O, the server's error response (for example `28P01` for
    /// a wrong password), or a session that does not match `target_session_attrs`.
    fn open(&self, config: &Config) -> impl Future<Output = Result<Client, PgError>> + Send;

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
    async fn open(&self, config: &Config) -> Result<Client, PgError> {
        let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
        drive(self, connection);
        Ok(client)
    }

    async fn cancel(&self, token: CancelToken, config: &Config) -> Result<(), PgError> {
        crate::cancel::cancel_on_tokio(token, config.clone()).await
    }
}

#[cfg(feature = "smol")]
impl PgRuntime for pg_pool_smol::Smol {
    async fn open(&self, config: &Config) -> Result<Client, PgError> {
        crate::raw_connect::connect_raw(self, config, crate::raw_connect::dial_async_net).await
    }
}

#[cfg(feature = "async-std")]
impl PgRuntime for pg_pool_async_std::AsyncStd {
    async fn open(&self, config: &Config) -> Result<Client, PgError> {
        crate::raw_connect::connect_raw(self, config, crate::raw_connect::dial_async_net).await
    }
}
