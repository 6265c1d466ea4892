//! The ledger: where every connection the pool owns is counted, and the only code that
//! moves one from place to place.
//!
//! A connection is in exactly one of:
//!
//! | place | what | enters by | leaves by |
//! |---|---|---|---|
//! | `idle` | ready, in the idle set (the ledger holds it) | [`Ledger::park`] | [`Ledger::take_idle`], [`Ledger::remove_idle`], [`Ledger::start_probe`] |
//! | `active` | held by a caller, granted to a waiter, being validated or reset | [`Ledger::take_idle`], [`Ledger::grant`] | [`Ledger::release`] |
//! | `probing` | taken from idle by the health probe | [`Ledger::start_probe`] | [`Ledger::end_probe`] |
//! | `connecting` | an attempt in flight, not a connection yet | [`Ledger::start_connect`] | [`Ledger::end_connect`] |
//! | `closing` | destroyed, its close still running (not part of `size`) | [`Ledger::start_close`] | [`Ledger::end_close`] |
//!
//! Between leaving one place and entering the next, inside one critical section, a
//! connection is *uncounted*: [`Ledger::release`], [`Ledger::end_probe`] and
//! [`Ledger::end_connect`] hand it to the caller, which must [`Ledger::grant`] it to a
//! waiter, [`Ledger::park`] it, or [`Ledger::start_close`] it before the lock is released.
//! Each transition checks, in debug builds, that it takes from a place that has something.
//!
//! `size = idle + active + probing + connecting <= max_size`, except after a resize down
//! until the surplus has come back. Demand for new connections is measured against
//! *supply*, `idle + probing + connecting`: connections being probed come back.

use std::collections::VecDeque;

use crate::config::IdleOrder;
use crate::conn::Conn;

/// Most idle slots allocated up front; the idle set grows past this only if that many
/// connections are ever idle at once.
const IDLE_PREALLOCATION: usize = 256;

/// Where every connection is; see the module docs.
#[derive(Debug)]
pub(crate) struct Ledger<T> {
    idle: VecDeque<Conn<T>>,
    active: usize,
    probing: usize,
    connecting: usize,
    closing: usize,
    max_size: usize,
    min_idle: usize,
}

impl<T> Ledger<T> {
    pub(crate) fn new(max_size: usize, min_idle: usize) -> Self {
        Self {
            // Enough that a pool of ordinary size never reallocates, without a pre-allocation
            // proportional to a huge `max_size`.
            idle: VecDeque::with_capacity(max_size.min(IDLE_PREALLOCATION)),
            active: 0,
            probing: 0,
            connecting: 0,
            closing: 0,
            max_size,
            min_idle,
        }
    }

    // Reading.

    pub(crate) fn idle(&self) -> &VecDeque<Conn<T>> {
        &self.idle
    }

    /// Checked out, granted, validated or reset; the health probe's connections too, as
    /// far as anyone outside the engine is concerned.
    pub(crate) fn active(&self) -> usize {
        self.active + self.probing
    }

    pub(crate) fn connecting(&self) -> usize {
        self.connecting
    }

    pub(crate) fn closing(&self) -> usize {
        self.closing
    }

    pub(crate) fn max_size(&self) -> usize {
        self.max_size
    }

    pub(crate) fn min_idle(&self) -> usize {
        self.min_idle
    }

    /// Connections that exist or are being opened.
    pub(crate) fn size(&self) -> usize {
        self.idle.len() + self.active + self.probing + self.connecting
    }

    /// Connections that are, or will shortly be, available: idle, being probed, or being
    /// opened.
    pub(crate) fn supply(&self) -> usize {
        self.idle.len() + self.probing + self.connecting
    }

    /// Room for more connections under `max_size`.
    pub(crate) fn room(&self) -> usize {
        self.max_size.saturating_sub(self.size())
    }

    /// Everything not yet closed, closing included.
    pub(crate) fn outstanding(&self) -> usize {
        self.size() + self.closing
    }

    // Checkout and return.

    /// idle → active.
    pub(crate) fn take_idle(&mut self, order: IdleOrder) -> Option<Conn<T>> {
        let conn = match order {
            IdleOrder::Lifo => self.idle.pop_back(),
            IdleOrder::Fifo => self.idle.pop_front(),
        }?;
        self.active += 1;
        Some(conn)
    }

    /// uncounted → active: handed to a waiter.
    pub(crate) fn grant(&mut self) {
        self.active += 1;
    }

    /// active → uncounted: returned, detached, or to be destroyed.
    pub(crate) fn release(&mut self) {
        debug_assert!(
            self.active > 0,
            "released more connections than were active"
        );
        self.active -= 1;
    }

    /// uncounted → idle.
    pub(crate) fn park(&mut self, conn: Conn<T>) {
        self.idle.push_back(conn);
    }

