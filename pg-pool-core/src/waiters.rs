//! The waiter queue's entries: one per caller waiting for a connection.
//!
//! The queue itself is a `VecDeque<Arc<Waiter>>` inside the pool state, so its order is
//! decided under the pool lock. With strict fairness a returned or new connection is moved
//! straight into the head waiter's slot (direct hand-off) before the waiter is woken, so a
//! newcomer can never take a connection a woken waiter is owed. With bounded fairness a
//! connection goes idle and the head is *nudged* instead (at most one nudged waiter that has
//! not looked yet, recorded in the queue), unless the head has waited past the bound, when it
//! is handed the connection as in strict mode (`Shared::serve`). Each waiter wakes through its
//! own [`event_listener::Event`], which makes every wake-up targeted: no thundering herd, and
//! no dependence on the order in which listeners were registered. A grant or a nudge is stored
//! in the waiter's slot before the wake-up, and the waiter re-checks its slot after
//! registering its listener, so neither is lost.
//!
//! The slot costs a hand-off no lock: a granted connection (a box) moves through an atomic
//! cell, and one atomic byte says whether anything is there (granted, nudged). The grant is
//! stored, then the byte set (release), then the listener notified; the waiter registers
//! its listener, then reads the byte (acquire). Either the notification finds the listener
//! registered, or the waiter's read comes after the byte was set (the event's own lock
//! orders the registration and the notification). Rare grants (a failure, a timeout, the
//! pool closing) sit behind a lock of the waiter's.
//!
//! A caller that gives up while queued is not searched for: its entry is marked abandoned
//! (O(1)) and skipped when it reaches the front; the queue compacts itself once abandoned
//! entries outnumber live ones, so removal is amortised O(1) whatever order callers leave in.
//!
//! Queued callers register no timer of their own: the pool's sweeper (`sweeper.rs`) sleeps
//! until the earliest deadline in the queue and times out whoever is past theirs, so a wait
//! costs no timer-wheel insertion and removal however many callers queue.

use crate::clock::Instant;
use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use event_listener::Event;

use crate::conn::Conn;
use crate::error::{ConnectError, Phase};
use crate::sync::{AtomicU8, Mutex, SwapCell, lock};

/// What a waiter is handed.
#[derive(Debug)]
pub(crate) enum Grant<T, E> {
    /// A connection, already counted as active.
    Conn(Conn<T>),
    /// The connection attempt started for this waiter failed.
    Failed(Arc<ConnectError<E>>),
    /// The pool is draining or closed.
    Closed,
    /// The checkout deadline passed while the waiter was queued, in this phase.
    TimedOut(Phase),
    /// The pool's runtime shut down.
    RuntimeGone,
}

/// What a waiting caller finds when it looks at its slot.
#[derive(Debug)]
pub(crate) enum Found<T, E> {
    /// A grant: the wait is over.
    Grant(Grant<T, E>),
    /// A nudge (bounded fairness only): a connection went idle; look for it under the pool
    /// lock, keeping the place in the queue if it is gone.
    Nudge,
}

/// Bits of [`Waiter::state`].
const GRANTED: u8 = 1;
const NUDGED: u8 = 2;

/// One caller waiting in the queue.
#[derive(Debug)]
pub(crate) struct Waiter<T, E> {
    pub(crate) id: u64,
    pub(crate) enqueued: Instant,
    /// Since when this caller has been waiting for a connection, as bounded fairness counts
    /// it: when it queued, or for a retry at the front of the queue, no later than the
    /// waiter it went ahead of, so that ages never decrease from the head backwards.
    pub(crate) since: Instant,
    /// When the caller's checkout deadline passes; enforced by the pool's sweeper.
    pub(crate) deadline: Instant,
    /// In the queue and not abandoned. Read and written only under the pool lock (the
    /// atomic only makes the shared `Arc` writable there).
    queued: std::sync::atomic::AtomicBool,
    /// What the waiter has been handed and not taken yet: [`GRANTED`] (a connection in
    /// `conn`, or another grant in `other`) and [`NUDGED`]. Set (release) after the grant
    /// is stored and before the wake-up; the waiting caller reads it (acquire) after
    /// registering its listener, so that it sees a grant or nudge made before the
    /// registration. Its look before sleeping costs one load.
    state: AtomicU8,
    /// A granted connection: a box, exchanged in one atomic step, so that the usual
    /// hand-off takes no lock of the waiter's.
    conn: SwapCell<Conn<T>>,
    /// Any other grant (a failure, a timeout, the pool closed): rare, behind a lock.
    other: Mutex<Option<Grant<T, E>>>,
    event: Event,
}

