//! The methods of [`AsyncWirePoolable`] that mirror [`AsyncConn`]'s accessors and flags, so
//! that calling them on a checked-out connection does not go through `Deref` (which counts
//! as raw access and costs a reset at checkin).
//!
//! [`AsyncConn`]: pg_wired::AsyncConn

use pg_wired::CancelToken;
use pg_wired::protocol::types::BackendMsg;
use tokio::sync::mpsc;

use crate::async_poolable::AsyncWirePoolable;

impl AsyncWirePoolable {
    /// Whether the connection's writer task is still running
    /// ([`AsyncConn::is_alive`](pg_wired::AsyncConn::is_alive)). It stays true after the
    /// server closed the socket until a write fails; [`is_broken`](Self::is_broken) is the
    /// better question.
    pub fn is_alive(&self) -> bool {
        self.raw().is_alive()
    }

    /// The server process ID of this session.
    pub fn backend_pid(&self) -> i32 {
        self.raw().backend_pid()
    }

    /// The server address this connection talks to.
    pub fn addr(&self) -> &str {
        self.raw().addr()
    }

    /// A token that cancels the statement running on this session
    /// ([`AsyncConn::cancel_token`](pg_wired::AsyncConn::cancel_token)).
    pub fn cancel_token(&self) -> CancelToken {
        self.raw().cancel_token()
    }

    /// Declares that the session's state was changed in a way the SQL of the requests
    /// does not show (a trigger or a view calling a function that sets something), so the
    /// pool resets it with `DISCARD ALL` when it comes back.
    pub fn mark_state_mutated(&self) {
        self.raw().mark_state_mutated();
    }

    /// Whether the session is marked as changed (by a caller, by pg-wired's reader, or by
    /// the SQL of a request made through this wrapper), without clearing the mark.
    pub fn is_state_mutated(&self) -> bool {
        self.raw().is_state_mutated() || self.tracker().is_changed()
    }

    /// Declares the connection unusable, so the pool destroys it when it comes back.
    pub fn mark_broken(&self) {
        self.raw().mark_broken();
    }

    /// How many `NotificationResponse` messages the connection dropped so far.
    pub fn dropped_notifications(&self) -> u64 {
        self.raw().dropped_notifications()
    }

    /// Takes the receiver of asynchronous notifications (`LISTEN`); `None` after the first
    /// call.
    pub fn take_notification_receiver(&self) -> Option<mpsc::Receiver<BackendMsg>> {
        self.raw().take_notification_receiver()
    }

    /// Looks up `sql` in the statement cache or allocates a new statement name
    /// ([`AsyncConn::lookup_or_alloc`](pg_wired::AsyncConn::lookup_or_alloc)).
    pub fn lookup_or_alloc(&self, sql: &str, param_oids: &[u32]) -> (Vec<u8>, bool) {
        self.raw().lookup_or_alloc(sql, param_oids)
    }

    /// Publishes a statement parsed under `name` in the statement cache.
    pub fn cache_statement(&self, sql: &str, name: &[u8]) {
        self.raw().cache_statement(sql, name);
    }

    /// Removes `sql` from the statement cache.
    pub fn invalidate_statement(&self, sql: &str) {
        self.raw().invalidate_statement(sql);
    }

    /// Empties the statement cache.
    pub fn clear_statement_cache(&self) {
        self.raw().clear_statement_cache();
    }

    /// Queues a `ROLLBACK` without waiting for it, for use in a synchronous `Drop`
    /// ([`AsyncConn::enqueue_rollback`](pg_wired::AsyncConn::enqueue_rollback)); `false` when
    /// it could not be queued, in which case the connection is marked broken.
    ///
    /// The session is also marked as changed, so the pool's `DISCARD ALL` at checkin runs
    /// after the `ROLLBACK` and confirms the session is idle before anyone reuses it.
    pub fn enqueue_rollback(&self) -> bool {
        let queued = self.raw().enqueue_rollback();
        if queued {
            self.raw().mark_state_mutated();
        } else {
            self.raw().mark_broken();
        }
        queued
    }
}
