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

use crate::clock::Instant;

use futures_lite::future;

use crate::hooks::DestroyReason;
use crate::poolable::Poolable;
use crate::runtime::{Runtime, spawn_caught, timeout};
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
        spawn_caught(&self.runtime, async move {
            let _running = Running(weak.clone());
            loop {
                let (sleep, stop) = {
                    let Some(shared) = weak.upgrade() else { return };
                    let stop = shared.shutdown.listen();
                    if shared.stopped() {
                        return;
                    }
                    (shared.runtime.sleep(interval), stop)
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
            let mut index = 0;
            while index < st.idle.len() {
                let conn = &st.idle[index];
                let reason = if conn.expired(now) {
                    Some(DestroyReason::Lifetime)
                } else if conn.generation != st.generation {
                    Some(DestroyReason::Evicted)
                } else if let Some(limit) = self.config.idle_timeout
                    && now.saturating_duration_since(conn.last_used) >= limit
                    && st.idle.len() > st.min_idle
                {
                    Some(DestroyReason::IdleTimeout)
                } else {
                    None
                };
                match reason {
                    Some(reason) => {
                        let conn = st.idle.remove(index).expect("index is in bounds");
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
        let taken: Vec<_> = {
            let mut st = self.lock();
            let count = st.idle.len();
            st.active += count;
            st.idle.drain(..).collect()
        };
        for conn in taken {
            let shared = Arc::clone(self);
            spawn_caught(&self.runtime, async move { shared.ping_idle(conn).await });
        }
    }

    async fn ping_idle(self: &Arc<Self>, conn: crate::conn::Conn<T>) {
        let mut held = crate::guard::Held::new(self, conn, DestroyReason::PingFailed);
        let limit = self.config.probe_timeout;
        match timeout(&self.runtime, limit, held.get().raw.ping()).await {
            Some(Ok(())) => {
                let mut conn = held.disarm();
                let now = Instant::now();
                conn.last_used = now;
                let mut fx = Effects::default();
                {
                    let mut st = self.lock();
                    st.active -= 1;
                    self.place(&mut st, conn, now, &mut fx);
                    fx.set_drained(st.is_drained());
                }
                self.apply(fx);
            }
            Some(Err(error)) => {
                tracing::info!(pool = %self.config.name, %error, "health probe evicted a connection");
            }
            None => {
                tracing::info!(pool = %self.config.name, timeout = ?limit, "health probe timed out; evicting the connection");
            }
        }
    }
}
