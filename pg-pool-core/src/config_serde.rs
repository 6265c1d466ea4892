//! `serde` support for [`ConnPoolConfig`] and [`IdleOrder`] (the `serde` feature).
//!
//! A configuration is a table whose keys are the field names of [`ConnPoolConfig`]:
//!
//! - every key is optional; an absent key takes the documented default;
//! - unknown keys are errors naming the key (`deny_unknown_fields`);
//! - durations are strings in the grammar of [`parse_duration`](crate::parse_duration)
//!   (`"500ms"`, `"30s"`, `"5m"`, `"1h30m"`); the fields that can be switched off
//!   (`idle_timeout`, `max_lifetime`, `health_check_interval`, `leak_detection_threshold`)
//!   also take `"off"`;
//! - `idle_order` is `"lifo"` or `"fifo"`;
//! - `fairness` is `"strict"` or `"bounded:<duration>"` (`"bounded:1ms"`, see
//!   [`Fairness`](crate::Fairness));
//! - the result is checked with [`ConnPoolConfig::validate`], so a configuration that
//!   deserializes is one a pool accepts; otherwise the error names the field.
//!
//! Serializing writes the same shape, durations in that grammar at millisecond precision,
//! `"off"` for a disabled setting, and never the password: `password` is left out, so
//! feeding the output back gives an empty password (take it from a secret store or the
//! connection string instead). A duration that the grammar cannot express (above a year,
//! or a non-zero duration below a millisecond) is a serialization error naming the field.

use std::time::Duration;

use serde::de::Error as _;
use serde::ser::SerializeStruct;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::{ConfigError, ConnPoolConfig, IdleOrder};
use crate::duration::{format_duration, parse_duration};
use crate::fairness::Fairness;

/// What a document gave, before defaults, duration parsing and validation.
#[derive(Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct Raw {
    addr: Option<String>,
    user: Option<String>,
    password: Option<Password>,
    database: Option<String>,
    name: Option<String>,
    min_idle: Option<usize>,
    max_size: Option<usize>,
    checkout_timeout: Option<String>,
    connect_timeout: Option<String>,
    idle_timeout: Option<String>,
    max_lifetime: Option<String>,
    max_lifetime_jitter: Option<String>,
    reaper_interval: Option<String>,
    health_check_interval: Option<String>,
    probe_timeout: Option<String>,
    test_on_checkout: Option<bool>,
    test_on_checkout_after: Option<String>,
    idle_order: Option<IdleOrder>,
    max_connecting: Option<usize>,
    connect_backoff: Option<String>,
    connect_backoff_max: Option<String>,
    leak_detection_threshold: Option<String>,
    slow_checkout_threshold: Option<String>,
    checkin_timeout: Option<String>,
    fairness: Option<String>,
}

/// A password: a string, and an error that never repeats a value given in its place (serde's
/// usual "invalid type: integer `1234`" would print it).
struct Password(String);

impl<'de> Deserialize<'de> for Password {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Password;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Password, E> {
                Ok(Password(v.to_owned()))
            }
            fn visit_bool<E: serde::de::Error>(self, _: bool) -> Result<Password, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_i64<E: serde::de::Error>(self, _: i64) -> Result<Password, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_u64<E: serde::de::Error>(self, _: u64) -> Result<Password, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_f64<E: serde::de::Error>(self, _: f64) -> Result<Password, E> {
                Err(E::custom(NOT_A_STRING))
            }
        }
        deserializer.deserialize_str(V)
    }
}

const NOT_A_STRING: &str = "`password` must be a string (the value is not shown)";

fn duration(field: &'static str, text: &str) -> Result<Duration, ConfigError> {
    parse_duration(text).map_err(|why| ConfigError::new(field, format!("{text:?} {why}")))
}

fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(value) = value {
        *target = value;
    }
}

fn set_duration(
    target: &mut Duration,
    field: &'static str,
    text: Option<String>,
) -> Result<(), ConfigError> {
    if let Some(text) = text {
        *target = duration(field, &text)?;
    }
    Ok(())
}

fn set_optional_duration(
    target: &mut Option<Duration>,
    field: &'static str,
    text: Option<String>,
) -> Result<(), ConfigError> {
    match text.as_deref() {
        None => {}
        Some("off") => *target = None,
        Some(text) => *target = Some(duration(field, text)?),
    }
    Ok(())
}

