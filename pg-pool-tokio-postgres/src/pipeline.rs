//! A reset queued on the connection at checkin and read by the next call: the pipelined
//! reset. tokio-postgres sends a client's requests in order and answers them in order, so
//! a request queued now precedes, on the wire, whatever the next user sends.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

use futures_lite::StreamExt as _;
use tokio_postgres::{Client, SimpleQueryStream};

/// The response of a queued reset, not yet read.
pub(crate) type Pending = Pin<Box<SimpleQueryStream>>;

/// Queues `sql` as a simple query without waiting for it: `simple_query_raw` hands the
/// request to the connection task on its first poll. `None` if it did not complete on that
/// poll (then nothing is queued and the caller resets the ordinary way).
pub(crate) fn queue(client: &Client, sql: &str) -> Option<Result<Pending, tokio_postgres::Error>> {
    let mut future = std::pin::pin!(client.simple_query_raw(sql));
    match future
        .as_mut()
        .poll(&mut Context::from_waker(Waker::noop()))
    {
        Poll::Ready(result) => Some(result.map(Box::pin)),
        Poll::Pending => None,
    }
}

/// Reads a queued reset's response to its end.
///
/// # Errors
///
/// The reset's error.
pub(crate) async fn settle(mut pending: Pending) -> Result<(), tokio_postgres::Error> {
    while let Some(message) = pending.next().await {
        message?;
    }
    Ok(())
}

/// Reads what has already arrived of a queued reset's response, without waiting.
/// `Some(Ok(()))`: it completed; `Some(Err)`: it failed; `None`: not all of it is in yet.
pub(crate) fn poll_now(pending: &mut Pending) -> Option<Result<(), tokio_postgres::Error>> {
    let mut cx = Context::from_waker(Waker::noop());
    loop {
        match pending.as_mut().poll_next(&mut cx) {
            Poll::Ready(None) => return Some(Ok(())),
            Poll::Ready(Some(Err(e))) => return Some(Err(e)),
            Poll::Ready(Some(Ok(_))) => {}
            Poll::Pending => return None,
        }
    }
}
