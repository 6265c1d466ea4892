//! The acquire path: take an idle connection or queue for one, then validate it.

use crate::clock::{Instant, after};
use std::future::{Future, poll_fn};
use std::panic::{AssertUnwindSafe, Location, catch_unwind};
use std::pin::Pin;
use std::sync::Arc;
use std::task::Poll;

use event_listener::listener;
use tracing::Instrument;

use crate::conn::Conn;
use crate::error::{Phase, PoolError};
use crate::guard::{Held, PoolGuard};

use crate::hooks::{DestroyReason, HookError, LifecycleHooks, caught};
use crate::poolable::Poolable;
use crate::runtime::{Runtime, timeout};
use crate::shared::{Effects, PoolErrorOf, Shared, WaiterOf};
use crate::sweeper::Nudge;
use crate::waiters::{Found, Grant};

pub(crate) use crate::checkout_future::Checkout;

/// Leaves the queue or returns an unclaimed grant if the waiting caller is dropped.
struct QueueSlot<'a, T: Poolable, R: Runtime> {
    shared: &'a Arc<Shared<T, R>>,
    waiter: &'a Arc<WaiterOf<T>>,
    armed: bool,
}

impl<T: Poolable, R: Runtime> Drop for QueueSlot<'_, T, R> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let waiter = self.waiter;
        self.shared.update(|st, fx| {
            if !st.waiters.abandon(waiter) {
                // Already granted: pass the grant on.
                if let Some(Grant::Conn(conn)) = waiter.take() {
                    st.ledger.release();
                    self.shared.place(st, conn, Instant::now(), fx);
                }
            }
        });
    }
}

impl<T: Poolable, R: Runtime> Shared<T, R> {
    /// Checks out a connection the slow way, after the fast path (`acquire.rs`) found the
    /// fast slot empty or closed (`prefetched == None`), or took a connection from it that
    /// needs more than the synchronous checks (`prefetched`, with the time it was taken).
    /// `wait == false` is `try_get`: no queueing.
    ///
    /// Taking an idle connection under the lock runs without an allocation or a timer. The
    /// slow parts, waiting and asynchronous validation, are boxed so that they do not bloat
    /// this future, which every caller moves around.
    pub(crate) async fn acquire_slow(
        self: &Arc<Self>,
        site: &'static Location<'static>,
        wait: bool,
        mut prefetched: Option<(Conn<T>, Instant)>,
    ) -> Result<PoolGuard<T, R>, PoolErrorOf<T>> {
        let started = prefetched
            .as_ref()
            .map_or_else(Instant::now, |(_, taken)| *taken);
        let mut requeue_front = false;
        // The waiter this call queued with, recycled by the return's critical section.
        let mut spare = None;
        loop {
            let mut fx = Effects::default();
            let taken = if let Some((conn, _)) = prefetched.take() {
                Ok(conn)
            } else {
                let mut st = self.lock();
                if st.draining {
                    return Err(if st.runtime_gone {
                        PoolError::RuntimeGone
                    } else {
                        PoolError::Closed
                    });
                }
                // A connection returned into the slot since this caller looked.
                self.unslot(&mut st, started, &mut fx);
                // An idle connection, and nobody queued ahead of us; or, with bounded
                // fairness, nobody queued for longer than the bound.
                let idle = if st.waiters.is_empty() {
                    st.ledger.take_idle(self.config.idle_order)
                } else if let Some(bound) = self.config.fairness.bound()
                    && !st.waiters.head_starving(Instant::now(), bound)
                {
                    st.ledger.take_idle(self.config.idle_order)
                } else {
                    None
                };
                match idle {
                    Some(conn) => {
                        st.counters.checkouts += 1;
                        st.counters.wait_time.record_zero();
                        if st.ledger.min_idle() > 0 {
                            self.plan_connects(&mut st, started, &mut fx);
                        }
                        Ok(conn)
                    }
                    None if !wait => return Err(PoolError::Exhausted),
                    None => {
                        let deadline = after(started, self.config.checkout_timeout);
                        // On a first try under strict fairness, `started` is a moment ago
                        // (the lock is all that came between) and serves as the time of
                        // queueing: no second clock read. Bounded fairness reads the clock,
                        // so that waiters' ages never decrease from the head backwards
                        // (`Waiter::since`).
                        let now = if requeue_front || self.config.fairness.bound().is_some() {
                            Instant::now()
                        } else {
                            started
                        };
                        // A retry goes ahead of the head: as old as the head at least, so
                        // that ages never decrease from the head backwards.
                        let since = if requeue_front {
                            st.waiters
                                .head()
                                .map_or(started, |head| head.since.min(started))
                        } else {
                            now
                        };
                        let waiter = st.new_waiter(now, since, deadline);
                        st.waiters.push(Arc::clone(&waiter), requeue_front);
                        // Closed, then emptied: a connection a racing return put in the
                        // slot goes to the head of the queue (`fast.rs`).
                        self.fast.close();
                        self.unslot(&mut st, now, &mut fx);
                        match st.sweeper.on_enqueue(deadline) {
                            Nudge::None => {}
                            nudge => fx.rare().sweeper = Some(nudge),
                        }
                        if let Some(bound) = self.config.fairness.bound() {
                            // Connections may be idle while the head is past the bound.
                            self.serve(&mut st, now, bound, &mut fx);
                        }
                        // A full pool (the usual case when callers queue) has no connect
                        // to plan, and the slot was emptied above: no call.
                        if st.ledger.room() > 0 {
                            self.plan_connects(&mut st, started, &mut fx);
                        }
                        Err(waiter)
                    }
                }
            };
            self.apply(fx);
            let (conn, now) = match taken {
                Ok(conn) => (conn, started),
                Err(waiter) => {
                    let (conn, waiter) = self.wait(waiter, started).await?;
                    spare = Some(waiter);
                    let now = Instant::now();
                    let waited = now.saturating_duration_since(started);
                    if waited >= self.config.slow_checkout_threshold {
                        tracing::warn!(pool = %self.config.name, ?waited, checkout_site = %site, "slow checkout");
                    }
                    (conn, now)
                }
            };
            requeue_front = true;
            let Some(mut conn) = self.check(conn, now)? else {
                continue;
            };
            if self.needs_async_validation(&conn, now) {
                match Box::pin(self.validate_async(conn, started)).await? {
                    Some(validated) => conn = validated,
                    None => continue,
                }
            }
            conn.fresh = false;
            let leak_key = self.leaks.as_ref().map(|leaks| leaks.register(now, site));
            return Ok(PoolGuard::new(conn, Arc::clone(self), now, leak_key, spare));
        }
    }

