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
use crate::sslmode::PgTls;

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

/// [`SessionRuntime`] for a [`PgRuntime`], with the TLS settings the session was opened
/// with (`None` for a connection given a runtime by hand: its cancel goes in clear).
struct Handle<R> {
    runtime: R,
    tls: Option<PgTls>,
}

impl<R: PgRuntime> SessionRuntime for Handle<R> {
    fn sleep(&self, duration: Duration) -> BoxFuture<'static, ()> {
        Box::pin(self.runtime.sleep(duration))
    }

    fn cancel(
        &self,
        token: CancelToken,
        config: &tokio_postgres::Config,
    ) -> BoxFuture<'static, Result<(), PgError>> {
        let runtime = self.runtime.clone();
        let config = config.clone();
        let tls = self.tls.clone();
        Box::pin(async move { runtime.cancel(token, &config, tls.as_ref()).await })
    }
}

/// Type-erases `runtime` for a session opened with `tls` (`None`: not known).
pub(crate) fn session_runtime<R: PgRuntime>(
    runtime: R,
    tls: Option<PgTls>,
) -> Arc<dyn SessionRuntime> {
    Arc::new(Handle { runtime, tls })
}

/// Sends a `CancelRequest` for `token`'s session over tokio's TCP streams, to every TCP
/// host of `config` at once as [`cancel_with_async_net`] does, or through
/// `CancelToken::cancel_query` (which knows the socket, unix ones too) when `config` names
/// no TCP host.
#[cfg(feature = "tokio")]
pub(crate) async fn cancel_on_tokio(
    runtime: &pg_pool_tokio::Tokio,
    token: CancelToken,
    config: tokio_postgres::Config,
    tls: Option<PgTls>,
) -> Result<(), PgError> {
    if tcp_targets(&config).is_empty() {
        token.cancel_query(tokio_postgres::NoTls).await?;
        return Ok(());
    }
    to_every_host(runtime, &config, |host, port| {
        let (token, tls) = (&token, tls.as_ref());
        async move {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            send_and_wait(token, stream, tls, &host).await
        }
    })
    .await
}

/// How long a cancel request's connection to one host may take (dial, TLS handshake,
/// request, the server closing it) when the config sets no `connect_timeout`.
#[cfg(any(feature = "tokio", feature = "raw-connect"))]
const DIAL_LIMIT: Duration = Duration::from_secs(10);

/// Runs `attempt` for every TCP host of `config` at once, each bounded by the config's
/// `connect_timeout` (or [`DIAL_LIMIT`]): a session opened through `connect_raw` does not
/// remember which host it reached, and an unreachable host (connects that hang) must not
/// hold the request back from the one running the session. A host that does not run the
/// session ignores the request (the secret key does not match).
#[cfg(any(feature = "tokio", feature = "raw-connect"))]
async fn to_every_host<R, F, Fut>(
    runtime: &R,
    config: &tokio_postgres::Config,
    attempt: F,
) -> Result<(), PgError>
where
    R: pg_pool_core::Runtime,
    F: Fn(String, u16) -> Fut,
    Fut: std::future::Future<Output = io::Result<()>>,
{
    let limit = config.get_connect_timeout().copied().unwrap_or(DIAL_LIMIT);
    let attempts = tcp_targets(config).into_iter().map(|(host, port)| {
        let sent = attempt(host.clone(), port);
        async move {
            let result = pg_pool_core::runtime::timeout(runtime, limit, sent)
                .await
                .unwrap_or_else(|| {
                    Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connect_timeout ({limit:?}) passed"),
                    ))
                });
            (host, port, result)
        }
    });
    let mut outcome = Outcome::default();
    for (host, port, result) in join_all(attempts).await {
        outcome.record(host, port, result);
    }
    outcome.finish()
}

/// Runs every future of `futures` concurrently on the current task; their outputs, in
/// order.
#[cfg(any(feature = "tokio", feature = "raw-connect"))]
async fn join_all<F: std::future::Future>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output> {
    let mut running: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = running.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (future, output) in running.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs.into_iter().flatten().collect()
}

