//! The engine's clock.
//!
//! Every checkout and return reads the clock (lifetime, idle time, usage and wait
//! histograms), so its cost is on the hot path: `quanta` reads the CPU's invariant TSC,
//! about 10 ns here against about 23 ns for `std::time::Instant::now`, and falls back to the
//! OS clock where the TSC cannot be trusted.
//!
//! Every deadline the engine computes goes through [`after`], so a configured duration of
//! any size (`Duration::MAX` included) means "practically never" instead of an overflow.

use std::time::Duration;

pub(crate) use quanta::Instant;

/// The longest delay the engine ever arms: a hundred years. Longer configured durations
/// behave as this one, which no process outlives.
pub(crate) const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Nanoseconds from `earlier` to `later`, zero when `later` is earlier: one subtraction
/// (the compiler folds the `Duration` away), for the hot paths' comparisons and histograms.
#[inline]
pub(crate) fn nanos_between(later: Instant, earlier: Instant) -> u64 {
    // A `Duration` made from a `u64` of nanoseconds converts back without loss; `as` (not
    // `try_from`) is what lets the compiler see that.
    later.saturating_duration_since(earlier).as_nanos() as u64
}

/// `duration` in nanoseconds, saturating at `u64::MAX` (about 584 years).
pub(crate) fn saturating_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// `now + delay`, saturating at [`FOREVER`] from now.
#[inline]
pub(crate) fn after(now: Instant, delay: Duration) -> Instant {
    now.checked_add(delay.min(FOREVER)).unwrap_or(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_delays_saturate() {
        let now = Instant::now();
        assert!(after(now, Duration::MAX) > after(now, Duration::from_secs(3600)));
        assert_eq!(after(now, Duration::MAX), after(now, FOREVER));
        assert_eq!(after(now, Duration::ZERO), now);
    }

    #[test]
    fn nanos_between_saturates_at_zero() {
        let earlier = Instant::now();
        let later = earlier + Duration::from_nanos(1_500);
        assert_eq!(nanos_between(later, earlier), 1_500);
        assert_eq!(nanos_between(earlier, later), 0);
        assert_eq!(saturating_nanos(Duration::from_secs(2)), 2_000_000_000);
        assert_eq!(saturating_nanos(Duration::MAX), u64::MAX);
    }
}
