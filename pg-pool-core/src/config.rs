//! Pool configuration: plain data with defaults, validated when a pool is built.

use std::error::Error;
use std::fmt;
use std::time::Duration;

use crate::fairness::Fairness;

/// Which idle connection a checkout takes first.
///
/// With the `serde` feature it is written `"lifo"` or `"fifo"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[cfg_attr(
    feature = "serde",
    derive(serde::Serialize, serde::Deserialize),
    serde(rename_all = "lowercase")
)]
pub enum IdleOrder {
    /// Most recently returned first. Keeps a hot working set warm and lets surplus connections
    /// age out through the idle timeout.
    #[default]
    Lifo,
    /// Least recently returned first. Spreads use evenly over every idle connection.
    Fifo,
}

/// Configuration of a pool.
///
/// Plain data: build it with `ConnPoolConfig::default()` and set fields. Nonsense (a zero
/// `max_size`, `min_idle` above `max_size`, zero timeouts) is reported by
/// [`ConnPoolConfig::validate`], which every pool constructor calls.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pg_pool_core::ConnPoolConfig;
///
/// let mut config = ConnPoolConfig::default();
/// config.max_size = 16;
/// config.min_idle = 2;
/// config.checkout_timeout = Duration::from_secs(5);
/// assert!(config.validate().is_ok());
///
/// config.min_idle = 32;
/// assert!(config.validate().is_err());
/// ```
///
/// Every duration may be as long as you like, `Duration::MAX` included: deadlines saturate
/// at a hundred years from now, which no process outlives. `Debug` never prints the
/// password.
///
/// With the `serde` feature it implements `Deserialize` (human durations such as `"30s"`,
/// absent fields at their defaults, unknown fields rejected, [`ConnPoolConfig::validate`]
/// applied) and `Serialize` (never the password).
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub struct ConnPoolConfig {
    /// Server address (`host:port`) handed to [`Connect::connect`](crate::Connect::connect).
    /// Default: `"127.0.0.1:5432"`, the local PostgreSQL default.
    pub addr: String,
    /// User name handed to the connector. Default: `"postgres"`.
    pub user: String,
    /// Password handed to the connector. Default: empty (trust or peer authentication).
    pub password: String,
    /// Database name handed to the connector. Default: `"postgres"`, which always exists.
    pub database: String,
    /// Name of the pool in metrics and log events. Default: `"pg-pool"`.
    pub name: String,
    /// Idle connections the pool keeps ready, opening new ones in the background when
    /// checkouts take them. Default: `0`, so an unused pool holds no server resources.
    pub min_idle: usize,
    /// Most connections the pool holds at once: idle, checked out, being opened or reset.
    /// Default: `10`, a safe share of PostgreSQL's default `max_connections` of 100.
    pub max_size: usize,
    /// Longest a `get()` may take altogether: waiting, connecting, validating and running
    /// hooks all share this one deadline. Default: 30 s, long enough to ride out a server
    /// restart, short enough to surface an outage.
    pub checkout_timeout: Duration,
    /// Longest a single connection attempt (driver connect plus the create hook) may take,
    /// enforced by the pool whatever the driver does. Default: 10 s.
    pub connect_timeout: Duration,
    /// Idle connections above `min_idle` are closed after sitting idle this long. `None`
    /// keeps them. Default: 10 min, below common server and firewall idle limits.
    pub idle_timeout: Option<Duration>,
    /// Connections are closed once this old, measured from creation, also when returned.
    /// `None` keeps them forever. Default: 30 min, so credentials, DNS and failover changes
    /// are picked up.
    pub max_lifetime: Option<Duration>,
    /// Up to this much is taken off each connection's `max_lifetime`, sampled once per
    /// connection, so connections created together do not expire together. Default: 60 s.
    pub max_lifetime_jitter: Duration,
    /// How often the background reaper enforces `idle_timeout` and `max_lifetime`, refills
    /// to `min_idle` and reports leaks. Default: 5 s.
    pub reaper_interval: Duration,
    /// How often the health probe pings idle connections. `None` disables the probe.
    /// Default: `None`; test-on-checkout already covers connections that sat idle.
    pub health_check_interval: Option<Duration>,
    /// Longest a ping may take, in the health probe and in test-on-checkout. Default: 5 s.
    pub probe_timeout: Duration,
    /// Ping a connection at checkout when it has sat idle for at least
    /// `test_on_checkout_after`. Default: `true`.
    pub test_on_checkout: bool,
    /// Idle time after which test-on-checkout pings. Connections used more recently are
    /// handed out without a round trip. Default: 1 s.
    pub test_on_checkout_after: Duration,
    /// Which idle connection a checkout takes. Default: [`IdleOrder::Lifo`].
    pub idle_order: IdleOrder,
    /// Most connection attempts in flight at once. Default: `2`, enough to fill a pool fast
    /// without a reconnect storm when many connections expire together.
    pub max_connecting: usize,
    /// First delay after a failed connect before the next attempt; doubles after each further
    /// failure, with jitter. Default: 50 ms.
    pub connect_backoff: Duration,
    /// Longest delay between attempts while connects keep failing. Default: 5 s.
    pub connect_backoff_max: Duration,
    /// Warn, naming the checkout site, when a connection is held longer than this. `None`
    /// disables leak detection at no cost. Default: `None`.
    pub leak_detection_threshold: Option<Duration>,
    /// A checkout that had to wait longer than this logs a `slow checkout` warning with the
    /// time it waited. Default: 1 s.
    pub slow_checkout_threshold: Duration,
    /// Longest the asynchronous part of a return (reset and checkin hook) or a close may take
    /// before the connection is destroyed. Default: 5 s.
    pub checkin_timeout: Duration,
    /// How connections are shared when callers outnumber them: strict FIFO, or overtaking
    /// within a bound. Default: see [`Fairness`].
    pub fairness: Fairness,
}

