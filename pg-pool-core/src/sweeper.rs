//! The deadline sweeper: one timer for every queued caller.
//!
//! Registering a timer per queued caller costs a timer-wheel insertion and removal (and on
//! tokio a lock on the time driver) on every wait, which under contention is most of a
//! checkout. Instead, queued callers only listen for their grant, and one task per pool
//! sleeps until the earliest deadline in the queue, grants `TimedOut` to everyone past
//! theirs, and goes back to sleep; with nobody queued it sleeps until a caller queues, and
//! it ends when the pool closes or is dropped. It holds a `Weak`
//! reference while sleeping, and is woken early when a caller with an earlier deadline
//! queues (a retry after a rejected connection keeps its original deadline) or the pool
//! closes.

use std::sync::Weak;

use event_listener::Event;
use futures_lite::future;

use crate::clock::Instant;
use crate::poolable::Poolable;
use crate::runtime::Runtime;
use crate::shared::{Effects, Shared, State};
use crate::waiters::Grant;

/// Sweeper bookkeeping inside the pool state.
#[derive(Debug, Default)]
pub(crate) struct SweeperState {
    /// A sweeper task exists.
    pub(crate) running: bool,
    /// When the sweeper will next look, if it is sleeping.
    pub(crate) next: Option<Instant>,
}

/// What a newly queued waiter requires of the sweeper.
pub(crate) enum Nudge {
    /// Nothing: the sweeper will look in time.
    None,
    /// Start one.
    Spawn,
    /// Wake it: it sleeps past the new deadline.
    Wake,
}

impl SweeperState {
    pub(crate) fn on_enqueue(&mut self, deadline: Instant) -> Nudge {
        if !self.running {
            self.running = true;
            self.next = None;
            Nudge::Spawn
        } else if self.next.is_none_or(|next| deadline < next) {
            // Provisionally: later callers need not wake it again before it has looked.
            self.next = Some(deadline);
            Nudge::Wake
        } else {
            Nudge::None
        }
    }
}

impl<T: Poolable, R: Runtime> Shared<T, R> {
    /// Times out every queued caller whose deadline has passed; returns the earliest
    /// deadline still ahead, or `None` when nobody is queued.
    fn sweep_once(&self, st: &mut State<T>, now: Instant, fx: &mut Effects<T>) -> Option<Instant> {
        let phase = st.waiting_phase();
        let mut timeouts = 0;
        let earliest = st.waiters.sweep(now, |waiter| {
            timeouts += 1;
            waiter.grant(Grant::TimedOut(phase));
            fx.wake(waiter);
        });
        st.counters.timeouts += timeouts;
        st.sweeper.next = earliest;
        earliest
    }
}

/// The sweeper task.
pub(crate) async fn run<T: Poolable, R: Runtime>(weak: Weak<Shared<T, R>>) {
    loop {
        let (sleep, nudged) = {
            let Some(shared) = weak.upgrade() else { return };
            let nudged = shared.sweeper_event.listen();
            let mut fx = Effects::default();
            let now = Instant::now();
            let (next, stop) = {
                let mut st = shared.lock();
                // Bounded fairness: a caller nudged towards an idle connection that has not
                // looked yet gets it, as strict fairness would have handed it over, rather
                // than a timeout. Afterwards nothing is idle while anyone is queued.
                shared.hand_off_idle(&mut st, now, &mut fx);
                let next = shared.sweep_once(&mut st, now, &mut fx);
                // A closed pool queues nobody again; otherwise stay, so that contention
                // that comes and goes costs no task spawn per episode.
                let stop = st.draining;
                if stop {
                    st.sweeper.running = false;
                }
                (next, stop)
            };
            shared.apply(fx);
            if stop {
                return;
            }
            let sleep = next.map(|next| shared.runtime.sleep(next.saturating_duration_since(now)));
            (sleep, nudged)
            // The strong reference is dropped here, before sleeping.
        };
        match sleep {
            Some(sleep) => future::or(sleep, nudged).await,
            // Nobody queued: sleep until someone is.
            None => nudged.await,
        }
    }
}

/// Wakes the sweeper; used when a caller queues with an earlier deadline and on close.
pub(crate) fn wake(event: &Event) {
    event.notify(usize::MAX);
}