impl<T, E> Waiter<T, E> {
    pub(crate) fn new(id: u64, enqueued: Instant, deadline: Instant) -> Self {
        Self {
            id,
            enqueued,
            since: enqueued,
            deadline,
            queued: std::sync::atomic::AtomicBool::new(false),
            state: AtomicU8::new(0),
            conn: SwapCell::new(),
            other: Mutex::new(None),
            event: Event::new(),
        }
    }

    /// Readies a finished waiter for another caller; `Arc::get_mut` on a spare proves no
    /// one else holds it. Its event keeps its allocation, which is the point of reusing it.
    pub(crate) fn reuse(&mut self, id: u64, enqueued: Instant, deadline: Instant) {
        debug_assert!(
            self.conn.swap(None).is_none()
                && self
                    .other
                    .get_mut()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .is_none(),
            "a spare waiter holds no grant"
        );
        // A nudge may be left over from before a grant.
        self.state.store(0, Ordering::Relaxed);
        self.id = id;
        self.enqueued = enqueued;
        self.since = enqueued;
        self.deadline = deadline;
    }

    /// Stores the grant. Called under the pool lock, right after the waiter left the queue;
    /// the caller wakes it with [`Waiter::wake`] once the pool lock is released.
    pub(crate) fn grant(&self, grant: Grant<T, E>) {
        debug_assert!(
            self.state.load(Ordering::Relaxed) & GRANTED == 0,
            "a waiter is granted at most once"
        );
        match grant {
            Grant::Conn(conn) => {
                let previous = self.conn.swap(Some(conn));
                debug_assert!(previous.is_none(), "a waiter is granted at most once");
            }
            other => {
                let previous = lock(&self.other).replace(other);
                debug_assert!(previous.is_none(), "a waiter is granted at most once");
            }
        }
        self.state.fetch_or(GRANTED, Ordering::Release);
    }

    /// Takes the grant, if one has been made. Under the pool lock, or after `GRANTED` was
    /// seen: either way after the grant was stored.
    pub(crate) fn take(&self) -> Option<Grant<T, E>> {
        let grant = match self.conn.swap(None) {
            Some(conn) => Grant::Conn(conn),
            None => lock(&self.other).take()?,
        };
        self.state.fetch_and(!GRANTED, Ordering::Relaxed);
        Some(grant)
    }

    /// Marks the waiter nudged (bounded fairness). Called under the pool lock, for the
    /// queued waiter recorded as the queue's woken one; the caller wakes it with
    /// [`Waiter::wake`] once the pool lock is released.
    pub(crate) fn nudge(&self) {
        self.state.fetch_or(NUDGED, Ordering::Release);
    }

    /// Takes the grant if one has been made, else the nudge if there is one. One load when
    /// there is neither (the look before sleeping).
    #[inline]
    pub(crate) fn take_any(&self) -> Option<Found<T, E>> {
        let state = self.state.load(Ordering::Acquire);
        if state == 0 {
            return None;
        }
        self.take_found(state)
    }

    fn take_found(&self, state: u8) -> Option<Found<T, E>> {
        if state & GRANTED != 0
            && let Some(grant) = self.take()
        {
            return Some(Found::Grant(grant));
        }
        (self.state.fetch_and(!NUDGED, Ordering::Acquire) & NUDGED != 0).then_some(Found::Nudge)
    }

    /// Wakes the waiter. Never called under the pool lock.
    pub(crate) fn wake(&self) {
        self.event.notify(1);
    }

    pub(crate) fn event(&self) -> &Event {
        &self.event
    }
}

/// The FIFO queue of waiting callers, inside the pool state.
///
/// `len` counts live waiters only; abandoned entries wait to be skipped or compacted away.
#[derive(Debug)]
pub(crate) struct Queue<T, E> {
    entries: VecDeque<Arc<Waiter<T, E>>>,
    live: usize,
    abandoned: usize,
    /// Bounded fairness: the queued waiter that was nudged and has not looked yet. Cleared
    /// when it looks, and by every removal of that waiter from the queue, so whoever
    /// removes it (a grant, a timeout, a cancellation) knows the nudge must be passed on.
    woken: Option<u64>,
}

impl<T, E> Default for Queue<T, E> {
    fn default() -> Self {
        Self {
            entries: VecDeque::new(),
            live: 0,
            abandoned: 0,
            woken: None,
        }
    }
}

