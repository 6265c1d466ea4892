//! Read/write routing over a primary and its replicas: one pool per server, used as one.

use std::fmt;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use event_listener::Event;
use futures_lite::future;

use crate::error::PoolError;
use crate::guard::PoolGuard;
use crate::pool::{ConnPool, DrainReport};
use crate::poolable::Poolable;
use crate::runtime::{Runtime, timeout};

/// A connection that can tell how far behind its primary the server is.
///
/// Implemented by the PostgreSQL drivers with `pg_is_in_recovery()`,
/// `pg_last_wal_receive_lsn()`, `pg_last_wal_replay_lsn()` and
/// `pg_last_xact_replay_timestamp()`; [`ClusterPool`] uses it to keep reads off replicas
/// that lag more than [`ReadPolicy::max_lag`].
pub trait ReplicaLag: Poolable {
    /// How far behind its primary this server's replay is: `Some(Duration::ZERO)` when it
    /// has replayed everything it received, `None` when the server is not a standby (it
    /// was promoted, or never was one).
    fn replica_lag(&mut self)
    -> impl Future<Output = Result<Option<Duration>, Self::Error>> + Send;
}

/// How [`ClusterPool::get_read`] chooses, and when a replica stops getting reads.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReadPolicy {
    /// Read from the primary when no replica is healthy. Default: `true`, so that reads
    /// survive the loss of every replica.
    pub fallback_to_primary: bool,
    /// A replica whose replay lags more than this gets no reads until it catches up.
    /// `None` checks no lag. Default: `None`.
    pub max_lag: Option<Duration>,
    /// How often the lag (and the health) of each replica is checked, in the background,
    /// not per checkout. Default: 1 s.
    pub check_interval: Duration,
}

impl Default for ReadPolicy {
    fn default() -> Self {
        Self {
            fallback_to_primary: true,
            max_lag: None,
            check_interval: Duration::from_secs(1),
        }
    }
}

/// Which member of a [`ClusterPool`] a pool is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Role {
    /// The primary: writes, and reads when no replica is healthy.
    Primary,
    /// A replica: reads.
    Replica,
}

struct Member<T: Poolable, R: Runtime> {
    pool: ConnPool<T, R>,
    healthy: AtomicBool,
    /// The last lag measured, in microseconds; `u64::MAX` when unknown.
    lag_micros: AtomicU64,
}

struct Inner<T: Poolable, R: Runtime> {
    primary: ConnPool<T, R>,
    replicas: Vec<Member<T, R>>,
    policy: ReadPolicy,
    next: AtomicUsize,
    shutdown: Event,
}

/// A primary pool and any number of replica pools, used as one: writes go to the primary,
/// reads are spread over the healthy replicas.
///
/// Each member is an ordinary [`ConnPool`], built by you with the hooks, sizes and
/// connector you want (the replicas' connectors usually ask for `target_session_attrs`
/// `standby`/`prefer-standby`, the primary's for `read-write`), so each member keeps its own
/// limits, fairness, failover handling and metrics ([`ClusterPool::members`]).
///
/// # Consistency
///
/// A read on a replica sees the primary's writes only once the replica has replayed them:
/// replication is asynchronous, so a read right after a write may not see it, by up to the
/// replica's lag. [`ReadPolicy::max_lag`] bounds how stale a replica may be and still get
/// reads; it is measured every [`ReadPolicy::check_interval`], not per checkout. For
/// read-your-writes, read from [`ClusterPool::get_write`].
pub struct ClusterPool<T: Poolable, R: Runtime> {
    inner: Arc<Inner<T, R>>,
}

impl<T: Poolable, R: Runtime> Clone for ClusterPool<T, R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<T: Poolable, R: Runtime> fmt::Debug for ClusterPool<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterPool")
            .field("primary", &self.inner.primary)
            .field("replicas", &self.inner.replicas.len())
            .field("policy", &self.inner.policy)
            .finish_non_exhaustive()
    }
}

impl<T: Poolable, R: Runtime> Drop for Inner<T, R> {
    fn drop(&mut self) {
        self.shutdown.notify(usize::MAX);
    }
}

