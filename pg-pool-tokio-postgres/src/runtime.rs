//! [`PgRuntime`]: how a runtime opens a tokio-postgres session and drives it.

use std::future::Future;
use std::sync::Arc;

use pg_pool_core::Runtime;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::{AsyncMessage, CancelToken, Config};

use crate::driver_stop::StopSignal;
use crate::error::PgError;
use crate::opened::{NotificationSender, PgSession, SessionOptions};
use crate::sslmode::PgTls;

/// A pool [`Runtime`] that can open tokio-postgres sessions: it connects, then spawns the
/// driver's `Connection` future with [`Runtime::spawn`] (never a hard-coded
/// `tokio::spawn`), so the session is driven by the pool's own runtime.
///
/// Implemented for `pg_pool_tokio::Tokio` (feature `tokio`, over tokio's TCP and
/// unix-socket streams), `pg_pool_smol::Smol` (feature `smol`) and
/// `pg_pool_async_std::AsyncStd` (feature `async-std`, over `async-net` streams through
/// `tokio-util`'s compat layer), all three through [`connect_raw`](crate::connect_raw):
/// one host loop, one TLS path and one `target_session_attrs` check on every runtime,
/// and none of them needs tokio-postgres's own runtime support. For a runtime of your own,
/// implement `open` with [`connect_raw`](crate::connect_raw) and your runtime's streams.
///
/// Every implementation secures sessions as [`PgTls`] says (libpq's `sslmode`).
pub trait PgRuntime: Runtime {
    /// Opens a session with `config`, secured as `tls` says, trying its hosts in order,
    /// and starts driving it on this runtime, as `options` asks. `config`'s own
    /// `ssl_mode` is ignored.
    ///
    /// # Errors
    ///
    /// I/O, a failed TLS handshake (naming the certificate problem), the server's error
    /// response (for example `28P01` for a wrong password), or a session that does not
    /// match `target_session_attrs`.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the half-open connection.
    fn open(
        &self,
        config: &Config,
        tls: &PgTls,
        options: &SessionOptions,
    ) -> impl Future<Output = Result<PgSession, PgError>> + Send;

    /// Sends a server-side cancel (`CancelRequest`) for `token`'s session, opened with
    /// `config` and secured with `tls`, dialling on this runtime: the pool cancels the query
    /// still running on a session that came back with a call abandoned mid-way. A session
    /// that used TLS is cancelled over TLS (verified as its session was), so its secret key
    /// never crosses the network in clear; `tls` is `None` when not known (a connection
    /// given a runtime with [`PgConnection::with_runtime`](crate::PgConnection::with_runtime)),
    /// and the request then goes in clear.
    ///
    /// The default dials with `async-net` (features `smol` or `async-std`) and otherwise
    /// fails, in which case the session is waited for within `checkin_timeout`, then
    /// destroyed. The tokio impl dials with tokio's TCP streams. Both send the request to
    /// every TCP host of `config` at once, each bounded by its `connect_timeout` (10 s when
    /// unset), so an unreachable host cannot hold it back.
    ///
    /// # Errors
    ///
    /// No host could be reached, or the TLS handshake failed.
    fn cancel(
        &self,
        token: CancelToken,
        config: &Config,
        tls: Option<&PgTls>,
    ) -> impl Future<Output = Result<(), PgError>> + Send {
        crate::cancel::cancel_default(self, token, config.clone(), tls.cloned())
    }
}

/// Spawns the driver's `Connection` future on `runtime`; it ends when the client is
/// dropped (after sending `Terminate`) or the connection fails, or at once when the
/// returned signal is stopped (the socket is then dropped without waiting for responses
/// still due). With a `sink`, the session's notifications go to it (dropped, as
/// tokio-postgres does, without one, or once the receiver is gone); notices are logged at
/// `DEBUG`.
pub(crate) fn drive<R, S, T>(
    runtime: &R,
    mut connection: tokio_postgres::Connection<S, T>,
    sink: Option<NotificationSender>,
) -> Arc<StopSignal>
where
    R: Runtime,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    T: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stop = Arc::new(StopSignal::default());
    let signal = Arc::clone(&stop);
    runtime.spawn(async move {
        let driven = std::future::poll_fn(|cx| {
            loop {
                match std::task::ready!(connection.poll_message(cx)) {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if let Some(sink) = &sink {
                            // Unbounded: never blocks the session; fails only when the
                            // receiver is gone, and then the notification has no reader.
                            let _ = sink.try_send(n);
                        }
                    }
                    Some(Ok(AsyncMessage::Notice(notice))) => {
                        tracing::debug!(severity = notice.severity(), message = notice.message(), "server notice");
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return std::task::Poll::Ready(Err(e)),
                    None => return std::task::Poll::Ready(Ok(())),
                }
            }
        });
        // The driver first: a session that can end cleanly does so before the stop counts.
        // One future, not a race of two: the stop costs one atomic load per wake-up.
        let mut driven = std::pin::pin!(driven);
        let mut registered = None;
        let ended = std::future::poll_fn(|cx| {
            if let std::task::Poll::Ready(result) = driven.as_mut().poll(cx) {
                return std::task::Poll::Ready(Some(result));
            }
            signal.poll_stopped(cx, &mut registered).map(|()| None)
        })
        .await;
        match ended {
            Some(Ok(())) => {}
            Some(Err(e)) => {
                tracing::debug!(error = %PgError::from(e), "tokio-postgres connection ended with an error");
            }
            None => tracing::debug!("the session was closed without waiting for the server"),
        }
    });
    stop
}

#[cfg(feature = "tokio")]
impl PgRuntime for pg_pool_tokio::Tokio {
    async fn open(
        &self,
        config: &Config,
        tls: &PgTls,
        options: &SessionOptions,
    ) -> Result<PgSession, PgError> {
        let socket = crate::dial::socket_options(config);
        crate::raw_connect::connect_raw_with(self, config, tls, options, move |target| {
            crate::dial::dial_tokio(target, socket.clone())
        })
        .await
    }

    async fn cancel(
        &self,
        token: CancelToken,
        config: &Config,
        tls: Option<&PgTls>,
    ) -> Result<(), PgError> {
        crate::cancel::cancel_on_tokio(self, token, config.clone(), tls.cloned()).await
    }
}

/// [`PgRuntime::open`] over `async-net` streams, for the async-io based runtimes.
#[cfg(feature = "raw-connect")]
async fn open_async_net<R: Runtime>(
    runtime: &R,
    config: &Config,
    tls: &PgTls,
    options: &SessionOptions,
) -> Result<PgSession, PgError> {
    let socket = crate::dial::socket_options(config);
    crate::raw_connect::connect_raw_with(runtime, config, tls, options, move |target| {
        crate::dial::dial_async_net(target, socket.clone())
    })
    .await
}

#[cfg(feature = "smol")]
impl PgRuntime for pg_pool_smol::Smol {
    async fn open(
        &self,
        config: &Config,
        tls: &PgTls,
        options: &SessionOptions,
    ) -> Result<PgSession, PgError> {
        open_async_net(self, config, tls, options).await
    }
}

#[cfg(feature = "async-std")]
impl PgRuntime for pg_pool_async_std::AsyncStd {
    async fn open(
        &self,
        config: &Config,
        tls: &PgTls,
        options: &SessionOptions,
    ) -> Result<PgSession, PgError> {
        open_async_net(self, config, tls, options).await
    }
}
