//! Connection attempts: spawned tasks that run to completion whoever is still waiting.
//!
//! An attempt is started for a waiter (its originator) but belongs to the pool: if the
//! originator gives up, the new connection goes to the next waiter or the idle set, never
//! above `max_size`, because its capacity was reserved before the attempt began. A failure is
//! handed to the originator at once, if it is still waiting, and starts an exponential
//! backoff with jitter during which no new attempt begins.

use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

use crate::conn::Conn;
use crate::error::ConnectError;
use crate::hooks::{DestroyReason, LifecycleHooks};
use crate::poolable::Poolable;
use crate::runtime::{Runtime, timeout};
use crate::shared::{Effects, Shared};
use crate::waiters::Grant;

/// Gives the reserved capacity back if the attempt's task is dropped before it finishes
/// (for example because the runtime shut down).
struct Reservation<'a, T: Poolable, R: Runtime> {
    shared: &'a Arc<Shared<T, R>>,
    armed: bool,
}

impl<T: Poolable, R: Runtime> Drop for Reservation<'_, T, R> {
    fn drop(&mut self) {
        if self.armed {
            let mut fx = Effects::default();
            {
                let mut st = self.shared.lock();
                st.connecting -= 1;
                self.shared.plan_connects(&mut st, Instant::now(), &mut fx);
                fx.drained = st.is_drained();
            }
            self.shared.apply(fx);
        }
    }
}

/// One connection attempt, made for the waiter `originator` (if any).
pub(crate) async fn run<T: Poolable, R: Runtime>(shared: Arc<Shared<T, R>>, originator: Option<u64>) {
    let mut reservation = Reservation {
        shared: &shared,
        armed: true,
    };
    let started = Instant::now();
    let result = attempt(&shared, started).await;
    reservation.armed = false;
    drop(reservation);

    let now = Instant::now();
    let mut fx = Effects::default();
    match result {
        Ok(raw) => {
            let mut st = shared.lock();
            st.connecting -= 1;
            st.counters.creates += 1;
            st.counters.connect_time.record(now - started);
            st.failures = 0;
            st.backoff_until = None;
            st.last_error = None;
            let conn = Conn::new(
                raw,
                now,
                shared.config.max_lifetime,
                shared.config.max_lifetime_jitter,
                st.generation,
            );
            shared.place(&mut st, conn, now, &mut fx);
            shared.plan_connects(&mut st, now, &mut fx);
            fx.drained = st.is_drained();
            drop(st);
            tracing::debug!(pool = %shared.config.name, elapsed = ?(now - started), "connection created");
        }
        Err(error) => {
            tracing::warn!(pool = %shared.config.name, %error, "connection attempt failed");
            let error = Arc::new(error);
            let mut st = shared.lock();
            st.connecting -= 1;
            st.counters.connect_failures += 1;
            st.failures = st.failures.saturating_add(1);
            st.backoff_until = Some(now + backoff(&shared.config, st.failures));
            st.last_error = Some(Arc::clone(&error));
            if let Some(id) = originator
                && let Some(index) = st.waiters.iter().position(|w| w.id == id)
                && let Some(waiter) = st.waiters.remove(index)
            {
                waiter.grant(Grant::Failed(error));
                fx.wake = Some(waiter);
            }
            shared.plan_connects(&mut st, now, &mut fx);
            fx.drained = st.is_drained();
        }
    }
    shared.apply(fx);
}

/// Connect and run the create hook, each bounded by what is left of `connect_timeout`.
async fn attempt<T: Poolable, R: Runtime>(
    shared: &Arc<Shared<T, R>>,
    started: Instant,
) -> Result<T, ConnectError<T::Error>> {
    let limit = shared.config.connect_timeout;
    let mut raw = match timeout(&shared.runtime, limit, shared.connector.connect()).await {
        Some(Ok(raw)) => raw,
        Some(Err(e)) => return Err(ConnectError::Driver(e)),
        None => return Err(ConnectError::Timeout(limit)),
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
    // The connection exists but failed its hook: close it properly, outside any accounting.
    shared.hooks.run_destroy(&raw, DestroyReason::HookRejected);
    shared.runtime.spawn(raw.close());
    Err(error)
}

/// Delay before the next attempt after `failures` consecutive failures: exponential from
/// `connect_backoff`, capped at `connect_backoff_max`, with full jitter in its upper half.
pub(crate) fn backoff(config: &crate::ConnPoolConfig, failures: u32) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let base = config
        .connect_backoff
        .saturating_mul(1 << exponent)
        .min(config.connect_backoff_max);
    let half = base / 2;
    let nanos = u64::try_from(half.as_nanos()).unwrap_or(u64::MAX);
    half + Duration::from_nanos(fastrand::u64(0..=nanos))
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
