//! A pooled connection with its bookkeeping.

use std::time::Duration;

use crate::clock::{Instant, after};

/// A connection plus what the pool knows about it. Never leaves the crate: callers see the
/// bare connection through [`PoolGuard`](crate::PoolGuard).
#[derive(Debug)]
pub(crate) struct Conn<T> {
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
        Self {
            raw,
            created: now,
            expires,
            last_used: now,
            generation,
            fresh: true,
        }
    }

    pub(crate) fn expired(&self, now: Instant) -> bool {
        self.expires.is_some_and(|expires| now >= expires)
    }
}
