//! The engine's shared state and its accounting.
//!
//! Every connection the pool owns is counted in exactly one place at any time: in `idle`, in
//! `active` (held by a caller, owed to a woken waiter, or being validated, reset or probed),
//! or in `connecting` (an attempt in flight). `size = idle + active + connecting` never
//! exceeds `max_size` except after a resize down, until the surplus comes back. A connection
//! the pool has decided to destroy moves to `closing` until its close has finished.
//!
//! Every state change happens in one critical section that returns [`Effects`]: the wake-ups,
//! destroys, connects and timers to carry out once the lock is released, so no hook, `Drop`
//! of a connection or waker ever runs under the lock.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use futures_lite::FutureExt;
use std::time::Duration;
use tracing::Instrument;

use crate::clock::{Instant, after, nanos_between};

use event_listener::Event;

use crate::config::ConnPoolConfig;
use crate::conn::Conn;
use crate::connect::Reservation;
use crate::error::{ConnectError, Phase, PoolError, TimeoutDetails};
use crate::fast::{FastSlot, StateGuard};
use crate::hooks::{DestroyReason, LifecycleHooks};
use crate::leak::LeakRegistry;
use crate::ledger::Ledger;
use crate::metrics::{Counters, Gauges, Metrics};
use crate::poolable::{DynConnector, Poolable};
use crate::runtime::{Runtime, timeout};
use crate::sweeper::{Nudge, SweeperState};
use crate::sync::{Mutex, lock};
use crate::waiters::{Grant, Queue, Waiter};

/// How long after a server change connects retry at the base backoff instead of growing
/// it: long enough to cover a promotion (seconds to tens of seconds), after which ordinary
/// backoff protects a server that stays down.
const FAILOVER_WINDOW: Duration = Duration::from_secs(30);

pub(crate) type WaiterOf<T> = Waiter<T, <T as Poolable>::Error>;
pub(crate) type PoolErrorOf<T> = PoolError<<T as Poolable>::Error>;

/// State guarded by the pool lock.
#[derive(Debug)]
pub(crate) struct State<T: Poolable> {
    /// Where every connection is counted (see `ledger.rs`).
    pub(crate) ledger: Ledger<T>,
    pub(crate) waiters: Queue<T, T::Error>,
    pub(crate) draining: bool,
    /// The runtime refused to run the pool's tasks (it shut down): the pool is closed and
    /// checkouts fail with [`PoolError::RuntimeGone`].
    pub(crate) runtime_gone: bool,
    pub(crate) next_waiter: u64,
    /// Consecutive failed connects; reset by a successful one.
    pub(crate) failures: u32,
    /// Until when connects retry at the base backoff, after a connection showed the server
    /// changed: a failover's outage should not grow the backoff past the new primary's
    /// arrival.
    pub(crate) failover_until: Option<Instant>,
    pub(crate) backoff_until: Option<Instant>,
    pub(crate) backoff_timer_armed: bool,
    pub(crate) last_error: Option<Arc<ConnectError<T::Error>>>,
    pub(crate) counters: Counters,
    pub(crate) sweeper: SweeperState,
    /// Finished waiters kept for reuse, so that queueing under contention allocates
    /// nothing (see [`State::recycle`]).
    pub(crate) spare_waiters: Vec<Arc<WaiterOf<T>>>,
}

impl<T: Poolable> State<T> {
    pub(crate) fn is_drained(&self) -> bool {
        self.draining && self.ledger.outstanding() == 0
    }

    /// Moves an uncounted connection the pool decided to destroy into `closing`.
    pub(crate) fn count_destroy(&mut self, reason: DestroyReason) {
        self.ledger.start_close();
        self.counters.destroys[reason.index()] += 1;
    }

    /// A waiter for a new queued caller: a spare one if there is one, else a new one.
    /// `since` is its age as bounded fairness counts it (see [`Waiter::since`]).
    pub(crate) fn new_waiter(
        &mut self,
        enqueued: Instant,
        since: Instant,
        deadline: Instant,
    ) -> Arc<WaiterOf<T>> {
        let id = self.next_waiter;
        self.next_waiter += 1;
        if let Some(mut waiter) = self.spare_waiters.pop()
            && let Some(spare) = Arc::get_mut(&mut waiter)
        {
            spare.reuse(id, enqueued, deadline);
            spare.since = since;
            return waiter;
        }
        let mut waiter = Waiter::new(id, enqueued, deadline);
        waiter.since = since;
        Arc::new(waiter)
    }

