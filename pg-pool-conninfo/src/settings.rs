//! [`ConnSettings`]: a driver's connection and pool settings as a configuration file holds
//! them (the `serde` feature).

use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::env::process_env;
use crate::error::ConnInfoError;
use crate::info::ConnInfo;
use crate::pool::PoolSettings;
use crate::raw::Origin;
use crate::secret::Secret;

/// Connection and pool settings for a PostgreSQL driver, deserialized from a configuration
/// file (TOML, JSON, ...), and resolved into a [`ConnInfo`] that
/// `pg_pool_wire::WireConfig::from_conninfo` and
/// `pg_pool_tokio_postgres::PgConfig::from_conninfo` take.
///
/// ```toml
/// url = "postgres://app@db.internal:5432/shop?sslmode=require"   # optional
/// password = "..."                                               # optional
///
/// [pool]            # optional; keys are the `pool_*` keys without the prefix
/// max_size = 16
/// checkout_timeout = "5s"
/// idle_timeout = "off"
/// statement_cache = 64   # a driver's own `pool_*` key (pg-pool-tokio-postgres)
/// ```
///
/// - `url`: a libpq connection string (URL or `key=value`, see the crate documentation).
///   Absent: the environment (`DATABASE_URL`, else the `PG*` variables), as
///   [`ConnInfo::from_env`].
/// - `password`: replaces whatever password the string, `PGPASSWORD` or the passfile gave.
/// - `pool`: the `pool_*` keys of a connection string, without the prefix, with the same
///   grammar (durations such as `"30s"` or `"off"`, counts as integers, booleans). The
///   string's own keys are read first and the table overrides them. A key that is not a
///   pool setting is kept for the driver ([`PoolSettings::driver`]), which rejects it, naming
///   `pool_<key>`, if it does not know it.
///
/// Unknown top-level keys are errors. Resolution order, later wins: the pool's defaults, the
/// string's `pool_*` keys, the `pool` table, then the `PG_POOL_*` environment variables of
/// [`POOL_ENV_VARS`](crate::POOL_ENV_VARS). Checking against the pool's own limits
/// (`min_idle` above `max_size`, ...) happens when the driver builds the pool config and the
/// pool validates it.
///
/// `Debug` shows neither the password nor the string (which may hold one).
///
/// # Examples
///
/// ```
/// use pg_pool_conninfo::ConnSettings;
///
/// let settings: ConnSettings = serde_json::from_str(
///     r#"{"url": "postgres://app@db/shop?pool_max_size=4", "password": "s3cret",
///         "pool": {"max_size": 8, "idle_timeout": "off"}}"#,
/// )?;
/// assert!(!format!("{settings:?}").contains("s3cret"));
/// let info = settings.conninfo_with_env(|_| None)?;
/// assert_eq!(info.pool.max_size, Some(8));
/// assert_eq!(info.pool.idle_timeout, Some(None));
/// assert_eq!(info.password.as_ref().map(|p| p.expose()), Some("s3cret"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
#[non_exhaustive]
pub struct ConnSettings {
    /// A libpq connection string; `None`: the environment.
    #[serde(default)]
    pub url: Option<String>,
    /// A password replacing the one the string or the environment gives.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Pool settings laid over the string's `pool_*` keys.
    #[serde(default, deserialize_with = "pool_table")]
    pub pool: PoolSettings,
}

impl fmt::Debug for ConnSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnSettings")
            .field("url", &self.url.as_ref().map(|_| "<redacted>"))
            .field("password", &self.password)
            .field("pool", &self.pool)
            .finish()
    }
}

impl ConnSettings {
    /// Resolves the settings against this process's environment: see
    /// [`ConnSettings::conninfo_with_env`].
    ///
    /// # Errors
    ///
    /// As [`ConnSettings::conninfo_with_env`].
    pub fn conninfo(&self) -> Result<ConnInfo, ConnInfoError> {
        self.conninfo_with_env(process_env)
    }

    /// Resolves the settings: parses `url` with libpq's environment filling what it leaves
    /// unset ([`ConnInfo::parse_with_env`]; without `url`, [`ConnInfo::from_env`]), sets
    /// `password`, lays the `pool` table over the string's `pool_*` keys and then the
    /// `PG_POOL_*` variables ([`PoolSettings::from_env`]) over both.
    ///
    /// # Errors
    ///
    /// A [`ConnInfoError`] for the string, a variable (naming it), or the resolved
    /// connection info ([`ConnInfo::validate`]).
    pub fn conninfo_with_env(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<ConnInfo, ConnInfoError> {
        let mut info = match &self.url {
            Some(url) => ConnInfo::parse_with_env(url, &env)?,
            None => ConnInfo::from_env(&env)?,
        };
        if let Some(password) = &self.password {
            info.password = Some(password.clone());
        }
        info.pool.overlay(&self.pool);
        info.pool.overlay(&PoolSettings::from_env(&env)?);
        info.validate()?;
        Ok(info)
    }
}

/// A string. Any other value is an error that does not repeat it (serde's usual
/// "invalid type: integer `1234`" would print the secret).
impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        const NOT_A_STRING: &str = "a secret must be a string (the value is not shown)";
        struct V;
        impl Visitor<'_> for V {
            type Value = Secret;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Secret, E> {
                Ok(Secret::new(v))
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Secret, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_i64<E: de::Error>(self, _: i64) -> Result<Secret, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_u64<E: de::Error>(self, _: u64) -> Result<Secret, E> {
                Err(E::custom(NOT_A_STRING))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Secret, E> {
                Err(E::custom(NOT_A_STRING))
            }
        }
        deserializer.deserialize_str(V)
    }
}

/// A pool table value: text, an integer or a boolean, read as its connection-string text.
struct Scalar(String);

impl<'de> Deserialize<'de> for Scalar {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct V;
        impl Visitor<'_> for V {
            type Value = Scalar;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string (such as \"30s\" or \"off\"), an integer or a boolean")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Scalar, E> {
                Ok(Scalar(v.to_owned()))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Scalar, E> {
                Ok(Scalar(v.to_string()))
            }
        }
        deserializer.deserialize_any(V)
    }
}

fn pool_table<'de, D: Deserializer<'de>>(deserializer: D) -> Result<PoolSettings, D::Error> {
    struct V;
    impl<'de> Visitor<'de> for V {
        type Value = PoolSettings;
        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a table of pool settings")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<PoolSettings, A::Error> {
            let mut pool = PoolSettings::default();
            let mut seen = std::collections::HashSet::new();
            while let Some((key, Scalar(value))) = map.next_entry::<String, Scalar>()? {
                if key.starts_with("pool_") {
                    return Err(de::Error::custom(format!(
                        "`{key}` in the `pool` table: write it without the `pool_` prefix"
                    )));
                }
                if !seen.insert(key.clone()) {
                    return Err(de::Error::custom(format!(
                        "`{key}` appears twice in the `pool` table"
                    )));
                }
                pool.set(&format!("pool_{key}"), &value, Origin::PoolTable)
                    .map_err(de::Error::custom)?;
            }
            Ok(pool)
        }
    }
    deserializer.deserialize_map(V)
}
