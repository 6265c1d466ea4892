//! A pooled connection with its bookkeeping.
//!
//! A [`Conn`] is boxed once, when the connection is opened, and from then on only the box
//! moves: between the idle set, a waiter's slot, the pool's fast slot (`fast.rs`, which
//! swaps it with one atomic instruction) and a `PoolGuard`. Moving a pointer is cheap
//! whatever the size of the driver's connection, and it is what makes the fast slot
//! possible without `unsafe`.

use std::ops::{Deref, DerefMut};
use std::time::Duration;

use crate::clock::{Instant, after};

/// A connection plus what the pool knows about it (see [`ConnData`]), boxed. Never leaves
/// the crate: callers see the bare connection through [`PoolGuard`](crate::PoolGuard).
#[derive(Debug)]
pub(crate) struct Conn<T>(Box<ConnData<T>>);

/// What a [`Conn`] holds.
#[derive(Debug)]
pub(crate) struct ConnData<T> {
    pub(crate) raw: T,
    pub(crate) created: Instant,
    /// Creation plus `max_lifetime` minus this connection's jitter, sampled once.
    pub(crate) expires: Option<Instant>,
    /// When the connection was last returned, created, or proved alive by a ping.
    pub(crate) last_used: Instant,
    /// The pool's eviction generation when the connection was created.
    pub(crate) generation: u64,
    /// Never handed out yet.
    pub(crate) fresh: bool,
}

impl<T> Conn<T> {
    pub(crate) fn new(
        raw: T,
        now: Instant,
        lifetime: Option<Duration>,
        jitter: Duration,
        generation: u64,
    ) -> Self {
        let expires = lifetime.map(|lifetime| {
            let jitter = if jitter.is_zero() {
                Duration::ZERO
            } else {
                // Uniform in [0, jitter], in nanoseconds.
                let max = u64::try_from(jitter.as_nanos()).unwrap_or(u64::MAX);
                Duration::from_nanos(fastrand::u64(0..=max))
            };
            after(now, lifetime.saturating_sub(jitter))
        });
        Self(Box::new(ConnData {
            raw,
            created: now,
            expires,
            last_used: now,
            generation,
            fresh: true,
        }))
    }

    /// The driver's connection, out of its box.
    pub(crate) fn into_raw(self) -> T {
        self.0.raw
    }
}

impl<T> ConnData<T> {
    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|expires| now >= expires)
    }
}

impl<T> Deref for Conn<T> {
    type Target = ConnData<T>;

    #[inline]
    fn deref(&self) -> &ConnData<T> {
        &self.0
    }
}

impl<T> DerefMut for Conn<T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut ConnData<T> {
        &mut self.0
    }
}
