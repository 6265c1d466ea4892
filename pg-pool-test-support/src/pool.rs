//! What the real-server tests share about pools: their configuration and a poll helper.

use std::future::Future;
use std::time::{Duration, Instant};

use pg_pool_core::{ConnPoolConfig, Runtime};

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

/// Polls `check` every 20 ms, sleeping on the runtime `R`, until it returns true or `limit`
/// passes; returns how long it took, or `None` on timeout.
///
/// # Panics
///
/// Outside a runtime of kind `R`.
pub async fn eventually<R, F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    R: Runtime,
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let runtime = R::current().expect("eventually runs inside the runtime");
    let started = Instant::now();
    loop {
        if check().await {
            return Some(started.elapsed());
        }
        if started.elapsed() >= limit {
            return None;
        }
        runtime.sleep(Duration::from_millis(20)).await;
    }
}
