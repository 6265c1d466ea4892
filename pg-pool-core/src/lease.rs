//! Shared leases: a few connections, each checked out with the ordinary exclusive path and
//! shared by many users at once, statement by statement.
//!
//! The set holds `Arc<Lease>`s; each lease owns one ordinary [`PoolGuard`], so checkout and
//! checkin hooks, validation, the reset on return, metrics, leak detection and `max_size`
//! apply to it unchanged. Each user holds a [`SharedGuard`] (one more `Arc` to its lease).
//!
//! Invariant: every lease in the set has at least one user. A user that brings the count
//! to zero removes the lease from the set under the set's lock, so the lease's last `Arc`
//! (and with it the `PoolGuard`, which returns the connection) goes when the last user
//! does. A lease that proved broken, stale or expired leaves the set at once; its users
//! finish, and the last one returns it (the ordinary return then destroys it).

use std::any::Any;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, OnceLock};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use event_listener::{Event, IntoNotification};

use crate::guard::PoolGuard;
use crate::runtime::Runtime;
use crate::shareable::Shareable;
use crate::sync::{Mutex, MutexGuard, lock};

/// Default of [`ConnPool::set_shared_max_in_flight`](crate::ConnPool::set_shared_max_in_flight):
/// users sharing one connection at once.
pub const DEFAULT_SHARED_MAX_IN_FLIGHT: usize = 32;

/// Largest value [`ConnPool::set_shared_max_in_flight`](crate::ConnPool::set_shared_max_in_flight)
/// accepts.
pub const SHARED_MAX_IN_FLIGHT_LIMIT: usize = 65_536;

/// What every `ConnPool` handle holds of the shared leases, whatever its connection type:
/// the set itself exists only for [`Shareable`] types (its leases are shared between
/// threads, so they need `T: Sync`, which a plain [`Poolable`] need not be), made by the
/// first `get_shared`.
pub(crate) struct LeaseHub {
    max_in_flight: AtomicUsize,
    closed: AtomicBool,
    set: OnceLock<Arc<dyn AnySet>>,
}

/// A [`LeaseSet`] of some connection type.
pub(crate) trait AnySet: Any + Send + Sync {
    /// Wakes every waiting caller to look again.
    fn wake_all(&self);
}

impl fmt::Debug for LeaseHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseHub")
            .field("max_in_flight", &self.max_in_flight())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl LeaseHub {
    pub(crate) fn new() -> Self {
        Self {
            max_in_flight: AtomicUsize::new(DEFAULT_SHARED_MAX_IN_FLIGHT),
            closed: AtomicBool::new(false),
            set: OnceLock::new(),
        }
    }

    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn set_max_in_flight(&self, max: usize) {
        self.max_in_flight.store(max, Ordering::Relaxed);
        // More room may exist now.
        if let Some(set) = self.set.get() {
            set.wake_all();
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// No new shared user from now on; users on a lease finish, and the last one returns it.
    /// A caller that made the set after this looks at the flag before taking anything.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(set) = self.set.get() {
            set.wake_all();
        }
    }

    /// The set of this pool's connection type, made on first use.
    pub(crate) fn typed<T: Shareable, R: Runtime>(&self) -> &LeaseSet<T, R> {
        let set: &(dyn Any + Send + Sync) = &**self
            .set
            .get_or_init(|| Arc::new(LeaseSet::<T, R>::new()));
        set.downcast_ref()
            .expect("a pool has one connection type and one runtime")
    }

    /// The set as an `Arc`, for a new lease to point back to.
    pub(crate) fn typed_arc<T: Shareable, R: Runtime>(&self) -> Arc<LeaseSet<T, R>> {
        self.typed::<T, R>();
        let set: Arc<dyn AnySet> = Arc::clone(self.set.get().expect("made just above"));
        let set: Arc<dyn Any + Send + Sync> = set;
        set.downcast()
            .unwrap_or_else(|_| unreachable!("a pool has one connection type and one runtime"))
    }
}

/// The pool's shared connections and the callers waiting for room on one.
pub(crate) struct LeaseSet<T: Shareable, R: Runtime> {
    slots: Mutex<Slots<T, R>>,
    /// Notified once per unit of room freed (or opener role given up), and for everyone on
    /// close.
    pub(crate) freed: Event,
}

impl<T: Shareable, R: Runtime> AnySet for LeaseSet<T, R> {
    fn wake_all(&self) {
        self.freed.notify(usize::MAX);
    }
}

pub(crate) struct Slots<T: Shareable, R: Runtime> {
    pub(crate) leases: Vec<Arc<Lease<T, R>>>,
    /// Callers of `get_shared` waiting (openers included).
    pub(crate) waiting: usize,
    /// Waiting callers that are checking out a new connection for the set.
    pub(crate) opening: usize,
    /// Shared leases handed out so far.
    pub(crate) handed_out: u64,
    /// Connections that left the set broken, stale or expired.
    pub(crate) retired: u64,
}

/// One shared connection.
pub(crate) struct Lease<T: Shareable, R: Runtime> {
    guard: PoolGuard<T, R>,
    set: Arc<LeaseSet<T, R>>,
    /// Users now; changed only under the set's lock.
    in_flight: AtomicUsize,
    /// Left the set (broken, stale, expired) or is leaving it (no user left).
    retired: AtomicBool,
    /// Destroy on return rather than reuse.
    broken: AtomicBool,
    /// The pool's eviction generation when the lease was made.
    pub(crate) generation: u64,
}

impl<T: Shareable, R: Runtime> Lease<T, R> {
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }
}

