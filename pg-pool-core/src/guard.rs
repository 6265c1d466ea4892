//! The checked-out connection and the return path.
//!
//! A return is synchronous, in `Drop`, whenever no asynchronous work is due: one clock read,
//! no allocation, no spawned task, and no lock when nobody waits (the connection goes into the
//! fast slot with one atomic exchange, `fast.rs`); otherwise one lock, to hand the connection
//! to the head waiter or park it idle. Only a due [`Poolable::reset`] or a checkin hook
//! moves the return onto a spawned task, and the connection stays counted as active until that
//! task has finished with it.

use std::fmt;
use std::ops::{Deref, DerefMut};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use crate::clock::{Instant, nanos_between};

use crate::conn::Conn;
use tracing::Instrument;

use crate::hooks::{DestroyReason, LifecycleHooks, caught};
use crate::poolable::Poolable;
use crate::runtime::{Runtime, timeout};
use crate::shared::{Effects, Shared, WaiterOf};

/// A connection checked out of a pool; returns it when dropped.
///
/// Dereferences to the connection. Its own operations are associated functions
/// (`PoolGuard::detach(guard)`) so they never shadow a method of the connection.
///
/// On drop the connection is destroyed instead of reused when the holder panicked, it was
/// marked broken, the driver reports it broken, or it reached its lifetime.
#[must_use = "dropping the guard returns the connection at once"]
pub struct PoolGuard<T: Poolable, R: Runtime> {
    conn: Option<Conn<T>>,
    shared: Arc<Shared<T, R>>,
    checked_out: Instant,
    leak_key: Option<usize>,
    broken: bool,
    /// The waiter this checkout queued with, if it had to wait: recycled by the return.
    spare: Option<Arc<WaiterOf<T>>>,
}

impl<T: Poolable + fmt::Debug, R: Runtime> fmt::Debug for PoolGuard<T, R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolGuard")
            .field("conn", &self.conn.as_ref().map(|c| &c.raw))
            .field("broken", &self.broken)
            .finish_non_exhaustive()
    }
}

impl<T: Poolable, R: Runtime> PoolGuard<T, R> {
    pub(crate) fn new(
        conn: Conn<T>,
        shared: Arc<Shared<T, R>>,
        checked_out: Instant,
        leak_key: Option<usize>,
        spare: Option<Arc<WaiterOf<T>>>,
    ) -> Self {
        Self {
            conn: Some(conn),
            shared,
            checked_out,
            leak_key,
            broken: false,
            spare,
        }
    }

    fn inner(&self) -> &Conn<T> {
        self.conn
            .as_ref()
            .expect("a guard holds its connection until dropped")
    }

    fn inner_mut(&mut self) -> &mut Conn<T> {
        self.conn
            .as_mut()
            .expect("a guard holds its connection until dropped")
    }

    /// The connection.
    pub fn conn(&self) -> &T {
        &self.inner().raw
    }

    /// The connection, mutably.
    pub fn conn_mut(&mut self) -> &mut T {
        &mut self.inner_mut().raw
    }

    /// Marks the connection broken: it is destroyed instead of returned.
    pub fn mark_broken(this: &mut Self) {
        this.broken = true;
    }

    /// How long ago the connection was opened.
    pub fn age(this: &Self) -> Duration {
        this.inner().created.elapsed()
    }

    /// Takes the connection out of the pool for good. The pool forgets it and may open a
    /// replacement; closing it is now the caller's business.
    pub fn detach(mut this: Self) -> T {
        let conn = this
            .conn
            .take()
            .expect("a guard holds its connection until dropped");
        this.unregister_leak();
        this.shared.update(|st, _| {
            st.ledger.release();
            st.counters.detaches += 1;
        });
        conn.into_raw()
    }

    fn unregister_leak(&mut self) {
        if let (Some(key), Some(leaks)) = (self.leak_key.take(), &self.shared.leaks) {
            leaks.unregister(key);
        }
    }
}

impl<T: Poolable, R: Runtime> Deref for PoolGuard<T, R> {
    type Target = T;