impl<T, E> Queue<T, E> {
    /// Live waiters.
    pub(crate) fn len(&self) -> usize {
        self.live
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// Queues `waiter` at the back, or at the front when it retries after a rejection.
    pub(crate) fn push(&mut self, waiter: Arc<Waiter<T, E>>, front: bool) {
        waiter.queued.store(true, Ordering::Relaxed);
        self.live += 1;
        if front {
            self.entries.push_front(waiter);
        } else {
            self.entries.push_back(waiter);
        }
    }

    /// The head waiter, still in the queue.
    pub(crate) fn head(&self) -> Option<&Arc<Waiter<T, E>>> {
        self.entries
            .iter()
            .find(|w| w.queued.load(Ordering::Relaxed))
    }

    /// Whether the head waiter has waited longer than `bound` at `now` (bounded fairness:
    /// nobody may take a connection ahead of it any more).
    pub(crate) fn head_starving(&self, now: Instant, bound: std::time::Duration) -> bool {
        self.head()
            .is_some_and(|w| now.saturating_duration_since(w.since) > bound)
    }

    /// Records the head as nudged and returns it, if there is a head and nobody is nudged
    /// already.
    pub(crate) fn nudge_head(&mut self) -> Option<Arc<Waiter<T, E>>> {
        if self.woken.is_some() {
            return None;
        }
        let head = Arc::clone(self.head()?);
        self.woken = Some(head.id);
        head.nudge();
        Some(head)
    }

    /// Whether a nudged waiter is in the queue and has not looked yet (debug checks).
    #[cfg(debug_assertions)]
    pub(crate) fn nudged_queued(&self) -> bool {
        self.woken.is_some_and(|id| {
            self.entries
                .iter()
                .any(|w| w.id == id && w.queued.load(Ordering::Relaxed))
        })
    }

    /// The nudged waiter `id` has looked: nobody is nudged now.
    pub(crate) fn looked(&mut self, id: u64) {
        if self.woken == Some(id) {
            self.woken = None;
        }
    }

    /// Takes the head waiter out of the queue.
    pub(crate) fn pop(&mut self) -> Option<Arc<Waiter<T, E>>> {
        while let Some(waiter) = self.entries.pop_front() {
            if waiter.queued.swap(false, Ordering::Relaxed) {
                self.live -= 1;
                self.looked(waiter.id);
                return Some(waiter);
            }
            self.abandoned -= 1;
        }
        None
    }

    /// Takes `waiter` out of the queue if it is still in it (not granted yet): O(1).
    pub(crate) fn abandon(&mut self, waiter: &Waiter<T, E>) -> bool {
        if !waiter.queued.swap(false, Ordering::Relaxed) {
            return false;
        }
        self.looked(waiter.id);
        self.live -= 1;
        self.abandoned += 1;
        // Keep the head live, and the dead weight below the live count.
        while self
            .entries
            .front()
            .is_some_and(|w| !w.queued.load(Ordering::Relaxed))
        {
            self.entries.pop_front();
            self.abandoned -= 1;
        }
        if self.abandoned > 32 && self.abandoned > self.live {
            self.entries.retain(|w| w.queued.load(Ordering::Relaxed));
            self.abandoned = 0;
        }
        true
    }

    /// Takes the live waiter with `id` out of the queue.
    pub(crate) fn remove(&mut self, id: u64) -> Option<Arc<Waiter<T, E>>> {
        let index = self
            .entries
            .iter()
            .position(|w| w.id == id && w.queued.load(Ordering::Relaxed))?;
        let waiter = self.entries.remove(index)?;
        waiter.queued.store(false, Ordering::Relaxed);
        self.live -= 1;
        self.looked(waiter.id);
        Some(waiter)
    }

    /// The id of the `n`th live waiter from the head.
    pub(crate) fn nth_id(&self, n: usize) -> Option<u64> {
        self.entries
            .iter()
            .filter(|w| w.queued.load(Ordering::Relaxed))
            .nth(n)
            .map(|w| w.id)
    }

    /// Takes out every live waiter whose deadline is at or before `now`, in queue order,
    /// passing each to `expired`; drops abandoned entries on the way. Returns the earliest
    /// deadline still queued. One pass, whatever the number of expiries.
    pub(crate) fn sweep(
        &mut self,
        now: Instant,
        mut expired: impl FnMut(Arc<Waiter<T, E>>),
    ) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        let mut out = Vec::new();
        self.entries.retain(|w| {
            if !w.queued.load(Ordering::Relaxed) {
                return false;
            }
            if w.deadline <= now {
                w.queued.store(false, Ordering::Relaxed);
                out.push(Arc::clone(w));
                return false;
            }
            earliest = Some(earliest.map_or(w.deadline, |e| e.min(w.deadline)));
            true
        });
        self.abandoned = 0;
        self.live -= out.len();
        for waiter in out {
            self.looked(waiter.id);
            expired(waiter);
        }
        earliest
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    type TestQueue = Queue<(), std::io::Error>;

    fn waiter(id: u64, deadline: Instant) -> Arc<Waiter<(), std::io::Error>> {
        Arc::new(Waiter::new(id, Instant::now(), deadline))
    }

    /// FIFO order, front pushes for retries, abandonment in O(1) with the count right, the
    /// sweep taking exactly the expired ones in queue order.
    #[test]
    fn queue_order_abandonment_and_sweep() {
        let now = Instant::now();
        let soon = now + Duration::from_millis(10);
        let late = now + Duration::from_secs(10);
        let mut queue = TestQueue::default();
        let (a, b, c, d) = (
            waiter(1, soon),
            waiter(2, late),
            waiter(3, soon),
            waiter(4, late),
        );
        queue.push(Arc::clone(&a), false);
        queue.push(Arc::clone(&b), false);
        queue.push(Arc::clone(&c), false);
        queue.push(Arc::clone(&d), true);
        assert_eq!(queue.len(), 4);
        assert_eq!(queue.nth_id(0), Some(4), "a retry goes to the front");
        assert!(queue.abandon(&b));
        assert!(!queue.abandon(&b), "abandoned once");
        assert_eq!(queue.len(), 3);
        assert_eq!(queue.nth_id(1), Some(1));
        assert_eq!(queue.nth_id(2), Some(3), "the abandoned one is skipped");
        let mut expired = Vec::new();
        let earliest = queue.sweep(now + Duration::from_secs(1), |w| expired.push(w.id));
        assert_eq!(expired, [1, 3], "expired ones in queue order");
        assert_eq!(earliest, Some(late));
        assert_eq!(queue.len(), 1);
        assert_eq!(queue.pop().map(|w| w.id), Some(4));
        assert!(queue.is_empty());
        assert!(queue.pop().is_none());
    }

    /// Many abandonments compact the queue: what is left is the live waiters only.
    #[test]
    fn abandoned_entries_are_compacted() {
        let late = Instant::now() + Duration::from_secs(10);
        let mut queue = TestQueue::default();
        let waiters: Vec<_> = (0..1000).map(|id| waiter(id, late)).collect();
        for w in &waiters {
            queue.push(Arc::clone(w), false);
        }
        for w in waiters.iter().filter(|w| w.id % 10 != 0) {
            assert!(queue.abandon(w));
        }
        assert_eq!(queue.len(), 100);
        assert!(
            queue.entries.len() <= 2 * queue.len() + 64,
            "compacted: {} entries for {} live",
            queue.entries.len(),
            queue.len()
        );
        let ids: Vec<u64> = std::iter::from_fn(|| queue.pop()).map(|w| w.id).collect();
        assert_eq!(ids, (0..1000).step_by(10).collect::<Vec<u64>>());
    }

    /// The nudged waiter is recorded once, and forgotten by every way it can leave the
    /// queue or by looking; the head's age decides starvation.
    #[test]
    fn nudge_record_follows_the_waiter() {
        let now = Instant::now();
        let late = now + Duration::from_secs(10);
        let mut queue = TestQueue::default();
        let (a, b, c) = (waiter(1, late), waiter(2, late), waiter(3, now));
        for w in [&a, &b, &c] {
            queue.push(Arc::clone(w), false);
        }
        assert_eq!(queue.nudge_head().map(|w| w.id), Some(1));
        assert!(queue.nudge_head().is_none(), "one nudged waiter at a time");
        assert_eq!(a.take_any().map(|f| matches!(f, Found::Nudge)), Some(true));
        assert!(a.take_any().is_none(), "a nudge is taken once");
        queue.looked(2);
        assert_eq!(
            queue.woken,
            Some(1),
            "only the nudged waiter's look clears it"
        );
        queue.looked(1);
        assert_eq!(queue.nudge_head().map(|w| w.id), Some(1), "nudged again");
        assert!(queue.abandon(&a));
        assert_eq!(queue.woken, None, "abandoned");
        assert_eq!(queue.nudge_head().map(|w| w.id), Some(2));
        assert_eq!(queue.pop().map(|w| w.id), Some(2));
        assert_eq!(queue.woken, None, "popped");
        assert_eq!(queue.nudge_head().map(|w| w.id), Some(3));
        assert!(queue.remove(3).is_some());
        assert_eq!(queue.woken, None, "removed");
        let d = waiter(4, now);
        queue.push(Arc::clone(&d), false);
        assert_eq!(queue.nudge_head().map(|w| w.id), Some(4));
        queue.sweep(now + Duration::from_millis(1), drop);
        assert_eq!(queue.woken, None, "timed out");
        // A grant is found before a nudge.
        let e = waiter(5, late);
        e.nudge();
        e.grant(Grant::Closed);
        assert!(matches!(e.take_any(), Some(Found::Grant(Grant::Closed))));
        // Starvation is the head's age against the bound.
        queue.push(Arc::clone(&e), false);
        assert!(!queue.head_starving(e.since, Duration::from_millis(1)));
        assert!(queue.head_starving(e.since + Duration::from_millis(2), Duration::from_millis(1)));
    }
}
