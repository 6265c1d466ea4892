//! The fast slot: checkout and return without the pool lock when nobody waits.
//!
//! One atomic cell holds the most recently returned idle connection. While the slot is
//! *open* (nobody queued, the pool not draining nor above its size), a return puts its
//! connection there with one atomic swap and a checkout takes it with another: no lock, no
//! queue, no ledger update. Everything else goes through the pool lock as before.
//!
//! # Accounting
//!
//! A connection in the slot stays counted as `active` in the ledger: moving it between a
//! guard and the slot changes no count, which is why neither side needs the lock. Whatever
//! needs the idle set to be complete (a metrics snapshot, the reaper, the probe, `retain`,
//! `resize`, `evict_all`, `drain`, planning connects for `min_idle`, a checkout that found
//! the slot empty) first moves the slot's connection into the ledger under the lock
//! (`Shared::unslot`), so gauges and decisions are exact.
//!
//! # No overtaking, no lost wake-up
//!
//! The slot is closed (`open == false`) in the same critical section that queues a caller,
//! and that critical section then empties the slot, handing what it finds to the head of
//! the queue. A return checks `open` before putting its connection in the slot *and again
//! after*: if a caller queued in between, the return takes back whatever is in the slot and
//! places it under the lock, where the head waiter gets it. Both sides write one location
//! and then read the other, with a swap of the slot between, so at least one of them sees
//! the other (the swaps are totally ordered and synchronise): either the queueing caller
//! finds the connection in the slot, or the return sees the slot closed. A connection never
//! sits in the slot while a caller sleeps in the queue, except for that instant.
//!
//! A checkout takes from the slot only while it is open, so it never takes a connection
//! ahead of a caller already queued (strict FIFO). A checkout and a return that overlap a
//! caller's queueing may complete before it, as any overlapping operations may.
//!
//! # Metrics
//!
//! A checkout served from the slot waited zero: it is counted in one relaxed counter, added
//! to `checkouts` and to the first bucket of `wait_time` in every snapshot. Returns into the
//! slot record their usage in an atomic histogram, merged into `usage_time`.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::clock::{Instant, nanos_between, saturating_nanos};
use crate::config::{ConnPoolConfig, IdleOrder};
use crate::conn::{Conn, ConnData};
use crate::hooks::LifecycleHooks;
use crate::metrics::{HISTOGRAM_BUCKETS, Histogram};
use crate::poolable::Poolable;
use crate::runtime::Runtime;
use crate::shared::{Effects, Shared, State};
use crate::sync::{AtomicBool, MutexGuard, SwapCell};

/// The fast slot and its counters; see the module docs.
pub(crate) struct FastSlot<T> {
    conn: SwapCell<Conn<T>>,
    /// Nobody queued, not draining, not above the size: checkouts may take from the slot
    /// and returns may put into it. Written only under the pool lock.
    open: AtomicBool,
    /// A checkout from the slot must plan connects (`min_idle > 0`). Written only under the
    /// pool lock.
    plan_on_take: AtomicBool,
    /// The slot is used at all (LIFO idle order: the slot is the top of the idle stack).
    enabled: bool,
    /// Idle time, in nanoseconds, from which a checkout pings the connection first
    /// (`test_on_checkout_after`; `u64::MAX` without `test_on_checkout`).
    ping_after: u64,
    /// An acquire or checkout hook is set: no checkout is served by the fast path alone.
    hooked: bool,
    /// Checkouts served from the slot.
    checkouts: AtomicU64,
    /// Usage of connections returned into the slot.
    usage: AtomicHistogram,
    /// Shuttle models only: skip the return's second look at `open`, the deliberate bug
    /// `tests/shuttle.rs` proves its models catch.
    #[cfg(shuttle)]
    pub(crate) broken: std::sync::atomic::AtomicBool,
}

impl<T> fmt::Debug for FastSlot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FastSlot")
            .field("open", &self.open.load(Ordering::Relaxed))
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// Connections a return could not leave in the slot: to be placed under the pool lock.
/// At most two: one the return displaced, one it took back when the slot closed.
#[derive(Debug)]
pub(crate) struct Leftover<T>(pub(crate) Option<Conn<T>>, pub(crate) Option<Conn<T>>);