    fn deref(&self) -> &T {
        self.conn()
    }
}

impl<T: Poolable, R: Runtime> DerefMut for PoolGuard<T, R> {
    fn deref_mut(&mut self) -> &mut T {
        self.conn_mut()
    }
}

impl<T: Poolable, R: Runtime> Drop for PoolGuard<T, R> {
    #[inline]
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        self.unregister_leak();
        let now = Instant::now();
        // In nanoseconds: one subtraction; a `Duration` only where one is needed.
        let usage = nanos_between(now, self.checked_out);
        let reason = if thread::panicking() {
            Some(DestroyReason::Panicked)
        } else if self.broken {
            Some(DestroyReason::MarkedBroken)
        } else if catch_unwind(AssertUnwindSafe(|| conn.raw.has_pending_data())).unwrap_or(true) {
            Some(DestroyReason::Broken)
        } else if conn.expired(now) {
            Some(DestroyReason::Lifetime)
        } else {
            None
        };
        // A panic in `server_changed` counts as no change.
        let changed = catch_unwind(AssertUnwindSafe(|| conn.raw.server_changed()))
            .ok()
            .flatten();
        if reason.is_some() || changed.is_some() {
            self.destroy_returned(conn, reason, changed, usage);
            return;
        }
        match catch_unwind(AssertUnwindSafe(|| conn.raw.needs_reset())) {
            Ok(false) if self.shared.hooks.checkin.is_none() => {
                checkin(&self.shared, conn, now, usage, self.spare.take());
            }
            reset => self.checkin_later(conn, reset.map_err(drop), usage),
        }
    }
}

impl<T: Poolable, R: Runtime> PoolGuard<T, R> {
    /// A return that destroys its connection: `reason`, or evicted because the server
    /// `changed` (a new generation first, so that this connection, like every other one to
    /// the old server, is destroyed as evicted).
    #[cold]
    #[inline(never)]
    fn destroy_returned(
        &mut self,
        conn: Conn<T>,
        reason: Option<DestroyReason>,
        changed: Option<&'static str>,
        usage: u64,
    ) {
        if let Some(cause) = changed {
            self.shared.server_changed(cause);
        }
        let reason = reason.unwrap_or(DestroyReason::Evicted);
        self.shared
            .destroy_active(conn, reason, Some(Duration::from_nanos(usage)));
    }

    /// A return with asynchronous work due: `reset` (`Err` if `needs_reset` panicked,
    /// which destroys the connection), or the checkin hook.
    #[cold]
    #[inline(never)]
    fn checkin_later(&mut self, conn: Conn<T>, reset: Result<bool, ()>, usage: u64) {
        let Ok(reset) = reset else {
            self.shared.destroy_active(
                conn,
                DestroyReason::ResetFailed,
                Some(Duration::from_nanos(usage)),
            );
            return;
        };
        // Held before the task exists: a runtime that drops the task unpolled still
        // destroys the connection and frees its capacity.
        let held = Held::new(Arc::clone(&self.shared), conn, DestroyReason::ResetFailed);
        self.shared.spawn(checkin_async(held, reset, usage));
    }
}

/// The synchronous end of every return: the release hook, then back to a waiter or idle.
/// `usage` is in nanoseconds.
#[inline]
pub(crate) fn checkin<T: Poolable, R: Runtime>(
    shared: &Arc<Shared<T, R>>,
    mut conn: Conn<T>,
    now: Instant,
    usage: u64,
    spare: Option<Arc<WaiterOf<T>>>,
) {
    if let Some(hook) = &shared.hooks.release
        && LifecycleHooks::run_sync(hook, "release", &mut conn.raw).is_err()
    {
        shared.destroy_active(
            conn,
            DestroyReason::HookRejected,
            Some(Duration::from_nanos(usage)),
        );
        return;
    }
    conn.last_used = now;
    if spare.is_none() && conn.generation == shared.generation() {
        // Into the fast slot if nobody waits; otherwise `put` hands it back for the lock.
        shared.fast.record_usage(usage);
        let leftover = shared.fast.put(conn);
        if !leftover.is_empty() {
            shared.place_leftover(leftover, now);
        }
        return;
    }
    checkin_locked(shared, conn, now, usage, spare);
}

