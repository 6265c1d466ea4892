//! Dialing a [`DialTarget`]: with tokio's streams (feature `tokio`), or with `async-net`
//! (smol, async-std) adapted to tokio's I/O traits with `tokio-util`'s compat layer. TCP
//! sockets get `TCP_NODELAY` and the config's keepalive, as `Config::connect` sets them.

use std::io;
#[cfg(feature = "raw-connect")]
use std::pin::Pin;
#[cfg(feature = "raw-connect")]
use std::task::{Context, Poll};

use socket2::TcpKeepalive;
#[cfg(feature = "raw-connect")]
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
#[cfg(feature = "raw-connect")]
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt as _};

use crate::raw_connect::DialTarget;

/// The TCP keepalive `config` asks for (`keepalives`, on by default with a two-hour idle
/// time, as in tokio-postgres), or `None`.
pub(crate) fn keepalive(config: &tokio_postgres::Config) -> Option<TcpKeepalive> {
    if !config.get_keepalives() {
        return None;
    }
    #[allow(unused_mut)]
    let mut keepalive = TcpKeepalive::new().with_time(config.get_keepalives_idle());
    #[cfg(any(
        target_os = "linux",
        target_os = "android",
        target_os = "macos",
        target_os = "freebsd"
    ))]
    {
        if let Some(interval) = config.get_keepalives_interval() {
            keepalive = keepalive.with_interval(interval);
        }
        if let Some(retries) = config.get_keepalives_retries() {
            keepalive = keepalive.with_retries(retries);
        }
    }
    Some(keepalive)
}

/// Sets `TCP_NODELAY` and `keepalive` on a connected TCP socket.
#[cfg(any(feature = "raw-connect", feature = "tokio"))]
fn tune<S>(socket: &S, keepalive: Option<&TcpKeepalive>) -> io::Result<()>
where
    for<'a> socket2::SockRef<'a>: From<&'a S>,
{
    let socket = socket2::SockRef::from(socket);
    socket.set_tcp_nodelay(true)?;
    if let Some(keepalive) = keepalive {
        socket.set_tcp_keepalive(keepalive)?;
    }
    Ok(())
}

/// A tokio stream: TCP, or a unix socket on unix.
#[cfg(feature = "tokio")]
#[derive(Debug)]
pub(crate) enum TokioStream {
    Tcp(tokio::net::TcpStream),
    #[cfg(unix)]
    Unix(tokio::net::UnixStream),
}

/// Dials `target` with tokio's streams. A name resolving to several addresses is tried
/// address by address.
#[cfg(feature = "tokio")]
pub(crate) async fn dial_tokio(
    target: DialTarget,
    keepalive: Option<TcpKeepalive>,
) -> io::Result<TokioStream> {
    match target {
        DialTarget::Tcp { host, port } => {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tune(&stream, keepalive.as_ref())?;
            Ok(TokioStream::Tcp(stream))
        }
        #[cfg(unix)]
        DialTarget::Unix { path } => Ok(TokioStream::Unix(
            tokio::net::UnixStream::connect(&path).await?,
        )),
        #[allow(unreachable_patterns)]
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "unix sockets are not available on this platform",
        )),
    }
}

#[cfg(feature = "tokio")]
macro_rules! tokio_both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            TokioStream::Tcp($s) => $e,
            #[cfg(unix)]
            TokioStream::Unix($s) => $e,
        }
    };
}

#[cfg(feature = "tokio")]
impl tokio::io::AsyncRead for TokioStream {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        tokio_both!(self, s => std::pin::Pin::new(s).poll_read(cx, buf))
    }
}

#[cfg(feature = "tokio")]
impl tokio::io::AsyncWrite for TokioStream {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        tokio_both!(self, s => std::pin::Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        tokio_both!(self, s => std::pin::Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        tokio_both!(self, s => std::pin::Pin::new(s).poll_shutdown(cx))
    }
}

/// An `async-net` stream: TCP, or a unix socket on unix.
#[cfg(feature = "raw-connect")]
#[derive(Debug)]
pub(crate) enum AsyncNetStream {
    Tcp(Compat<async_net::TcpStream>),
    #[cfg(unix)]
    Unix(Compat<async_net::unix::UnixStream>),
}

/// Dials `target` with `async-net` (any async-io based runtime).
#[cfg(feature = "raw-connect")]
pub(crate) async fn dial_async_net(
    target: DialTarget,
    keepalive: Option<TcpKeepalive>,
) -> io::Result<AsyncNetStream> {
    match target {
        DialTarget::Tcp { host, port } => {
            let stream = async_net::TcpStream::connect((host.as_str(), port)).await?;
            tune(&stream, keepalive.as_ref())?;
            Ok(AsyncNetStream::Tcp(stream.compat()))
        }
        #[cfg(unix)]
        DialTarget::Unix { path } => {
            let stream = async_net::unix::UnixStream::connect(&path).await?;
            Ok(AsyncNetStream::Unix(stream.compat()))
        }
        #[allow(unreachable_patterns)]
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "unix sockets are not available on this platform",
        )),
    }
}

#[cfg(feature = "raw-connect")]
macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            AsyncNetStream::Tcp($s) => $e,
            #[cfg(unix)]
            AsyncNetStream::Unix($s) => $e,
        }
    };
}

#[cfg(feature = "raw-connect")]
impl AsyncRead for AsyncNetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        both!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

#[cfg(feature = "raw-connect")]
impl AsyncWrite for AsyncNetStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        both!(self, s => Pin::new(s).poll_write(cx, buf))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        both!(self, s => Pin::new(s).poll_flush(cx))
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        both!(self, s => Pin::new(s).poll_shutdown(cx))
    }
}
