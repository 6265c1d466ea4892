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

use std::collections::VecDeque;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Waker};

use futures_lite::FutureExt;
use std::time::Duration;

use crate::clock::Instant;

use event_listener::Event;

use crate::config::{ConnPoolConfig, IdleOrder};
use crate::conn::Conn;
use crate::error::{ConnectError, Phase, PoolError};
use crate::hooks::{DestroyReason, LifecycleHooks};
use crate::leak::LeakRegistry;
use crate::metrics::{Counters, Gauges, Metrics};
use crate::poolable::{DynConnector, Poolable};
use crate::runtime::{Runtime, spawn_caught, timeout};
use crate::sweeper::{Nudge, SweeperState};
use crate::sync::{Mutex, MutexGuard, lock};
use crate::waiters::{Grant, Waiter};

pub(crate) type WaiterOf<T> = Waiter<T, <T as Poolable>::Error>;
pub(crate) type PoolErrorOf<T> = PoolError<<T as Poolable>::Error>;

/// State guarded by the pool lock.
#[derive(Debug)]
pub(crate) struct State<T: Poolable> {
    pub(crate) idle: VecDeque<Conn<T>>,
    pub(crate) waiters: VecDeque<Arc<WaiterOf<T>>>,
    pub(crate) active: usize,
    pub(crate) connecting: usize,
    pub(crate) closing: usize,
    pub(crate) max_size: usize,
    pub(crate) min_idle: usize,
    pub(crate) generation: u64,
    pub(crate) draining: bool,
    pub(crate) next_waiter: u64,
    /// Consecutive failed connects; reset by a successful one.
    pub(crate) failures: u32,
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
    pub(crate) fn size(&self) -> usize {
        self.idle.len() + self.active + self.connecting
    }

    pub(crate) fn is_drained(&self) -> bool {
        self.draining && self.size() == 0 && self.closing == 0
    }

    pub(crate) fn pop_idle(&mut self, order: IdleOrder) -> Option<Conn<T>> {
        match order {
            IdleOrder::Lifo => self.idle.pop_back(),
            IdleOrder::Fifo => self.idle.pop_front(),
        }
    }

    pub(crate) fn remove_waiter(&mut self, id: u64) -> bool {
        match self.waiters.iter().position(|w| w.id == id) {
            Some(index) => {
                self.waiters.remove(index);
                true
            }
            None => false,
        }
    }

    /// Moves a connection the pool decided to destroy into `closing`.
    pub(crate) fn count_destroy(&mut self, reason: DestroyReason) {
        self.closing += 1;
        self.counters.destroys[reason.index()] += 1;
    }