/// The return under the lock: a waiter recycled, a stale connection destroyed.
#[inline(never)]
fn checkin_locked<T: Poolable, R: Runtime>(
    shared: &Arc<Shared<T, R>>,
    conn: Conn<T>,
    now: Instant,
    usage: u64,
    spare: Option<Arc<WaiterOf<T>>>,
) {
    let mut fx = Effects::default();
    {
        let mut st = shared.lock();
        if let Some(waiter) = spare {
            st.recycle(waiter);
        }
        st.ledger.release();
        st.counters.usage_time.record_nanos(usage);
        shared.place(&mut st, conn, now, &mut fx);
        if fx.has_destroys() {
            shared.plan_connects(&mut st, now, &mut fx);
            fx.set_drained(st.is_drained());
        }
    }
    shared.apply(fx);
}

/// Destroys a connection counted as active (or probing) if dropped while still armed.
pub(crate) struct Held<T: Poolable, R: Runtime> {
    shared: Arc<Shared<T, R>>,
    conn: Option<Conn<T>>,
    reason: DestroyReason,
    /// Counted as probing rather than active.
    probing: bool,
}

impl<T: Poolable, R: Runtime> Held<T, R> {
    pub(crate) fn new(shared: Arc<Shared<T, R>>, conn: Conn<T>, reason: DestroyReason) -> Self {
        Self {
            shared,
            conn: Some(conn),
            reason,
            probing: false,
        }
    }

    /// Holds a connection the health probe took: destroyed as `PingFailed` unless disarmed.
    pub(crate) fn probing(shared: Arc<Shared<T, R>>, conn: Conn<T>) -> Self {
        Self {
            shared,
            conn: Some(conn),
            reason: DestroyReason::PingFailed,
            probing: true,
        }
    }

    pub(crate) fn shared(&self) -> &Arc<Shared<T, R>> {
        &self.shared
    }

    pub(crate) fn get(&mut self) -> &mut Conn<T> {
        self.conn.as_mut().expect("held until disarmed")
    }

    pub(crate) fn disarm(mut self) -> Conn<T> {
        self.conn.take().expect("held until disarmed")
    }

    pub(crate) fn destroy(mut self, reason: DestroyReason) {
        self.reason = reason;
    }
}

impl<T: Poolable, R: Runtime> Drop for Held<T, R> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            if self.probing {
                self.shared.destroy_probed(conn);
            } else {
                self.shared.destroy_active(conn, self.reason, None);
            }
        }
    }
}

/// The asynchronous return: reset if due, then the checkin hook, bounded together by
/// `checkin_timeout`. The connection stays counted as active throughout; if this task is
/// dropped midway the connection is destroyed, never lost.
async fn checkin_async<T: Poolable, R: Runtime>(mut held: Held<T, R>, reset: bool, usage: u64) {
    let shared = Arc::clone(&held.shared);
    let work = async {
        let conn = held.get();
        let span = tracing::debug_span!("pg_pool.reset", pool = %shared.config.name);
        if reset
            && !matches!(
                caught(|| conn.raw.reset()).instrument(span).await,
                Ok(Ok(()))
            )
        {
            return Err(DestroyReason::ResetFailed);
        }
        if let Some(hook) = &shared.hooks.checkin
            && LifecycleHooks::run_async(hook, "checkin", &mut conn.raw)
                .await
                .is_err()
        {
            return Err(DestroyReason::HookRejected);
        }
        Ok(())
    };
    match timeout(&shared.runtime, shared.config.checkin_timeout, work).await {
        Some(Ok(())) => {
            let conn = held.disarm();
            checkin(&shared, conn, Instant::now(), usage, None);
        }
        Some(Err(reason)) => held.destroy(reason),
        None => {
            tracing::warn!(pool = %shared.config.name, "reset or checkin hook timed out; destroying the connection");
            held.destroy(DestroyReason::ResetFailed);
        }
    }
}
