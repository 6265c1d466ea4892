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

/// `now + delay`, saturating at [`FOREVER`] from now.
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
}
