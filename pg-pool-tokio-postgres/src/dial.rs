//! Dialing a [`DialTarget`]: with tokio's streams (feature `tokio`), or with `async-net`
//! (smol, async-std) adapted to tokio's I/O traits with `tokio-util`'s compat layer. TCP
//! sockets get `TCP_NODELAY`, the config's keepalive and `tcp_user_timeout`, as
//! `Config::connect` sets them.

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

/// The socket options a config asks for: TCP keepalive (`keepalives`, on by default with
/// a two-hour idle time, as in tokio-postgres) and `tcp_user_timeout` (Linux only, as in
/// libpq and tokio-postgres).
#[derive(Debug, Clone)]
pub(crate) struct SocketOptions {
    keepalive: Option<TcpKeepalive>,
    #[cfg_attr(not(target_os = "linux"), allow(dead_code))]
    user_timeout: Option<std::time::Duration>,
}

/// The socket options `config` asks for.
pub(crate) fn socket_options(config: &tokio_postgres::Config) -> SocketOptions {
    let keepalive = config.get_keepalives().then(|| {
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
        keepalive
    });
    SocketOptions {
        keepalive,
        user_timeout: config.get_tcp_user_timeout().copied(),
    }
}

/// Sets `TCP_NODELAY` and `options` on a connected TCP socket.
fn tune<S>(socket: &S, options: &SocketOptions) -> io::Result<()>
where
    for<'a> socket2::SockRef<'a>: From<&'a S>,
{
    let socket = socket2::SockRef::from(socket);
    socket.set_tcp_nodelay(true)?;
    if let Some(keepalive) = &options.keepalive {
        socket.set_tcp_keepalive(keepalive)?;
    }
    #[cfg(target_os = "linux")]
    if let Some(limit) = options.user_timeout {
        socket.set_tcp_user_timeout(Some(limit))?;
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
    options: SocketOptions,
) -> io::Result<TokioStream> {
    match target {
        DialTarget::Tcp { host, port } => {
            let stream = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
            tune(&stream, &options)?;
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
    options: SocketOptions,
) -> io::Result<AsyncNetStream> {
    match target {
        DialTarget::Tcp { host, port } => {
            let stream = async_net::TcpStream::connect((host.as_str(), port)).await?;
            tune(&stream, &options)?;
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

#[cfg(all(test, feature = "tokio", target_os = "linux"))]
mod tests {
    use std::time::Duration;

    use super::{DialTarget, TokioStream, dial_tokio, socket_options};

    /// The options a config asks for are set on the socket the tokio dialer returns.
    #[tokio::test]
    async fn tokio_sockets_get_the_configured_options() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut config = tokio_postgres::Config::new();
        config
            .keepalives_idle(Duration::from_secs(42))
            .keepalives_interval(Duration::from_secs(7))
            .keepalives_retries(4)
            .tcp_user_timeout(Duration::from_millis(1500));
        let target = DialTarget::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let stream = dial_tokio(target, socket_options(&config)).await.unwrap();
        let TokioStream::Tcp(tcp) = &stream else {
            panic!("a TCP target gives a TCP stream");
        };
        let socket = socket2::SockRef::from(tcp);
        assert!(socket.tcp_nodelay().unwrap());
        assert!(socket.keepalive().unwrap());
        assert_eq!(
            socket.tcp_keepalive_time().unwrap(),
            Duration::from_secs(42)
        );
        assert_eq!(
            socket.tcp_keepalive_interval().unwrap(),
            Duration::from_secs(7)
        );
        assert_eq!(socket.tcp_keepalive_retries().unwrap(), 4);
        assert_eq!(
            socket.tcp_user_timeout().unwrap(),
            Some(Duration::from_millis(1500))
        );

        config.keepalives(false);
        let target = DialTarget::Tcp {
            host: "127.0.0.1".into(),
            port,
        };
        let stream = dial_tokio(target, socket_options(&config)).await.unwrap();
        let TokioStream::Tcp(tcp) = &stream else {
            panic!("a TCP target gives a TCP stream");
        };
        assert!(!socket2::SockRef::from(tcp).keepalive().unwrap());
    }
}
