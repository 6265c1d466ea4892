//! Where snapshots come from: [`MetricsSource`] (any pool, whatever its connection type and
//! runtime) and [`Pools`], the set every exporter reads.

use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, PoisonError, RwLock};

use pg_pool_core::{ConnPool, Poolable, Runtime, WeakPool, metrics::Metrics};

/// A pool's name and a snapshot of its metrics.
#[derive(Debug, Clone)]
pub struct PoolSnapshot {
    /// The pool's name: the `db.client.connection.pool.name` attribute.
    pub name: String,
    /// The snapshot.
    pub metrics: Metrics,
}

/// Anything that can report a pool's metrics, without naming the pool's generic parameters.
///
/// Implemented for every [`ConnPool<T, R>`](ConnPool) (the name is the config's `name`) and,
/// through [`from_fn`], for closures. A source that returns `None` is gone: [`Pools`] skips
/// it and forgets it.
///
/// Also implemented for [`WeakPool`] (`pool.downgrade()`), which does not keep the pool
/// open: the source is forgotten once the application drops its last handle. That is the
/// usual choice. Holding a `ConnPool` handle keeps the pool open (a pool closes when its
/// last handle is dropped); remove it with [`Pools::remove`] when the application is done
/// with the pool, or drain the pool explicitly.
///
/// # Examples
///
/// ```
/// use pg_pool_metrics::{MetricsSource, from_fn};
///
/// // A source that is already gone: exporters skip it.
/// let gone = from_fn(|| None);
/// assert!(gone.snapshot().is_none());
/// ```
pub trait MetricsSource: Send + Sync + 'static {
    /// The pool's name and a snapshot of its metrics, or `None` when the pool is gone.
    ///
    /// # Panics
    ///
    /// Should not panic; exporters contain a panic here and report no series for this source
    /// on that collection.
    fn snapshot(&self) -> Option<PoolSnapshot>;
}

impl<T: Poolable, R: Runtime> MetricsSource for ConnPool<T, R> {
    fn snapshot(&self) -> Option<PoolSnapshot> {
        Some(PoolSnapshot {
            name: self.config().name.clone(),
            metrics: self.metrics(),
        })
    }
}

impl<T: Poolable, R: Runtime> MetricsSource for WeakPool<T, R> {
    fn snapshot(&self) -> Option<PoolSnapshot> {
        Some(PoolSnapshot {
            name: self.name()?,
            metrics: self.metrics()?,
        })
    }
}

impl<S: MetricsSource + ?Sized> MetricsSource for Arc<S> {
    fn snapshot(&self) -> Option<PoolSnapshot> {
        (**self).snapshot()
    }
}

/// A [`MetricsSource`] made from a closure; see [`from_fn`].
pub struct FnSource<F>(F);

impl<F> fmt::Debug for FnSource<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FnSource")
    }
}

impl<F> MetricsSource for FnSource<F>
where
    F: Fn() -> Option<(String, Metrics)> + Send + Sync + 'static,
{
    fn snapshot(&self) -> Option<PoolSnapshot> {
        (self.0)().map(|(name, metrics)| PoolSnapshot { name, metrics })
    }
}

/// Makes a [`MetricsSource`] of a closure returning `(name, Metrics)`, or `None` once the
/// pool is gone.
///
/// # Examples
///
/// Export a pool without keeping it open: the closure holds a weak reference, and the source
/// is forgotten once the pool is dropped.
///
/// ```
/// use std::sync::Arc;
/// use pg_pool_core::{ConnPool, Poolable, Runtime};
/// use pg_pool_metrics::{Pools, from_fn};
///
/// fn export_weakly<T: Poolable, R: Runtime>(pools: &Pools, pool: &Arc<ConnPool<T, R>>) {
///     let weak = Arc::downgrade(pool);
///     pools.add(from_fn(move || {
///         let pool = weak.upgrade()?;
///         Some((pool.config().name.clone(), pool.metrics()))
///     }));
/// }
/// ```
pub fn from_fn<F>(f: F) -> FnSource<F>
where
    F: Fn() -> Option<(String, Metrics)> + Send + Sync + 'static,
{
    FnSource(f)
}

/// A shared, growable set of pools that exporters read on every collection.
///
/// Cheap to clone: clones share one set, so pools added after an exporter was set up are
/// exported too.
#[derive(Clone, Default)]
pub struct Pools {
    sources: Arc<RwLock<Vec<Arc<dyn MetricsSource>>>>,
}

impl fmt::Debug for Pools {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pools").field("len", &self.len()).finish()
    }
}

impl Pools {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a pool (or any [`MetricsSource`]).
    ///
    /// Two pools with the same name are both exported, with identical labels: give pools
    /// distinct names.
    pub fn add(&self, source: impl MetricsSource) -> &Self {
        self.write().push(Arc::new(source));
        self
    }

    /// Removes every source currently reporting the pool name `name`, and every source that
    /// is gone or panics; returns how many were removed.
    pub fn remove(&self, name: &str) -> usize {
        // Read the names outside the write lock: a source is user code.
        let sources = self.list();
        let doomed: Vec<_> = sources
            .iter()
            .filter(|source| read_source(source.as_ref()).is_none_or(|s| s.name == name))
            .cloned()
            .collect();
        let mut sources = self.write();
        let before = sources.len();
        sources.retain(|source| !doomed.iter().any(|d| Arc::ptr_eq(d, source)));
        before - sources.len()
    }

    /// Number of sources in the set (including ones that may be gone by the next read).
    pub fn len(&self) -> usize {
        self.sources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A snapshot of every pool, in the order they were added. Sources that are gone are
    /// forgotten; a source that panics is skipped this time.
    pub fn snapshots(&self) -> Vec<PoolSnapshot> {
        let sources = self.list();
        let mut snapshots = Vec::with_capacity(sources.len());
        let mut gone = Vec::new();
        for source in &sources {
            match catch_unwind(AssertUnwindSafe(|| source.snapshot())) {
                Ok(Some(snapshot)) => snapshots.push(snapshot),
                Ok(None) => gone.push(Arc::clone(source)),
                Err(_) => {}
            }
        }
        if !gone.is_empty() {
            self.write()
                .retain(|source| !gone.iter().any(|g| Arc::ptr_eq(g, source)));
        }
        snapshots
    }

    fn list(&self) -> Vec<Arc<dyn MetricsSource>> {
        self.sources
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<dyn MetricsSource>>> {
        self.sources.write().unwrap_or_else(PoisonError::into_inner)
    }
}

fn read_source(source: &dyn MetricsSource) -> Option<PoolSnapshot> {
    catch_unwind(AssertUnwindSafe(|| source.snapshot()))
        .ok()
        .flatten()
}
