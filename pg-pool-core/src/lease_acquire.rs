//! `ConnPool::get_shared`: room on the least-loaded shared connection, or a new one from the
//! pool, or a wait for whichever frees first.

use std::future::{Future, poll_fn};
use std::panic::Location;
use std::pin::{Pin, pin};
use std::task::Poll;

use event_listener::listener;

use crate::checkout::Checkout;
use crate::clock::{FOREVER, Instant};
use crate::config::ConfigError;
use crate::error::{Phase, PoolError};
use crate::lease::{LeaseSet, Released, SHARED_MAX_IN_FLIGHT_LIMIT, Slots, Waiter};
use crate::lease_guard::SharedGuard;
use crate::pool::ConnPool;
use crate::runtime::Runtime;
use crate::shareable::Shareable;
use crate::shared::PoolErrorOf;
use std::sync::Arc;
use std::sync::atomic::Ordering;

/// A snapshot of a pool's shared leases ([`ConnPool::shared_stats`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct SharedStats {
    /// Connections now shared (each is also counted active in the pool's metrics).
    pub connections: usize,
    /// Users of those connections now.
    pub in_flight: usize,
    /// Callers of `get_shared` waiting for room.
    pub waiting: usize,
    /// Waiting callers checking out another connection for sharing.
    pub opening: usize,
    /// Users one connection takes at once.
    pub max_in_flight: usize,
    /// Shared leases handed out so far.
    pub handed_out: u64,
    /// Shared connections that left the set early: broken, evicted or past their lifetime.
    pub retired: u64,
    /// Healthy shared connections that stopped taking users so that they go back to the
    /// pool, because callers of the pool's own `get()` were waiting.
    pub rotated: u64,
}

/// A caller's place among the waiting: leaves the queue when dropped, passing on room
/// handed to it and never claimed, and the task of checking out a connection for the set.
struct WaitSlot<'a, T: Shareable, R: Runtime> {
    set: &'a LeaseSet<T, R>,
    /// Queued, or granted and not yet claimed.
    waiter: Option<Arc<Waiter<T, R>>>,
    opener: bool,
}

impl<T: Shareable, R: Runtime> WaitSlot<'_, T, R> {
    /// Leaves the queue; what it returns is finished once the lock is released.
    fn leave_locked(&mut self, slots: &mut Slots<T, R>) -> Option<Released<T, R>> {
        let waiter = self.waiter.take()?;
        if let Some(index) = slots.queue.iter().position(|w| Arc::ptr_eq(w, &waiter)) {
            slots.queue.remove(index);
        }
        // Room handed over and never claimed goes on to the next waiter.
        let mut released = match waiter.take_grant() {
            Some(lease) => {
                let mut released = self.set.release(slots, &lease, false);
                released.held = Some(lease);
                released
            }
            None => Released {
                woken: None,
                nudged: None,
                removed: None,
                held: None,
            },
        };
        if self.opener {
            self.opener = false;
            waiter.opener.store(false, Ordering::Relaxed);
            slots.opening -= 1;
            if released.nudged.is_none() {
                released.nudged = self.set.opener_wanted(slots);
            }
        }
        slots.spares.push(waiter);
        Some(released)
    }

    fn leave(&mut self) {
        if self.waiter.is_none() {
            return;
        }
        let set = self.set;
        let released = {
            let mut slots = set.lock();
            self.leave_locked(&mut slots)
        };
        if let Some(released) = released {
            released.finish();
        }
    }
}

impl<T: Shareable, R: Runtime> Drop for WaitSlot<'_, T, R> {
    fn drop(&mut self) {
        self.leave();
    }
}

enum Woke<G, E, L> {
    Granted(L),
    Closed,
    Opened(Result<G, E>),
    Freed,
    Deadline,
}

