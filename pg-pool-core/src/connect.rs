//! Connection attempts: spawned tasks that run to completion whoever is still waiting.
//!
//! An attempt is started for a waiter (its originator) but belongs to the pool: if the
//! originator gives up, the new connection goes to the next waiter or the idle set, never
//! above `max_size`, because its capacity was reserved before the attempt began. A failure is
//! handed to the originator at once, if it is still waiting, and starts an exponential
//! backoff with jitter during which no new attempt begins.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::clock::{Instant, after};

use crate::conn::Conn;
use crate::error::ConnectError;
use futures_lite::future;
use tracing::Instrument;

use crate::hooks::{DestroyReason, LifecycleHooks, caught};
use crate::poolable::Poolable;
use crate::runtime::{Runtime, timeout};
use crate::shared::{Effects, Shared, State};
use crate::waiters::Grant;

/// Capacity reserved for one connection attempt (`connecting` was incremented under the
/// lock). Gives it back if the attempt ends without being recorded: its task was dropped
/// (the runtime shut down, even before the task first ran) or panicked.
pub(crate) struct Reservation<T: Poolable, R: Runtime> {
    shared: Arc<Shared<T, R>>,
    armed: bool,
}

impl<T: Poolable, R: Runtime> Reservation<T, R> {
    /// Wraps capacity already counted in `connecting`.
    pub(crate) fn new(shared: Arc<Shared<T, R>>) -> Self {
        Self {
            shared,
            armed: true,
        }
    }
}

impl<T: Poolable, R: Runtime> Drop for Reservation<T, R> {
    fn drop(&mut self) {
        if self.armed {
            self.shared.update(|st, _| st.ledger.end_connect());
        }
    }
}

/// One connection attempt, made for the waiter `originator` (if any). A drain cancels it.
pub(crate) async fn run<T: Poolable, R: Runtime>(
    mut reservation: Reservation<T, R>,
    originator: Option<u64>,
) {
    let shared = Arc::clone(&reservation.shared);
    let stop = shared.shutdown.listen();
    if shared.lock().draining {
        return;
    }
    let started = Instant::now();
    let span = tracing::debug_span!("pg_pool.connect", pool = %shared.config.name);
    let attempt = async { Some(attempt(&shared, started).instrument(span).await) };
    let cancelled = async {
        stop.await;
        None
    };
    let Some(result) = future::or(attempt, cancelled).await else {
        tracing::debug!(pool = %shared.config.name, "connection attempt cancelled by a drain");
        return;
    };
    reservation.armed = false;
    drop(reservation);

    let now = Instant::now();
    let mut fx = Effects::default();
    match result {
        Ok(raw) => {
            let mut st = shared.lock();
            shared.record_success(&mut st, raw, started, now, &mut fx);
            shared.plan_connects(&mut st, now, &mut fx);
            fx.set_drained(st.is_drained());
            drop(st);
            tracing::debug!(pool = %shared.config.name, elapsed = ?(now - started), "connection created");
        }
        Err((error, rejected)) => {
            tracing::warn!(pool = %shared.config.name, error = %Shown(&error), "connection attempt failed");
            // User code: a panic reads as "not permanent" (the failure is still recorded,
            // so the attempt's capacity comes back).
            let permanent = matches!(&error, ConnectError::Driver(e)
                if catch_unwind(AssertUnwindSafe(|| T::is_permanent_connect_error(e)))
                    .unwrap_or(false));
            let mut st = shared.lock();
            let error = shared.record_failure(&mut st, error, rejected, now, &mut fx);
            st.failures = st.failures.saturating_add(1);
            // Right after a failover signal, retry at the base delay: the new primary
            // may answer any moment now.
            let failures = if st.failover_until.is_some_and(|until| now < until) {
                1
            } else {
                st.failures
            };
            st.backoff_until = Some(after(now, backoff(&shared.config, failures)));
            // Bounded fairness: serve whoever a connection is idle for, before failing
            // anyone.
            shared.hand_off_idle(&mut st, now, &mut fx);
            if permanent {
                // Every attempt with these settings would fail the same way: everyone
                // queued now gets the error at once.
                while let Some(waiter) = st.waiters.pop() {
                    waiter.grant(Grant::Failed(Arc::clone(&error)));
                    fx.wake(waiter);
                }
            } else if let Some(id) = originator
                && let Some(waiter) = st.waiters.remove(id)
            {
                waiter.grant(Grant::Failed(error));
                fx.wake(waiter);
            }
            if let Some(bound) = shared.config.fairness.bound() {
                // The failed waiter may have been the nudged one: pass the nudge on.
                shared.serve(&mut st, now, bound, &mut fx);
            }
            shared.plan_connects(&mut st, now, &mut fx);
            fx.set_drained(st.is_drained());
        }
    }
    shared.apply(fx);
}

impl<T: Poolable, R: Runtime> Shared<T, R> {
    /// Opens one connection inline and makes it idle; used to prefill `min_idle` when a pool
    /// is built, so that a bad address or password fails the build with its real error.
    pub(crate) async fn open_idle(self: &Arc<Self>) -> Result<(), Arc<ConnectError<T::Error>>> {
        {
            let mut st = self.lock();
            if st.ledger.room() == 0 {
                return Ok(());
            }
            st.ledger.start_connect();
        }
        let mut reservation = Reservation::new(Arc::clone(self));
        let started = Instant::now();
        let result = attempt(self, started).await;
        reservation.armed = false;
        drop(reservation);
        let now = Instant::now();
        let mut fx = Effects::default();
        let outcome = {
            let mut st = self.lock();
            match result {
                Ok(raw) => {
                    self.record_success(&mut st, raw, started, now, &mut fx);
                    Ok(())
                }
                Err((error, rejected)) => {
                    Err(self.record_failure(&mut st, error, rejected, now, &mut fx))
                }
            }
        };
        self.apply(fx);
        outcome
    }
}

