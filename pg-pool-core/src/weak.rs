//! [`WeakPool`]: a handle that observes a pool without keeping it open.

use std::fmt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use crate::lease_hub::LeaseHub;
use crate::metrics::Metrics;
use crate::pool::ConnPool;
use crate::poolable::Poolable;
use crate::runtime::Runtime;
use crate::shared::Shared;

/// A handle to a pool that does not keep it open, from [`ConnPool::downgrade`]: for
/// exporters, registries and background observers that must not outlive the application's
/// use of the pool.
///
/// A pool closes when its last [`ConnPool`] handle is dropped; weak handles do not count.
/// Once it has closed, [`WeakPool::upgrade`] and [`WeakPool::metrics`] return `None`, and
/// the pool's memory is freed when its last connection and task are gone.
///
/// # Examples
///
/// ```
/// # use pg_pool_core::{ConnPool, Poolable, Runtime};
/// fn observe<T: Poolable, R: Runtime>(pool: &ConnPool<T, R>) {
///     let weak = pool.downgrade();
///     if let Some(metrics) = weak.metrics() {
///         println!("{} idle", metrics.idle);
///     }
/// }
/// ```
pub struct WeakPool<T: Poolable, R: Runtime> {
    shared: Weak<Shared<T, R>>,
    leases: Weak<LeaseHub>,
}

impl<T: Poolable, R: Runtime> Clone for WeakPool<T, R> {
    fn clone(&self) -> Self {
        Self {
            shared: Weak::clone(&self.shared),
            leases: Weak::clone(&self.leases),
        }
    }
}

impl<T: Poolable, R: Runtime> fmt::Debug for WeakPool<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WeakPool")
            .field("open", &self.open().is_some())
            .finish_non_exhaustive()
    }
}

impl<T: Poolable, R: Runtime> WeakPool<T, R> {
    /// The pool's shared state, if some handle still keeps it open.
    fn open(&self) -> Option<Arc<Shared<T, R>>> {
        let shared = self.shared.upgrade()?;
        (shared.handles.load(Ordering::Acquire) > 0).then_some(shared)
    }

    /// A full handle to the pool, if it is still open. The handle keeps the pool open
    /// again until it is dropped.
    pub fn upgrade(&self) -> Option<ConnPool<T, R>> {
        let shared = self.shared.upgrade()?;
        // Alive while any handle is: taken before the count, so a handle counted below
        // always has its lease set.
        let leases = self.leases.upgrade()?;
        // Count the new handle only while another one keeps the pool open: a pool that has
        // closed never reopens.
        shared
            .handles
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n > 0).then_some(n + 1)
            })
            .ok()?;
        Some(ConnPool::from_parts_counted(shared, leases))
    }

    /// A snapshot of the pool's metrics, if it is still open; no handle is made.
    pub fn metrics(&self) -> Option<Metrics> {
        self.open().map(|shared| shared.metrics())
    }

    /// The pool's name (`ConnPoolConfig::name`), if it is still open.
    pub fn name(&self) -> Option<String> {
        self.open().map(|shared| shared.config.name.clone())
    }
}

impl<T: Poolable, R: Runtime> ConnPool<T, R> {
    /// A [`WeakPool`]: observes this pool without keeping it open.
    pub fn downgrade(&self) -> WeakPool<T, R> {
        WeakPool {
            shared: Arc::downgrade(self.shared()),
            leases: Arc::downgrade(&self.leases),
        }
    }
}
