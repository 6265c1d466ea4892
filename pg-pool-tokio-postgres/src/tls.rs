//! rustls for tokio-postgres: `TlsConnect` over any tokio-I/O stream (tokio's own, and the
//! async-net streams of smol and async-std), with `tls-server-end-point` channel binding.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, TlsConnect, TlsStream};

use crate::channel_binding::tls_server_end_point;

/// Opens TLS sessions to one host with a shared rustls configuration.
#[derive(Clone)]
pub(crate) struct RustlsConnect {
    config: Arc<ClientConfig>,
    /// `None` when there is no host name (a unix socket): TLS is then refused.
    server_name: Option<ServerName<'static>>,
    host: String,
}

impl RustlsConnect {
    /// For `host` (a DNS name or an IP address; empty for none).
    pub(crate) fn new(config: Arc<ClientConfig>, host: &str) -> Self {
        let server_name = ServerName::try_from(host.to_owned()).ok();
        Self {
            config,
            server_name,
            host: host.to_owned(),
        }
    }
}

/// A failed TLS handshake, with plain words for certificate problems.
#[derive(Debug)]
pub(crate) struct TlsHandshakeError {
    host: String,
    source: io::Error,
}

impl fmt::Display for TlsHandshakeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TLS handshake with {} failed", self.host)?;
        let rustls_error = self
            .source
            .get_ref()
            .and_then(|e| e.downcast_ref::<rustls::Error>());
        if let Some(why) = rustls_error.and_then(pg_pool_conninfo::rustls::explain_handshake_error)
        {
            write!(f, ": {why}")?;
        }
        write!(f, ": {}", self.source)
    }
}

impl std::error::Error for TlsHandshakeError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

impl<S> TlsConnect<S> for RustlsConnect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = RustlsStream<S>;
    type Error = TlsHandshakeError;
    type Future = Pin<Box<dyn Future<Output = Result<RustlsStream<S>, TlsHandshakeError>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let error = |source| TlsHandshakeError {
                host: self.host.clone(),
                source,
            };
            let Some(name) = self.server_name.clone() else {
                return Err(error(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("`{}` is not a valid host name for TLS", self.host),
                )));
            };
            let connector = tokio_rustls::TlsConnector::from(Arc::clone(&self.config));
            let stream = connector.connect(name, stream).await.map_err(error)?;
            Ok(RustlsStream(Box::new(stream)))
        })
    }
}

/// An established TLS session over `S` (boxed: the rustls state is large).
pub(crate) struct RustlsStream<S>(Box<tokio_rustls::client::TlsStream<S>>);

impl<S> TlsStream for RustlsStream<S>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    fn channel_binding(&self) -> ChannelBinding {
        let (_, session) = self.0.get_ref();
        session
            .peer_certificates()
            .and_then(|certs| certs.first())
            .and_then(|cert| tls_server_end_point(cert.as_ref()))
            .map_or_else(ChannelBinding::none, ChannelBinding::tls_server_end_point)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for RustlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for RustlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut *self.0).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut *self.0).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.0.is_write_vectored()
    }
}
