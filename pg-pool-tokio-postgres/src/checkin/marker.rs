//! The marker proof: a returned session proven idle in one hop through its connection task
//! instead of a server round trip.
//!
//! tokio-postgres queues requests on a channel the tap cannot see, so a session reached raw
//! (or with a call dropped mid-way) may still have requests that are not on the wire. The
//! return queues a marker ([`Nonce`]): once the tap has seen it written, it has seen and
//! judged every request queued before it. The session is then proven idle when, besides:
//!
//! - every exchange written before the marker has completed (its `ReadyForQuery` read), so
//!   the server has answered all of them;
//! - the client has gone back to reading the socket since, so it handed those answers over
//!   to their requests (a response stream kept but never read would otherwise hold back
//!   every later answer, the next user's included);
//! - the last status is idle, outside any transaction block;
//! - the tap is still sound (a `Query` swallowed by a `COPY ... FROM STDIN` the client never
//!   fed would leave the marker without an answer of its own: the tap stops trusting
//!   itself when the server reports it).
//!
//! The marker's own answer is not waited for: it precedes every later request's, and the
//! client drops it unread (its stream is dropped). The tap counts it as an ordinary
//! exchange, completed when its `ReadyForQuery` comes.

use futures_lite::{StreamExt as _, future};

use super::CANCEL_AFTER;
use crate::connection::PgConnection;
use crate::error::PgError;
use crate::pipeline::{self, Pending};
use crate::tap::{Nonce, TapShared};

/// Forgets the expected nonce when the proof ends, however it ends (cancelled included).
struct Forget<'a>(&'a TapShared);

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        self.0.markers.forget();
    }
}

impl PgConnection {
    /// Proves the session idle with a marker (see the module docs), waiting at most
    /// [`CANCEL_AFTER`]. `Ok(true)`: proven, and what the tap says is the whole story;
    /// `Ok(false)`: not proven (something still outstanding or unread, a transaction open,
    /// the tap not reading this session, no runtime for the timer, no random nonce): the
    /// caller proves it the checked way.
    ///
    /// # Errors
    ///
    /// The session is gone (the marker could not be queued, or its answer failed).
    ///
    /// # Cancel safety
    ///
    /// Dropping it forgets the nonce and drops the marker's answer unread; the pool
    /// destroys a connection whose return was cancelled.
    pub(super) async fn marker_proof(&self, tap: &TapShared) -> Result<bool, PgError> {
        let Some(runtime) = self.inner.runtime.clone() else {
            return Ok(false);
        };
        let Some(nonce) = Nonce::random() else {
            tracing::debug!("no random nonce for the checkin marker; checking the session");
            return Ok(false);
        };
        let _forget = Forget(tap);
        tap.markers.expect(&nonce);
        let answer = match pipeline::queue(self.raw_client(), &nonce.sql()) {
            None => return Ok(false),
            Some(Err(error)) => return self.inner.state.note(Err(error)),
            Some(Ok(answer)) => answer,
        };
        let passed = async {
            tap.marker_passed().await;
            Ok(true)
        };
        let answered = self.marker_answered(answer, tap);
        let late = async {
            runtime.sleep(CANCEL_AFTER).await;
            Ok(false)
        };
        let through = future::or(passed, future::or(answered, late)).await?;
        Ok(through && tap.live() && tap.view().status == b'I')
    }

    /// Reads the marker's answer. Resolves with its error (the session is gone), or with
    /// `false` if the server answered a marker the tap never saw written (the tap is not
    /// reading this session); otherwise never (the tap or the timer decides).
    async fn marker_answered(&self, mut answer: Pending, tap: &TapShared) -> Result<bool, PgError> {
        while let Some(message) = answer.next().await {
            if let Err(error) = message {
                return self.inner.state.note(Err(error));
            }
        }
        if tap.markers.seen_at().is_none() {
            tracing::debug!("the protocol tap missed the checkin marker; checking the session");
            return Ok(false);
        }
        future::pending().await
    }
}
