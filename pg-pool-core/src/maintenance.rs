//! Background maintenance, written once for every runtime: the idle reaper and the health
//! probe.
//!
//! Each task holds only a [`Weak`] reference to the pool and drops its strong one before
//! sleeping, so it never keeps a pool alive; it ends when the pool is dropped, drained or
//! closed (the shutdown event cuts a sleep short).

use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::Duration;

use crate::clock::{FOREVER, Instant};

use futures_lite::future;
use tracing::Instrument;

use crate::guard::Held;
use crate::hooks::DestroyReason;
use crate::hooks::caught;
use crate::poolable::Poolable;
use crate::runtime::{Runtime, timeout};
use crate::shared::{Effects, Shared};

/// Counts a running background task; decrements when the task ends or is dropped.
struct Running<T: Poolable, R: Runtime>(Weak<Shared<T, R>>);

impl<T: Poolable, R: Runtime> Drop for Running<T, R> {
    fn drop(&mut self) {
        if let Some(shared) = self.0.upgrade() {
            shared.background.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl<T: Poolable, R: Runtime> Shared<T, R> {
    /// Spawns the reaper and the probe, as the config asks.
    pub(crate) fn spawn_maintenance(self: &Arc<Self>) {
        let config = &self.config;
        let reaper_needed = config.idle_timeout.is_some()
            || config.max_lifetime.is_some()
            || config.min_idle > 0
            || config.leak_detection_threshold.is_some();
        if reaper_needed {
            self.spawn_periodic(config.reaper_interval, |shared| async move {
                shared.reap(Instant::now());
            });
        }
        if let Some(interval) = config.health_check_interval {
            self.spawn_periodic(interval, |shared| async move {
                shared.probe().await;
            });
        }
    }

    fn spawn_periodic<F, Fut>(self: &Arc<Self>, interval: Duration, pass: F)
    where
        F: Fn(Arc<Self>) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send,
    {
        self.background.fetch_add(1, Ordering::AcqRel);
        let weak = Arc::downgrade(self);
        // Counted before the task exists, uncounted when it ends or is dropped unpolled.
        let running = Running(weak.clone());
        self.spawn(async move {
            let _running = running;
            loop {
                let (sleep, stop) = {
                    let Some(shared) = weak.upgrade() else { return };
                    let stop = shared.shutdown.listen();
                    if shared.stopped() {
                        return;
                    }
                    (shared.runtime.sleep(interval.min(FOREVER)), stop)
                    // `shared` (the strong reference) is dropped here, before sleeping.
                };
                let stopped = future::or(
                    async {
                        stop.await;
                        true
                    },
                    async {
                        sleep.await;
                        false
                    },
                )
                .await;
                if stopped {
                    return;
                }
                let Some(shared) = weak.upgrade() else { return };
                if shared.stopped() {
                    return;
                }
                pass(shared).await;
            }
        });
    }

    fn stopped(&self) -> bool {
        self.lock().draining
    }

    /// One reaper pass: lifetime and idle timeout of idle connections, leak reports, and
    /// the refill to `min_idle`.
    pub(crate) fn reap(self: &Arc<Self>, now: Instant) {
        let mut fx = Effects::default();
        {
            let mut st = self.lock();
            // The slot's connection is reaped like any idle one.
            self.unslot(&mut st, now, &mut fx);
            let mut index = 0;
            while index < st.ledger.idle().len() {
                let conn = &st.ledger.idle()[index];
                let reason = if conn.expired(now) {
                    Some(DestroyReason::Lifetime)
                } else if conn.generation != self.generation() {
                    Some(DestroyReason::Evicted)
                } else if let Some(limit) = self.config.idle_timeout
                    && now.saturating_duration_since(conn.last_used) >= limit
                    && st.ledger.idle().len() > st.ledger.min_idle()
                {
                    Some(DestroyReason::IdleTimeout)
                } else {
                    None
                };
                match reason {
                    Some(reason) => {
                        let conn = st.ledger.remove_idle(index).expect("index is in bounds");
                        st.count_destroy(reason);
                        fx.destroy(conn, reason);
                    }
                    None => index += 1,
                }
            }
            self.plan_connects(&mut st, now, &mut fx);
            fx.set_drained(st.is_drained());
        }
        self.apply(fx);
        if let (Some(leaks), Some(threshold)) = (&self.leaks, self.config.leak_detection_threshold)
        {
            let found = leaks.scan(now, threshold);
            if !found.is_empty() {
                self.lock().counters.leaks += found.len() as u64;
            }
            for leak in found {
                tracing::warn!(
                    pool = %self.config.name,
                    held = ?leak.held,
                    checked_out_at = %leak.site,
                    "connection held longer than the leak detection threshold",
                );
            }
        }
    }

    /// One probe pass: pings every idle connection at once, each on its own task bounded by
    /// `probe_timeout`, and destroys those that fail or time out. A path that stalls while
    /// a connection sits idle is therefore noticed within one interval plus the probe timeout,
    /// however many connections it affects. Pinged connections count as active meanwhile.
    pub(crate) async fn probe(self: &Arc<Self>) {
        let mut fx = Effects::default();
        let taken = {
            let mut st = self.lock();
            // The slot's connection is probed like any idle one.
            self.unslot(&mut st, Instant::now(), &mut fx);
            st.ledger.start_probe()
        };
        self.apply(fx);
        for conn in taken {
            let held = Held::probing(Arc::clone(self), conn);
            self.spawn(Self::ping_idle(held));
        }
    }

    async fn ping_idle(mut held: Held<T, R>) {
        let shared = Arc::clone(held.shared());
        let limit = shared.config.probe_timeout;
        let conn = held.get();
        let span = tracing::debug_span!("pg_pool.ping", pool = %shared.config.name, probe = true);
        let ping = caught(|| conn.raw.ping()).instrument(span);
        match timeout(&shared.runtime, limit, ping).await {
            Some(Ok(Ok(()))) => {
                let mut conn = held.disarm();
                let now = Instant::now();
                conn.last_used = now;
                let mut fx = Effects::default();
                {
                    let mut st = shared.lock();
                    st.ledger.end_probe();
                    shared.place(&mut st, conn, now, &mut fx);
                    fx.set_drained(st.is_drained());
                }
                shared.apply(fx);
            }
            Some(Ok(Err(error))) => {
                tracing::info!(pool = %shared.config.name, %error, "health probe evicted a connection");
            }
            Some(Err(panic)) => {
                tracing::warn!(pool = %shared.config.name, %panic, "ping panicked in the health probe; evicting the connection");
            }
            None => {
                tracing::info!(pool = %shared.config.name, timeout = ?limit, "health probe timed out; evicting the connection");
            }
        }
    }
}
