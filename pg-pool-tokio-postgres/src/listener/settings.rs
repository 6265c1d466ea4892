//! The listener's settings, taken from a pool config: connect timeout, reconnect
//! backoff, liveness check.

use std::time::Duration;

use pg_pool_core::ConnPoolConfig;

use super::event::ListenerError;

/// Reconnect settings, taken from a [`ConnPoolConfig`].
#[derive(Debug, Clone, Copy)]
pub(super) struct Settings {
    /// Bounds each connect attempt, and each `LISTEN`/`UNLISTEN` round trip.
    pub(super) connect_timeout: Duration,
    /// First delay after a failed attempt.
    pub(super) backoff: Duration,
    /// Longest delay between attempts.
    pub(super) backoff_max: Duration,
    /// How often the session is checked with a round trip: nothing else would notice a
    /// connection that died silently (a dead peer behind a firewall, a blackholed route).
    pub(super) ping_interval: Duration,
    /// How long that round trip may take before the session counts as lost.
    pub(super) ping_timeout: Duration,
}

/// The liveness check's interval when the pool config asks for no health checks.
pub(super) const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(30);

impl Settings {
    pub(super) fn from_pool_config(config: &ConnPoolConfig) -> Result<Self, ListenerError> {
        config.validate()?;
        Ok(Self {
            connect_timeout: config.connect_timeout,
            backoff: config.connect_backoff,
            backoff_max: config.connect_backoff_max,
            ping_interval: config
                .health_check_interval
                .unwrap_or(DEFAULT_PING_INTERVAL),
            ping_timeout: config.probe_timeout,
        })
    }

    /// Delay before the next attempt after `failures` consecutive failures: exponential
    /// from `backoff`, capped at `backoff_max`, jittered within its upper half (the pool's
    /// own rule for its connects). Never zero: `backoff` is validated non-zero.
    pub(super) fn delay(&self, failures: u32) -> Duration {
        pg_pool_core::runtime::backoff_delay(self.backoff, self.backoff_max, failures)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The pool's rule: exponential from the base, jittered within the upper half,
    /// capped, never zero, never overflowing.
    #[test]
    fn backoff_grows_caps_and_never_spins() {
        let settings = Settings {
            connect_timeout: Duration::from_secs(1),
            backoff: Duration::from_millis(50),
            backoff_max: Duration::from_secs(5),
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_timeout: Duration::from_secs(5),
        };
        for failures in 1..64_u32 {
            let full = Duration::from_millis(50)
                .saturating_mul(1 << (failures - 1).min(20))
                .min(Duration::from_secs(5));
            for _ in 0..20 {
                let delay = settings.delay(failures);
                assert!(
                    delay >= full / 2 && delay <= full,
                    "{failures}: {delay:?} vs {full:?}"
                );
                assert!(delay >= Duration::from_millis(25));
            }
        }
        assert!(settings.delay(u32::MAX) <= Duration::from_secs(5));
    }

    #[test]
    fn settings_come_from_a_validated_pool_config() {
        let mut config = ConnPoolConfig::default();
        config.connect_backoff = Duration::ZERO;
        let err = Settings::from_pool_config(&config).unwrap_err();
        assert!(err.to_string().contains("connect_backoff"), "{err}");
        let settings = Settings::from_pool_config(&ConnPoolConfig::default()).unwrap();
        assert_eq!(settings.backoff, ConnPoolConfig::default().connect_backoff);
        assert_eq!(
            settings.backoff_max,
            ConnPoolConfig::default().connect_backoff_max
        );
        assert_eq!(settings.ping_interval, DEFAULT_PING_INTERVAL);
        let mut config = ConnPoolConfig::default();
        config.health_check_interval = Some(Duration::from_secs(3));
        config.probe_timeout = Duration::from_secs(1);
        let settings = Settings::from_pool_config(&config).unwrap();
        assert_eq!(settings.ping_interval, Duration::from_secs(3));
        assert_eq!(settings.ping_timeout, Duration::from_secs(1));
    }
}
