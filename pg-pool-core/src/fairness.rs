//! Fairness: how a pool shares its connections when callers outnumber them
//! ([`Fairness`]), and the engine's side of bounded fairness: `Shared::serve`, which
//! settles idle connections against queued callers at the end of a critical section, and
//! the nudged waiter's look for an idle connection (`claim`).
//!
//! Bounded fairness keeps one invariant beyond strict's (checked on every lock in debug
//! builds, `State::check_served`): whenever a connection is idle and a caller queued, a
//! nudged caller that has not looked yet is in the queue, so it will look. Every removal of
//! that caller from the queue (a grant, a timeout, a cancellation, a failed connect) clears
//! the record, and the critical section that removed it ends with `serve`, which nudges the
//! next head.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Instant;
use crate::config::ConfigError;
use crate::poolable::Poolable;
use crate::runtime::Runtime;
use crate::shared::{Effects, Shared, State, WaiterOf};
use crate::waiters::Grant;

/// How a pool shares its connections when callers outnumber them.
///
/// [`Fairness::Strict`]: strict FIFO with direct hand-off. A returned connection goes
/// straight to the caller that has waited longest, even when that caller's task has not run
/// yet; a caller never takes a connection while anyone is queued. No caller is ever
/// overtaken, at the price of a wake-up per hand-off, during which the
/// connection sits unused, while the task that returned it (which usually asks again at
/// once) has to queue.
///
/// [`Fairness::Bounded`]: overtaking within a bound, after Go's `sync.Mutex`. A returned
/// connection goes idle and wakes at most one queued caller (none if one is already woken
/// and has not looked yet); any caller, the one that just returned a connection included,
/// may take an idle connection although others are queued, *unless the caller at the head
/// of the queue has waited longer than the bound*. From then on the pool is strict again:
/// returns go straight to the head and newcomers queue, until the head has waited less
/// than the bound. A woken caller that finds nothing keeps its place and waits again.
/// So a queued caller may be overtaken only while it, and everyone ahead of it, has waited
/// at most the bound: once it has waited longer, nobody takes a connection before it.
/// The bound is measured with the pool's clock at each checkout and return; it is not a
/// timer, so with no checkout and no return happening nothing changes (and nothing needs to).
///
/// # Which one
///
/// [`ConnPoolConfig::fairness`](crate::ConnPoolConfig::fairness) defaults to
/// [`Fairness::Strict`], because bounded fairness did not clearly win when measured
/// (pg-pool-bench `--fairness`: pools of 4 and 16, 64 to 1,024 tasks holding the connection
/// across one yield, 2 tokio workers, two runs on a shared 2-CPU machine). With a 1 ms bound
/// throughput was 0.4x to 1.2x deadpool's, strict's 0.4x to 1.9x (the spread is mostly the
/// machine's noise), tail waits were no better, and the busiest task completed 1.3 to 20
/// times as many cycles as the idlest (strict: 1.04 to 1.44). A 100 µs bound stayed fair
/// (1.03 to 1.5) without a clearer gain. An async task cannot spin the way a goroutine
/// does, so when the task that returned a connection takes it back at once, the one woken
/// waiter usually finds nothing: the pool still pays a wake-up per return and saves only
/// the returning task's trip through the queue. Choose [`Fairness::Bounded`] where callers
/// that return a connection and ask again at once should not queue, and an unfair share
/// within the bound is acceptable.
///
/// With the `serde` feature, and in [`FromStr`](std::str::FromStr) and `Display`, it is
/// written `"strict"` or `"bounded:<duration>"` (`"bounded:1ms"`), the duration in the
/// grammar of [`parse_duration`](crate::parse_duration) (whole milliseconds; a shorter
/// bound can be set in code).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pg_pool_core::{ConnPoolConfig, Fairness};
///
/// let mut config = ConnPoolConfig::default();
/// config.fairness = Fairness::Bounded(Duration::from_millis(1));
/// assert!(config.validate().is_ok());
/// assert_eq!("bounded:1ms".parse::<Fairness>(), Ok(config.fairness));
/// assert_eq!(config.fairness.to_string(), "bounded:1ms");
///
/// config.fairness = Fairness::Bounded(Duration::ZERO);
/// assert_eq!(config.validate().unwrap_err().field(), "fairness");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Fairness {
    /// Strict FIFO with direct hand-off: no caller is ever overtaken.
    #[default]
    Strict,
    /// Callers may take an idle connection ahead of queued ones while the head of the queue
    /// has waited at most this long. Must be greater than zero ([`Fairness::Strict`] is the
    /// zero-overtaking policy); may be as long as you like, `Duration::MAX` included
    /// (overtaking is then limited only by `checkout_timeout`).
    Bounded(Duration),
}

