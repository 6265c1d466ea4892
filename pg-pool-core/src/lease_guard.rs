//! [`SharedGuard`]: one user's share of a pooled connection.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::guard::PoolGuard;
use crate::lease::Lease;
use crate::runtime::Runtime;
use crate::shareable::Shareable;

/// A shared lease of a pooled connection: one of possibly many users of it at once, through
/// [`SharedGuard::handle`]. Dropping it lets go; the connection goes back to the pool when
/// its last user lets go.
///
/// Returned by [`ConnPool::get_shared`](crate::ConnPool::get_shared). `Send` and `Sync`;
/// it does not borrow the pool.
///
/// # Cancel safety
///
/// Dropping a guard at any moment (also while a statement sent through its handle is in
/// flight) loses no capacity: the room it held goes to the first waiting caller, and the
/// connection is returned when nobody uses it any more. What a statement abandoned midway
/// leaves on the connection is the driver's business, as for an exclusive checkout: the
/// return path sees it (`has_pending_data`, `needs_reset`) when the connection goes back.
#[must_use = "dropping the guard lets go of the shared connection at once"]
pub struct SharedGuard<T: Shareable, R: Runtime> {
    lease: Arc<Lease<T, R>>,
}

impl<T: Shareable + fmt::Debug, R: Runtime> fmt::Debug for SharedGuard<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedGuard")
            .field("conn", self.lease.guard.conn())
            .field("in_flight", &self.lease.in_flight())
            .field("retired", &self.lease.retired.load(Ordering::Relaxed))
            .finish()
    }
}

/// Whether the connection says it is dead or reaches a server that changed; a panic counts
/// as dead.
fn dead<T: Shareable>(conn: &T) -> bool {
    catch_unwind(AssertUnwindSafe(|| {
        conn.is_broken() || conn.server_changed().is_some()
    }))
    .unwrap_or(true)
}

impl<T: Shareable, R: Runtime> SharedGuard<T, R> {
    pub(crate) fn new(lease: Arc<Lease<T, R>>) -> Self {
        Self { lease }
    }

    /// The statement-level handle to the shared connection ([`Shareable::share`]).
    pub fn handle(&self) -> T::Handle<'_> {
        self.lease.guard.conn().share()
    }

    /// Users of this guard's connection right now, this one included.
    pub fn in_flight(this: &Self) -> usize {
        this.lease.in_flight()
    }

    /// Marks the connection broken: no new user gets it, and it is destroyed instead of
    /// returned once its last user lets go. Users already on it are not interrupted.
    pub fn mark_broken(this: &Self) {
        this.lease.broken.store(true, Ordering::Release);
        this.retire();
    }

    /// Whether the connection is broken, stale or expired, so must take no new user.
    pub(crate) fn is_unfit(&self, generation: u64, lifetime: Option<Duration>) -> bool {
        if dead(self.lease.guard.conn()) {
            self.lease.broken.store(true, Ordering::Release);
            return true;
        }
        self.lease.generation != generation
            || lifetime.is_some_and(|lifetime| PoolGuard::age(&self.lease.guard) >= lifetime)
    }

    /// Takes the lease out of the set now, if it is still there.
    pub(crate) fn retire(&self) {
        let woken = {
            let mut slots = self.lease.set.lock();
            self.lease.set.retire(&mut slots, &self.lease)
        };
        if let Some(waiter) = woken {
            waiter.event.notify(1);
        }
    }
}

impl<T: Shareable, R: Runtime> Drop for SharedGuard<T, R> {
    fn drop(&mut self) {
        let dead = dead(self.lease.guard.conn());
        let set = &self.lease.set;
        // Exclusive callers waiting on the pool: this connection takes no more users and
        // goes back once they are done (looked at every few milliseconds, not every drop).
        let rotate = !dead && self.lease.rotation_due(set);
        let released = {
            let mut slots = set.lock();
            if rotate {
                set.rotate(&mut slots, &self.lease);
            }
            set.release(&mut slots, &self.lease, dead)
        };
        // Outside the lock: the wake-up, and the lease if it left the set (if this was its
        // last user, the lease goes with this guard's own `Arc` after this function, and
        // its `PoolGuard` returns the connection).
        released.finish();
    }
}
