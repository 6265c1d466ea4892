//! [`PgRowStream`]: rows streamed from a pooled session, tracked until the stream ends.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_lite::Stream;
use tokio_postgres::{Row, RowStream};

use crate::error::PgError;
use crate::pipeline;
use crate::session::SqlFlags;
use crate::state::State;
use crate::tracker::Call;

/// The rows of a streaming query ([`PgConnection::query_raw`](crate::PgConnection::query_raw),
/// [`query_typed_raw`](crate::PgConnection::query_typed_raw)).
///
/// The exchange counts as in flight until the stream has yielded its end (or an error): a
/// stream dropped early makes the pool wait out (and cancel server-side) the rest of the
/// response before it reuses the session.
pub struct PgRowStream<'a> {
    inner: Pin<Box<RowStream>>,
    state: &'a State,
    call: Option<Call<'a>>,
}

// Manual impl: `RowStream` has no `Debug`.
impl fmt::Debug for PgRowStream<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgRowStream")
            .field("ended", &self.call.is_none())
            .finish_non_exhaustive()
    }
}

impl<'a> PgRowStream<'a> {
    pub(crate) async fn start<F>(
        state: &'a State,
        flags: SqlFlags,
        start: F,
    ) -> Result<Self, PgError>
    where
        F: Future<Output = Result<RowStream, tokio_postgres::Error>>,
    {
        let call = state.tracker.begin(flags);
        let (reset, result) = match state.take_pending() {
            None => (Ok(()), start.await),
            Some(pending) => futures_lite::future::zip(pipeline::settle(pending), start).await,
        };
        if let Err(error) = reset {
            call.finish();
            state.tracker.mark_fatal();
            return Err(PgError::ResetFailed(error));
        }
        match result {
            Ok(stream) => Ok(Self {
                inner: Box::pin(stream),
                state,
                call: Some(call),
            }),
            Err(error) => {
                call.finish();
                Err(state.note(Err::<(), _>(error)).unwrap_err())
            }
        }
    }

    /// The number of rows affected, once the stream has ended (`None` before, or for a
    /// statement that reports none).
    pub fn rows_affected(&self) -> Option<u64> {
        self.inner.rows_affected()
    }
}

impl Stream for PgRowStream<'_> {
    type Item = Result<Row, PgError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if this.call.is_none() {
            return Poll::Ready(None);
        }
        match this.inner.as_mut().poll_next(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(row))) => Poll::Ready(Some(Ok(row))),
            Poll::Ready(Some(Err(error))) => {
                if let Some(call) = this.call.take() {
                    call.finish();
                }
                Poll::Ready(Some(this.state.note(Err(error))))
            }
            Poll::Ready(None) => {
                if let Some(call) = this.call.take() {
                    call.finish();
                }
                Poll::Ready(None)
            }
        }
    }
}