impl Fairness {
    /// The bound of [`Fairness::Bounded`], `None` for [`Fairness::Strict`].
    pub fn bound(self) -> Option<Duration> {
        match self {
            Self::Strict => None,
            Self::Bounded(bound) => Some(bound),
        }
    }
}

impl fmt::Display for Fairness {
    /// `strict` or `bounded:<duration>`; a bound the duration grammar cannot write (below a
    /// millisecond, or above a year) is shown as Rust's `Debug` of the duration
    /// (`bounded:100µs`), which [`str::parse`] does not read back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Strict => f.write_str("strict"),
            Self::Bounded(bound) => match crate::duration::format_duration(*bound) {
                Some(text) => write!(f, "bounded:{text}"),
                None => write!(f, "bounded:{bound:?}"),
            },
        }
    }
}

impl std::str::FromStr for Fairness {
    type Err = ConfigError;

    /// Reads `strict` or `bounded:<duration>` (`bounded:1ms`), the duration in the grammar
    /// of [`parse_duration`](crate::parse_duration) and greater than zero.
    ///
    /// # Errors
    ///
    /// A [`ConfigError`] for the field `fairness` saying what is allowed.
    fn from_str(text: &str) -> Result<Self, ConfigError> {
        const ALLOWED: &str = "must be `strict` or `bounded:<duration>` (for example bounded:1ms)";
        if text == "strict" {
            return Ok(Self::Strict);
        }
        let Some(bound) = text.strip_prefix("bounded:") else {
            return Err(ConfigError::new("fairness", format!("{text:?} {ALLOWED}")));
        };
        let bound = crate::duration::parse_duration(bound)
            .map_err(|why| ConfigError::new("fairness", format!("bound {bound:?} {why}")))?;
        let fairness = Self::Bounded(bound);
        fairness.check()?;
        Ok(fairness)
    }
}

impl Fairness {
    pub(crate) fn check(self) -> Result<(), ConfigError> {
        if self == Self::Bounded(Duration::ZERO) {
            return Err(ConfigError::new(
                "fairness",
                "has a zero bound; the bound must be greater than zero (use strict for no overtaking)"
                    .into(),
            ));
        }
        Ok(())
    }
}

impl<T: Poolable, R: Runtime> Shared<T, R> {
    /// Bounded fairness: settles idle connections against queued callers at the end of a
    /// critical section that may have brought them together (a connection parked, a caller
    /// queued, a nudged caller gone or done looking).
    ///
    /// While both exist: if the head has waited longer than `bound`, it is handed an idle
    /// connection directly (strict hand-off), and so on down the queue; otherwise the head is
    /// nudged, unless a nudged caller has not looked yet (at most one woken at a time).
    /// Afterwards, whenever a connection is idle and a caller queued, a nudged caller is on
    /// its way to look: no connection sits idle while every waiter sleeps.
    pub(crate) fn serve(
        &self,
        st: &mut State<T>,
        now: Instant,
        bound: Duration,
        fx: &mut Effects<T>,
    ) {
        while !st.ledger.idle().is_empty() && !st.waiters.is_empty() {
            if !st.waiters.head_starving(now, bound) {
                if let Some(head) = st.waiters.nudge_head() {
                    fx.wake(head);
                }
                return;
            }
            if !self.grant_idle_to_head(st, now, fx) {
                return;
            }
        }
    }

    /// Hands every idle connection to the queue's head, one after the other, as strict
    /// fairness would have on their return. Called before queued callers are failed (a
    /// connect error), so that none fails while a connection it could have had sits idle.
    /// Does nothing with strict fairness, where no connection is idle while anyone queues.
    pub(crate) fn hand_off_idle(&self, st: &mut State<T>, now: Instant, fx: &mut Effects<T>) {
        while !st.ledger.idle().is_empty()
            && !st.waiters.is_empty()
            && self.grant_idle_to_head(st, now, fx)
        {}
    }

    /// Moves an idle connection into the head waiter's slot; `false` if either is missing.
    fn grant_idle_to_head(&self, st: &mut State<T>, now: Instant, fx: &mut Effects<T>) -> bool {
        let Some(conn) = st.ledger.take_idle(self.config.idle_order) else {
            return false;
        };
        let Some(waiter) = st.waiters.pop() else {
            st.ledger.release();
            st.ledger.park(conn);
            return false;
        };
        st.counters.checkouts += 1;
        st.counters
            .wait_time
            .record(now.saturating_duration_since(waiter.enqueued));
        waiter.grant(Grant::Conn(conn));
        fx.wake(waiter);
        true
    }