impl<T> Leftover<T> {
    fn none() -> Self {
        Self(None, None)
    }

    /// Whether the return is complete without the lock.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_none() && self.1.is_none()
    }
}

impl<T> FastSlot<T> {
    pub(crate) fn new(config: &ConnPoolConfig, hooks: &LifecycleHooks<T>) -> Self {
        Self {
            conn: SwapCell::new(),
            open: AtomicBool::new(false),
            plan_on_take: AtomicBool::new(false),
            enabled: config.idle_order == IdleOrder::Lifo,
            ping_after: if config.test_on_checkout {
                saturating_nanos(config.test_on_checkout_after)
            } else {
                u64::MAX
            },
            hooked: hooks.acquire.is_some() || hooks.checkout.is_some(),
            checkouts: AtomicU64::new(0),
            usage: AtomicHistogram::default(),
            #[cfg(shuttle)]
            broken: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Whether the slot is open: nobody queued, checkouts may take from it.
    #[inline]
    pub(crate) fn is_open(&self) -> bool {
        self.open.load(Ordering::SeqCst)
    }

    /// Takes the slot's connection if the slot is open, and counts the checkout (zero
    /// wait). The connection is already counted `active`.
    #[inline]
    pub(crate) fn take(&self) -> Option<Conn<T>> {
        if !self.open.load(Ordering::SeqCst) {
            return None;
        }
        let conn = self.conn.swap(None)?;
        self.checkouts.fetch_add(1, Ordering::Relaxed);
        Some(conn)
    }

    /// Whether a connection taken from the slot at `now` needs nothing but the synchronous
    /// checks: no hook to run, no ping due.
    #[inline]
    pub(crate) fn needs_nothing_async(&self, conn: &ConnData<T>, now: Instant) -> bool {
        !self.hooked && !self.ping_due(conn.last_used, now)
    }

    /// Whether a connection last used at `last_used` is due for a ping at `now`: idle for at
    /// least `test_on_checkout_after`, with `test_on_checkout` on. The pool's one rule for
    /// it, kept here precomputed in nanoseconds; the slow path asks it too.
    #[inline]
    pub(crate) fn ping_due(&self, last_used: Instant, now: Instant) -> bool {
        nanos_between(now, last_used) >= self.ping_after
    }

    /// Whether a checkout served from the slot must plan connects under the lock.
    #[inline]
    pub(crate) fn plan_on_take(&self) -> bool {
        self.plan_on_take.load(Ordering::Relaxed)
    }

    /// Records the usage, in nanoseconds, of a connection returned into the slot.
    #[inline]
    pub(crate) fn record_usage(&self, nanos: u64) {
        self.usage.record(nanos);
    }

    /// Puts a returned connection (counted `active`) into the slot. What comes back must be
    /// placed under the lock: the connection itself when the slot is closed, a connection it
    /// displaced, or whatever it took back because the slot closed meanwhile.
    #[inline]
    pub(crate) fn put(&self, conn: Conn<T>) -> Leftover<T> {
        if !self.open.load(Ordering::SeqCst) {
            return Leftover(Some(conn), None);
        }
        let displaced = self.conn.swap(Some(conn));
        #[cfg(shuttle)]
        if self.broken.load(Ordering::Relaxed) {
            return Leftover(displaced, None);
        }
        if self.open.load(Ordering::SeqCst) {
            return Leftover(displaced, None);
        }
        // A caller queued (or the pool started draining) after the first look: it may have
        // emptied the slot before the swap above, so take back whatever is there now.
        self.put_closed(displaced)
    }

    #[cold]
    #[inline(never)]
    fn put_closed(&self, displaced: Option<Conn<T>>) -> Leftover<T> {
        let rescued = self.conn.swap(None);
        match (displaced, rescued) {
            (None, None) => Leftover::none(),
            (first, second) => Leftover(first, second),
        }
    }

    /// Takes the slot's connection, open or not (under the pool lock, to complete the idle
    /// set).
    pub(crate) fn drain(&self) -> Option<Conn<T>> {
        self.conn.swap(None)
    }

    /// Closes the slot. Under the pool lock, *before* draining it: see the module docs.
    pub(crate) fn close(&self) {
        if self.open.load(Ordering::Relaxed) {
            self.open.store(false, Ordering::SeqCst);
        }
    }

    /// Sets whether the slot is open and whether a take must plan connects, at the end of
    /// every critical section (only stored when changed). Under the pool lock.
    pub(crate) fn settle(&self, open: bool, plan_on_take: bool) {
        let open = open && self.enabled;
        if self.open.load(Ordering::Relaxed) != open {
            self.open.store(open, Ordering::SeqCst);
        }
        if self.plan_on_take.load(Ordering::Relaxed) != plan_on_take {
            self.plan_on_take.store(plan_on_take, Ordering::Relaxed);
        }
    }

    /// Adds the slot's counts to a snapshot's `checkouts`, `wait_time` and `usage_time`.
    pub(crate) fn add_to(
        &self,
        checkouts: &mut u64,
        wait_time: &mut Histogram,
        usage_time: &mut Histogram,
    ) {
        let fast = self.checkouts.load(Ordering::Relaxed);
        *checkouts += fast;
        wait_time.add_zeros(fast);
        self.usage.add_to(usage_time);
    }
}

/// [`Histogram`]'s buckets as relaxed atomic counters, for recording without the lock.
struct AtomicHistogram {
    counts: [AtomicU64; HISTOGRAM_BUCKETS],
    sum_micros: AtomicU64,
}

impl Default for AtomicHistogram {
    fn default() -> Self {
        Self {
            counts: std::array::from_fn(|_| AtomicU64::new(0)),
            sum_micros: AtomicU64::new(0),
        }
    }
}

impl AtomicHistogram {
    /// Records a sample of `nanos` nanoseconds, as [`Histogram::record`] records the same
    /// `Duration`.
    #[inline]
    fn record(&self, nanos: u64) {
        if nanos < 1_000 {
            // The first bucket; the sum does not change.
            self.counts[0].fetch_add(1, Ordering::Relaxed);
            return;
        }
        let micros = nanos / 1_000;
        self.counts[Histogram::bucket_of_micros(micros)].fetch_add(1, Ordering::Relaxed);
        // Saturating, as the locked histogram's sum (one exchange when uncontended).
        let _ = self
            .sum_micros
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |sum| {
                Some(sum.saturating_add(micros))
            });
    }

    fn add_to(&self, histogram: &mut Histogram) {
        let mut counts = [0; HISTOGRAM_BUCKETS];
        for (count, atomic) in counts.iter_mut().zip(&self.counts) {
            *count = atomic.load(Ordering::Relaxed);
        }
        histogram.add(&counts, self.sum_micros.load(Ordering::Relaxed));
    }
}

/// The pool lock held: the state, and on release the fast slot opened or closed to match
/// it (see [`FastSlot::settle`]), so that no critical section can forget to.
pub(crate) struct StateGuard<'a, T: Poolable> {
    st: MutexGuard<'a, State<T>>,
    fast: &'a FastSlot<T>,
}