impl<T: Shareable, R: Runtime> Drop for Lease<T, R> {
    fn drop(&mut self) {
        // The last user is gone: the guard (dropped after this) returns the connection
        // through the ordinary path, which destroys it if it was found broken here.
        if self.broken.load(Ordering::Acquire) {
            PoolGuard::mark_broken(&mut self.guard);
        }
    }
}

impl<T: Shareable, R: Runtime> LeaseSet<T, R> {
    fn new() -> Self {
        Self {
            slots: Mutex::new(Slots {
                leases: Vec::new(),
                waiting: 0,
                opening: 0,
                handed_out: 0,
                retired: 0,
            }),
            freed: Event::new(),
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, Slots<T, R>> {
        lock(&self.slots)
    }

    /// Takes room on the least-loaded current lease under the limit, if any.
    pub(crate) fn pick(
        &self,
        slots: &mut Slots<T, R>,
        max: usize,
        generation: u64,
    ) -> Option<Arc<Lease<T, R>>> {
        let mut best: Option<(usize, usize)> = None;
        let mut index = 0;
        while index < slots.leases.len() {
            let lease = &slots.leases[index];
            if lease.generation != generation {
                // Evicted (`evict_all`, a server change): leaves the set; its users finish.
                let lease = slots.leases.swap_remove(index);
                lease.retired.store(true, Ordering::Relaxed);
                slots.retired += 1;
                continue;
            }
            let load = lease.in_flight.load(Ordering::Relaxed);
            if load < max && best.is_none_or(|(_, least)| load < least) {
                best = Some((index, load));
            }
            index += 1;
        }
        let (index, _) = best?;
        let lease = &slots.leases[index];
        lease.in_flight.fetch_add(1, Ordering::Relaxed);
        slots.handed_out += 1;
        Some(Arc::clone(lease))
    }

    /// Makes a lease of a connection just checked out, with its first user, and adds it.
    pub(crate) fn install(
        self: &Arc<Self>,
        slots: &mut Slots<T, R>,
        guard: PoolGuard<T, R>,
        max: usize,
        generation: u64,
    ) -> Arc<Lease<T, R>> {
        let lease = Arc::new(Lease {
            guard,
            set: Arc::clone(self),
            in_flight: AtomicUsize::new(1),
            retired: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            generation,
        });
        slots.leases.push(Arc::clone(&lease));
        slots.handed_out += 1;
        let room = max.saturating_sub(1).min(slots.waiting);
        if room > 0 {
            self.freed.notify(room.additional());
        }
        lease
    }
}

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
/// flight) loses no capacity: the room it held is given to a waiting caller, and the
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
            .field("in_flight", &self.lease.in_flight.load(Ordering::Relaxed))
            .field("retired", &self.lease.retired.load(Ordering::Relaxed))
            .finish()
    }
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
        this.lease.in_flight.load(Ordering::Relaxed)
    }

    /// Marks the connection broken: no new user gets it, and it is destroyed instead of
    /// returned once its last user lets go. Users already on it are not interrupted.
    pub fn mark_broken(this: &Self) {
        this.lease.broken.store(true, Ordering::Release);
        this.retire();
    }

    /// Whether the connection is broken, stale or expired: `true` means it left the set.
    pub(crate) fn is_unfit(&self, generation: u64, lifetime: Option<std::time::Duration>) -> bool {
        let conn = self.lease.guard.conn();
        let dead = catch_unwind(AssertUnwindSafe(|| {
            conn.is_broken() || conn.server_changed().is_some()
        }))
        .unwrap_or(true);
        if dead {
            self.lease.broken.store(true, Ordering::Release);
            return true;
        }
        self.lease.generation != generation
            || lifetime.is_some_and(|lifetime| PoolGuard::age(&self.lease.guard) >= lifetime)
    }

    /// Takes the lease out of the set now, if it is still there.
    pub(crate) fn retire(&self) {
        let set = &self.lease.set;
        let mut slots = set.lock();
        if !self.lease.retired.swap(true, Ordering::Relaxed) {
            if let Some(index) = slots
                .leases
                .iter()
                .position(|l| Arc::ptr_eq(l, &self.lease))
            {
                slots.leases.swap_remove(index);
            }
            slots.retired += 1;
            // The pool may have room for a replacement: let a waiter look.
            if slots.waiting > 0 {
                set.freed.notify(1.additional());
            }
        }
    }
}

impl<T: Shareable, R: Runtime> Drop for SharedGuard<T, R> {
    fn drop(&mut self) {
        let conn = self.lease.guard.conn();
        let dead = catch_unwind(AssertUnwindSafe(|| {
            conn.is_broken() || conn.server_changed().is_some()
        }))
        .unwrap_or(true);
        if dead {
            self.lease.broken.store(true, Ordering::Release);
        }
        let set = &self.lease.set;
        let removed = {
            let mut slots = set.lock();
            let left = self.lease.in_flight.fetch_sub(1, Ordering::Relaxed) - 1;
            let leaving = (left == 0 || dead) && !self.lease.retired.swap(true, Ordering::Relaxed);
            let removed = if leaving {
                let index = slots
                    .leases
                    .iter()
                    .position(|l| Arc::ptr_eq(l, &self.lease));
                if dead {
                    slots.retired += 1;
                }
                index.map(|index| slots.leases.swap_remove(index))
            } else {
                None
            };
            if slots.waiting > 0 {
                // Room on this lease, or (it left) maybe room in the pool for another.
                set.freed.notify(1.additional());
            }
            removed
        };
        // Dropped outside the lock: if this was the last user, the lease goes with the
        // guard's own `Arc`, after this function, and its `PoolGuard` returns the connection.
        drop(removed);
    }
}
