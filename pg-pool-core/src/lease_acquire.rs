//! `ConnPool::get_shared`: room on the least-loaded shared connection, or a new one from the
//! pool, or a wait for whichever frees first.

use std::future::Future;
use std::panic::Location;

use crate::checkout::Checkout;
use crate::config::ConfigError;
use crate::error::PoolError;
use crate::lease::SHARED_MAX_IN_FLIGHT_LIMIT;
use crate::lease_guard::SharedGuard;
use crate::pool::ConnPool;
use crate::runtime::Runtime;
use crate::shareable::Shareable;
use crate::shared::PoolErrorOf;

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
}
