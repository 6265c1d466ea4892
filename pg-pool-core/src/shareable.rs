//! [`Shareable`]: a connection that many tasks may use at once, statement by statement.

use crate::poolable::Poolable;

/// A connection that many callers may use at the same time, each through a
/// [`Shareable::Handle`] that offers statement-level use only.
///
/// Some drivers pipeline: they take requests from many tasks through `&self`, send them in
/// order and hand each response to its caller (tokio-postgres's `Client`, pg-wired's
/// `AsyncConn`). When tasks far outnumber connections, a few such connections shared by
/// everybody serve more than any pool of exclusive checkouts.
/// [`ConnPool::get_shared`](crate::ConnPool::get_shared) hands out such shared leases.
///
/// The handle must not offer anything that changes the session for the other users
/// (transactions, session settings, raw access). Whatever it lets through anyway (SQL text
/// such as `SET` in a statement) is caught when the connection goes back to the pool, by
/// the ordinary return path ([`Poolable::needs_reset`], [`Poolable::reset`]).
///
/// # Examples
///
/// ```
/// use pg_pool_core::{Poolable, Shareable};
/// use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
///
/// #[derive(Debug, Default)]
/// struct Counter {
///     hits: AtomicU64,
///     dead: AtomicBool,
/// }
///
/// impl Poolable for Counter {
///     type Error = std::io::Error;
/// }
///
/// /// What users of a shared `Counter` may do: add one.
/// #[derive(Debug)]
/// struct Hit<'a>(&'a Counter);
///
/// impl Hit<'_> {
///     fn hit(&self) -> u64 {
///         self.0.hits.fetch_add(1, Ordering::Relaxed) + 1
///     }
/// }
///
/// impl Shareable for Counter {
///     type Handle<'a> = Hit<'a>;
///
///     fn share(&self) -> Hit<'_> {
///         Hit(self)
///     }
///
///     fn is_broken(&self) -> bool {
///         self.dead.load(Ordering::Relaxed)
///     }
/// }
///
/// let counter = Counter::default();
/// assert_eq!(counter.share().hit(), 1);
/// ```
pub trait Shareable: Poolable + Sync {
    /// What a user of a shared connection gets: statement-level access, borrowed from the
    /// connection.
    type Handle<'a>
    where
        Self: 'a;

    /// The handle one user of a shared lease works through. Called once per
    /// [`SharedGuard::handle`](crate::SharedGuard::handle) call; must be cheap.
    fn share(&self) -> Self::Handle<'_>;

    /// Returns `true` when the connection is dead (its driver task ended, an error proved
    /// the session gone), as opposed to merely busy: unlike
    /// [`Poolable::has_pending_data`], which is `true` while calls are in flight, this is
    /// asked while other users' calls are in flight, so it must ignore them.
    ///
    /// Asked when a shared user is handed the connection and when each one lets go. When
    /// `true`, the connection leaves the set of shared connections at once (no new user
    /// gets it); users already on it get their own errors; it goes back to the pool, which
    /// destroys it, when the last of them lets go. Must be cheap and must not block; a
    /// panic counts as `true`.
    fn is_broken(&self) -> bool;
}