impl<'a, T: Poolable> StateGuard<'a, T> {
    pub(crate) fn new(st: MutexGuard<'a, State<T>>, fast: &'a FastSlot<T>) -> Self {
        Self { st, fast }
    }
}

impl<T: Poolable> Deref for StateGuard<'_, T> {
    type Target = State<T>;

    #[inline]
    fn deref(&self) -> &State<T> {
        &self.st
    }
}

impl<T: Poolable> DerefMut for StateGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut State<T> {
        &mut self.st
    }
}

impl<T: Poolable> Drop for StateGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        let st = &*self.st;
        let open =
            !st.draining && st.waiters.is_empty() && st.ledger.size() <= st.ledger.max_size();
        self.fast.settle(open, st.ledger.min_idle() > 0);
    }
}

impl<T: Poolable, R: Runtime> Shared<T, R> {
    /// Under the lock: moves the slot's connection (counted `active`) into the ledger's
    /// idle set, or to the head waiter, or to destruction (`place` decides), so that the
    /// critical section sees every idle connection.
    pub(crate) fn unslot(&self, st: &mut State<T>, now: Instant, fx: &mut Effects<T>) {
        if let Some(conn) = self.fast.drain() {
            st.ledger.release();
            self.place(st, conn, now, fx);
        }
    }

