//! [`TapStream`]: a stream that shows the protocol tap ([`crate::tap`]) every byte passing
//! through it, in plaintext: it wraps the dialled stream of a plain session and the TLS
//! stream of a TLS session ([`TapConnect`] wraps any `TlsConnect`'s output).

#[cfg(feature = "tls")]
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
#[cfg(feature = "tls")]
use tokio_postgres::tls::TlsConnect;
use tokio_postgres::tls::{ChannelBinding, TlsStream};

use crate::tap::{Backend, Frontend, TapShared};

/// A stream whose traffic the tap reads, passing every byte through unchanged.
#[derive(Debug)]
pub(crate) struct TapStream<S> {
    inner: S,
    shared: Arc<TapShared>,
    front: Frontend,
    back: Backend,
}

impl<S> TapStream<S> {
    /// Wraps the dialled stream of a session that starts in plaintext.
    pub(crate) fn plain(inner: S, shared: Arc<TapShared>) -> Self {
        Self::with(inner, shared, Backend::default())
    }

    /// Wraps the dialled stream of a session that starts with an `SSLRequest`: if the
    /// server accepts, the stream carries TLS and this tap goes quiet (the one above TLS
    /// reads the session); if it refuses, the session goes on in plaintext here.
    #[cfg(feature = "tls")]
    pub(crate) fn before_tls(inner: S, shared: Arc<TapShared>) -> Self {
        Self::with(inner, shared, Backend::after_ssl_answer())
    }

    fn with(inner: S, shared: Arc<TapShared>, back: Backend) -> Self {
        Self {
            inner,
            shared,
            front: Frontend::default(),
            back,
        }
    }

    /// Feeds what the client wrote, once armed (startup messages are not framed).
    fn wrote(&mut self, bytes: &[u8]) {
        if !bytes.is_empty() && !self.back.is_inert() && self.shared.is_armed() {
            self.front.feed(bytes, &self.shared);
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for TapStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        if !this.back.is_inert() && this.shared.is_armed() {
            this.shared.reading();
        }
        let before = buf.filled().len();
        ready!(Pin::new(&mut this.inner).poll_read(cx, buf))?;
        this.back.feed(&buf.filled()[before..], &this.shared);
        Poll::Ready(Ok(()))
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for TapStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let written = ready!(Pin::new(&mut this.inner).poll_write(cx, buf))?;
        this.wrote(&buf[..written.min(buf.len())]);
        Poll::Ready(Ok(written))
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = &mut *self;
        let mut left = ready!(Pin::new(&mut this.inner).poll_write_vectored(cx, bufs))?;
        let written = left;
        for buf in bufs {
            if left == 0 {
                break;
            }
            let take = left.min(buf.len());
            this.wrote(&buf[..take]);
            left -= take;
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: TlsStream + Unpin> TlsStream for TapStream<S> {
    fn channel_binding(&self) -> ChannelBinding {
        self.inner.channel_binding()
    }
}

#[cfg(feature = "tls")]
/// A `TlsConnect` whose TLS stream is tapped: the tap reads the session above TLS.
#[derive(Debug, Clone)]
pub(crate) struct TapConnect<T> {
    inner: T,
    shared: Arc<TapShared>,
}

#[cfg(feature = "tls")]
impl<T> TapConnect<T> {
    pub(crate) fn new(inner: T, shared: Arc<TapShared>) -> Self {
        Self { inner, shared }
    }
}

#[cfg(feature = "tls")]
impl<S, T> TlsConnect<S> for TapConnect<T>
where
    T: TlsConnect<S>,
{
    type Stream = TapStream<T::Stream>;
    type Error = T::Error;
    type Future = TapConnecting<T::Future>;

    fn connect(self, stream: S) -> Self::Future {
        TapConnecting {
            inner: Box::pin(self.inner.connect(stream)),
            shared: Some(self.shared),
        }
    }
}

#[cfg(feature = "tls")]
/// The handshake of a [`TapConnect`].
pub(crate) struct TapConnecting<F> {
    inner: Pin<Box<F>>,
    shared: Option<Arc<TapShared>>,
}

#[cfg(feature = "tls")]
impl<F, S, E> Future for TapConnecting<F>
where
    F: Future<Output = Result<S, E>>,
{
    type Output = Result<TapStream<S>, E>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let stream = ready!(self.inner.as_mut().poll(cx))?;
        let shared = self.shared.take().expect("a handshake completes only once");
        Poll::Ready(Ok(TapStream::plain(stream, shared)))
    }
}
