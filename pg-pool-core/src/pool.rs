//! The public pool handle.

use std::fmt;
use std::future::Future;
use std::panic::{AssertUnwindSafe, Location, catch_unwind, resume_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::clock::Instant;

use event_listener::listener;
use futures_lite::future;

use crate::checkout::Checkout;
use crate::config::{ConfigError, ConnPoolConfig};
use crate::error::BuildError;
use crate::guard::PoolGuard;
use crate::hooks::{DestroyReason, LifecycleHooks};
use crate::lease_hub::LeaseHub;
use crate::metrics::Metrics;
use crate::poolable::{Connect, ConnectTarget, DynConnector, Poolable, TargetConnector};
use crate::runtime::Runtime;
use crate::shared::{PoolErrorOf, Shared};

/// An async connection pool, generic over the connection `T` and the runtime `R`.
///
/// Cheap to clone: clones share one pool. The pool closes (waiters fail, idle connections
/// are destroyed, background tasks stop) when the last handle is dropped; connections still
/// checked out are destroyed when they come back.
///
/// # Fairness
///
/// By default ([`Fairness::Strict`](crate::Fairness::Strict)) strictly first-in, first-out:
/// a caller that finds no idle connection joins the back of a queue, and each returned or new
/// connection is handed directly to the caller at its head. While anyone is queued, newcomers
/// queue too; nobody can take a connection a woken caller is owed. A caller whose connection
/// is rejected by validation goes back to the front. With
/// [`Fairness::Bounded`](crate::Fairness::Bounded), a running caller may take an idle
/// connection ahead of queued ones until the head of the queue has waited longer than the
/// bound; see [`Fairness`](crate::Fairness).
pub struct ConnPool<T: Poolable, R: Runtime> {
    shared: Arc<Shared<T, R>>,
    /// The connections shared through `get_shared` (`lease.rs`).
    pub(crate) leases: Arc<LeaseHub>,
}

impl<T: Poolable, R: Runtime> Clone for ConnPool<T, R> {
    fn clone(&self) -> Self {
        self.shared.handles.fetch_add(1, Ordering::Relaxed);
        Self {
            shared: Arc::clone(&self.shared),
            leases: Arc::clone(&self.leases),
        }
    }
}

impl<T: Poolable, R: Runtime> Drop for ConnPool<T, R> {
    fn drop(&mut self) {
        if self.shared.handles.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.shared.close();
        }
    }
}

impl<T: Poolable, R: Runtime> fmt::Debug for ConnPool<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.metrics();
        f.debug_struct("ConnPool")
            .field("name", &self.shared.config.name)
            .field("size", &m.size)
            .field("idle", &m.idle)
            .field("max_size", &m.max_size)
            .field("waiters", &m.waiters)
            .finish_non_exhaustive()
    }
}

/// What [`ConnPool::drain_timeout`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrainReport {
    /// Connections still checked out, being opened, or closing when the deadline passed;
    /// zero when the drain completed.
    pub outstanding: usize,
    /// How long the drain took or waited.
    pub elapsed: Duration,
}

impl DrainReport {
    /// Whether every connection came back and was closed.
    pub fn is_complete(&self) -> bool {
        self.outstanding == 0
    }
}

impl<T: Connect, R: Runtime> ConnPool<T, R> {
    /// Builds a pool that opens connections with [`Connect::connect`] from the config's
    /// address, user, password and database, on the runtime the caller runs on, and opens
    /// `min_idle` connections before returning. For any other way of opening connections,
    /// see [`ConnPool::builder`].
    ///
    /// # Errors
    ///
    /// [`BuildError::Config`](crate::BuildError::Config) for an invalid config,
    /// [`BuildError::NoRuntime`](crate::BuildError::NoRuntime) outside a runtime, and
    /// [`BuildError::Connect`](crate::BuildError::Connect) if the initial `min_idle`
    /// connections cannot be opened.
    pub async fn new(
        config: ConnPoolConfig,
        hooks: LifecycleHooks<T>,
    ) -> Result<Self, BuildError<T::Error>> {
        let target = Arc::new(ConnectTarget {
            addr: config.addr.clone(),
            user: config.user.clone(),
            password: config.password.clone(),
            database: config.database.clone(),
        });
        Self::builder(TargetConnector { target })
            .config(config)
            .hooks(hooks)
            .build()
            .await
    }
}

