//! What a pipelined connection's wrapper knows about the requests made through it: how many
//! are in flight, whether one was abandoned before its response was read, whether an error
//! proved the connection dead, and whether the raw connection was reached.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use pg_wired::PgWireError;
use pg_wired::async_conn::{StreamHeader, StreamedRow};
use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TryRecvError;

use crate::error::{proves_dead, server_change};
use crate::session::tag_changes_session;
use pg_pool_conninfo::sql::{messages_change_session, sql_changes_session};

/// The state shared by a connection's wrapper, its in-flight requests and its open row
/// streams (which may outlive the borrow of the connection, hence the `Arc`).
#[derive(Default)]
pub(crate) struct Tracker {
    /// Requests started and not yet finished (row streams count until their end).
    in_flight: AtomicUsize,
    /// A request was dropped before its response was fully read: the server may still be
    /// running it, and its response is still to come.
    abandoned: AtomicBool,
    /// An error proved the connection dead, or it was closed.
    dead: AtomicBool,
    /// The raw connection was reached, so requests may have been made that this tracker did
    /// not see.
    raw: AtomicBool,
    /// A request's SQL (or its command tag) may have changed the session.
    changed: AtomicBool,
    /// What [`sql_changes_session`] said of the SQL run on this connection, so that a
    /// statement run again is not judged again.
    verdicts: std::sync::Mutex<HashMap<Box<str>, bool>>,
    /// What a failed request said about the server (`Poolable::server_changed`).
    server_change: std::sync::Mutex<Option<&'static str>>,
}

// Manual impl: the verdict cache is keyed by SQL text, which can carry secrets
// (`ALTER ROLE ... PASSWORD '...'`); only its size is shown.
impl std::fmt::Debug for Tracker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `try_lock`: formatting never waits (`None` while a request holds the cache).
        let verdicts = self.verdicts.try_lock().ok().map(|verdicts| verdicts.len());
        f.debug_struct("Tracker")
            .field("in_flight", &self.in_flight)
            .field("abandoned", &self.abandoned)
            .field("dead", &self.dead)
            .field("raw", &self.raw)
            .field("changed", &self.changed)
            .field("verdicts", &verdicts)
            .finish_non_exhaustive()
    }
}

impl Tracker {
    /// Starts tracking one request; finish it with [`Exchange::finish`].
    pub(crate) fn start(self: &Arc<Self>) -> Exchange {
        self.in_flight.fetch_add(1, Ordering::AcqRel);
        Exchange {
            tracker: Arc::clone(self),
            done: false,
        }
    }

    /// Records the outcome of a request that failed.
    pub(crate) fn record(&self, e: &PgWireError) {
        if proves_dead(e) {
            self.mark_dead();
        }
        if let Some(cause) = server_change(e) {
            *self
                .server_change
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(cause);
        }
    }

    /// What a failed request said about the server, if anything.
    pub(crate) fn server_change(&self) -> Option<&'static str> {
        *self
            .server_change
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Whether an error proved the connection dead (or it was closed).
    pub(crate) fn is_dead(&self) -> bool {
        self.dead.load(Ordering::Acquire)
    }

    /// Declares the connection dead.
    pub(crate) fn mark_dead(&self) {
        self.dead.store(true, Ordering::Release);
    }

    /// Whether a request may still be running: one is in flight, or one was abandoned.
    pub(crate) fn outstanding(&self) -> bool {
        self.in_flight.load(Ordering::Acquire) > 0 || self.abandoned.load(Ordering::Acquire)
    }

    /// Notes that the raw connection was reached.
    pub(crate) fn mark_raw(&self) {
        // Relaxed: read by the pool only after the guard that allowed the access is gone.
        self.raw.store(true, Ordering::Relaxed);
    }

    /// Whether the raw connection was reached since the last [`Tracker::clear_raw`].
    pub(crate) fn is_raw(&self) -> bool {
        self.raw.load(Ordering::Relaxed)
    }

    /// Forgets raw access, once a reset has brought the session back to a known state.
    pub(crate) fn clear_raw(&self) {
        self.raw.store(false, Ordering::Relaxed);
    }

