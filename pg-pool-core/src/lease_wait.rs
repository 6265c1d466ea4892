//! The waiting part of `get_shared`: a place in the shared set's queue, room handed over
//! in order, one waiter at a time checking a connection out of the pool for the set.

use std::future::{Future, poll_fn};
use std::panic::Location;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::task::Poll;

use event_listener::listener;

use crate::clock::{FOREVER, Instant};
use crate::error::{Phase, PoolError};
use crate::lease::{LeaseSet, Released, Slots, Waiter};
use crate::lease_guard::SharedGuard;
use crate::pool::ConnPool;
use crate::runtime::Runtime;
use crate::shareable::Shareable;
use crate::shared::PoolErrorOf;

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
        if waiter.queued.swap(false, Ordering::Relaxed)
            && let Some(index) = slots.queue.iter().position(|w| Arc::ptr_eq(w, &waiter))
        {
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
    /// Waits in the set's queue (see `get_shared`).
    pub(crate) async fn wait_shared(
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
                    waiter.queued.store(true, Ordering::Relaxed);
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