    /// Keeps a finished waiter for reuse if nobody else still holds it (a waker on its way
    /// out may), up to the most callers ever queued at once, capped.
    pub(crate) fn recycle(&mut self, waiter: Arc<WaiterOf<T>>) {
        const MOST_SPARES: usize = 1024;
        if Arc::strong_count(&waiter) == 1 && self.spare_waiters.len() < MOST_SPARES {
            self.spare_waiters.push(waiter);
        }
    }

    /// The phase a waiter that runs out of time was in.
    pub(crate) fn waiting_phase(&self) -> Phase {
        if self.ledger.connecting() > 0 || self.last_error.is_some() {
            Phase::Connect
        } else {
            Phase::Wait
        }
    }
}

/// Work to do once the pool lock is released.
///
/// Two words: the one wake-up a return or a new connection usually causes, and a box for
/// everything rarer (more wake-ups, destroys, connects to spawn, a backoff timer, the end of
/// a drain). The hot path never fills the box, so it neither allocates nor copies much.
#[must_use]
pub(crate) struct Effects<T: Poolable> {
    wake: Option<Arc<WaiterOf<T>>>,
    rare: Option<Box<Rare<T>>>,
}

/// The rarer effects; see [`Effects`].
pub(crate) struct Rare<T: Poolable> {
    pub(crate) wake: Vec<Arc<WaiterOf<T>>>,
    pub(crate) destroy: Vec<(Conn<T>, DestroyReason)>,
    /// One entry per connect attempt to spawn: the waiter it is made for, if any.
    pub(crate) connects: Vec<Option<u64>>,
    pub(crate) backoff_timer: Option<Instant>,
    pub(crate) drained: bool,
    pub(crate) sweeper: Option<Nudge>,
}

impl<T: Poolable> Default for Effects<T> {
    fn default() -> Self {
        Self {
            wake: None,
            rare: None,
        }
    }
}

impl<T: Poolable> Effects<T> {
    pub(crate) fn rare(&mut self) -> &mut Rare<T> {
        self.rare.get_or_insert_with(|| {
            Box::new(Rare {
                wake: Vec::new(),
                destroy: Vec::new(),
                connects: Vec::new(),
                backoff_timer: None,
                drained: false,
                sweeper: None,
            })
        })
    }

    #[inline]
    pub(crate) fn wake(&mut self, waiter: Arc<WaiterOf<T>>) {
        if self.wake.is_none() {
            self.wake = Some(waiter);
        } else {
            self.rare().wake.push(waiter);
        }
    }

    pub(crate) fn destroy(&mut self, conn: Conn<T>, reason: DestroyReason) {
        self.rare().destroy.push((conn, reason));
    }

    pub(crate) fn has_destroys(&self) -> bool {
        self.rare
            .as_ref()
            .is_some_and(|rare| !rare.destroy.is_empty())
    }

    pub(crate) fn set_drained(&mut self, drained: bool) {
        if drained {
            self.rare().drained = true;
        }
    }
}

/// Everything the pool shares between handles, guards and background tasks.
pub(crate) struct Shared<T: Poolable, R: Runtime> {
    pub(crate) config: ConnPoolConfig,
    pub(crate) hooks: LifecycleHooks<T>,
    pub(crate) runtime: R,
    pub(crate) connector: Box<dyn DynConnector<T>>,
    pub(crate) state: Mutex<State<T>>,
    /// The most recently returned idle connection, taken and put back without the lock
    /// while nobody waits (`fast.rs`).
    pub(crate) fast: FastSlot<T>,
    /// Notified when a draining pool has no connection left.
    pub(crate) drained: Event,
    /// Notified when background tasks must stop.
    pub(crate) shutdown: Event,
    /// Wakes the deadline sweeper early.
    pub(crate) sweeper_event: Event,
    /// Live `ConnPool` handles; the pool closes when the last one is dropped.
    pub(crate) handles: AtomicUsize,
    /// Background tasks currently running.
    pub(crate) background: AtomicUsize,
    /// The eviction generation: connections of an older one are never handed out again.
    /// Changed only under the pool lock (`evict_all`); read without it by the checkout's
    /// last check, so a connection granted just before an eviction is still caught.
    generation: AtomicU64,
    pub(crate) leaks: Option<LeakRegistry>,
    /// Shuttle models only: a return wakes the head waiter before storing its grant (and
    /// not after), the deliberate lost wake-up `tests/shuttle_fast.rs` proves its models
    /// catch.
    #[cfg(shuttle)]
    pub(crate) broken_grant: std::sync::atomic::AtomicBool,
}