impl Raw {
    fn into_config(self) -> Result<ConnPoolConfig, ConfigError> {
        let mut c = ConnPoolConfig::default();
        set(&mut c.addr, self.addr);
        set(&mut c.user, self.user);
        set(&mut c.password, self.password.map(|p| p.0));
        set(&mut c.database, self.database);
        set(&mut c.name, self.name);
        set(&mut c.min_idle, self.min_idle);
        set(&mut c.max_size, self.max_size);
        set_duration(
            &mut c.checkout_timeout,
            "checkout_timeout",
            self.checkout_timeout,
        )?;
        set_duration(
            &mut c.connect_timeout,
            "connect_timeout",
            self.connect_timeout,
        )?;
        set_optional_duration(&mut c.idle_timeout, "idle_timeout", self.idle_timeout)?;
        set_optional_duration(&mut c.max_lifetime, "max_lifetime", self.max_lifetime)?;
        set_duration(
            &mut c.max_lifetime_jitter,
            "max_lifetime_jitter",
            self.max_lifetime_jitter,
        )?;
        set_duration(
            &mut c.reaper_interval,
            "reaper_interval",
            self.reaper_interval,
        )?;
        set_optional_duration(
            &mut c.health_check_interval,
            "health_check_interval",
            self.health_check_interval,
        )?;
        set_duration(&mut c.probe_timeout, "probe_timeout", self.probe_timeout)?;
        set(&mut c.test_on_checkout, self.test_on_checkout);
        set_duration(
            &mut c.test_on_checkout_after,
            "test_on_checkout_after",
            self.test_on_checkout_after,
        )?;
        set(&mut c.idle_order, self.idle_order);
        set(&mut c.max_connecting, self.max_connecting);
        set_duration(
            &mut c.connect_backoff,
            "connect_backoff",
            self.connect_backoff,
        )?;
        set_duration(
            &mut c.connect_backoff_max,
            "connect_backoff_max",
            self.connect_backoff_max,
        )?;
        set_optional_duration(
            &mut c.leak_detection_threshold,
            "leak_detection_threshold",
            self.leak_detection_threshold,
        )?;
        set_duration(
            &mut c.slow_checkout_threshold,
            "slow_checkout_threshold",
            self.slow_checkout_threshold,
        )?;
        set_duration(
            &mut c.checkin_timeout,
            "checkin_timeout",
            self.checkin_timeout,
        )?;
        if let Some(text) = self.fairness {
            c.fairness = text.parse()?;
        }
        c.validate()?;
        Ok(c)
    }
}

/// Reads a table whose keys are the field names of [`ConnPoolConfig`]:
///
/// - every key is optional; an absent key takes the documented default;
/// - unknown keys are errors naming the key;
/// - durations are strings in the grammar of [`parse_duration`](crate::parse_duration)
///   (`"500ms"`, `"30s"`, `"5m"`, `"1h30m"`); the fields that can be switched off
///   (`idle_timeout`, `max_lifetime`, `health_check_interval`, `leak_detection_threshold`)
///   also take `"off"`; a malformed one is an error naming the field;
/// - `idle_order` is `"lifo"` or `"fifo"`;
/// - `fairness` is `"strict"` or `"bounded:<duration>"` (`"bounded:1ms"`), the bound
///   greater than zero;
/// - the result has passed [`ConnPoolConfig::validate`]: a failure is the deserialization
///   error, with the [`ConfigError`] message naming the field.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pg_pool_core::ConnPoolConfig;
///
/// let config: ConnPoolConfig = toml::from_str(
///     "max_size = 4\ncheckout_timeout = \"2s\"\nidle_timeout = \"off\"",
/// )?;
/// assert_eq!(config.max_size, 4);
/// assert_eq!(config.checkout_timeout, Duration::from_secs(2));
/// assert_eq!(config.idle_timeout, None);
/// assert_eq!(config.min_idle, 0); // the default
///
/// let error = toml::from_str::<ConnPoolConfig>("max_size = 2\nmin_idle = 3").unwrap_err();
/// assert!(error.to_string().contains("`min_idle`"));
/// # Ok::<(), toml::de::Error>(())
/// ```
impl<'de> Deserialize<'de> for ConnPoolConfig {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        Raw::deserialize(deserializer)?
            .into_config()
            .map_err(D::Error::custom)
    }
}

/// Writes every field but `password` (never serialized), durations as `"1h30m"`-style
/// strings and disabled settings as `"off"`.
impl Serialize for ConnPoolConfig {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        fn text<E: serde::ser::Error>(field: &str, d: Duration) -> Result<String, E> {
            format_duration(d).ok_or_else(|| {
                E::custom(format!(
                    "pool config field `{field}` ({d:?}) cannot be written as a duration: \
                     between 1ms and 8760h, or zero"
                ))
            })
        }
        fn optional<E: serde::ser::Error>(field: &str, d: Option<Duration>) -> Result<String, E> {
            d.map_or_else(|| Ok("off".to_owned()), |d| text(field, d))
        }
        let mut s = serializer.serialize_struct("ConnPoolConfig", 24)?;
        s.serialize_field("addr", &self.addr)?;
        s.serialize_field("user", &self.user)?;
        s.skip_field("password")?;
        s.serialize_field("database", &self.database)?;
        s.serialize_field("name", &self.name)?;
        s.serialize_field("min_idle", &self.min_idle)?;
        s.serialize_field("max_size", &self.max_size)?;
        macro_rules! durations {
            ($kind:ident: $($field:ident),*) => {$(
                s.serialize_field(
                    stringify!($field),
                    &$kind::<S::Error>(stringify!($field), self.$field)?,
                )?;
            )*};
        }
        durations!(text: checkout_timeout, connect_timeout);
        durations!(optional: idle_timeout, max_lifetime);
        durations!(text: max_lifetime_jitter, reaper_interval);
        durations!(optional: health_check_interval);
        durations!(text: probe_timeout);
        s.serialize_field("test_on_checkout", &self.test_on_checkout)?;
        durations!(text: test_on_checkout_after);
        s.serialize_field("idle_order", &self.idle_order)?;
        s.serialize_field("max_connecting", &self.max_connecting)?;
        durations!(text: connect_backoff, connect_backoff_max);
        durations!(optional: leak_detection_threshold);
        durations!(text: slow_checkout_threshold, checkin_timeout);
        let fairness = match self.fairness {
            Fairness::Strict => "strict".to_owned(),
            Fairness::Bounded(bound) => format!("bounded:{}", text::<S::Error>("fairness", bound)?),
        };
        s.serialize_field("fairness", &fairness)?;
        s.end()
    }
}