/// Sends the request on `stream`, then waits for the server to close it: by then the server
/// has signalled the backend. The write side is not shut down (as libpq does not):
/// pgbouncer takes a half-closed cancel connection for a client gone and drops the request.
///
/// The session's own TLS mode (carried by `token`) decides whether the request goes over
/// TLS, as libpq does: with `tls`'s rustls configuration, verified against `host`, the
/// request and its secret key never cross the network in clear when the session did not.
#[cfg(any(feature = "tokio", feature = "raw-connect"))]
async fn send_and_wait<S>(
    token: &CancelToken,
    stream: S,
    tls: Option<&PgTls>,
    host: &str,
) -> io::Result<()>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    // `cancel_query_raw` shuts the stream down once the request is written: here that waits
    // for the server to close the connection.
    let stream = WaitForClose { inner: stream };
    #[cfg(feature = "tls")]
    let sent = match tls.and_then(|tls| tls.rustls().ok()) {
        Some(config) => {
            let connect = crate::tls::RustlsConnect::new(Arc::clone(config), host);
            token.cancel_query_raw(stream, connect).await
        }
        None => token.cancel_query_raw(stream, tokio_postgres::NoTls).await,
    };
    #[cfg(not(feature = "tls"))]
    let sent = {
        let _ = (tls, host);
        token.cancel_query_raw(stream, tokio_postgres::NoTls).await
    };
    sent.map_err(io::Error::other)
}

/// A stream whose shutdown flushes, then reads until the server closes the connection
/// (instead of half-closing it).
#[cfg(any(feature = "tokio", feature = "raw-connect"))]
struct WaitForClose<S> {
    inner: S,
}

#[cfg(any(feature = "tokio", feature = "raw-connect"))]
impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for WaitForClose<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

#[cfg(any(feature = "tokio", feature = "raw-connect"))]
impl<S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite
    for WaitForClose<S>
{
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        use std::task::{Poll, ready};
        ready!(std::pin::Pin::new(&mut self.inner).poll_flush(cx))?;
        let mut scratch = [0u8; 64];
        loop {
            let mut buf = tokio::io::ReadBuf::new(&mut scratch);
            match ready!(std::pin::Pin::new(&mut self.inner).poll_read(cx, &mut buf)) {
                // The server closed the connection (or reset it): it has the request.
                Ok(()) if buf.filled().is_empty() => return Poll::Ready(Ok(())),
                Ok(()) => {}
                Err(_) => return Poll::Ready(Ok(())),
            }
        }
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
/// smol, async-std), adapted to tokio's I/O traits with `tokio-util`'s compat layer, timed
/// by `runtime`.
///
/// The request goes to every TCP host of `config` at once (see [`to_every_host`]). Each
/// request is followed by a wait for the server to close the cancel connection, by which
/// time it has signalled the backend. A host given as an IP address is dialled without a
/// name lookup; a name is resolved on `async-net`'s blocking pool, as when the session was
/// opened.
///
/// # Errors
///
/// The last host's error if no host took the request.
#[cfg(feature = "raw-connect")]
pub(crate) async fn cancel_with_async_net<R: pg_pool_core::Runtime>(
    runtime: &R,
    token: CancelToken,
    config: tokio_postgres::Config,
    tls: Option<PgTls>,
) -> Result<(), PgError> {
    use tokio_util::compat::FuturesAsyncReadCompatExt as _;

    to_every_host(runtime, &config, |host, port| {
        let (token, tls) = (&token, tls.as_ref());
        async move {
            let stream = async_net::TcpStream::connect((host.as_str(), port)).await?;
            send_and_wait(token, stream.compat(), tls, &host).await
        }
    })
    .await
}

/// [`PgRuntime::cancel`](crate::PgRuntime::cancel)'s default: `async-net` when built in.
pub(crate) async fn cancel_default<R: pg_pool_core::Runtime>(
    runtime: &R,
    token: CancelToken,
    config: tokio_postgres::Config,
    tls: Option<PgTls>,
) -> Result<(), PgError> {
    #[cfg(feature = "raw-connect")]
    return cancel_with_async_net(runtime, token, config, tls).await;
    #[cfg(not(feature = "raw-connect"))]
    {
        let _ = (runtime, token, config, tls);
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