impl<T: Shareable, R: Runtime> ConnPool<T, R> {
    /// Takes a shared lease: room on a pooled connection that other callers use at the same
    /// time, statement by statement, through [`SharedGuard::handle`].
    ///
    /// The pool keeps a set of shared connections, each checked out with the ordinary
    /// exclusive path (so hooks, validation, the reset on return, metrics, leak detection
    /// and `max_size` apply to each; exclusive [`ConnPool::get`] works beside it). A call
    /// takes room on the least-loaded of them with fewer than
    /// [`shared_max_in_flight`](Self::shared_max_in_flight) users; when every one is full,
    /// it checks another connection out of the pool, or, if the pool has none to give,
    /// waits for room on a shared connection or a connection from the pool, whichever
    /// comes first. A shared connection goes back to the pool as soon as its last user
    /// lets go; one found broken, evicted or past its lifetime takes no new users and goes
    /// back (to be destroyed) when its last user lets go.
    ///
    /// Waiting callers are served roughly in order: while anyone waits, newcomers wait
    /// too, and each unit of room freed wakes one waiter.
    ///
    /// # Errors
    ///
    /// As [`ConnPool::get`]: [`PoolError::Timeout`] when neither room nor a connection came
    /// within `checkout_timeout`, [`PoolError::Connect`] when the connection opened for
    /// this caller failed, [`PoolError::Closed`] once the pool drains.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped call leaves the waiting callers (handing on a wake-up it
    /// received, and the task of checking out a connection if it had it), and a connection
    /// the pool handed it goes back through [`ConnPool::get`]'s own cancellation.
    ///
    /// # Examples
    ///
    /// ```
    /// # use std::time::Duration;
    /// # use pg_pool_core::{ConnPool, Poolable, Shareable};
    /// # use pg_pool_core::runtime::{NoRuntime, Runtime};
    /// # #[derive(Clone)] struct Threads;
    /// # impl Runtime for Threads {
    /// #     type Sleep = std::future::Pending<()>;
    /// #     fn current() -> Result<Self, NoRuntime> { Ok(Threads) }
    /// #     fn sleep(&self, _: Duration) -> Self::Sleep { std::future::pending() }
    /// #     fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(&self, f: F) {
    /// #         std::thread::spawn(move || futures_lite::future::block_on(f));
    /// #     }
    /// # }
    /// #[derive(Debug)]
    /// struct Pipe;
    /// impl Poolable for Pipe {
    ///     type Error = std::io::Error;
    /// }
    /// impl Shareable for Pipe {
    ///     type Handle<'a> = &'a Pipe;
    ///     fn share(&self) -> &Pipe {
    ///         self
    ///     }
    ///     fn is_broken(&self) -> bool {
    ///         false
    ///     }
    /// }
    ///
    /// let pool: ConnPool<Pipe, Threads> = ConnPool::builder(|| async { Ok(Pipe) }).build_lazy()?;
    /// futures_lite::future::block_on(async {
    ///     let first = pool.get_shared().await?;
    ///     let second = pool.get_shared().await?;
    ///     let _pipe: &Pipe = second.handle();
    ///     // Both users share one connection, one ordinary checkout for the pool.
    ///     assert_eq!(pool.shared_stats().connections, 1);
    ///     assert_eq!(pool.metrics().active, 1);
    ///     drop((first, second));
    ///     // The last user let go: the connection is back in the pool.
    ///     assert_eq!(pool.metrics().idle, 1);
    ///     Ok::<_, pg_pool_core::PoolError<std::io::Error>>(())
    /// })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[track_caller]
    pub fn get_shared(
        &self,
    ) -> Checkout<'_, R, impl Future<Output = Result<SharedGuard<T, R>, PoolErrorOf<T>>> + Send + '_>
    {
        let site = Location::caller();
        let shared = self.shared();
        Checkout::new(
            &shared.runtime,
            &shared.config.name,
            self.acquire_shared(site),
        )
    }

    /// Users one shared connection takes at once
    /// (default [`DEFAULT_SHARED_MAX_IN_FLIGHT`](crate::DEFAULT_SHARED_MAX_IN_FLIGHT)).
    pub fn shared_max_in_flight(&self) -> usize {
        self.leases.max_in_flight()
    }

    /// Sets how many users one shared connection takes at once. Raising it lets waiting
    /// callers onto the connections already shared; lowering it takes no room back from
    /// users already on them.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] naming `shared_max_in_flight` when `max` is zero or above
    /// [`SHARED_MAX_IN_FLIGHT_LIMIT`]; nothing changes.
    pub fn set_shared_max_in_flight(&self, max: usize) -> Result<(), ConfigError> {
        if max == 0 || max > SHARED_MAX_IN_FLIGHT_LIMIT {
            return Err(ConfigError::new(
                "shared_max_in_flight",
                format!("is {max} but must be between 1 and {SHARED_MAX_IN_FLIGHT_LIMIT}"),
            ));
        }
        self.leases.set_max_in_flight(max);
        // Room may have appeared: hand it to waiters, in order.
        let set = self.leases.typed::<T, R>();
        let mut slots = set.lock();
        set.grant_free_room(&mut slots, max, self.shared().generation());
        Ok(())
    }

    /// A snapshot of the shared leases.
    pub fn shared_stats(&self) -> SharedStats {
        let slots = self.leases.typed::<T, R>().lock();
        SharedStats {
            connections: slots.leases.len(),
            in_flight: slots.leases.iter().map(|l| l.in_flight()).sum(),
            waiting: slots.queue.len(),
            opening: slots.opening,
            max_in_flight: self.leases.max_in_flight(),
            handed_out: slots.handed_out,
            retired: slots.retired,
            rotated: slots.rotated,
        }
    }

    async fn acquire_shared(
        &self,
        site: &'static Location<'static>,
    ) -> Result<SharedGuard<T, R>, PoolErrorOf<T>> {
        let hub = &self.leases;
        let set = hub.typed::<T, R>();
        let shared = self.shared();
        loop {
            if hub.is_closed() {
                return Err(PoolError::Closed);
            }
            let generation = shared.generation();
            let lease = {
                let mut slots = set.lock();
                // Nobody waiting: no barging past a caller owed the room.
                if slots.queue.is_empty() {
                    set.pick(&mut slots, hub.max_in_flight(), generation)
                } else {
                    None
                }
            };
            let Some(lease) = lease else {
                break;
            };
            let guard = SharedGuard::new(lease);
            if guard.is_unfit(generation, shared.config.max_lifetime) {
                guard.retire();
                continue;
            }
            return Ok(guard);
        }
        // Boxed: the waiting part would otherwise bloat every call's future.
        Box::pin(self.wait_shared(site)).await
    }

