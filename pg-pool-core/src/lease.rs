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

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use event_listener::Event;

use crate::clock::Instant;
use crate::guard::PoolGuard;
use crate::lease_hub::AnySet;
use crate::runtime::Runtime;
use crate::shareable::Shareable;
use crate::shared::Shared;
use crate::sync::{Mutex, MutexGuard, lock};

/// Default of [`ConnPool::set_shared_max_in_flight`](crate::ConnPool::set_shared_max_in_flight):
/// users sharing one connection at once.
pub const DEFAULT_SHARED_MAX_IN_FLIGHT: usize = 32;

/// How often a shared connection in steady use looks whether callers of the pool's own
/// `get()` wait for a connection (then it stops taking users and goes back): 5 ms.
pub(crate) const ROTATE_LOOK: std::time::Duration = std::time::Duration::from_millis(5);
const ROTATE_LOOK_NANOS: u64 = ROTATE_LOOK.as_nanos() as u64;

/// Largest value [`ConnPool::set_shared_max_in_flight`](crate::ConnPool::set_shared_max_in_flight)
/// accepts.
pub const SHARED_MAX_IN_FLIGHT_LIMIT: usize = 65_536;

/// The pool's shared connections and the callers waiting for room on one.
pub(crate) struct LeaseSet<T: Shareable, R: Runtime> {
    slots: Mutex<Slots<T, R>>,
}

impl<T: Shareable, R: Runtime> AnySet for LeaseSet<T, R> {
    fn wake_all(&self) {
        let slots = self.lock();
        for waiter in &slots.queue {
            waiter.event.notify(1);
        }
    }
}

pub(crate) struct Slots<T: Shareable, R: Runtime> {
    pub(crate) leases: Vec<Arc<Lease<T, R>>>,
    /// Callers of `get_shared` waiting, first come first served: freed room is handed to
    /// the head directly.
    pub(crate) queue: VecDeque<Arc<Waiter<T, R>>>,
    /// Finished waiters, reused so that waiting allocates nothing once warm.
    pub(crate) spares: Vec<Arc<Waiter<T, R>>>,
    /// Waiting callers that are checking out a new connection for the set.
    pub(crate) opening: usize,
    /// Shared leases handed out so far.
    pub(crate) handed_out: u64,
    /// Connections that left the set broken, stale or expired.
    pub(crate) retired: u64,
    /// Healthy connections that left the set for exclusive callers waiting on the pool.
    pub(crate) rotated: u64,
}

/// One caller waiting for room.
pub(crate) struct Waiter<T: Shareable, R: Runtime> {
    pub(crate) event: Event,
    /// Room handed over (the lease's count already includes it); under the set's lock.
    pub(crate) grant: Mutex<Option<Arc<Lease<T, R>>>>,
    /// Checking out a connection for the set; changed under the set's lock.
    pub(crate) opener: AtomicBool,
    /// In the queue; changed under the set's lock. Spares a search of the queue when a
    /// waiter handed room leaves.
    pub(crate) queued: AtomicBool,
}

impl<T: Shareable, R: Runtime> Waiter<T, R> {
    pub(crate) fn take_grant(&self) -> Option<Arc<Lease<T, R>>> {
        lock(&self.grant).take()
    }
}

/// One shared connection.
pub(crate) struct Lease<T: Shareable, R: Runtime> {
    pub(crate) guard: PoolGuard<T, R>,
    pub(crate) set: Arc<LeaseSet<T, R>>,
    /// Users now (room handed to a waiter included); changed only under the set's lock.
    in_flight: AtomicUsize,
    /// Left the set (broken, stale, expired) or is leaving it (no user left).
    pub(crate) retired: AtomicBool,
    /// Destroy on return rather than reuse.
    pub(crate) broken: AtomicBool,
    /// The pool's eviction generation when the lease was made.
    pub(crate) generation: u64,
    /// The pool, to ask whether exclusive callers wait for a connection.
    pub(crate) pool: Arc<Shared<T, R>>,
    /// When the lease was made.
    started: Instant,
    /// Nanoseconds after `started` at which the lease next looks at the pool's queue.
    next_look: AtomicU64,
}