impl<T: Poolable, R: Runtime> ClusterPool<T, R> {
    /// Routes over `primary` and `replicas`, on the runtime the caller runs on. Every
    /// replica gets reads until a checkout on it fails; every
    /// [`ReadPolicy::check_interval`] a background check tries a checkout on each replica
    /// and gives reads back to those that pass. No lag is measured (see
    /// [`ClusterPool::with_lag_checks`]). The check task holds only a weak reference and ends
    /// with the cluster.
    ///
    /// # Errors
    ///
    /// [`NoRuntime`](crate::runtime::NoRuntime) outside a runtime `R` can find.
    pub fn new(
        primary: ConnPool<T, R>,
        replicas: Vec<ConnPool<T, R>>,
        policy: ReadPolicy,
    ) -> Result<Self, crate::runtime::NoRuntime> {
        Self::start(primary, replicas, policy, None)
    }

    fn start(
        primary: ConnPool<T, R>,
        replicas: Vec<ConnPool<T, R>>,
        policy: ReadPolicy,
        lag: Option<LagFn<T>>,
    ) -> Result<Self, crate::runtime::NoRuntime> {
        let runtime = R::current()?;
        let replicas = replicas
            .into_iter()
            .map(|pool| Member {
                pool,
                healthy: AtomicBool::new(true),
                lag_micros: AtomicU64::new(u64::MAX),
            })
            .collect();
        let cluster = Self {
            inner: Arc::new(Inner {
                primary,
                replicas,
                policy,
                next: AtomicUsize::new(0),
                shutdown: Event::new(),
            }),
        };
        let weak = Arc::downgrade(&cluster.inner);
        runtime.clone().spawn(check_replicas(weak, runtime, lag));
        Ok(cluster)
    }

    /// A connection to the primary, for writes (and reads that must see them).
    ///
    /// # Errors
    ///
    /// As [`ConnPool::get`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`ConnPool::get`].
    pub async fn get_write(&self) -> Result<PoolGuard<T, R>, PoolError<T::Error>> {
        self.inner.primary.get().await
    }

    /// A connection for reads: a healthy replica's, taken in turn; the primary's when no
    /// replica is healthy and [`ReadPolicy::fallback_to_primary`] allows it. A replica whose
    /// checkout fails (its server is down) is marked unhealthy until its next good check,
    /// and the read moves on to the next member.
    ///
    /// # Errors
    ///
    /// The last member's error when every one failed; [`PoolError::NoHealthyReplica`] when no
    /// replica is healthy and falling back is off.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`ConnPool::get`].
    pub async fn get_read(&self) -> Result<PoolGuard<T, R>, PoolError<T::Error>> {
        let replicas = &self.inner.replicas;
        let start = self.inner.next.fetch_add(1, Ordering::Relaxed);
        let mut last_error = None;
        for offset in 0..replicas.len() {
            let member = &replicas[(start + offset) % replicas.len()];
            if !member.healthy.load(Ordering::Acquire) {
                continue;
            }
            match member.pool.get().await {
                Ok(guard) => return Ok(guard),
                Err(error @ (PoolError::Connect(_) | PoolError::Timeout { .. })) => {
                    tracing::warn!(%error, "a replica failed a read checkout; marking it unhealthy");
                    member.healthy.store(false, Ordering::Release);
                    last_error = Some(error);
                }
                Err(error) => last_error = Some(error),
            }
        }
        if self.inner.policy.fallback_to_primary {
            return self.inner.primary.get().await;
        }
        Err(last_error.unwrap_or(PoolError::NoHealthyReplica))
    }

    /// The members: the primary first, then the replicas in the order given, for metrics
    /// (each has its own name and [`ConnPool::metrics`]) and administration.
    pub fn members(&self) -> impl Iterator<Item = (Role, &ConnPool<T, R>)> {
        std::iter::once((Role::Primary, &self.inner.primary)).chain(
            self.inner
                .replicas
                .iter()
                .map(|member| (Role::Replica, &member.pool)),
        )
    }

    /// For each replica, in the order given: whether it gets reads, and the lag last
    /// measured (`None` before the first measurement, or when lag is not checked).
    pub fn replica_health(&self) -> Vec<(bool, Option<Duration>)> {
        self.inner
            .replicas
            .iter()
            .map(|member| {
                let lag = member.lag_micros.load(Ordering::Acquire);
                (
                    member.healthy.load(Ordering::Acquire),
                    (lag != u64::MAX).then(|| Duration::from_micros(lag)),
                )
            })
            .collect()
    }

