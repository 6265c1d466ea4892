//! Server-side cancel: a `CancelRequest` for a session whose query was abandoned, dialled on
//! the pool's runtime.

#[cfg(any(feature = "tokio", feature = "raw-connect"))]
use std::io;
use std::sync::Arc;
use std::time::Duration;

use pg_pool_core::BoxFuture;

use tokio_postgres::CancelToken;
#[cfg(any(feature = "tokio", feature = "raw-connect"))]
use tokio_postgres::config::Host;

use crate::error::PgError;
use crate::runtime::PgRuntime;

/// The pool's runtime as a session needs it on its return path: a timer and a cancel dialer,
/// without a type parameter.
pub(crate) trait SessionRuntime: Send + Sync + 'static {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()>;
    fn cancel(
        &self,
        token: CancelToken,
        config: &tokio_postgres::Config,
    ) -> BoxFuture<'static, Result<(), PgError>>;
}

/// [`SessionRuntime`] for a [`PgRuntime`].
struct Handle<R>(R);

impl<R: PgRuntime> SessionRuntime for Handle<R> {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(self.0.sleep(duration))
    }

    fn cancel(
        &self,
        token: CancelToken,
        config: &tokio_postgres::Config,
    ) -> BoxFuture<'static, Result<(), PgError>> {
        let runtime = self.0.clone();
        let config = config.clone();
        Box::pin(async move { runtime.cancel(token, &config).await })
    }
}

/// Type-erases `runtime` for a session.
pub(crate) fn session_runtime<R: PgRuntime>(runtime: R) -> Arc<dyn SessionRuntime> {
    Arc::new(Handle(runtime))
}

/// Sends a `CancelRequest` for `token`'s session over tokio's TCP streams, to each TCP host
/// of `config` as [`cancel_with_async_net`] does, or through `CancelToken::cancel_query`
/// (which knows the socket, unix ones too) when `config` names no TCP host.
#[cfg(feature = "tokio")]
pub(crate) async fn cancel_on_tokio(
    token: CancelToken,
    config: tokio_postgres::Config,
) -> Result<(), PgError> {
    let targets = tcp_targets(&config);
    if targets.is_empty() {
        token.cancel_query(tokio_postgres::NoTls).await?;
        return Ok(());
    }
    let mut outcome = Outcome::default();
    for (host, port) in targets {
        let attempt = async {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            send_and_wait(&token, stream).await
        };
        let result = attempt.await;
        outcome.record(host, port, result);
    }
    outcome.finish()
}

/// Sends the request on `stream`, then waits for the server to close it: by then the server
/// has signalled the backend. The write side is not shut down first (as libpq does not):
/// pgbouncer takes a half-closed cancel connection for a client gone and drops the request.
#[cfg(any(feature = "tokio", feature = "raw-connect"))]
async fn send_and_wait<S>(token: &CancelToken, stream: S) -> io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use tokio::io::AsyncReadExt as _;
    let mut stream = NoShutdown(stream);
    token
        .cancel_query_raw(&mut stream, tokio_postgres::NoTls)
        .await
        .map_err(io::Error::other)?;
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest).await;
    Ok(())
}

/// A stream whose shutdown only flushes.
#[cfg(any(feature = "tokio", feature = "raw-connect"))]
struct NoShutdown<S>(S);

#[cfg(any(feature = "tokio", feature = "raw-connect"))]
impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for NoShutdown<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

#[cfg(any(feature = "tokio", feature = "raw-connect"))]
impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for NoShutdown<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }
}

/// Whether any host took the request, else the last error.
#[derive(Default)]
#[cfg(any(feature = "tokio", feature = "raw-connect"))]
struct Outcome {
    sent: bool,
    last_error: Option<PgError>,
}

#[cfg(any(feature = "tokio", feature = "raw-connect"))]
impl Outcome {
    fn record(&mut self, host: String, port: u16, result: io::Result<()>) {
        match result {
            Ok(()) => self.sent = true,
            Err(source) => self.last_error = Some(PgError::Connect { host, port, source }),
        }
    }

    fn finish(self) -> Result<(), PgError> {
        match (self.sent, self.last_error) {
            (true, _) => Ok(()),
            (false, Some(e)) => Err(e),
            (false, None) => Err(PgError::config(
                "host",
                "no TCP host to send a cancel request to",
            )),
        }
    }
}

/// Sends a `CancelRequest` for `token`'s session with `async-net` (any async-io runtime:
/// smol, async-std), adapted to tokio's I/O traits with `tokio-util`'s compat layer.
///
/// A session opened with `connect_raw` does not remember which host it reached, so the
/// request goes to each TCP host of `config` in order (a host that does not run the session
/// ignores it: the secret key does not match). Each request is followed by a wait for the
/// server to close the cancel connection, by which time it has signalled the backend.
///
/// # Errors
///
/// The last host's error if no host took the request.
#[cfg(feature = "raw-connect")]
pub(crate) async fn cancel_with_async_net(
    token: CancelToken,
    config: tokio_postgres::Config,
) -> Result<(), PgError> {
    use tokio_util::compat::FuturesAsyncReadCompatExt as _;

    let mut outcome = Outcome::default();
    for (host, port) in tcp_targets(&config) {
        let attempt = async {
            let stream = async_net::TcpStream::connect((host.as_str(), port)).await?;
            send_and_wait(&token, stream.compat()).await
        };
        let result = attempt.await;
        outcome.record(host, port, result);
    }
    outcome.finish()
}

/// [`PgRuntime::cancel`](crate::PgRuntime::cancel)'s default: `async-net` when built in.
pub(crate) async fn cancel_default(
    token: CancelToken,
    config: tokio_postgres::Config,
) -> Result<(), PgError> {
    #[cfg(feature = "raw-connect")]
    return cancel_with_async_net(token, config).await;
    #[cfg(not(feature = "raw-connect"))]
    {
        let _ = (token, config);
        Err(PgError::config(
            "cancel",
            "this runtime has no way to dial a cancel request",
        ))
    }
}

/// The TCP hosts of `config` with their ports, in order (`hostaddr` first, as libpq does).
#[cfg(any(feature = "tokio", feature = "raw-connect"))]
pub(crate) fn tcp_targets(config: &tokio_postgres::Config) -> Vec<(String, u16)> {
    let hosts = config.get_hosts();
    let hostaddrs = config.get_hostaddrs();
    let ports = config.get_ports();
    let count = hosts.len().max(hostaddrs.len());
    (0..count)
        .filter_map(|i| {
            let host = match (hostaddrs.get(i), hosts.get(i)) {
                (Some(addr), _) => addr.to_string(),
                (None, Some(Host::Tcp(host))) => host.clone(),
                _ => return None,
            };
            let port = ports
                .get(i)
                .or_else(|| ports.first())
                .copied()
                .unwrap_or(5432);
            Some((host, port))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::tcp_targets;

    #[test]
    fn targets_follow_the_hosts_in_order() {
        let config: tokio_postgres::Config = "host=a,b port=1,2 user=u".parse().unwrap();
        assert_eq!(
            tcp_targets(&config),
            [("a".to_owned(), 1), ("b".to_owned(), 2)]
        );
        let config: tokio_postgres::Config = "host=a,b port=7 user=u".parse().unwrap();
        assert_eq!(
            tcp_targets(&config),
            [("a".to_owned(), 7), ("b".to_owned(), 7)]
        );
    }
}