impl<T: Shareable, R: Runtime> Lease<T, R> {
    pub(crate) fn in_flight(&self) -> usize {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Whether this lease should stop taking users so that its connection goes back to
    /// the pool: callers of the pool's own `get()` are queued (more than this set's own
    /// checkout), and the lease has been out for a while. Looks at the pool at most once
    /// per [`ROTATE_LOOK`], so a busy lease costs one clock read per user; only when the
    /// pool is full.
    pub(crate) fn rotation_due(&self, set: &LeaseSet<T, R>) -> bool {
        let age = u64::try_from(self.started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        let next = self.next_look.load(Ordering::Relaxed);
        if age < next
            || self
                .next_look
                .compare_exchange(
                    next,
                    age.saturating_add(ROTATE_LOOK_NANOS),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_err()
        {
            return false;
        }
        let pool = self.pool.metrics();
        if pool.size < pool.max_size {
            // The pool can open a connection for them.
            return false;
        }
        let ours = set.lock().opening;
        pool.waiters > ours
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

/// What letting go of one unit of room did, to finish once the set's lock is released.
#[must_use]
pub(crate) struct Released<T: Shareable, R: Runtime> {
    /// The waiter the room went to: to wake.
    pub(crate) woken: Option<Arc<Waiter<T, R>>>,
    /// A waiter to wake so that it checks a connection out for the set.
    pub(crate) nudged: Option<Arc<Waiter<T, R>>>,
    /// The lease, if it left the set: dropped outside the lock (the last `Arc` returns
    /// the connection).
    pub(crate) removed: Option<Arc<Lease<T, R>>>,
    /// Room a leaving waiter had been handed: its `Arc`, dropped outside the lock too.
    pub(crate) held: Option<Arc<Lease<T, R>>>,
}

impl<T: Shareable, R: Runtime> Released<T, R> {
    pub(crate) fn finish(self) {
        for waiter in [self.woken, self.nudged].into_iter().flatten() {
            waiter.event.notify(1);
        }
        drop(self.removed);
        drop(self.held);
    }
}

impl<T: Shareable, R: Runtime> LeaseSet<T, R> {
    pub(crate) fn new() -> Self {
        Self {
            slots: Mutex::new(Slots {
                leases: Vec::new(),
                queue: VecDeque::new(),
                spares: Vec::new(),
                opening: 0,
                handed_out: 0,
                retired: 0,
                rotated: 0,
            }),
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
        let index = self.least_loaded(slots, max, generation)?;
        let lease = &slots.leases[index];
        lease.in_flight.fetch_add(1, Ordering::Relaxed);
        slots.handed_out += 1;
        Some(Arc::clone(lease))
    }

    /// The index of the least-loaded lease under `max`; retires stale ones on the way.
    fn least_loaded(&self, slots: &mut Slots<T, R>, max: usize, generation: u64) -> Option<usize> {
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
        best.map(|(index, _)| index)
    }

    /// Hands room on `lease` to the head waiter (the lease's count goes up by one).
    fn grant(
        &self,
        slots: &mut Slots<T, R>,
        lease: &Arc<Lease<T, R>>,
    ) -> Option<Arc<Waiter<T, R>>> {
        let waiter = slots.queue.pop_front()?;
        waiter.queued.store(false, Ordering::Relaxed);
        *lock(&waiter.grant) = Some(Arc::clone(lease));
        slots.handed_out += 1;
        Some(waiter)
    }

    /// Hands every free unit of room on the current leases to waiters, head first; wakes
    /// them at once (a bulk path: a new lease, a raised limit).
    pub(crate) fn grant_free_room(&self, slots: &mut Slots<T, R>, max: usize, generation: u64) {
        while !slots.queue.is_empty() {
            let Some(index) = self.least_loaded(slots, max, generation) else {
                break;
            };
            let lease = Arc::clone(&slots.leases[index]);
            lease.in_flight.fetch_add(1, Ordering::Relaxed);
            if let Some(waiter) = self.grant(slots, &lease) {
                waiter.event.notify(1);
            }
        }
    }

    /// Makes a lease of a connection just checked out, with its first user, adds it, and
    /// hands its other room to waiters.
    pub(crate) fn install(
        self: &Arc<Self>,
        slots: &mut Slots<T, R>,
        guard: PoolGuard<T, R>,
        pool: &Arc<Shared<T, R>>,
        max: usize,
        generation: u64,
    ) -> Arc<Lease<T, R>> {
        let lease = Arc::new(Lease {
            guard,
            pool: Arc::clone(pool),
            started: Instant::now(),
            next_look: AtomicU64::new(ROTATE_LOOK_NANOS),
            set: Arc::clone(self),
            in_flight: AtomicUsize::new(1),
            retired: AtomicBool::new(false),
            broken: AtomicBool::new(false),
            generation,
        });
        slots.leases.push(Arc::clone(&lease));
        slots.handed_out += 1;
        self.grant_free_room(slots, max, generation);
        lease
    }

    /// One user of `lease` lets go (`dead`: it found the connection dead). A healthy
    /// lease's room goes straight to the head waiter; otherwise the count goes down, and a
    /// lease with no user left, or dead, leaves the set.
    pub(crate) fn release(
        &self,
        slots: &mut Slots<T, R>,
        lease: &Arc<Lease<T, R>>,
        dead: bool,
    ) -> Released<T, R> {
        if dead {
            lease.broken.store(true, Ordering::Release);
        }
        if !dead
            && !lease.retired.load(Ordering::Relaxed)
            && let Some(waiter) = self.grant(slots, lease)
        {
            return Released {
                woken: Some(waiter),
                nudged: None,
                removed: None,
                held: None,
            };
        }
        let left = lease.in_flight.fetch_sub(1, Ordering::Relaxed) - 1;
        let mut removed = None;
        if (left == 0 || dead) && !lease.retired.swap(true, Ordering::Relaxed) {
            if dead {
                slots.retired += 1;
            }
            if let Some(index) = slots.leases.iter().position(|l| Arc::ptr_eq(l, lease)) {
                removed = Some(slots.leases.swap_remove(index));
            }
        }
        // A lease leaving the set may free a connection in the pool: someone waiting
        // should be checking one out.
        let nudged = if removed.is_some() {
            self.opener_wanted(slots)
        } else {
            None
        };
        Released {
            woken: None,
            nudged,
            removed,
            held: None,
        }
    }

    /// Takes a healthy `lease` out of the set so that it goes back to the pool once its
    /// users are done (exclusive callers are waiting).
    pub(crate) fn rotate(&self, slots: &mut Slots<T, R>, lease: &Arc<Lease<T, R>>) {
        if lease.retired.swap(true, Ordering::Relaxed) {
            return;
        }
        if let Some(index) = slots.leases.iter().position(|l| Arc::ptr_eq(l, lease)) {
            slots.leases.swap_remove(index);
        }
        slots.rotated += 1;
    }

    /// Takes `lease` out of the set now, if it is still there (broken, stale, expired).
    pub(crate) fn retire(
        &self,
        slots: &mut Slots<T, R>,
        lease: &Arc<Lease<T, R>>,
    ) -> Option<Arc<Waiter<T, R>>> {
        if lease.retired.swap(true, Ordering::Relaxed) {
            return None;
        }
        if let Some(index) = slots.leases.iter().position(|l| Arc::ptr_eq(l, lease)) {
            slots.leases.swap_remove(index);
        }
        slots.retired += 1;
        self.opener_wanted(slots)
    }

    /// The waiter to wake so that it checks a connection out for the set, when waiters
    /// have none doing so: the newest, which will wait longest for room handed over, so its
    /// checkout is given up least often.
    pub(crate) fn opener_wanted(&self, slots: &Slots<T, R>) -> Option<Arc<Waiter<T, R>>> {
        if slots.opening > 0 {
            return None;
        }
        slots.queue.back().cloned()
    }

    /// A waiter for the queue: a spare one when there is one.
    pub(crate) fn new_waiter(slots: &mut Slots<T, R>) -> Arc<Waiter<T, R>> {
        slots.spares.pop().unwrap_or_else(|| {
            Arc::new(Waiter {
                event: Event::new(),
                grant: Mutex::new(None),
                opener: AtomicBool::new(false),
                queued: AtomicBool::new(false),
            })
        })
    }
}