    /// Waits in the queue until granted: a connection, an error, or the sweeper's timeout.
    /// No timer is registered here; see `sweeper.rs`.
    async fn wait(
        self: &Arc<Self>,
        waiter: Arc<WaiterOf<T>>,
        started: Instant,
    ) -> Result<(Conn<T>, Arc<WaiterOf<T>>), PoolErrorOf<T>> {
        // Borrowed by the guard, so that a granted waiter moves back to the caller (for
        // the return to recycle) without another reference count.
        let mut slot = QueueSlot {
            shared: self,
            waiter: &waiter,
            armed: true,
        };
        // The slot is looked at after the listener is registered, so that a grant or nudge
        // stored before the registration is seen; then at every poll, before the listener
        // is: the usual wake-up finds the grant at once and leaves the listener unpolled
        // (one lock of the event's list fewer). A caller that has just queued is practically
        // never granted yet, and its look costs one atomic load.
        let grant = loop {
            listener!(slot.waiter.event() => woken);
            let looked = poll_fn(|cx| match slot.waiter.take_any() {
                Some(found) => Poll::Ready(Some(found)),
                // Notified: the grant or nudge was stored before the notification.
                None => Pin::new(&mut woken)
                    .poll(cx)
                    .map(|()| slot.waiter.take_any()),
            })
            .await;
            match looked {
                Some(Found::Grant(grant)) => break grant,
                Some(Found::Nudge) => {
                    if let Some(grant) = self.claim(slot.waiter) {
                        break grant;
                    }
                }
                // Woken with nothing (a nudge already taken): listen again.
                None => {}
            }
        };
        slot.armed = false;
        drop(slot);
        match grant {
            Grant::Conn(conn) => Ok((conn, waiter)),
            Grant::Failed(error) => Err(PoolError::Connect(error)),
            Grant::Closed => Err(PoolError::Closed),
            Grant::TimedOut(phase) => Err(self.timeout_error(phase, started, false)),
            Grant::RuntimeGone => Err(PoolError::RuntimeGone),
        }
    }

