//! The pool configuration the real-server tests share.

use std::time::Duration;

use pg_pool_core::ConnPoolConfig;

/// A pool config tuned for tests against a real server: short timeouts, a fast reaper and a
/// fast connect backoff, so that fault tests finish in seconds.
pub fn test_pool_config(max_size: usize) -> ConnPoolConfig {
    let mut config = ConnPoolConfig::default();
    config.name = "test".into();
    config.max_size = max_size;
    config.checkout_timeout = Duration::from_secs(5);
    config.connect_timeout = Duration::from_secs(2);
    config.reaper_interval = Duration::from_millis(100);
    config.connect_backoff = Duration::from_millis(20);
    config.connect_backoff_max = Duration::from_millis(500);
    config.checkin_timeout = Duration::from_secs(2);
    config.probe_timeout = Duration::from_secs(1);
    config
}
