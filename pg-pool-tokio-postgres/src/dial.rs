//! Dialing a [`DialTarget`]: with tokio's streams (feature `tokio`), or with `async-net`
//! (smol, async-std) adapted to tokio's I/O traits with `tokio-util`'s compat layer. TCP
//! sockets get `TCP_NODELAY`, the config's keepalive and `tcp_user_timeout`, as
//! `Config::connect` sets them.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use socket2::TcpKeepalive;
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

/// A dialed stream: TCP, or a unix socket (on unix; elsewhere the variant is never made).
#[derive(Debug)]
pub(crate) enum Dialed<T, U> {
    Tcp(T),
    Unix(U),
}

/// A tokio stream.
#[cfg(all(feature = "tokio", unix))]
pub(crate) type TokioStream = Dialed<tokio::net::TcpStream, tokio::net::UnixStream>;
/// A tokio stream.
#[cfg(all(feature = "tokio", not(unix)))]
pub(crate) type TokioStream = Dialed<tokio::net::TcpStream, tokio::net::TcpStream>;

/// An `async-net` stream, adapted to tokio's I/O traits.
#[cfg(all(feature = "raw-connect", unix))]
pub(crate) type AsyncNetStream =
    Dialed<Compat<async_net::TcpStream>, Compat<async_net::unix::UnixStream>>;
/// An `async-net` stream, adapted to tokio's I/O traits.
#[cfg(all(feature = "raw-connect", not(unix)))]
pub(crate) type AsyncNetStream = Dialed<Compat<async_net::TcpStream>, Compat<async_net::TcpStream>>;

/// The error for a unix socket on a platform without them.
#[cfg(not(unix))]
fn no_unix_sockets() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "unix sockets are not available on this platform",
    )
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
            Ok(Dialed::Tcp(stream))
        }
        #[cfg(unix)]
        DialTarget::Unix { path } => {
            Ok(Dialed::Unix(tokio::net::UnixStream::connect(&path).await?))
        }
        #[cfg(not(unix))]
        DialTarget::Unix { .. } => Err(no_unix_sockets()),
    }
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
            Ok(Dialed::Tcp(stream.compat()))
        }
        #[cfg(unix)]
        DialTarget::Unix { path } => {
            let stream = async_net::unix::UnixStream::connect(&path).await?;
            Ok(Dialed::Unix(stream.compat()))
        }
        #[cfg(not(unix))]
        DialTarget::Unix { .. } => Err(no_unix_sockets()),
    }
}

macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            Dialed::Tcp($s) => $e,
            Dialed::Unix($s) => $e,
        }
    };
}

impl<T, U> AsyncRead for Dialed<T, U>
where
    T: AsyncRead + Unpin,
    U: AsyncRead + Unpin,
{
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        both!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

impl<T, U> AsyncWrite for Dialed<T, U>
where
    T: AsyncWrite + Unpin,
    U: AsyncWrite + Unpin,
{
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

    use super::{DialTarget, dial_tokio, socket_options};

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
        let super::Dialed::Tcp(tcp) = &stream else {
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
        let super::Dialed::Tcp(tcp) = &stream else {
            panic!("a TCP target gives a TCP stream");
        };
        assert!(!socket2::SockRef::from(tcp).keepalive().unwrap());
    }
}
