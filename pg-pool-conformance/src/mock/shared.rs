//! The shared side of a [`MockConn`]: what several users of one connection see through
//! `&self`, and its [`pg_pool_core::Shareable`] implementation.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use super::{Check, MockConn, MockError};

/// What users of a shared mock connection see and change through `&self`.
#[derive(Debug, Default)]
pub(super) struct SharedState {
    /// Killed through a handle: reported by `Shareable::is_broken` and `has_pending_data`.
    pub(super) dead: AtomicBool,
    /// Statements running now.
    pub(super) running: AtomicUsize,
    /// Most statements seen running at once.
    most_running: AtomicUsize,
    /// Statements run to completion.
    statements: AtomicU64,
}

/// Statement-level access to a shared [`MockConn`] ([`pg_pool_core::Shareable`]).
#[derive(Debug, Clone, Copy)]
pub struct MockHandle<'a> {
    conn: &'a MockConn,
}

impl MockHandle<'_> {
    /// The connection's id.
    pub fn id(&self) -> u64 {
        self.conn.id
    }

    /// Kills the connection, as a server terminating the session would: statements in
    /// flight on it and later ones fail.
    pub fn kill(&self) {
        self.conn.shared.dead.store(true, Ordering::SeqCst);
    }

    /// Most statements seen running at once on this connection.
    pub fn most_running(&self) -> usize {
        self.conn.shared.most_running.load(Ordering::SeqCst)
    }

    /// Statements run to completion on this connection.
    pub fn statements(&self) -> u64 {
        self.conn.shared.statements.load(Ordering::SeqCst)
    }

    /// Runs a "statement" taking `duration` (on the test's runtime timer).
    ///
    /// # Errors
    ///
    /// A [`MockError`] when the connection is dead at the start or the end.
    pub async fn statement(&self, duration: Duration) -> Result<u64, MockError> {
        let shared = &self.conn.shared;
        let dead = || MockError("connection terminated".into());
        if shared.dead.load(Ordering::SeqCst) {
            return Err(dead());
        }
        let now = shared.running.fetch_add(1, Ordering::SeqCst) + 1;
        shared.most_running.fetch_max(now, Ordering::SeqCst);
        struct Running<'a>(&'a SharedState);
        impl Drop for Running<'_> {
            fn drop(&mut self) {
                self.0.running.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let running = Running(shared);
        if !duration.is_zero() {
            (self.conn.control.sleeper)(duration).await;
        }
        drop(running);
        if shared.dead.load(Ordering::SeqCst) {
            return Err(dead());
        }
        shared.statements.fetch_add(1, Ordering::SeqCst);
        Ok(self.conn.id)
    }
}

impl pg_pool_core::Shareable for MockConn {
    type Handle<'a> = MockHandle<'a>;

    fn share(&self) -> MockHandle<'_> {
        self.control.check(Check::Share);
        MockHandle { conn: self }
    }

    fn is_broken(&self) -> bool {
        self.control.check(Check::IsBroken);
        self.shared.dead.load(Ordering::SeqCst)
    }
}