    /// Drains every member together; see [`ConnPool::drain`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: every member stays draining.
    pub async fn drain(&self) {
        self.inner.shutdown.notify(usize::MAX);
        for (_, pool) in self.members() {
            pool.drain().await;
        }
    }

    /// [`ClusterPool::drain`] with one deadline for all members; the report adds up what
    /// is still out in each.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe, as [`ClusterPool::drain`].
    pub async fn drain_timeout(&self, limit: Duration) -> DrainReport {
        self.inner.shutdown.notify(usize::MAX);
        let started = std::time::Instant::now();
        // Every member refuses checkouts at once; then each is waited for in turn, within
        // what is left of the one deadline.
        for (_, pool) in self.members() {
            let _ = pool.drain_timeout(Duration::ZERO).await;
        }
        let mut outstanding = 0;
        for (_, pool) in self.members() {
            let left = limit.saturating_sub(started.elapsed());
            outstanding += pool.drain_timeout(left).await.outstanding;
        }
        DrainReport {
            outstanding,
            elapsed: started.elapsed(),
        }
    }
}

type LagFn<T> =
    for<'a> fn(&'a mut T) -> crate::BoxFuture<'a, Result<Option<Duration>, <T as Poolable>::Error>>;

impl<T: ReplicaLag, R: Runtime> ClusterPool<T, R> {
    /// As [`ClusterPool::new`], and checks every replica every
    /// [`ReadPolicy::check_interval`] in the background: a replica whose lag exceeds
    /// [`ReadPolicy::max_lag`], or that cannot be checked, gets no reads until a later check
    /// passes. The check task holds only a weak reference and ends with the cluster.
    ///
    /// # Errors
    ///
    /// [`NoRuntime`](crate::runtime::NoRuntime) outside a runtime `R` can find.
    pub fn with_lag_checks(
        primary: ConnPool<T, R>,
        replicas: Vec<ConnPool<T, R>>,
        policy: ReadPolicy,
    ) -> Result<Self, crate::runtime::NoRuntime> {
        Self::start(
            primary,
            replicas,
            policy,
            Some(|conn: &mut T| Box::pin(conn.replica_lag())),
        )
    }
}

/// The background health (and lag) check.
async fn check_replicas<T: Poolable, R: Runtime>(
    weak: Weak<Inner<T, R>>,
    runtime: R,
    lag: Option<LagFn<T>>,
) {
    loop {
        let (stop, interval) = {
            let Some(inner) = weak.upgrade() else { return };
            (inner.shutdown.listen(), inner.policy.check_interval)
        };
        let stopped = future::or(
            async {
                stop.await;
                true
            },
            async {
                runtime.sleep(interval.min(crate::clock::FOREVER)).await;
                false
            },
        )
        .await;
        if stopped {
            return;
        }
        let Some(inner) = weak.upgrade() else { return };
        for member in &inner.replicas {
            // Generous: a check that has to open a connection on a busy machine is not a
            // sick replica.
            let limit = interval.max(Duration::from_secs(2));
            let measured = timeout(&runtime, limit, async {
                let mut conn = member.pool.get().await.map_err(|e| e.to_string())?;
                match lag {
                    Some(lag) => lag(&mut conn).await.map_err(|e| e.to_string()),
                    None => Ok(None),
                }
            })
            .await;
            let healthy = match measured {
                Some(Ok(lag)) => {
                    let lag = lag.unwrap_or(Duration::ZERO);
                    let micros = u64::try_from(lag.as_micros()).unwrap_or(u64::MAX - 1);
                    member.lag_micros.store(micros, Ordering::Release);
                    inner.policy.max_lag.is_none_or(|max| lag <= max)
                }
                Some(Err(error)) => {
                    tracing::info!(%error, "a replica failed its lag check");
                    false
                }
                None => false,
            };
            let was = member.healthy.swap(healthy, Ordering::AcqRel);
            if was != healthy {
                tracing::warn!(
                    pool = %member.pool.config().name,
                    healthy,
                    "a replica's read health changed"
                );
            }
        }
    }
}
