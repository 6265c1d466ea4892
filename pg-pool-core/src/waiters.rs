//! The waiter queue's entries: one per caller waiting for a connection.
//!
//! The queue itself is a `VecDeque<Arc<Waiter>>` inside the pool state, so its order is
//! decided under the pool lock. A returned or new connection is moved straight into the head
//! waiter's slot (direct hand-off) before the waiter is woken, so a newcomer can never take a
//! connection a woken waiter is owed. Each waiter wakes through its own
//! [`event_listener::Event`], which makes every wake-up targeted: no thundering herd, and no
//! dependence on the order in which listeners were registered.
//!
//! Queued callers register no timer of their own: the pool's sweeper (`sweeper.rs`) sleeps
//! until the earliest deadline in the queue and times out whoever is past theirs, so a wait
//! costs no timer-wheel insertion and removal however many callers queue.

use crate::clock::Instant;
use std::sync::Arc;

use event_listener::Event;

use crate::conn::Conn;
use crate::error::{ConnectError, Phase};
use crate::sync::{Mutex, lock};

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
}

/// One caller waiting in the queue.
#[derive(Debug)]
pub(crate) struct Waiter<T, E> {
    pub(crate) id: u64,
    pub(crate) enqueued: Instant,
    /// When the caller's checkout deadline passes; enforced by the pool's sweeper.
    pub(crate) deadline: Instant,
    slot: Mutex<Option<Grant<T, E>>>,
    event: Event,
}

impl<T, E> Waiter<T, E> {
    pub(crate) fn new(id: u64, enqueued: Instant, deadline: Instant) -> Self {
        Self {
            id,
            enqueued,
            deadline,
            slot: Mutex::new(None),
            event: Event::new(),
        }
    }

    /// Readies a finished waiter for another caller; `Arc::get_mut` on a spare proves no
    /// one else holds it. Its event keeps its allocation, which is the point of reusing it.
    pub(crate) fn reuse(&mut self, id: u64, enqueued: Instant, deadline: Instant) {
        debug_assert!(lock(&self.slot).is_none(), "a spare waiter holds no grant");
        self.id = id;
        self.enqueued = enqueued;
        self.deadline = deadline;
    }

    /// Stores the grant. Called under the pool lock, right after the waiter left the queue;
    /// the caller wakes it with [`Waiter::wake`] once the pool lock is released.
    pub(crate) fn grant(&self, grant: Grant<T, E>) {
        let previous = lock(&self.slot).replace(grant);
        debug_assert!(previous.is_none(), "a waiter is granted at most once");
    }

    /// Takes the grant, if one has been made.
    pub(crate) fn take(&self) -> Option<Grant<T, E>> {
        lock(&self.slot).take()
    }

    /// Wakes the waiter. Never called under the pool lock.
    pub(crate) fn wake(&self) {
        self.event.notify(1);
    }

    pub(crate) fn event(&self) -> &Event {
        &self.event
    }
}
