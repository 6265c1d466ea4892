//! The part of a [`PgConnection`](crate::PgConnection) every call goes through: the tracker,
//! the statement cache and the queued reset, borrowed apart from the `Client` so that a
//! transaction (which borrows the client mutably) can use it too.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use crate::error::{PgError, is_fatal_driver_error, server_change};
use crate::pipeline::{self, Pending};
use crate::session::SqlFlags;
use crate::statement_cache::StatementCache;
use crate::tracker::Tracker;

/// Per-connection bookkeeping shared by the connection's and its transactions' calls.
pub(crate) struct State {
    pub(crate) tracker: Tracker,
    cache: Mutex<StatementCache>,
    pending: Mutex<Option<Pending>>,
    /// Whether `pending` holds a reset: lets a call skip the lock when it does not. Set
    /// only by the return path, which holds the connection exclusively (`&mut`), so no
    /// call can run between storing the reset and setting this.
    has_pending: AtomicBool,
    /// The union of the flags of the statements prepared on this session (bits of
    /// [`SqlFlags::bits`]): a `Statement` does not tell its SQL, so running one counts as
    /// running SQL with all of them (usually none).
    prepared: AtomicU8,
}

// Manual impl: `SimpleQueryStream` has no `Debug`.
impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("tracker", &self.tracker)
            .field("reset_queued", &self.has_pending())
            .finish_non_exhaustive()
    }
}

impl State {
    pub(crate) fn new(cache_capacity: usize) -> Self {
        Self {
            tracker: Tracker::default(),
            cache: Mutex::new(StatementCache::new(cache_capacity)),
            pending: Mutex::new(None),
            has_pending: AtomicBool::new(false),
            prepared: AtomicU8::new(0),
        }
    }

    /// Remembers that a statement with `flags` was prepared on this session.
    pub(crate) fn remember(&self, flags: SqlFlags) {
        self.prepared.fetch_or(flags.bits(), Ordering::Relaxed);
    }

    /// What running any statement prepared on this session may do.
    pub(crate) fn prepared_flags(&self) -> SqlFlags {
        SqlFlags::from_bits(self.prepared.load(Ordering::Relaxed))
    }

    pub(crate) fn cache(&self) -> MutexGuard<'_, StatementCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn pending(&self) -> MutexGuard<'_, Option<Pending>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn set_pending(&mut self, pending: Pending) {
        *self.pending() = Some(pending);
        self.has_pending.store(true, Ordering::Release);
    }

    pub(crate) fn take_pending(&self) -> Option<Pending> {
        if !self.has_pending.load(Ordering::Acquire) {
            return None;
        }
        let mut slot = self.pending();
        self.has_pending.store(false, Ordering::Release);
        slot.take()
    }

    pub(crate) fn has_pending(&self) -> bool {
        self.has_pending.load(Ordering::Acquire)
    }

    /// Reads what has arrived of a queued reset without waiting; a failure marks the
    /// session fatal. Returns whether the session is still trusted.
    pub(crate) fn poll_pending(&self) -> bool {
        if !self.has_pending.load(Ordering::Acquire) {
            return true;
        }
        let mut slot = self.pending();
        let Some(pending) = slot.as_mut() else {
            return true;
        };
        match pipeline::poll_now(pending) {
            None => true,
            Some(Ok(())) => {
                *slot = None;
                self.has_pending.store(false, Ordering::Release);
                true
            }
            Some(Err(error)) => {
                *slot = None;
                self.has_pending.store(false, Ordering::Release);
                drop(slot);
                tracing::warn!(error = %PgError::from(error), "pipelined session reset failed; the connection will be destroyed");
                self.tracker.mark_fatal();
                false
            }
        }
    }

    /// Runs one call: records it (`flags`, and `used` unless `quiet`), reads a queued reset
    /// ahead of it, and marks the session abandoned if the call is dropped before its
    /// response is read, fatal if the error proves the session dead.
    ///
    /// # Errors
    ///
    /// The call's error; [`PgError::ResetFailed`] when the queued reset failed (the call's
    /// statement may have run on an unclean session; the session is destroyed on return).
    pub(crate) async fn run<T, F>(&self, flags: SqlFlags, quiet: bool, fut: F) -> Result<T, PgError>
    where
        F: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        let call = if quiet {
            self.tracker.begin_quiet()
        } else {
            self.tracker.begin(flags)
        };
        let pending = self.take_pending();
        let (reset, result) = match pending {
            None => (Ok(()), fut.await),
            Some(pending) => futures_lite::future::zip(pipeline::settle(pending), fut).await,
        };
        call.finish();
        if let Err(error) = reset {
            self.tracker.mark_fatal();
            return Err(PgError::ResetFailed(error));
        }
        self.note(result)
    }

    /// Maps a driver result, marking the session fatal on an error that proves it dead.
    pub(crate) fn note<T>(&self, result: Result<T, tokio_postgres::Error>) -> Result<T, PgError> {
        result.map_err(|e| {
            if is_fatal_driver_error(&e) {
                self.tracker.mark_fatal();
            }
            if let Some(cause) = server_change(&e) {
                self.tracker.note_server_change(cause);
            }
            PgError::Driver(e)
        })
    }
}