    /// The synchronous checks of a connection counted as active: generation, lifetime,
    /// broken check, acquire hook. `Ok(None)`: destroyed, try another.
    ///
    /// The generation is read at this moment, not when the connection was taken or
    /// granted: a connection handed to a waiter just before an `evict_all` is caught here.
    fn check(
        self: &Arc<Self>,
        mut conn: Conn<T>,
        now: Instant,
    ) -> Result<Option<Conn<T>>, PoolErrorOf<T>> {
        let reason = if conn.generation != self.generation() {
            DestroyReason::Evicted
        } else if conn.expired(now) {
            DestroyReason::Lifetime
        } else if catch_unwind(AssertUnwindSafe(|| conn.raw.has_pending_data())).unwrap_or(true) {
            DestroyReason::Broken
        } else if let Some(hook) = &self.hooks.acquire
            && let Err(error) = LifecycleHooks::run_sync(hook, "acquire", &mut conn.raw)
        {
            let fresh = conn.fresh;
            self.destroy_active(conn, DestroyReason::HookRejected, None);
            return Self::hook_rejected(error, fresh);
        } else {
            return Ok(Some(conn));
        };
        self.destroy_active(conn, reason, None);
        Ok(None)
    }

    pub(crate) fn needs_async_validation(&self, conn: &Conn<T>, now: Instant) -> bool {
        self.hooks.checkout.is_some() || self.fast.ping_due(conn.last_used, now)
    }

    /// The asynchronous checks: the idle ping, then the checkout hook, within what is left
    /// of the checkout deadline. `Ok(None)`: destroyed, try another. Dropping this future
    /// destroys the connection (its session state is unknown) and frees its capacity.
    async fn validate_async(
        self: &Arc<Self>,
        conn: Conn<T>,
        started: Instant,
    ) -> Result<Option<Conn<T>>, PoolErrorOf<T>> {
        // Dropped midway (the caller gave up), the connection is destroyed as cancelled.
        let mut held = Held::new(Arc::clone(self), conn, DestroyReason::Cancelled);
        let conn = held.get();
        if self.fast.ping_due(conn.last_used, Instant::now()) {
            let left = self
                .config
                .checkout_timeout
                .saturating_sub(started.elapsed());
            let limit = left.min(self.config.probe_timeout);
            let span = tracing::debug_span!("pg_pool.ping", pool = %self.config.name);
            let ping = caught(|| conn.raw.ping()).instrument(span);
            match timeout(&self.runtime, limit, ping).await {
                Some(Ok(Ok(()))) => conn.last_used = Instant::now(),
                Some(Ok(Err(error))) => {
                    tracing::debug!(pool = %self.config.name, %error, "idle connection failed its ping");
                    held.destroy(DestroyReason::PingFailed);
                    return Ok(None);
                }
                Some(Err(_panic)) => {
                    held.destroy(DestroyReason::PingFailed);
                    return Ok(None);
                }
                None => {
                    held.destroy(DestroyReason::PingFailed);
                    if limit == left {
                        return Err(self.timeout_error(Phase::Probe, started, true));
                    }
                    return Ok(None);
                }
            }
        }
        if let Some(hook) = &self.hooks.checkout {
            let left = self
                .config
                .checkout_timeout
                .saturating_sub(started.elapsed());
            let fresh = conn.fresh;
            let run = LifecycleHooks::run_async(hook, "checkout", &mut conn.raw);
            match timeout(&self.runtime, left, run).await {
                Some(Ok(())) => {}
                Some(Err(error)) => {
                    held.destroy(DestroyReason::HookRejected);
                    return Self::hook_rejected(error, fresh);
                }
                None => {
                    held.destroy(DestroyReason::HookRejected);
                    return Err(self.timeout_error(Phase::Hook, started, true));
                }
            }
        }
        Ok(Some(held.disarm()))
    }

    /// After a hook rejected (and the pool destroyed) a connection: a fresh connection
    /// rejected too means the hook rejects everything, so fail rather than open connection
    /// after connection; otherwise try another.
    fn hook_rejected(error: HookError, fresh: bool) -> Result<Option<Conn<T>>, PoolErrorOf<T>> {
        tracing::debug!(%error, fresh, "a hook rejected a connection");
        if fresh {
            Err(PoolError::Hook(error))
        } else {
            Ok(None)
        }
    }
}