impl Default for ConnPoolConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:5432".into(),
            user: "postgres".into(),
            password: String::new(),
            database: "postgres".into(),
            name: "pg-pool".into(),
            min_idle: 0,
            max_size: 10,
            checkout_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Some(Duration::from_secs(600)),
            max_lifetime: Some(Duration::from_secs(1800)),
            max_lifetime_jitter: Duration::from_secs(60),
            reaper_interval: Duration::from_secs(5),
            health_check_interval: None,
            probe_timeout: Duration::from_secs(5),
            test_on_checkout: true,
            test_on_checkout_after: Duration::from_secs(1),
            idle_order: IdleOrder::Lifo,
            max_connecting: 2,
            connect_backoff: Duration::from_millis(50),
            connect_backoff_max: Duration::from_secs(5),
            leak_detection_threshold: None,
            slow_checkout_threshold: Duration::from_secs(1),
            checkin_timeout: Duration::from_secs(5),
            fairness: Fairness::default(),
        }
    }
}

// Manual impl: the password must never reach a log.
impl fmt::Debug for ConnPoolConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnPoolConfig")
            .field("addr", &self.addr)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .field("name", &self.name)
            .field("min_idle", &self.min_idle)
            .field("max_size", &self.max_size)
            .field("checkout_timeout", &self.checkout_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("max_lifetime", &self.max_lifetime)
            .field("max_lifetime_jitter", &self.max_lifetime_jitter)
            .field("reaper_interval", &self.reaper_interval)
            .field("health_check_interval", &self.health_check_interval)
            .field("probe_timeout", &self.probe_timeout)
            .field("test_on_checkout", &self.test_on_checkout)
            .field("test_on_checkout_after", &self.test_on_checkout_after)
            .field("idle_order", &self.idle_order)
            .field("max_connecting", &self.max_connecting)
            .field("connect_backoff", &self.connect_backoff)
            .field("connect_backoff_max", &self.connect_backoff_max)
            .field("leak_detection_threshold", &self.leak_detection_threshold)
            .field("slow_checkout_threshold", &self.slow_checkout_threshold)
            .field("checkin_timeout", &self.checkin_timeout)
            .field("fairness", &self.fairness)
            .finish()
    }
}

impl ConnPoolConfig {
    /// The largest `max_size` a pool accepts: 1,048,576 connections, far beyond what any
    /// server serves, small enough that the pool's bookkeeping for it can never exhaust
    /// memory.
    pub const MAX_SIZE_LIMIT: usize = 1 << 20;

    pub(crate) fn check_max_size(max_size: usize) -> Result<(), ConfigError> {
        if max_size == 0 || max_size > Self::MAX_SIZE_LIMIT {
            return Err(ConfigError::new(
                "max_size",
                format!(
                    "is {max_size} but must be between 1 and {}",
                    Self::MAX_SIZE_LIMIT
                ),
            ));
        }
        Ok(())
    }

    /// Checks the configuration for nonsense.
    ///
    /// Every configuration this accepts works: no value it lets through can make a pool
    /// panic, abort or overflow later.
    ///
    /// # Errors
    ///
    /// Returns a [`ConfigError`] naming the first offending field and what is allowed.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |field, problem: String| Err(ConfigError { field, problem });
        Self::check_max_size(self.max_size)?;
        if self.min_idle > self.max_size {
            return err(
                "min_idle",
                format!(
                    "is {} but max_size is {}; min_idle cannot exceed max_size",
                    self.min_idle, self.max_size
                ),
            );
        }
        if self.max_connecting == 0 {
            return err("max_connecting", "must be at least 1".into());
        }
        let nonzero = [
            ("checkout_timeout", Some(self.checkout_timeout)),
            ("connect_timeout", Some(self.connect_timeout)),
            ("idle_timeout", self.idle_timeout),
            ("max_lifetime", self.max_lifetime),
            ("reaper_interval", Some(self.reaper_interval)),
            ("health_check_interval", self.health_check_interval),
            ("probe_timeout", Some(self.probe_timeout)),
            ("connect_backoff", Some(self.connect_backoff)),
            ("checkin_timeout", Some(self.checkin_timeout)),
            ("leak_detection_threshold", self.leak_detection_threshold),
        ];
        for (field, value) in nonzero {
            if value == Some(Duration::ZERO) {
                return err(field, "must be greater than zero".into());
            }
        }
        self.fairness.check()?;
        if self.connect_backoff_max < self.connect_backoff {
            return err(
                "connect_backoff_max",
                "must be at least connect_backoff".into(),
            );
        }
        if let Some(lifetime) = self.max_lifetime
            && self.max_lifetime_jitter >= lifetime
        {
            return err(
                "max_lifetime_jitter",
                format!("must be below max_lifetime ({lifetime:?})"),
            );
        }
        Ok(())
    }
}

/// A configuration value that makes no sense, found by [`ConnPoolConfig::validate`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    field: &'static str,
    problem: String,
}

impl ConfigError {
    pub(crate) fn new(field: &'static str, problem: String) -> Self {
        Self { field, problem }
    }

    /// The offending field of [`ConnPoolConfig`].
    pub fn field(&self) -> &'static str {
        self.field
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid pool config: `{}` {}", self.field, self.problem)
    }
}

impl Error for ConfigError {}
