//! Pool settings from `PG_POOL_*` environment variables, and layering of pool settings.

use crate::error::ConnInfoError;
use crate::pool::PoolSettings;
use crate::raw::Origin;

/// The environment variables read by [`PoolSettings::from_env`], each with the
/// connection-string key it sets: `PG_POOL_` and the key without its `pool_` prefix, in
/// capitals.
pub const POOL_ENV_VARS: &[(&str, &str)] = &[
    ("PG_POOL_NAME", "pool_name"),
    ("PG_POOL_MAX_SIZE", "pool_max_size"),
    ("PG_POOL_MIN_IDLE", "pool_min_idle"),
    ("PG_POOL_MAX_CONNECTING", "pool_max_connecting"),
    ("PG_POOL_CHECKOUT_TIMEOUT", "pool_checkout_timeout"),
    ("PG_POOL_CONNECT_TIMEOUT", "pool_connect_timeout"),
    ("PG_POOL_IDLE_TIMEOUT", "pool_idle_timeout"),
    ("PG_POOL_MAX_LIFETIME", "pool_max_lifetime"),
    ("PG_POOL_MAX_LIFETIME_JITTER", "pool_max_lifetime_jitter"),
    ("PG_POOL_REAPER_INTERVAL", "pool_reaper_interval"),
    (
        "PG_POOL_HEALTH_CHECK_INTERVAL",
        "pool_health_check_interval",
    ),
    ("PG_POOL_PROBE_TIMEOUT", "pool_probe_timeout"),
    ("PG_POOL_TEST_ON_CHECKOUT", "pool_test_on_checkout"),
    (
        "PG_POOL_TEST_ON_CHECKOUT_AFTER",
        "pool_test_on_checkout_after",
    ),
    ("PG_POOL_IDLE_ORDER", "pool_idle_order"),
    ("PG_POOL_FAIRNESS", "pool_fairness"),
    ("PG_POOL_CONNECT_BACKOFF", "pool_connect_backoff"),
    ("PG_POOL_CONNECT_BACKOFF_MAX", "pool_connect_backoff_max"),
    (
        "PG_POOL_LEAK_DETECTION_THRESHOLD",
        "pool_leak_detection_threshold",
    ),
    (
        "PG_POOL_SLOW_CHECKOUT_THRESHOLD",
        "pool_slow_checkout_threshold",
    ),
    ("PG_POOL_CHECKIN_TIMEOUT", "pool_checkin_timeout"),
];

impl PoolSettings {
    /// Reads the variables of [`POOL_ENV_VARS`] (`PG_POOL_MAX_SIZE=20`,
    /// `PG_POOL_IDLE_TIMEOUT=off`, ...), with the grammar of the matching `pool_*` keys. An
    /// empty variable counts as unset. Other `PG_POOL_*` variables are not read.
    ///
    /// `env` looks a variable up; pass [`process_env`](crate::process_env) for the process
    /// environment, or a closure over a map in tests.
    ///
    /// # Errors
    ///
    /// A [`ConnInfoError`] naming the key and the variable when a value does not parse.
    ///
    /// # Examples
    ///
    /// ```
    /// use pg_pool_conninfo::PoolSettings;
    ///
    /// let pool = PoolSettings::from_env(|var| match var {
    ///     "PG_POOL_MAX_SIZE" => Some("20".into()),
    ///     "PG_POOL_IDLE_TIMEOUT" => Some("off".into()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(pool.max_size, Some(20));
    /// assert_eq!(pool.idle_timeout, Some(None));
    /// assert!(PoolSettings::from_env(|_| Some("many".into())).is_err());
    /// # Ok::<(), pg_pool_conninfo::ConnInfoError>(())
    /// ```
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConnInfoError> {
        let mut settings = PoolSettings::default();
        for &(var, key) in POOL_ENV_VARS {
            if let Some(value) = env(var).filter(|v| !v.is_empty()) {
                settings.set(key, &value, Origin::Env(var))?;
            }
        }
        Ok(settings)
    }

    /// Lays `over` on top of `self`: every setting `over` gives replaces this one's; a
    /// driver key (`pool_*` in [`PoolSettings::driver`]) given by `over` replaces the same
    /// key here.
    ///
    /// # Examples
    ///
    /// ```
    /// use pg_pool_conninfo::ConnInfo;
    ///
    /// let mut pool = ConnInfo::parse("host=h pool_max_size=4 pool_min_idle=1")?.pool;
    /// pool.overlay(&ConnInfo::parse("host=h pool_max_size=8")?.pool);
    /// assert_eq!((pool.max_size, pool.min_idle), (Some(8), Some(1)));
    /// # Ok::<(), pg_pool_conninfo::ConnInfoError>(())
    /// ```
    pub fn overlay(&mut self, over: &PoolSettings) {
        fn set<T: Clone>(target: &mut Option<T>, value: &Option<T>) {
            if value.is_some() {
                target.clone_from(value);
            }
        }
        set(&mut self.name, &over.name);
        set(&mut self.max_size, &over.max_size);
        set(&mut self.min_idle, &over.min_idle);
        set(&mut self.max_connecting, &over.max_connecting);
        set(&mut self.checkout_timeout, &over.checkout_timeout);
        set(&mut self.connect_timeout, &over.connect_timeout);
        set(&mut self.idle_timeout, &over.idle_timeout);
        set(&mut self.max_lifetime, &over.max_lifetime);
        set(&mut self.max_lifetime_jitter, &over.max_lifetime_jitter);
        set(&mut self.reaper_interval, &over.reaper_interval);
        set(&mut self.health_check_interval, &over.health_check_interval);
        set(&mut self.probe_timeout, &over.probe_timeout);
        set(&mut self.test_on_checkout, &over.test_on_checkout);
        set(
            &mut self.test_on_checkout_after,
            &over.test_on_checkout_after,
        );
        set(&mut self.idle_order, &over.idle_order);
        set(&mut self.fairness, &over.fairness);
        set(&mut self.connect_backoff, &over.connect_backoff);
        set(&mut self.connect_backoff_max, &over.connect_backoff_max);
        set(
            &mut self.leak_detection_threshold,
            &over.leak_detection_threshold,
        );
        set(
            &mut self.slow_checkout_threshold,
            &over.slow_checkout_threshold,
        );
        set(&mut self.checkin_timeout, &over.checkin_timeout);
        for (key, value) in &over.driver {
            self.driver.retain(|(k, _)| k != key);
            self.driver.push((key.clone(), value.clone()));
        }
    }
}