    /// Notes `sql`, about to run, if it may change the session.
    pub(crate) fn note_sql(&self, sql: &str) {
        let lock = || {
            self.verdicts
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        let known = lock().get(sql).copied();
        let changes = known.unwrap_or_else(|| {
            let changes = sql_changes_session(sql);
            if sql.len() <= VERDICT_SQL_MAX {
                let mut verdicts = lock();
                if verdicts.len() >= VERDICTS_MAX {
                    verdicts.clear();
                }
                verdicts.insert(sql.into(), changes);
            }
            changes
        });
        if changes {
            self.mark_changed();
        }
    }

    /// Notes a buffer of frontend messages, about to be sent, if it may change the session.
    pub(crate) fn note_messages(&self, messages: &[u8]) {
        if messages_change_session(messages) {
            self.mark_changed();
        }
    }

    /// Notes a command tag the server reported, if its statement may have changed the
    /// session.
    pub(crate) fn note_tag(&self, tag: &str) {
        if !tag.is_empty() && tag_changes_session(tag) {
            self.mark_changed();
        }
    }

    /// Declares that the session may have changed.
    pub(crate) fn mark_changed(&self) {
        self.changed.store(true, Ordering::Release);
    }

    /// Whether the session may have changed since the last [`Tracker::take_changed`].
    pub(crate) fn is_changed(&self) -> bool {
        self.changed.load(Ordering::Acquire)
    }

    /// Whether the session may have changed, clearing the mark.
    pub(crate) fn take_changed(&self) -> bool {
        self.changed.swap(false, Ordering::AcqRel)
    }
}

/// How many verdicts a connection keeps (then it starts again).
const VERDICTS_MAX: usize = 256;
/// The longest SQL whose verdict is kept.
const VERDICT_SQL_MAX: usize = 4096;

/// One tracked request. Dropping it without [`Exchange::finish`] (its future was dropped
/// midway) marks the connection's exchange abandoned.
#[derive(Debug)]
pub(crate) struct Exchange {
    tracker: Arc<Tracker>,
    done: bool,
}

impl Exchange {
    /// Ends the request with its outcome, recording an error that proves the connection
    /// dead; returns the outcome unchanged.
    // The driver's own error type, passed through unchanged.
    #[allow(clippy::result_large_err)]
    pub(crate) fn finish<T>(mut self, outcome: Result<T, PgWireError>) -> Result<T, PgWireError> {
        if let Err(e) = &outcome {
            self.tracker.record(e);
        }
        self.done = true;
        outcome
    }
}

impl Drop for Exchange {
    fn drop(&mut self) {
        if !self.done {
            self.tracker.abandoned.store(true, Ordering::Release);
        }
        self.tracker.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// The rows of a streaming request ([`AsyncWirePoolable::submit_stream`]), one at a time.
///
/// The request counts as in flight until the stream has ended ([`recv`](Self::recv)
/// returned `None` or an error). A stream dropped before its end, or still open when the
/// connection goes back to the pool, leaves the exchange outstanding: the pool then
/// destroys the connection (cancelling the statement) instead of reusing it.
///
/// # Examples
///
/// ```no_run
/// use bytes::BytesMut;
/// use pg_pool_core::{ConnPoolConfig, LifecycleHooks};
/// use pg_pool_wire::AsyncWirePool;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = AsyncWirePool::new(ConnPoolConfig::default(), LifecycleHooks::default()).await?;
/// let conn = pool.get().await?;
/// let sql = b"SELECT generate_series(1, 1000)";
/// let mut query = BytesMut::new();
/// query.extend_from_slice(b"Q");
/// query.extend_from_slice(&(sql.len() as i32 + 5).to_be_bytes());
/// query.extend_from_slice(sql);
/// query.extend_from_slice(&[0]);
/// let mut rows = conn.submit_stream(query, 64).await?;
/// let mut n = 0;
/// while let Some(row) = rows.recv().await {
///     row?;
///     n += 1;
/// }
/// assert_eq!(n, 1000);
/// # Ok(()) }
/// ```
///
/// [`AsyncWirePoolable::submit_stream`]: crate::AsyncWirePoolable::submit_stream
#[derive(Debug)]
pub struct RowStream {
    header: StreamHeader,
    rows: mpsc::Receiver<Result<StreamedRow, PgWireError>>,
    exchange: Option<Exchange>,
}

impl RowStream {
    pub(crate) fn new(
        header: StreamHeader,
        rows: mpsc::Receiver<Result<StreamedRow, PgWireError>>,
        exchange: Exchange,
    ) -> Self {
        Self {
            header,
            rows,
            exchange: Some(exchange),
        }
    }

    /// The column descriptions of the result.
    pub fn header(&self) -> &StreamHeader {
        &self.header
    }

    /// The next row; `None` once the statement has completed.
    ///
    /// An error ends the stream; one that proves the connection dead (I/O error, connection
    /// closed, fatal server error) marks it broken, so the pool destroys it on return.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a row is never lost by dropping this future.
    pub async fn recv(&mut self) -> Option<Result<StreamedRow, PgWireError>> {
        let next = self.rows.recv().await;
        match next {
            Some(Ok(row)) => Some(Ok(row)),
            Some(Err(e)) => {
                if let Some(exchange) = self.exchange.take() {
                    return Some(exchange.finish(Err(e)));
                }
                Some(Err(e))
            }
            None => {
                if let Some(exchange) = self.exchange.take() {
                    let _ = exchange.finish(Ok(()));
                }
                None
            }
        }
    }
}

impl Drop for RowStream {
    fn drop(&mut self) {
        // Every row already read and the channel closed: the statement completed even though
        // the caller never saw the final `None`.
        if let Some(exchange) = self.exchange.take()
            && matches!(self.rows.try_recv(), Err(TryRecvError::Disconnected))
        {
            let _ = exchange.finish(Ok(()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn server_error(code: &str) -> PgWireError {
        let mut e = pg_wired::PgError::default();
        e.severity = "ERROR".into();
        e.code = code.into();
        PgWireError::Pg(e)
    }

    #[test]
    fn finished_requests_leave_nothing_outstanding() {
        let t = Arc::new(Tracker::default());
        let a = t.start();
        let b = t.start();
        assert!(t.outstanding());
        assert!(a.finish(Ok::<_, PgWireError>(())).is_ok());
        assert!(t.outstanding(), "one request is still in flight");
        let _ = b.finish(Err::<(), _>(server_error("42P01")));
        assert!(!t.outstanding());
        assert!(
            !t.is_dead(),
            "an ordinary SQL error does not kill the connection"
        );
    }

    #[test]
    fn sql_verdicts_are_remembered_and_stay_right() {
        let t = Tracker::default();
        for _ in 0..2 {
            t.note_sql("SELECT 1");
            assert!(!t.take_changed());
            t.note_sql("SELECT f()");
            assert!(t.take_changed());
        }
        for i in 0..(VERDICTS_MAX * 2) {
            t.note_sql(&format!("SELECT {i}"));
        }
        assert!(!t.take_changed());
        t.note_sql("SELECT f()");
        assert!(t.take_changed(), "still right once the cache started again");
        let started = std::time::Instant::now();
        for _ in 0..10_000 {
            t.note_sql("SELECT id, name FROM users WHERE id = $1");
        }
        println!(
            "a remembered verdict: {:?} per statement",
            started.elapsed() / 10_000
        );
        assert!(!t.take_changed());
    }

    #[test]
    fn a_dropped_request_is_abandoned() {
        let t = Arc::new(Tracker::default());
        drop(t.start());
        assert!(t.outstanding());
        assert!(!t.is_dead());
    }

    #[test]
    fn errors_that_prove_death_mark_the_connection_dead() {
        for e in [
            PgWireError::ConnectionClosed,
            PgWireError::Io(std::io::ErrorKind::BrokenPipe.into()),
            PgWireError::Protocol("unexpected message".into()),
        ] {
            let t = Arc::new(Tracker::default());
            let _ = t.start().finish(Err::<(), _>(e));
            assert!(t.is_dead());
            assert!(!t.outstanding());
        }
        for code in ["57P01", "57P02", "57P03", "57P05", "08006"] {
            let t = Arc::new(Tracker::default());
            let _ = t.start().finish(Err::<(), _>(server_error(code)));
            assert!(t.is_dead(), "{code}");
        }
    }
}