impl<T: Poolable, R: Runtime> ConnPool<T, R> {
    pub(crate) fn from_parts(
        config: ConnPoolConfig,
        hooks: LifecycleHooks<T>,
        runtime: R,
        connector: Box<dyn DynConnector<T>>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared::new(config, hooks, runtime, connector)),
            leases: Arc::new(LeaseHub::new()),
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<T, R>> {
        &self.shared
    }

    /// A handle over `shared` and its lease set, already counted in `shared.handles`.
    pub(crate) fn from_parts_counted(shared: Arc<Shared<T, R>>, leases: Arc<LeaseHub>) -> Self {
        Self { shared, leases }
    }

    /// Starts the background tasks and the connects `min_idle` asks for.
    pub(crate) fn start(&self) {
        self.shared.spawn_maintenance();
        self.shared.update(|_, _| ());
    }

    /// Checks out a connection, waiting for one if none is idle.
    ///
    /// One deadline, `checkout_timeout`, bounds the whole call: queueing, waiting for a new
    /// connection, the idle ping and the hooks. The checkout site is recorded for leak
    /// detection.
    ///
    /// # Errors
    ///
    /// [`PoolError::Timeout`](crate::PoolError::Timeout) naming the phase that ran out of time
    /// and carrying the pool's last connect error; [`PoolError::Connect`](crate::PoolError::Connect)
    /// at once when the attempt started for this caller failed;
    /// [`PoolError::Closed`](crate::PoolError::Closed) when the pool is draining.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: see [`Checkout`]. Dropping the future never leaks capacity or loses a
    /// connection.
    #[track_caller]
    #[inline]
    pub fn get(
        &self,
    ) -> Checkout<'_, R, impl Future<Output = Result<PoolGuard<T, R>, PoolErrorOf<T>>> + Send + '_>
    {
        let site = Location::caller();
        Checkout::pooled(
            &self.shared.runtime,
            &self.shared.config.name,
            self.shared.acquire(site, true),
        )
    }

    /// Checks out an idle connection without waiting for one.
    ///
    /// Validation and the checkout hook still run, bounded by `checkout_timeout`.
    ///
    /// # Errors
    ///
    /// [`PoolError::Exhausted`](crate::PoolError::Exhausted) when no connection is idle or
    /// others are queued ahead (with [`Fairness::Bounded`](crate::Fairness::Bounded): the head
    /// of the queue has waited longer than the bound); otherwise as [`ConnPool::get`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`ConnPool::get`].
    #[track_caller]
    #[inline]
    pub fn try_get(
        &self,
    ) -> Checkout<'_, R, impl Future<Output = Result<PoolGuard<T, R>, PoolErrorOf<T>>> + Send + '_>
    {
        let site = Location::caller();
        Checkout::pooled(
            &self.shared.runtime,
            &self.shared.config.name,
            self.shared.acquire(site, false),
        )
    }

    /// A consistent snapshot of the pool's gauges, counters and histograms.
    pub fn metrics(&self) -> Metrics {
        self.shared.metrics()
    }

    /// The pool's configuration as it is now: `max_size` and `min_idle` reflect
    /// [`ConnPool::resize`] and [`ConnPool::set_min_idle`].
    pub fn config(&self) -> ConnPoolConfig {
        let mut config = self.shared.config.clone();
        let st = self.shared.lock();
        config.max_size = st.ledger.max_size();
        config.min_idle = st.ledger.min_idle();
        config
    }

    /// Changes the maximum size. Shrinking destroys surplus idle connections at once and
    /// checked-out ones as they come back; growing serves waiters with new connections.
    /// `min_idle` is lowered to `max_size` if needed.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `max_size` when it is outside the range
    /// [`ConnPoolConfig::validate`] accepts (1 to [`ConnPoolConfig::MAX_SIZE_LIMIT`]); the
    /// pool is left as it was.
    pub fn resize(&self, max_size: usize) -> Result<(), ConfigError> {
        ConnPoolConfig::check_max_size(max_size)?;
        self.shared.update(|st, fx| {
            st.ledger.resize(max_size);
            while st.ledger.size() > st.ledger.max_size() {
                let Some(conn) = st.ledger.pop_idle() else {
                    break;
                };
                st.count_destroy(DestroyReason::Evicted);
                fx.destroy(conn, DestroyReason::Evicted);
            }
        });
        Ok(())
    }