/// Connect and run the create hook, each bounded by what is left of `connect_timeout`.
async fn attempt<T: Poolable, R: Runtime>(
    shared: &Arc<Shared<T, R>>,
    started: Instant,
) -> Result<T, (ConnectError<T::Error>, Option<T>)> {
    let limit = shared.config.connect_timeout;
    let connect = caught(|| shared.connector.connect());
    let mut raw = match timeout(&shared.runtime, limit, connect).await {
        Some(Ok(Ok(raw))) => raw,
        Some(Ok(Err(e))) => return Err((ConnectError::Driver(e), None)),
        Some(Err(panic)) => return Err((ConnectError::Panicked(panic), None)),
        None => return Err((ConnectError::Timeout(limit), None)),
    };
    let Some(hook) = &shared.hooks.create else {
        return Ok(raw);
    };
    let left = limit.saturating_sub(started.elapsed());
    let outcome = timeout(
        &shared.runtime,
        left,
        LifecycleHooks::run_async(hook, "create", &mut raw),
    )
    .await;
    let error = match outcome {
        Some(Ok(())) => return Ok(raw),
        Some(Err(e)) => ConnectError::Hook(e),
        None => ConnectError::Timeout(limit),
    };
    // The connection exists but failed its hook: the caller destroys it, counted.
    Err((error, Some(raw)))
}

impl<T: Poolable, R: Runtime> Shared<T, R> {
    /// Records a successful attempt under the lock (ending any backoff) and places the new
    /// connection: to the head waiter, or idle.
    fn record_success(
        &self,
        st: &mut State<T>,
        raw: T,
        started: Instant,
        now: Instant,
        fx: &mut Effects<T>,
    ) {
        st.ledger.end_connect();
        st.counters.creates += 1;
        st.counters.connect_time.record(now - started);
        st.failures = 0;
        st.backoff_until = None;
        st.failover_until = None;
        st.last_error = None;
        let conn = Conn::new(
            raw,
            now,
            self.config.max_lifetime,
            self.config.max_lifetime_jitter,
            self.generation(),
        );
        self.place(st, conn, now, fx);
    }

    /// Records a failed attempt under the lock; a connection the create hook rejected is
    /// counted as closing and destroyed once the lock is released.
    fn record_failure(
        &self,
        st: &mut State<T>,
        error: ConnectError<T::Error>,
        rejected: Option<T>,
        now: Instant,
        fx: &mut Effects<T>,
    ) -> Arc<ConnectError<T::Error>> {
        st.ledger.end_connect();
        st.counters.connect_failures += 1;
        if let Some(raw) = rejected {
            // The driver did open it: a create, then a destroy, so that creates minus
            // destroys is always the number of live connections.
            st.counters.creates += 1;
            st.count_destroy(DestroyReason::HookRejected);
            let conn = Conn::new(raw, now, None, Duration::ZERO, self.generation());
            fx.destroy(conn, DestroyReason::HookRejected);
        }
        let error = Arc::new(error);
        st.last_error = Some(Arc::clone(&error));
        error
    }
}

/// Delay before the next attempt after `failures` consecutive failures: exponential from
/// `connect_backoff`, capped at `connect_backoff_max`, with full jitter in its upper half.
pub(crate) fn backoff(config: &crate::ConnPoolConfig, failures: u32) -> Duration {
    crate::runtime::backoff_delay(config.connect_backoff, config.connect_backoff_max, failures)
}

/// Starts the connects that were held back by the backoff once it has passed.
pub(crate) async fn backoff_timer<T: Poolable, R: Runtime>(
    weak: Weak<Shared<T, R>>,
    sleep: R::Sleep,
) {
    sleep.await;
    let Some(shared) = weak.upgrade() else {
        return;
    };
    let mut fx = Effects::default();
    {
        let mut st = shared.lock();
        st.backoff_timer_armed = false;
        shared.plan_connects(&mut st, Instant::now(), &mut fx);
    }
    shared.apply(fx);
}

/// An error formatted for a log line with its `Display` (user code) contained: a panic
/// there prints a placeholder instead of unwinding out of the pool's bookkeeping.
struct Shown<'a, E>(&'a E);

impl<E: std::fmt::Display> std::fmt::Display for Shown<'_, E> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match catch_unwind(AssertUnwindSafe(|| self.0.to_string())) {
            Ok(text) => f.write_str(&text),
            Err(_) => f.write_str("(the error's Display panicked)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Exponential from the base, jittered within the upper half, capped, and never
    /// overflowing whatever the config says.
    #[test]
    fn backoff_grows_caps_and_saturates() {
        let mut config = crate::ConnPoolConfig {
            connect_backoff: Duration::from_millis(100),
            connect_backoff_max: Duration::from_secs(1),
            ..Default::default()
        };
        for failures in 0..40_u32 {
            let expected = Duration::from_millis(100)
                .saturating_mul(1 << failures.saturating_sub(1).min(20))
                .min(Duration::from_secs(1));
            for _ in 0..20 {
                let delay = backoff(&config, failures);
                assert!(
                    delay >= expected / 2 && delay <= expected,
                    "{failures} failures: {delay:?} outside [{:?}, {expected:?}]",
                    expected / 2
                );
            }
        }
        assert!(backoff(&config, 1) <= Duration::from_millis(100));
        assert!(backoff(&config, 30) >= Duration::from_millis(500));
        config.connect_backoff = Duration::MAX;
        config.connect_backoff_max = Duration::MAX;
        assert!(backoff(&config, u32::MAX) >= Duration::MAX / 2);
    }
}