impl<T: Poolable, R: Runtime> std::fmt::Debug for Shared<T, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("name", &self.config.name)
            .finish_non_exhaustive()
    }
}

impl<T: Poolable, R: Runtime> Shared<T, R> {
    pub(crate) fn new(
        config: ConnPoolConfig,
        hooks: LifecycleHooks<T>,
        runtime: R,
        connector: Box<dyn DynConnector<T>>,
    ) -> Self {
        let state = State {
            ledger: Ledger::new(config.max_size, config.min_idle),
            waiters: Queue::default(),
            draining: false,
            runtime_gone: false,
            next_waiter: 0,
            failures: 0,
            failover_until: None,
            backoff_until: None,
            backoff_timer_armed: false,
            last_error: None,
            counters: Counters::default(),
            sweeper: SweeperState::default(),
            spare_waiters: Vec::new(),
        };
        let leaks = config
            .leak_detection_threshold
            .map(|_| LeakRegistry::default());
        let fast = FastSlot::new(&config, &hooks);
        Self {
            config,
            hooks,
            runtime,
            connector,
            state: Mutex::new(state),
            fast,
            drained: Event::new(),
            shutdown: Event::new(),
            sweeper_event: Event::new(),
            handles: AtomicUsize::new(1),
            background: AtomicUsize::new(0),
            generation: AtomicU64::new(0),
            leaks,
            #[cfg(shuttle)]
            broken_grant: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// The current eviction generation.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Starts a new eviction generation. Called under the pool lock.
    pub(crate) fn next_generation(&self) {
        self.generation.fetch_add(1, Ordering::AcqRel);
    }

    pub(crate) fn lock(&self) -> StateGuard<'_, T> {
        let st = lock(&self.state);
        #[cfg(debug_assertions)]
        st.check_served(self.config.fairness);
        StateGuard::new(st, &self.fast)
    }

    pub(crate) fn metrics(self: &Arc<Self>) -> Metrics {
        let mut fx = Effects::default();
        let metrics = {
            let mut st = self.lock();
            // The slot's connection shows as idle, not active.
            self.unslot(&mut st, Instant::now(), &mut fx);
            self.snapshot(&st)
        };
        self.apply(fx);
        metrics
    }

    fn snapshot(&self, st: &State<T>) -> Metrics {
        let gauges = Gauges {
            max_size: st.ledger.max_size(),
            min_idle: st.ledger.min_idle(),
            idle: st.ledger.idle().len(),
            active: st.ledger.active(),
            connecting: st.ledger.connecting(),
            waiters: st.waiters.len(),
            closing: st.ledger.closing(),
            background_tasks: self.background.load(Ordering::Acquire),
            draining: st.draining,
        };
        let mut metrics = Metrics::new(gauges, &st.counters);
        self.fast.add_to(
            &mut metrics.checkouts,
            &mut metrics.wait_time,
            &mut metrics.usage_time,
        );
        metrics
    }

    /// Places a connection that is counted nowhere: hands it to the head waiter, makes it
    /// idle, or marks it for destruction when the pool is draining, it is stale, or the pool
    /// is above its maximum size.
    pub(crate) fn place(
        &self,
        st: &mut State<T>,
        conn: Conn<T>,
        now: Instant,
        fx: &mut Effects<T>,
    ) {
        let reason = if st.draining {
            Some(DestroyReason::Closed)
        } else if conn.generation != self.generation() || st.ledger.room() == 0 {
            Some(DestroyReason::Evicted)
        } else {
            None
        };
        if let Some(reason) = reason {
            st.count_destroy(reason);
            fx.destroy(conn, reason);
            return;
        }
        if st.waiters.is_empty() {
            // Nobody queued: idle, whatever the fairness (the uncontended return).
            st.ledger.park(conn);
            return;
        }
        if let Some(bound) = self.config.fairness.bound() {
            st.ledger.park(conn);
            self.serve(st, now, bound, fx);
            return;
        }
        if let Some(waiter) = st.waiters.pop() {
            st.ledger.grant();
            st.counters.checkouts += 1;
            st.counters
                .wait_time
                .record_nanos(nanos_between(now, waiter.enqueued));
            #[cfg(shuttle)]
            if self.broken_grant.load(Ordering::Relaxed) {
                waiter.wake();
                waiter.grant(Grant::Conn(conn));
                return;
            }
            waiter.grant(Grant::Conn(conn));
            fx.wake(waiter);
        } else {
            st.ledger.park(conn);
        }
    }

    /// Reserves capacity for the connection attempts the pool needs now: one per waiter not
    /// already covered by an attempt in flight, plus what `min_idle` is short of, limited by
    /// `max_size`, `max_connecting` and the connect backoff.
    pub(crate) fn plan_connects(&self, st: &mut State<T>, now: Instant, fx: &mut Effects<T>) {
        if st.draining {
            return;
        }
        // Supply counts the slot's connection once it is in the idle set.
        self.unslot(st, now, fx);
        // A full pool (the usual case under contention) has no connect to plan: none would
        // fit, and a backoff timer would only lead back here. Whatever frees room plans
        // again (`update`).
        if st.ledger.room() == 0 {
            return;
        }
        let demand = st.waiters.len() + st.ledger.min_idle();
        let supply = st.ledger.supply();
        let mut wanted = demand.saturating_sub(supply);
        if wanted == 0 {
            return;
        }
        if let Some(until) = st.backoff_until {
            if now < until {
                if !st.backoff_timer_armed {
                    st.backoff_timer_armed = true;
                    fx.rare().backoff_timer = Some(until);
                }
                return;
            }
            st.backoff_until = None;
        }
        wanted = wanted.min(st.ledger.room()).min(
            self.config
                .max_connecting
                .saturating_sub(st.ledger.connecting()),
        );
        for _ in 0..wanted {
            let originator = st.waiters.nth_id(st.ledger.connecting());
            st.ledger.start_connect();
            fx.rare().connects.push(originator);
        }
    }

    /// Runs one state change that may free capacity: `change` under the lock, then the
    /// connects the pool now needs, then (lock released) the effects.
    pub(crate) fn update<O>(
        self: &Arc<Self>,
        change: impl FnOnce(&mut State<T>, &mut Effects<T>) -> O,
    ) -> O {
        let mut fx = Effects::default();
        let out = {
            let mut st = self.lock();
            let now = Instant::now();
            // `change` sees every idle connection.
            self.unslot(&mut st, now, &mut fx);
            let out = change(&mut st, &mut fx);
            if let Some(bound) = self.config.fairness.bound() {
                self.serve(&mut st, now, bound, &mut fx);
            }
            self.plan_connects(&mut st, now, &mut fx);
            fx.set_drained(st.is_drained());
            out
        };
        self.apply(fx);
        out
    }

    /// Starts a new generation and destroys every idle connection. Called under the lock.
    pub(crate) fn evict_all(&self, st: &mut State<T>, fx: &mut Effects<T>) {
        self.next_generation();
        // A connection put in the slot since is of the old generation: `place` destroys it.
        self.unslot(st, Instant::now(), fx);
        while let Some(conn) = st.ledger.pop_idle() {
            st.count_destroy(DestroyReason::Evicted);
            fx.destroy(conn, DestroyReason::Evicted);
        }
    }

    /// A returned connection showed that the server is no longer the one the pool wants
    /// ([`Poolable::server_changed`]): evict everything and reconnect at once.
    pub(crate) fn server_changed(self: &Arc<Self>, cause: &'static str) {
        let generation = self.update(|st, fx| {
            self.evict_all(st, fx);
            st.counters.server_changes += 1;
            // The server answered: whatever backoff an outage built up no longer applies.
            st.failures = 0;
            st.backoff_until = None;
            st.failover_until = Some(after(Instant::now(), FAILOVER_WINDOW));
            self.generation()
        });
        tracing::warn!(
            pool = %self.config.name,
            generation,
            cause,
            "a connection showed the server changed (failover, shutdown or lost connection): evicted every pooled connection"
        );
    }

    /// Decides to destroy a connection counted as active: moves it to `closing` and lets
    /// waiters have the freed capacity.
    pub(crate) fn destroy_active(
        self: &Arc<Self>,
        conn: Conn<T>,
        reason: DestroyReason,
        usage: Option<Duration>,
    ) {
        self.update(|st, fx| {
            st.ledger.release();
            if let Some(usage) = usage {
                st.counters.usage_time.record(usage);
            }
            st.count_destroy(reason);
            fx.destroy(conn, reason);
        });
    }

    /// Destroys a connection the health probe took, which failed its ping.
    pub(crate) fn destroy_probed(self: &Arc<Self>, conn: Conn<T>) {
        self.update(|st, fx| {
            st.ledger.end_probe();
            st.count_destroy(DestroyReason::PingFailed);
            fx.destroy(conn, DestroyReason::PingFailed);
        });
    }

    /// Carries out the effects of a critical section. Must be called without the lock.
    #[inline]
    pub(crate) fn apply(self: &Arc<Self>, fx: Effects<T>) {
        let Effects { wake, rare } = fx;
        if let Some(waiter) = wake {
            waiter.wake();
        }
        if let Some(rare) = rare {
            self.apply_rare(*rare);
        }
    }

    #[inline(never)]
    fn apply_rare(self: &Arc<Self>, rare: Rare<T>) {
        let Rare {
            wake,
            destroy,
            connects,
            backoff_timer,
            drained,
            sweeper,
        } = rare;
        match sweeper {
            Some(Nudge::Spawn) => self.spawn(crate::sweeper::run(Arc::downgrade(self))),
            Some(Nudge::Wake) => crate::sweeper::wake(&self.sweeper_event),
            Some(Nudge::None) | None => {}
        }
        for waiter in wake {
            waiter.wake();
        }
        for (conn, reason) in destroy {
            self.finish_destroy(conn, reason);
        }
        for originator in connects {
            // The reservation exists before the task does: a runtime that drops the task
            // unpolled still gives the capacity back.
            let reservation = Reservation::new(Arc::clone(self));
            self.spawn(crate::connect::run(reservation, originator));
        }
        if let Some(until) = backoff_timer {
            let weak = Arc::downgrade(self);
            let delay = until.saturating_duration_since(Instant::now());
            self.spawn(crate::connect::backoff_timer(
                weak,
                self.runtime.sleep(delay),
            ));
        }
        if drained {
            self.drained.notify(usize::MAX);
        }
    }

    /// Runs the destroy hook and closes a connection already counted in `closing`.
    ///
    /// The close future is polled once inline; only a close that is not done at once is
    /// spawned, bounded by `checkin_timeout`. A `close` that panics (before or after
    /// returning its future) counts as closed.
    pub(crate) fn finish_destroy(self: &Arc<Self>, conn: Conn<T>, reason: DestroyReason) {
        tracing::debug!(pool = %self.config.name, %reason, "destroying connection");
        self.hooks.run_destroy(&conn.raw, reason);
        let done = ClosedOnDrop(Arc::clone(self));
        let raw = conn.into_raw();
        let Ok(close) = catch_unwind(AssertUnwindSafe(move || raw.close())) else {
            tracing::warn!(pool = %self.config.name, "closing a connection panicked");
            return;
        };
        let span = tracing::debug_span!("pg_pool.close", pool = %self.config.name, %reason);
        let mut close = Box::pin(AssertUnwindSafe(close.instrument(span)).catch_unwind());
        let mut cx = Context::from_waker(Waker::noop());
        let polled = catch_unwind(AssertUnwindSafe(|| close.as_mut().poll(&mut cx)));
        if !matches!(polled, Ok(Poll::Pending)) {
            return;
        }
        self.spawn(async move {
            if timeout(&done.0.runtime, done.0.config.checkin_timeout, close)
                .await
                .is_none()
            {
                tracing::warn!(pool = %done.0.config.name, "closing a connection timed out");
            }
            drop(done);
        });
    }

    fn closed(self: &Arc<Self>) {
        let drained = {
            let mut st = self.lock();
            st.ledger.end_close();
            st.is_drained()
        };
        if drained {
            self.drained.notify(usize::MAX);
        }
    }

    /// Fails every waiter and destroys every idle connection; used by drain and by the drop
    /// of the last pool handle.
    pub(crate) fn close(self: &Arc<Self>) {
        self.shut(|| Grant::Closed);
    }

    /// The runtime dropped one of the pool's tasks without running it: it has shut down.
    /// Closes the pool; queued and later checkouts fail with `RuntimeGone`.
    pub(crate) fn runtime_gone(self: &Arc<Self>) {
        {
            let mut st = self.lock();
            if st.runtime_gone {
                return;
            }
            st.runtime_gone = true;
        }
        tracing::error!(
            pool = %self.config.name,
            "the pool's runtime has shut down: it dropped a pool task without running it; the pool is closed"
        );
        self.shut(|| Grant::RuntimeGone);
    }

    fn shut(self: &Arc<Self>, grant: impl Fn() -> Grant<T, T::Error>) {
        let mut fx = Effects::default();
        {
            let mut st = self.lock();
            st.draining = true;
            // Closed before it is emptied, so a racing return takes its connection back
            // (`fast.rs`); `place` destroys what is found, the pool draining.
            self.fast.close();
            self.unslot(&mut st, Instant::now(), &mut fx);
            while let Some(waiter) = st.waiters.pop() {
                waiter.grant(grant());
                fx.wake(waiter);
            }
            while let Some(conn) = st.ledger.pop_idle() {
                st.count_destroy(DestroyReason::Closed);
                fx.destroy(conn, DestroyReason::Closed);
            }
            fx.set_drained(st.is_drained());
        }
        self.apply(fx);
        self.shutdown.notify(usize::MAX);
        crate::sweeper::wake(&self.sweeper_event);
    }

    /// The error for a checkout that ran out of time; counts it unless the sweeper did.
    pub(crate) fn timeout_error(
        self: &Arc<Self>,
        phase: Phase,
        started: Instant,
        count: bool,
    ) -> PoolErrorOf<T> {
        let mut fx = Effects::default();
        let (details, last_connect_error) = {
            let mut st = self.lock();
            // The slot's connection counts as idle in the details.
            self.unslot(&mut st, Instant::now(), &mut fx);
            if count {
                st.counters.timeouts += 1;
            }
            let details = TimeoutDetails {
                max_size: st.ledger.max_size(),
                idle: st.ledger.idle().len(),
                active: st.ledger.active(),
                connecting: st.ledger.connecting(),
                waiters: st.waiters.len(),
                held_longest: Vec::new(),
            };
            (details, st.last_error.clone())
        };
        self.apply(fx);
        let now = Instant::now();
        let held_longest = self
            .leaks
            .as_ref()
            .map(|leaks| leaks.longest(now, 3))
            .unwrap_or_default();
        let details = Box::new(TimeoutDetails {
            held_longest,
            ..details
        });
        let waited = now.saturating_duration_since(started);
        tracing::warn!(
            pool = %self.config.name,
            %phase,
            ?waited,
            max_size = details.max_size,
            idle = details.idle,
            active = details.active,
            connecting = details.connecting,
            waiters = details.waiters,
            held_longest = ?details.held_longest,
            last_connect_error = last_connect_error.as_ref().map(|e| tracing::field::display(e.as_ref())),
            "checkout timed out"
        );
        PoolError::Timeout {
            phase,
            waited,
            last_connect_error,
            details,
        }
    }
}

/// Decrements `closing` when a close ends, also if its task is dropped unpolled.
struct ClosedOnDrop<T: Poolable, R: Runtime>(Arc<Shared<T, R>>);

impl<T: Poolable, R: Runtime> Drop for ClosedOnDrop<T, R> {
    fn drop(&mut self) {
        self.0.closed();
    }
}

use std::future::Future as _;
