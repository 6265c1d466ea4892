//! Pool settings carried in the connection string (`pool_*` keys), as pgxpool does.

use std::time::Duration;

use pg_pool_core::{ConnPoolConfig, Fairness, IdleOrder, parse_duration};

use crate::error::{ConnInfoError, ConnInfoErrorKind, shown};
use crate::raw::Origin;

/// The `pool_*` keys of a connection string, typed; each `None` leaves the pool's own value.
///
/// [`PoolSettings::apply`] copies them onto a [`ConnPoolConfig`]. Keys starting with
/// `pool_` that this crate does not know are kept in [`PoolSettings::driver`] for the
/// driver (`pg-pool-tokio-postgres` reads `pool_reset`, `pool_reset_when`, `pool_profile`,
/// `pool_statement_cache` and `pool_auto_prepare`); a driver rejects any it does not know
/// either.
///
/// Durations are a number and a unit, `ms`, `s`, `m` or `h`, optionally several in a row
/// (`500ms`, `30s`, `5m`, `1h30m`), at most a year. A bare number is an error, not seconds:
/// `500` could mean milliseconds as easily. Counts go up to 262143, PostgreSQL's largest
/// `max_connections`. Settings that can be switched off (`pool_idle_timeout`,
/// `pool_max_lifetime`, `pool_health_check_interval`, `pool_leak_detection_threshold`)
/// also take `off`. Booleans are `true`/`false`, `on`/`off`, `yes`/`no` or `1`/`0`.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pg_pool_conninfo::ConnInfo;
/// use pg_pool_core::ConnPoolConfig;
///
/// let info = ConnInfo::parse("postgres://h/db?pool_max_size=20&pool_idle_timeout=off&pool_checkout_timeout=2s")?;
/// let mut pool = ConnPoolConfig::default();
/// info.pool.apply(&mut pool);
/// assert_eq!(pool.max_size, 20);
/// assert_eq!(pool.idle_timeout, None);
/// assert_eq!(pool.checkout_timeout, Duration::from_secs(2));
/// # Ok::<(), pg_pool_conninfo::ConnInfoError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PoolSettings {
    /// `pool_name`: the pool's name in metrics and logs.
    pub name: Option<String>,
    /// `pool_max_size`.
    pub max_size: Option<usize>,
    /// `pool_min_idle`.
    pub min_idle: Option<usize>,
    /// `pool_max_connecting`.
    pub max_connecting: Option<usize>,
    /// `pool_checkout_timeout`.
    pub checkout_timeout: Option<Duration>,
    /// `pool_connect_timeout`: the pool's bound on one whole connection attempt (all hosts).
    pub connect_timeout: Option<Duration>,
    /// `pool_idle_timeout`; `Some(None)` is `off`.
    pub idle_timeout: Option<Option<Duration>>,
    /// `pool_max_lifetime`; `Some(None)` is `off`.
    pub max_lifetime: Option<Option<Duration>>,
    /// `pool_max_lifetime_jitter`.
    pub max_lifetime_jitter: Option<Duration>,
    /// `pool_reaper_interval`.
    pub reaper_interval: Option<Duration>,
    /// `pool_health_check_interval`; `Some(None)` is `off`.
    pub health_check_interval: Option<Option<Duration>>,
    /// `pool_probe_timeout`.
    pub probe_timeout: Option<Duration>,
    /// `pool_test_on_checkout`.
    pub test_on_checkout: Option<bool>,
    /// `pool_test_on_checkout_after`.
    pub test_on_checkout_after: Option<Duration>,
    /// `pool_idle_order`: `lifo` or `fifo`.
    pub idle_order: Option<IdleOrder>,
    /// `pool_fairness`: `strict` or `bounded:<duration>` ([`Fairness`]).
    pub fairness: Option<Fairness>,
    /// `pool_connect_backoff`.
    pub connect_backoff: Option<Duration>,
    /// `pool_connect_backoff_max`.
    pub connect_backoff_max: Option<Duration>,
    /// `pool_leak_detection_threshold`; `Some(None)` is `off`.
    pub leak_detection_threshold: Option<Option<Duration>>,
    /// `pool_slow_checkout_threshold`.
    pub slow_checkout_threshold: Option<Duration>,
    /// `pool_checkin_timeout`.
    pub checkin_timeout: Option<Duration>,
    /// `pool_*` keys this crate does not know, with their values, in the order given: the
    /// driver's own settings. A driver must reject any it does not know.
    pub driver: Vec<(String, String)>,
}

/// The largest count a `pool_*` key takes: PostgreSQL's largest `max_connections`. The
/// pool sizes its idle queue up front, so a typo such as `pool_max_size=1000000000` must not
/// reach it.
const MAX_COUNT: usize = 262_143;

/// The longest duration a key takes (a year): longer is a typo, and would overflow the
/// clock's arithmetic.
pub(crate) const MAX_DURATION: Duration = pg_pool_core::MAX_HUMAN_DURATION;

/// One `pool_*` value being parsed.
struct Value<'a> {
    key: &'a str,
    value: &'a str,
    origin: Origin,
}