    /// A waiter for a new queued caller: a spare one if there is one, else a new one.
    pub(crate) fn new_waiter(&mut self, enqueued: Instant, deadline: Instant) -> Arc<WaiterOf<T>> {
        let id = self.next_waiter;
        self.next_waiter += 1;
        if let Some(mut waiter) = self.spare_waiters.pop()
            && let Some(spare) = Arc::get_mut(&mut waiter)
        {
            spare.reuse(id, enqueued, deadline);
            return waiter;
        }
        Arc::new(Waiter::new(id, enqueued, deadline))
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
        if self.connecting > 0 || self.last_error.is_some() {
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
    pub(crate) leaks: Option<LeakRegistry>,
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
            idle: VecDeque::with_capacity(config.max_size),
            waiters: VecDeque::new(),
            active: 0,
            connecting: 0,
            closing: 0,
            max_size: config.max_size,
            min_idle: config.min_idle,
            generation: 0,
            draining: false,
            next_waiter: 0,
            failures: 0,
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
        Self {
            config,
            hooks,
            runtime,
            connector,
            state: Mutex::new(state),
            drained: Event::new(),
            shutdown: Event::new(),
            sweeper_event: Event::new(),
            handles: AtomicUsize::new(1),
            background: AtomicUsize::new(0),
            leaks,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, State<T>> {
        lock(&self.state)
    }

    pub(crate) fn metrics(&self) -> Metrics {
        let st = self.lock();
        let gauges = Gauges {
            max_size: st.max_size,
            min_idle: st.min_idle,
            idle: st.idle.len(),
            active: st.active,
            connecting: st.connecting,
            waiters: st.waiters.len(),
            closing: st.closing,
            background_tasks: self.background.load(Ordering::Acquire),
            draining: st.draining,
        };
        Metrics::new(gauges, &st.counters)
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
        } else if conn.generation != st.generation || st.size() >= st.max_size {
            Some(DestroyReason::Evicted)
        } else {
            None
        };
        if let Some(reason) = reason {
            st.count_destroy(reason);
            fx.destroy(conn, reason);
            return;
        }
        if let Some(waiter) = st.waiters.pop_front() {
            st.active += 1;
            st.counters.checkouts += 1;
            st.counters
                .wait_time
                .record(now.saturating_duration_since(waiter.enqueued));
            waiter.grant(Grant::Conn(conn));
            fx.wake(waiter);
        } else {
            st.idle.push_back(conn);
        }
    }

    /// Reserves capacity for the connection attempts the pool needs now: one per waiter not
    /// already covered by an attempt in flight, plus what `min_idle` is short of, limited by
    /// `max_size`, `max_connecting` and the connect backoff.
    pub(crate) fn plan_connects(&self, st: &mut State<T>, now: Instant, fx: &mut Effects<T>) {
        if st.draining {
            return;
        }
        let demand = st.waiters.len() + st.min_idle;
        let supply = st.idle.len() + st.connecting;
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
        wanted = wanted
            .min(st.max_size.saturating_sub(st.size()))
            .min(self.config.max_connecting.saturating_sub(st.connecting));
        for _ in 0..wanted {
            let originator = st.waiters.get(st.connecting).map(|w| w.id);
            st.connecting += 1;
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
            let out = change(&mut st, &mut fx);
            self.plan_connects(&mut st, Instant::now(), &mut fx);
            fx.set_drained(st.is_drained());
            out
        };
        self.apply(fx);
        out
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
            st.active -= 1;
            if let Some(usage) = usage {
                st.counters.usage_time.record(usage);
            }
            st.count_destroy(reason);
            fx.destroy(conn, reason);
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
            Some(Nudge::Spawn) => crate::sweeper::spawn(self),
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
            let shared = Arc::clone(self);
            spawn_caught(&self.runtime, async move {
                crate::connect::run(shared, originator).await
            });
        }
        if let Some(until) = backoff_timer {
            let weak = Arc::downgrade(self);
            let delay = until.saturating_duration_since(Instant::now());
            spawn_caught(
                &self.runtime,
                crate::connect::backoff_timer(weak, self.runtime.sleep(delay)),
            );
        }
        if drained {
            self.drained.notify(usize::MAX);
        }
    }

    /// Runs the destroy hook and closes a connection already counted in `closing`.
    ///
    /// The close future is polled once inline; only a close that is not done at once is
    /// spawned, bounded by `checkin_timeout`.
    pub(crate) fn finish_destroy(self: &Arc<Self>, conn: Conn<T>, reason: DestroyReason) {
        tracing::debug!(pool = %self.config.name, %reason, "destroying connection");
        self.hooks.run_destroy(&conn.raw, reason);
        let mut close = Box::pin(AssertUnwindSafe(conn.raw.close()).catch_unwind());
        let mut cx = Context::from_waker(Waker::noop());
        let polled = catch_unwind(AssertUnwindSafe(|| close.as_mut().poll(&mut cx)));
        if !matches!(polled, Ok(Poll::Pending)) {
            self.closed();
            return;
        }
        let shared = Arc::clone(self);
        spawn_caught(&self.runtime, async move {
            let done = ClosedOnDrop(&shared);
            if timeout(&shared.runtime, shared.config.checkin_timeout, close)
                .await
                .is_none()
            {
                tracing::warn!(pool = %shared.config.name, "closing a connection timed out");
            }
            drop(done);
        });
    }

    fn closed(self: &Arc<Self>) {
        let drained = {
            let mut st = self.lock();
            st.closing -= 1;
            st.is_drained()
        };
        if drained {
            self.drained.notify(usize::MAX);
        }
    }

    /// Fails every waiter and destroys every idle connection; used by drain and by the drop
    /// of the last pool handle.
    pub(crate) fn close(self: &Arc<Self>) {
        let mut fx = Effects::default();
        {
            let mut st = self.lock();
            st.draining = true;
            while let Some(waiter) = st.waiters.pop_front() {
                waiter.grant(Grant::Closed);
                fx.wake(waiter);
            }
            while let Some(conn) = st.idle.pop_front() {
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
        &self,
        phase: Phase,
        started: Instant,
        count: bool,
    ) -> PoolErrorOf<T> {
        let mut st = self.lock();
        if count {
            st.counters.timeouts += 1;
        }
        PoolError::Timeout {
            phase,
            waited: started.elapsed(),
            last_connect_error: st.last_error.clone(),
        }
    }
}

/// Decrements `closing` when a spawned close ends, also if its task is dropped.
struct ClosedOnDrop<'a, T: Poolable, R: Runtime>(&'a Arc<Shared<T, R>>);

impl<T: Poolable, R: Runtime> Drop for ClosedOnDrop<'_, T, R> {
    fn drop(&mut self) {
        self.0.closed();
    }
}

use std::future::Future as _;
