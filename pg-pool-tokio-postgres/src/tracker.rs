//! What the wrapper saw of a session since its last reset: use, raw access, SQL that may open
//! a transaction or prepare, calls abandoned mid-way, fatal errors.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use crate::session::SqlFlags;

/// Per-connection observations, updated through `&self` by every call.
#[derive(Debug, Default)]
pub(crate) struct Tracker {
    /// A statement was sent (through any method) since the last reset.
    used: AtomicBool,
    /// The raw `Client` (or a raw `Transaction`) was reached: the wrapper saw nothing of
    /// what it did, so the return path must prove the session idle and reset it fully.
    raw: AtomicBool,
    /// SQL that may have opened a transaction block was sent, or a `PgTransaction` was
    /// begun and not dropped (a leaked one never queues its `ROLLBACK`).
    opens_transaction: AtomicBool,
    /// A `PgTransaction` was begun since the last reset (a dropped one queues its
    /// `ROLLBACK`, which may not be on the wire yet when the session comes back).
    transaction_seen: AtomicBool,
    /// SQL that may have created SQL-level prepared statements was sent.
    prepares: AtomicBool,
    /// A call was dropped before its response was fully read: an exchange may be in flight.
    abandoned: AtomicBool,
    /// How many exchanges the protocol tap had seen written at the last return that
    /// trusted it: a use must add some, or the tap is not seeing the session.
    tap_sent: AtomicU64,
    /// An error proved the session dead.
    fatal: AtomicBool,
    /// What a failed call said about the server (`Poolable::server_changed`).
    server_change: std::sync::Mutex<Option<&'static str>>,
    /// Whether `server_change` holds anything: every return asks, almost never with
    /// anything to find, so the answer is read without the lock.
    server_changed: AtomicBool,
    /// Calls begun and not yet dropped: more than zero at checkin only if one was leaked
    /// (`mem::forget` of a row stream), its exchange perhaps never to be read.
    in_flight: AtomicUsize,
}

/// What the return path needs to know, read once.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Snapshot {
    pub(crate) used: bool,
    pub(crate) raw: bool,
    pub(crate) flags: SqlFlags,
    pub(crate) abandoned: bool,
    /// A `PgTransaction` was begun since the last reset.
    pub(crate) transaction_seen: bool,
}

impl Snapshot {
    /// Whether the return must take the checked, asynchronous path: something may be in
    /// flight, or the transaction status is unknown.
    pub(crate) fn needs_checked_path(self) -> bool {
        self.raw || self.abandoned || self.flags.opens_transaction
    }
}

impl Tracker {
    /// Starts a call that sends SQL with `flags`; the call is abandoned unless
    /// [`Call::finish`] runs.
    pub(crate) fn begin(&self, flags: SqlFlags) -> Call<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        self.used.store(true, Ordering::Relaxed);
        if flags.opens_transaction {
            self.opens_transaction.store(true, Ordering::Relaxed);
        }
        if flags.prepares {
            self.prepares.store(true, Ordering::Relaxed);
        }
        Call {
            tracker: self,
            finished: false,
        }
    }

    /// Starts a call that changes nothing in the session (a ping, `pg_backend_pid()`): it
    /// does not count as use, but is still tracked until its response is read.
    pub(crate) fn begin_quiet(&self) -> Call<'_> {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        Call {
            tracker: self,
            finished: false,
        }
    }

    /// A `PgTransaction` began: until [`Tracker::transaction_ended`], its end is unknown.
    pub(crate) fn transaction_began(&self) {
        self.opens_transaction.store(true, Ordering::Relaxed);
        self.transaction_seen.store(true, Ordering::Relaxed);
    }

    /// The `PgTransaction` was dropped (after its commit or rollback, or having queued its
    /// `ROLLBACK`): the session is outside it, as far as the wrapper can see.
    pub(crate) fn transaction_ended(&self) {
        self.opens_transaction.store(false, Ordering::Relaxed);
    }

    /// Whether the tap saw exchanges written since the last return that trusted it (`sent`
    /// now), recording `sent` for the next one.
    pub(crate) fn tap_advanced(&self, sent: u64) -> bool {
        // Only the return path (which holds the connection exclusively) reads and writes
        // it: a load and a store, no locked swap.
        let before = self.tap_sent.load(Ordering::Relaxed);
        self.tap_sent.store(sent, Ordering::Relaxed);
        before < sent
    }

    /// Records raw access.
    pub(crate) fn mark_raw(&self) {
        self.used.store(true, Ordering::Relaxed);
        self.raw.store(true, Ordering::Relaxed);
    }

    /// Notes what a failed call said about the server.
    pub(crate) fn note_server_change(&self, cause: &'static str) {
        *self
            .server_change
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(cause);
        self.server_changed.store(true, Ordering::Release);
    }

    /// What a failed call said about the server, if anything.
    pub(crate) fn server_change(&self) -> Option<&'static str> {
        if !self.server_changed.load(Ordering::Acquire) {
            return None;
        }
        *self
            .server_change
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub(crate) fn mark_fatal(&self) {
        self.fatal.store(true, Ordering::Relaxed);
    }

    pub(crate) fn is_fatal(&self) -> bool {
        self.fatal.load(Ordering::Relaxed)
    }

    pub(crate) fn is_used(&self) -> bool {
        self.used.load(Ordering::Relaxed) || self.raw.load(Ordering::Relaxed)
    }

    pub(crate) fn snapshot(&self) -> Snapshot {
        Snapshot {
            used: self.used.load(Ordering::Relaxed),
            raw: self.raw.load(Ordering::Relaxed),
            flags: SqlFlags {
                opens_transaction: self.opens_transaction.load(Ordering::Relaxed),
                prepares: self.prepares.load(Ordering::Relaxed),
            },
            abandoned: self.abandoned.load(Ordering::Relaxed)
                || self.in_flight.load(Ordering::Relaxed) > 0,
            transaction_seen: self.transaction_seen.load(Ordering::Relaxed),
        }
    }

    /// Forgets everything but a fatal error: the session was proven idle and reset.
    pub(crate) fn clear(&self) {
        for flag in [
            &self.used,
            &self.raw,
            &self.opens_transaction,
            &self.prepares,
            &self.abandoned,
            &self.transaction_seen,
        ] {
            flag.store(false, Ordering::Relaxed);
        }
    }
}

/// One call in flight; marks the session abandoned if dropped before [`Call::finish`].
#[derive(Debug)]
pub(crate) struct Call<'a> {
    tracker: &'a Tracker,
    finished: bool,
}

impl Call<'_> {
    /// The response was read to its end.
    pub(crate) fn finish(mut self) {
        self.finished = true;
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.tracker.abandoned.store(true, Ordering::Relaxed);
        }
        self.tracker.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_call_is_abandoned() {
        let tracker = Tracker::default();
        tracker.begin(SqlFlags::default()).finish();
        let s = tracker.snapshot();
        assert!(s.used && !s.abandoned && !s.needs_checked_path());
        drop(tracker.begin(SqlFlags::default()));
        assert!(tracker.snapshot().abandoned);
        assert!(tracker.snapshot().needs_checked_path());
        tracker.clear();
        assert!(!tracker.is_used());
        tracker.begin(SqlFlags::UNKNOWN).finish();
        assert!(tracker.snapshot().needs_checked_path());
        tracker.clear();
        let leaked = tracker.begin(SqlFlags::default());
        std::mem::forget(leaked);
        assert!(tracker.snapshot().needs_checked_path(), "a leaked call");
    }
}