    /// idle → uncounted: the connection at `index` of [`Ledger::idle`].
    pub(crate) fn remove_idle(&mut self, index: usize) -> Option<Conn<T>> {
        self.idle.remove(index)
    }

    /// idle → uncounted: the longest-idle connection.
    pub(crate) fn pop_idle(&mut self) -> Option<Conn<T>> {
        self.idle.pop_front()
    }

    // The health probe.

    /// idle → probing: every idle connection.
    pub(crate) fn start_probe(&mut self) -> Vec<Conn<T>> {
        self.probing += self.idle.len();
        self.idle.drain(..).collect()
    }

    /// probing → uncounted.
    pub(crate) fn end_probe(&mut self) {
        debug_assert!(self.probing > 0, "ended more probes than were started");
        self.probing -= 1;
    }

    // Connection attempts.

    /// → connecting: capacity reserved for an attempt.
    pub(crate) fn start_connect(&mut self) {
        self.connecting += 1;
    }

    /// connecting → uncounted: the attempt ended (its connection, if any, is the caller's
    /// to place).
    pub(crate) fn end_connect(&mut self) {
        debug_assert!(self.connecting > 0, "ended more connects than were started");
        self.connecting -= 1;
    }

    // Destruction.

    /// uncounted → closing.
    pub(crate) fn start_close(&mut self) {
        self.closing += 1;
    }

    /// closing → gone.
    pub(crate) fn end_close(&mut self) {
        debug_assert!(
            self.closing > 0,
            "closed more connections than were closing"
        );
        self.closing -= 1;
    }

    // Limits.

    /// Sets `max_size`, lowering `min_idle` to it if needed.
    pub(crate) fn resize(&mut self, max_size: usize) {
        self.max_size = max_size;
        self.min_idle = self.min_idle.min(max_size);
    }

    /// Sets `min_idle`, capped at `max_size`.
    pub(crate) fn set_min_idle(&mut self, min_idle: usize) {
        self.min_idle = min_idle.min(self.max_size);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::Instant;

    fn conn(id: u32) -> Conn<u32> {
        Conn::new(id, Instant::now(), None, std::time::Duration::ZERO, 0)
    }

    #[test]
    fn every_transition_balances() {
        let mut ledger = Ledger::new(4, 1);
        ledger.start_connect();
        assert_eq!((ledger.size(), ledger.supply()), (1, 1));
        ledger.end_connect();
        ledger.park(conn(1));
        ledger.start_connect();
        ledger.end_connect();
        ledger.grant();
        assert_eq!(
            (ledger.size(), ledger.active(), ledger.idle().len()),
            (2, 1, 1)
        );
        let taken = ledger.take_idle(IdleOrder::Lifo).expect("one idle");
        assert_eq!((ledger.active(), ledger.supply()), (2, 0));
        ledger.release();
        ledger.park(taken);
        let probed = ledger.start_probe();
        assert_eq!(probed.len(), 1);
        // Probed connections are supply, and show as active from outside.
        assert_eq!((ledger.supply(), ledger.active(), ledger.size()), (1, 2, 2));
        ledger.end_probe();
        ledger.start_close();
        assert_eq!((ledger.size(), ledger.outstanding()), (1, 2));
        ledger.end_close();
        ledger.release();
        assert_eq!((ledger.size(), ledger.outstanding()), (0, 0));
    }

    #[test]
    fn room_and_limits() {
        let mut ledger: Ledger<u32> = Ledger::new(2, 2);
        ledger.start_connect();
        ledger.start_connect();
        assert_eq!(ledger.room(), 0);
        ledger.resize(1);
        assert_eq!(
            (ledger.max_size(), ledger.min_idle(), ledger.room()),
            (1, 1, 0)
        );
        ledger.set_min_idle(5);
        assert_eq!(ledger.min_idle(), 1);
        ledger.resize(usize::MAX);
        assert_eq!(ledger.room(), usize::MAX - 2);
    }

    #[test]
    fn fifo_and_lifo() {
        let mut ledger = Ledger::new(3, 0);
        ledger.park(conn(1));
        ledger.park(conn(2));
        assert_eq!(
            ledger.take_idle(IdleOrder::Fifo).map(Conn::into_raw),
            Some(1)
        );
        ledger.park(conn(3));
        assert_eq!(
            ledger.take_idle(IdleOrder::Lifo).map(Conn::into_raw),
            Some(3)
        );
    }

    #[test]
    #[should_panic(expected = "released more connections than were active")]
    #[cfg(debug_assertions)]
    fn unbalanced_release_is_caught() {
        let mut ledger: Ledger<u32> = Ledger::new(1, 0);
        ledger.release();
    }
}