impl Value<'_> {
    fn error(&self, problem: impl Into<String>) -> ConnInfoError {
        ConnInfoError::for_key(
            ConnInfoErrorKind::InvalidValue,
            self.key,
            &self.origin.label(),
            problem,
        )
    }

    fn shown(&self) -> String {
        if self.origin.may_show() {
            shown(self.value)
        } else {
            "the value".to_owned()
        }
    }

    fn count(&self) -> Result<usize, ConnInfoError> {
        if !self.value.bytes().all(|b| b.is_ascii_digit()) || self.value.is_empty() {
            return Err(self.error(format!("{} is not a whole number", self.shown())));
        }
        self.value
            .parse()
            .ok()
            .filter(|&n| n <= MAX_COUNT)
            .ok_or_else(|| {
                self.error(format!(
                    "{} is too large: PostgreSQL accepts at most {MAX_COUNT} connections",
                    self.shown()
                ))
            })
    }

    fn duration(&self) -> Result<Duration, ConnInfoError> {
        parse_duration(self.value).map_err(|why| self.error(format!("{} {why}", self.shown())))
    }

    fn optional_duration(&self) -> Result<Option<Duration>, ConnInfoError> {
        match self.value {
            "off" | "none" => Ok(None),
            _ => self.duration().map(Some),
        }
    }

    fn boolean(&self) -> Result<bool, ConnInfoError> {
        match self.value {
            "true" | "on" | "yes" | "1" => Ok(true),
            "false" | "off" | "no" | "0" => Ok(false),
            _ => Err(self.error(format!("{} is not a boolean (true or false)", self.shown()))),
        }
    }
}

impl PoolSettings {
    /// Sets `key` (which starts with `pool_`) from `value`.
    pub(crate) fn set(
        &mut self,
        key: &str,
        value: &str,
        origin: Origin,
    ) -> Result<(), ConnInfoError> {
        let v = Value { key, value, origin };
        match key {
            "pool_name" => self.name = Some(value.to_owned()),
            "pool_max_size" => self.max_size = Some(v.count()?),
            "pool_min_idle" => self.min_idle = Some(v.count()?),
            "pool_max_connecting" => self.max_connecting = Some(v.count()?),
            "pool_checkout_timeout" => self.checkout_timeout = Some(v.duration()?),
            "pool_connect_timeout" => self.connect_timeout = Some(v.duration()?),
            "pool_idle_timeout" => self.idle_timeout = Some(v.optional_duration()?),
            "pool_max_lifetime" => self.max_lifetime = Some(v.optional_duration()?),
            "pool_max_lifetime_jitter" => self.max_lifetime_jitter = Some(v.duration()?),
            "pool_reaper_interval" => self.reaper_interval = Some(v.duration()?),
            "pool_health_check_interval" => {
                self.health_check_interval = Some(v.optional_duration()?);
            }
            "pool_probe_timeout" => self.probe_timeout = Some(v.duration()?),
            "pool_test_on_checkout" => self.test_on_checkout = Some(v.boolean()?),
            "pool_test_on_checkout_after" => self.test_on_checkout_after = Some(v.duration()?),
            "pool_idle_order" => {
                self.idle_order = Some(match value {
                    "lifo" => IdleOrder::Lifo,
                    "fifo" => IdleOrder::Fifo,
                    _ => return Err(v.error(format!("{} is not one of lifo, fifo", v.shown()))),
                });
            }
            "pool_fairness" => {
                self.fairness = Some(value.parse().map_err(|_| {
                    v.error(format!(
                        "{} is not strict or bounded:<duration> with a bound above zero (for example bounded:1ms)",
                        v.shown()
                    ))
                })?);
            }
            "pool_connect_backoff" => self.connect_backoff = Some(v.duration()?),
            "pool_connect_backoff_max" => self.connect_backoff_max = Some(v.duration()?),
            "pool_leak_detection_threshold" => {
                self.leak_detection_threshold = Some(v.optional_duration()?);
            }
            "pool_slow_checkout_threshold" => self.slow_checkout_threshold = Some(v.duration()?),
            "pool_checkin_timeout" => self.checkin_timeout = Some(v.duration()?),
            // Each key comes once: the string's repeats were dropped before.
            _ => self.driver.push((key.to_owned(), value.to_owned())),
        }
        Ok(())
    }

    /// Copies every setting given onto `config`, leaving the others as they are. Run
    /// [`ConnPoolConfig::validate`] afterwards (every pool constructor does) to catch
    /// nonsense such as `pool_min_idle` above `pool_max_size`.
    pub fn apply(&self, config: &mut ConnPoolConfig) {
        fn set<T: Clone>(target: &mut T, value: &Option<T>) {
            if let Some(value) = value {
                *target = value.clone();
            }
        }
        set(&mut config.name, &self.name);
        set(&mut config.max_size, &self.max_size);
        set(&mut config.min_idle, &self.min_idle);
        set(&mut config.max_connecting, &self.max_connecting);
        set(&mut config.checkout_timeout, &self.checkout_timeout);
        set(&mut config.connect_timeout, &self.connect_timeout);
        set(&mut config.idle_timeout, &self.idle_timeout);
        set(&mut config.max_lifetime, &self.max_lifetime);
        set(&mut config.max_lifetime_jitter, &self.max_lifetime_jitter);
        set(&mut config.reaper_interval, &self.reaper_interval);
        set(
            &mut config.health_check_interval,
            &self.health_check_interval,
        );
        set(&mut config.probe_timeout, &self.probe_timeout);
        set(&mut config.test_on_checkout, &self.test_on_checkout);
        set(
            &mut config.test_on_checkout_after,
            &self.test_on_checkout_after,
        );
        set(&mut config.idle_order, &self.idle_order);
        set(&mut config.fairness, &self.fairness);
        set(&mut config.connect_backoff, &self.connect_backoff);
        set(&mut config.connect_backoff_max, &self.connect_backoff_max);
        set(
            &mut config.leak_detection_threshold,
            &self.leak_detection_threshold,
        );
        set(
            &mut config.slow_checkout_threshold,
            &self.slow_checkout_threshold,
        );
        set(&mut config.checkin_timeout, &self.checkin_timeout);
    }
}