    /// Changes the number of idle connections the pool keeps ready (capped at `max_size`).
    pub fn set_min_idle(&self, min_idle: usize) {
        self.shared.update(|st, _| st.ledger.set_min_idle(min_idle));
    }

    /// Destroys every idle connection for which `keep` returns `false`. Connections checked
    /// out are not visited. Returns how many were evicted.
    ///
    /// `keep` runs under the pool lock: keep it short, and do not touch the pool from it.
    ///
    /// # Panics
    ///
    /// If `keep` panics, the connections visited so far are evicted or kept as it said, the
    /// rest are kept, the pool's accounting stays exact, and the panic is resumed once the
    /// pool lock is released.
    pub fn retain(&self, mut keep: impl FnMut(&T) -> bool) -> usize {
        let mut panicked = None;
        let evicted = self.shared.update(|st, fx| {
            let mut evicted = 0;
            let mut index = 0;
            while index < st.ledger.idle().len() {
                let conn = &st.ledger.idle()[index].raw;
                let kept = match catch_unwind(AssertUnwindSafe(|| keep(conn))) {
                    Ok(kept) => kept,
                    Err(payload) => {
                        panicked = Some(payload);
                        break;
                    }
                };
                if kept {
                    index += 1;
                } else {
                    let conn = st.ledger.remove_idle(index).expect("index is in bounds");
                    st.count_destroy(DestroyReason::Evicted);
                    fx.destroy(conn, DestroyReason::Evicted);
                    evicted += 1;
                }
            }
            evicted
        });
        if let Some(payload) = panicked {
            resume_unwind(payload);
        }
        evicted
    }

    /// Evicts every connection: idle ones now, checked-out ones when they come back (a new
    /// generation begins; older connections are never handed out again).
    pub fn evict_all(&self) {
        self.shared.update(|st, fx| self.shared.evict_all(st, fx));
    }

    /// Drains the pool: refuses new checkouts at once ([`PoolError::Closed`](crate::PoolError::Closed)),
    /// fails queued callers, destroys idle connections, stops background tasks, and returns
    /// once every checked-out connection has come back and every connection is closed.
    /// Idempotent.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the pool stays draining; dropping the future only stops the wait.
    pub async fn drain(&self) {
        self.wait_drained(None).await;
    }

    /// [`ConnPool::drain`] with a deadline: reports how many connections were still out
    /// when it passed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`ConnPool::drain`].
    pub async fn drain_timeout(&self, limit: Duration) -> DrainReport {
        self.wait_drained(Some(limit)).await
    }

    async fn wait_drained(&self, limit: Option<Duration>) -> DrainReport {
        let started = Instant::now();
        self.leases.close();
        self.shared.close();
        let mut sleep = limit.map(|limit| Box::pin(self.shared.runtime.sleep(limit)));
        loop {
            listener!(self.shared.drained => drained);
            let outstanding = {
                let st = self.shared.lock();
                st.ledger.outstanding()
            };
            if outstanding == 0 {
                return DrainReport {
                    outstanding,
                    elapsed: started.elapsed(),
                };
            }
            match sleep.as_mut() {
                None => drained.await,
                Some(sleep) => {
                    let timed_out = future::or(
                        async {
                            drained.await;
                            false
                        },
                        async {
                            sleep.await;
                            true
                        },
                    )
                    .await;
                    if timed_out {
                        let st = self.shared.lock();
                        return DrainReport {
                            outstanding: st.ledger.outstanding(),
                            elapsed: started.elapsed(),
                        };
                    }
                }
            }
        }
    }

    /// Whether the pool is draining or closed.
    pub fn is_closed(&self) -> bool {
        self.shared.lock().draining
    }

    /// Shuttle models only: makes returns skip their second look at whether the fast slot
    /// is still open, the bug the models must catch (a lost wake-up).
    #[cfg(shuttle)]
    #[doc(hidden)]
    pub fn break_fast_slot_for_model(&self) {
        self.shared
            .fast
            .broken
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }

    /// Shuttle models only: makes a return wake the head waiter before storing its grant
    /// (and not after), the lost wake-up the models must catch.
    #[cfg(shuttle)]
    #[doc(hidden)]
    pub fn break_grant_for_model(&self) {
        self.shared
            .broken_grant
            .store(true, std::sync::atomic::Ordering::Relaxed);
    }
}