    async fn wait_shared(
        &self,
        site: &'static Location<'static>,
    ) -> Result<SharedGuard<T, R>, PoolErrorOf<T>> {
        let started = Instant::now();
        let hub = &self.leases;
        let set = hub.typed::<T, R>();
        let shared = self.shared();
        let lifetime = shared.config.max_lifetime;
        let mut slot = WaitSlot {
            set,
            waiter: None,
            opener: false,
        };
        let mut deadline = pin!(
            shared
                .runtime
                .sleep(shared.config.checkout_timeout.min(FOREVER))
        );
        let mut checkout = None;
        // Back in the queue after a granted lease proved unfit: at its front.
        let mut front = false;
        loop {
            let waiter = match &slot.waiter {
                Some(waiter) => Arc::clone(waiter),
                None => {
                    let mut slots = set.lock();
                    if hub.is_closed() {
                        return Err(PoolError::Closed);
                    }
                    let waiter = LeaseSet::new_waiter(&mut slots);
                    if front {
                        slots.queue.push_front(Arc::clone(&waiter));
                    } else {
                        slots.queue.push_back(Arc::clone(&waiter));
                    }
                    // Room may be free (nobody queued before, or a lease just made): take
                    // it in order.
                    set.grant_free_room(&mut slots, hub.max_in_flight(), shared.generation());
                    slot.waiter = Some(Arc::clone(&waiter));
                    waiter
                }
            };
            let woke = {
                listener!(waiter.event => woken);
                if let Some(lease) = waiter.take_grant() {
                    Woke::Granted(lease)
                } else if hub.is_closed() {
                    Woke::Closed
                } else {
                    if !slot.opener {
                        // One caller at a time checks a connection out for the set (the pool
                        // hands them out in order anyway), so waiting costs the pool one
                        // queued checkout, not one per waiter.
                        let mut slots = set.lock();
                        if slots.opening == 0 {
                            slots.opening += 1;
                            slot.opener = true;
                            waiter.opener.store(true, Ordering::Relaxed);
                        }
                    }
                    if slot.opener && checkout.is_none() {
                        checkout = Some(Box::pin(shared.acquire(site, true)));
                    }
                    poll_fn(|cx| {
                        if let Some(checkout) = checkout.as_mut()
                            && let Poll::Ready(result) = Pin::as_mut(checkout).poll(cx)
                        {
                            return Poll::Ready(Woke::Opened(result));
                        }
                        if Pin::new(&mut woken).poll(cx).is_ready() {
                            return Poll::Ready(Woke::Freed);
                        }
                        if deadline.as_mut().poll(cx).is_ready() {
                            return Poll::Ready(Woke::Deadline);
                        }
                        Poll::Pending
                    })
                    .await
                }
            };
            match woke {
                Woke::Freed => {}
                Woke::Closed => return Err(PoolError::Closed),
                Woke::Deadline => return Err(shared.timeout_error(Phase::Wait, started, true)),
                Woke::Opened(Err(error)) => return Err(error),
                Woke::Granted(lease) => {
                    slot.leave();
                    let guard = SharedGuard::new(lease);
                    if guard.is_unfit(shared.generation(), lifetime) {
                        guard.retire();
                        front = true;
                        continue;
                    }
                    // The checkout in flight, if any, is dropped: cancel safe.
                    return Ok(guard);
                }
                Woke::Opened(Ok(guard)) => {
                    let generation = shared.generation();
                    let owner = hub.typed_arc::<T, R>();
                    let mut slots = set.lock();
                    // Room handed over meanwhile wins; the connection goes back.
                    let granted = waiter.take_grant();
                    let done = slot.leave_locked(&mut slots);
                    let mut unused = Some(guard);
                    let result = match (granted, unused.take()) {
                        (Some(lease), guard) => {
                            unused = guard;
                            Err(lease)
                        }
                        (None, guard) if hub.is_closed() => {
                            unused = guard;
                            Ok(None)
                        }
                        (None, Some(guard)) => Ok(Some(owner.install(
                            &mut slots,
                            guard,
                            shared,
                            hub.max_in_flight(),
                            generation,
                        ))),
                        (None, None) => unreachable!("the guard was just put there"),
                    };
                    drop(slots);
                    drop(unused);
                    if let Some(released) = done {
                        released.finish();
                    }
                    return match result {
                        Err(lease) => Ok(SharedGuard::new(lease)),
                        Ok(Some(lease)) => Ok(SharedGuard::new(lease)),
                        Ok(None) => Err(PoolError::Closed),
                    };
                }
            }
        }
    }
}