    /// Bounded fairness: a nudged waiter looks for an idle connection. Takes one (leaving
    /// the queue) if it is the head or the head has not waited past the bound; otherwise,
    /// or if a newcomer took the connection first, it keeps its place and waits again.
    /// Either way it no longer counts as the woken waiter, and the nudge passes on if a
    /// connection is still idle. A grant that arrived meanwhile is returned instead.
    pub(crate) fn claim(self: &Arc<Self>, waiter: &Arc<WaiterOf<T>>) -> Option<Grant<T, T::Error>> {
        let bound = self.config.fairness.bound()?;
        let mut fx = Effects::default();
        let claimed = {
            let mut st = self.lock();
            st.waiters.looked(waiter.id);
            if let Some(grant) = waiter.take() {
                return Some(grant);
            }
            let now = Instant::now();
            let mut claimed = None;
            let may_take = !st.ledger.idle().is_empty()
                && (st
                    .waiters
                    .head()
                    .is_some_and(|head| Arc::ptr_eq(head, waiter))
                    || !st.waiters.head_starving(now, bound));
            if may_take && let Some(conn) = st.ledger.take_idle(self.config.idle_order) {
                if st.waiters.abandon(waiter) {
                    st.counters.checkouts += 1;
                    st.counters
                        .wait_time
                        .record(now.saturating_duration_since(waiter.enqueued));
                    claimed = Some(Grant::Conn(conn));
                } else {
                    // Not reached: a waiter with no grant is still queued.
                    st.ledger.release();
                    st.ledger.park(conn);
                }
            }
            self.serve(&mut st, now, bound, &mut fx);
            if claimed.is_some() && st.ledger.min_idle() > 0 {
                self.plan_connects(&mut st, now, &mut fx);
            }
            claimed
        };
        self.apply(fx);
        claimed
    }
}

impl<T: Poolable> State<T> {
    /// Debug builds, on every lock: what the previous critical section left has no
    /// connection idle while a caller sleeps in the queue. Strict: never both. Bounded:
    /// both only while a nudged caller is on its way to look.
    #[cfg(debug_assertions)]
    pub(crate) fn check_served(&self, fairness: Fairness) {
        if self.ledger.idle().is_empty() || self.waiters.is_empty() {
            return;
        }
        match fairness {
            Fairness::Strict => {
                panic!(
                    "strict fairness: {} idle connections while {} callers are queued",
                    self.ledger.idle().len(),
                    self.waiters.len()
                );
            }
            Fairness::Bounded(_) => assert!(
                self.waiters.nudged_queued(),
                "bounded fairness: {} idle connections while {} callers are queued and none of them is nudged",
                self.ledger.idle().len(),
                self.waiters.len()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConnPoolConfig;

    /// Every spelling reads back to what it wrote; nonsense names the field and says why.
    #[test]
    fn spellings_round_trip_and_nonsense_is_refused() {
        for fairness in [
            Fairness::Strict,
            Fairness::Bounded(Duration::from_millis(1)),
            Fairness::Bounded(Duration::from_secs(5400)),
        ] {
            assert_eq!(fairness.to_string().parse::<Fairness>(), Ok(fairness));
        }
        let sub_ms = Fairness::Bounded(Duration::from_micros(100));
        assert_eq!(sub_ms.to_string(), "bounded:100µs");
        assert!(sub_ms.to_string().parse::<Fairness>().is_err());
        for (text, why) in [
            ("", "must be `strict`"),
            ("bounded", "must be `strict`"),
            ("bounded:0s", "zero bound"),
            ("bounded:1", "needs a unit"),
            ("bounded:9000h", "too large"),
        ] {
            let error = text.parse::<Fairness>().unwrap_err();
            assert_eq!(error.field(), "fairness");
            assert!(error.to_string().contains(why), "{text:?}: {error}");
        }
        let mut config = ConnPoolConfig::default();
        for ok in [Fairness::Strict, Fairness::Bounded(Duration::MAX), sub_ms] {
            config.fairness = ok;
            assert!(config.validate().is_ok(), "{ok:?}");
        }
        config.fairness = Fairness::Bounded(Duration::ZERO);
        assert_eq!(config.validate().unwrap_err().field(), "fairness");
        assert_eq!(Fairness::Strict.bound(), None);
        assert_eq!(sub_ms.bound(), Some(Duration::from_micros(100)));
    }
}
