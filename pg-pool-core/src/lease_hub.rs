//! [`LeaseHub`]: what every `ConnPool` handle holds of its shared leases, whatever the
//! connection type; the typed set behind it is made by the first `get_shared`.

use std::any::Any;
use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};

use crate::lease::{DEFAULT_SHARED_MAX_IN_FLIGHT, LeaseSet};
use crate::runtime::Runtime;
use crate::shareable::Shareable;

/// What every `ConnPool` handle holds of the shared leases, whatever its connection type:
/// the set itself exists only for [`Shareable`] types (its leases are shared between
/// threads, so they need `T: Sync`, which a plain `Poolable` need not be), made by the
/// first `get_shared`.
pub(crate) struct LeaseHub {
    max_in_flight: AtomicUsize,
    closed: AtomicBool,
    set: OnceLock<Arc<dyn AnySet>>,
}

/// A [`LeaseSet`] of some connection type.
pub(crate) trait AnySet: Any + Send + Sync {
    /// Wakes every waiting caller to look again (the pool closed).
    fn wake_all(&self);
}

impl fmt::Debug for LeaseHub {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LeaseHub")
            .field("max_in_flight", &self.max_in_flight())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

impl LeaseHub {
    pub(crate) fn new() -> Self {
        Self {
            max_in_flight: AtomicUsize::new(DEFAULT_SHARED_MAX_IN_FLIGHT),
            closed: AtomicBool::new(false),
            set: OnceLock::new(),
        }
    }

    pub(crate) fn max_in_flight(&self) -> usize {
        self.max_in_flight.load(Ordering::Relaxed)
    }

    pub(crate) fn set_max_in_flight(&self, max: usize) {
        self.max_in_flight.store(max, Ordering::Relaxed);
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// No new shared user from now on; users on a lease finish, and the last one returns it.
    /// A caller that made the set after this looks at the flag before taking anything.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
        if let Some(set) = self.set.get() {
            set.wake_all();
        }
    }

    /// The set of this pool's connection type, made on first use.
    pub(crate) fn typed<T: Shareable, R: Runtime>(&self) -> &LeaseSet<T, R> {
        let set: &(dyn Any + Send + Sync) =
            &**self.set.get_or_init(|| Arc::new(LeaseSet::<T, R>::new()));
        set.downcast_ref()
            .expect("a pool has one connection type and one runtime")
    }

    /// The set as an `Arc`, for a new lease to point back to.
    pub(crate) fn typed_arc<T: Shareable, R: Runtime>(&self) -> Arc<LeaseSet<T, R>> {
        self.typed::<T, R>();
        let set: Arc<dyn AnySet> = Arc::clone(self.set.get().expect("made just above"));
        let set: Arc<dyn Any + Send + Sync> = set;
        set.downcast()
            .unwrap_or_else(|_| unreachable!("a pool has one connection type and one runtime"))
    }
}