    /// Places, under the lock, the connections a return could not leave in the slot.
    #[cold]
    #[inline(never)]
    pub(crate) fn place_leftover(self: &Arc<Self>, leftover: Leftover<T>, now: Instant) {
        let mut fx = Effects::default();
        {
            let mut st = self.lock();
            for conn in [leftover.0, leftover.1].into_iter().flatten() {
                st.ledger.release();
                self.place(&mut st, conn, now, &mut fx);
            }
            if fx.has_destroys() {
                self.plan_connects(&mut st, now, &mut fx);
                fx.set_drained(st.is_drained());
            }
        }
        self.apply(fx);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// What the slot records outside the lock adds up, in a snapshot, to what the lock's
    /// histogram would have recorded: the same buckets, the same sum.
    #[test]
    fn atomic_histogram_matches_the_locked_one() {
        let samples = [
            Duration::ZERO,
            Duration::from_nanos(999),
            Duration::from_micros(1),
            Duration::from_nanos(1_999),
            Duration::from_micros(3),
            Duration::from_millis(7),
            Duration::from_secs(90),
            // The longest a usage measured on a `u64` nanosecond clock can be, several
            // times: the sum saturates on both sides.
            Duration::from_nanos(u64::MAX),
            Duration::from_nanos(u64::MAX),
        ];
        let atomic = AtomicHistogram::default();
        let mut locked = Histogram::default();
        for sample in samples {
            atomic.record(saturating_nanos(sample));
            locked.record(sample);
        }
        let mut merged = Histogram::default();
        atomic.add_to(&mut merged);
        assert_eq!(merged, locked);
        assert_eq!(merged.count(), samples.len() as u64);
    }

    /// Checkouts served from the slot count as checkouts that waited zero.
    #[test]
    fn slot_checkouts_count_as_zero_waits() {
        let slot: FastSlot<u32> =
            FastSlot::new(&ConnPoolConfig::default(), &LifecycleHooks::default());
        slot.settle(true, false);
        let conn = Conn::new(7, Instant::now(), None, Duration::ZERO, 0);
        assert!(slot.put(conn).is_empty());
        assert_eq!(slot.take().map(Conn::into_raw), Some(7));
        assert!(slot.take().is_none(), "the slot held one connection");
        let (mut checkouts, mut wait, mut usage) = (2, Histogram::default(), Histogram::default());
        wait.record(Duration::from_millis(3));
        slot.add_to(&mut checkouts, &mut wait, &mut usage);
        assert_eq!(checkouts, 3);
        assert_eq!((wait.count(), wait.counts()[0]), (2, 1));
        assert_eq!(usage.count(), 0);
    }

    /// A closed slot takes nothing: a return gets its connection back to place under the
    /// lock, and a checkout finds nothing even when a connection was left in it.
    #[test]
    fn closed_slot_refuses() {
        let slot: FastSlot<u32> =
            FastSlot::new(&ConnPoolConfig::default(), &LifecycleHooks::default());
        let conn = Conn::new(1, Instant::now(), None, Duration::ZERO, 0);
        let leftover = slot.put(conn);
        assert!(matches!(leftover, Leftover(Some(_), None)));
        slot.settle(true, false);
        assert!(
            slot.put(Conn::new(2, Instant::now(), None, Duration::ZERO, 0))
                .is_empty()
        );
        slot.close();
        assert!(slot.take().is_none());
        assert_eq!(slot.drain().map(Conn::into_raw), Some(2));
        // A FIFO pool never opens its slot.
        let config = ConnPoolConfig {
            idle_order: IdleOrder::Fifo,
            ..ConnPoolConfig::default()
        };
        let fifo: FastSlot<u32> = FastSlot::new(&config, &LifecycleHooks::default());
        fifo.settle(true, false);
        assert!(fifo.take().is_none());
        assert!(
            !fifo
                .put(Conn::new(3, Instant::now(), None, Duration::ZERO, 0))
                .is_empty()
        );
    }
}
