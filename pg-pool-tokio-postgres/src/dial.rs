//! Dialing with `async-net` (smol, async-std): TCP or a unix socket, adapted to tokio's
//! I/O traits with `tokio-util`'s compat layer.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_util::compat::{Compat, FuturesAsyncReadCompatExt as _};

use crate::raw_connect::DialTarget;

/// An `async-net` stream: TCP, or a unix socket on unix.
#[derive(Debug)]
pub(crate) enum AsyncNetStream {
    Tcp(Compat<async_net::TcpStream>),
    #[cfg(unix)]
    Unix(Compat<async_net::unix::UnixStream>),
}

/// Dials `target` with `async-net` (any async-io based runtime).
pub(crate) async fn dial_async_net(target: DialTarget) -> io::Result<AsyncNetStream> {
    match target {
        DialTarget::Tcp { host, port } => {
            let stream = async_net::TcpStream::connect((host.as_str(), port)).await?;
            stream.set_nodelay(true)?;
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

macro_rules! both {
    ($self:ident, $s:ident => $e:expr) => {
        match $self.get_mut() {
            AsyncNetStream::Tcp($s) => $e,
            #[cfg(unix)]
            AsyncNetStream::Unix($s) => $e,
        }
    };
}

impl AsyncRead for AsyncNetStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        both!(self, s => Pin::new(s).poll_read(cx, buf))
    }
}

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
