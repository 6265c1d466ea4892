//! Connection settings, from code or from a libpq connection string.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use pg_pool_conninfo::{ConnInfo, Host, PoolSettings, TargetSessionAttrs, TlsSettings};
use pg_pool_core::ConnPoolConfig;

use crate::error::WireError;

/// Startup parameter names a [`WireConfig::params`] entry may not use: the startup message
/// carries them already (`user`, `database`, `application_name`) or they change the protocol
/// (`replication`, `_pq_.*` extensions).
const RESERVED_PARAMS: [&str; 4] = ["user", "database", "application_name", "replication"];

/// Where and how to connect: address, credentials, database, startup parameters, TLS and
/// pool settings.
///
/// Plain data with a [`Default`]; build it in code, or parse a libpq connection string (a
/// `postgres://` URL or `key=value` pairs, as `pg_pool_conninfo` documents them) with
/// [`WireConfig::from_url`] (also [`FromStr`]), or take it from libpq's environment variables
/// with [`WireConfig::from_env`]. Startup parameters such as `application_name` are sent in
/// the startup message, so they are in effect from the first query and visible in
/// `pg_stat_activity`; they survive `DISCARD ALL` and `RESET ALL`.
///
/// pg-wired connects to one TCP address and does not check the server's role, so a string
/// with several hosts, a unix socket directory or a `target_session_attrs` other than `any`
/// is refused with [`WireError::Config`] naming the key (pg-pool-tokio-postgres supports
/// them). `pool_*` keys flow into [`WireConfig::pool_config`]; pg-pool-wire has no
/// driver-specific `pool_*` key, so an unknown one is an error.
///
/// Server settings other than the ones the connection string accepts go through
/// `options=-c name=value`, or in code through [`WireConfig::with_param`].
///
/// pg-wired has no connect timeout of its own: the pool bounds every attempt by
/// [`ConnPoolConfig::connect_timeout`]; a `connect_timeout` key is carried in
/// [`WireConfig::connect_timeout`] and applied by [`WireConfig::pool_config`].
///
/// # Examples
///
/// ```
/// use pg_pool_wire::WireConfig;
///
/// let config = WireConfig::from_url(
///     "postgres://app:p%40ss@127.0.0.1:6543/orders?application_name=billing",
/// )?;
/// assert_eq!(config.addr, "127.0.0.1:6543");
/// assert_eq!(config.user, "app");
/// assert_eq!(config.password, "p@ss");
/// assert_eq!(config.database, "orders");
/// assert_eq!(config.application_name.as_deref(), Some("billing"));
/// assert!(!format!("{config:?}").contains("p@ss"));
/// # Ok::<(), pg_pool_wire::WireError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WireConfig {
    /// Server address, `host:port` (IPv6 as `[::1]:5432`). Default: `"127.0.0.1:5432"`.
    pub addr: String,
    /// User name. Default: `"postgres"`.
    pub user: String,
    /// Password. Default: empty (trust authentication).
    pub password: String,
    /// Database name. Default: `"postgres"` (from a string: the user name).
    pub database: String,
    /// `application_name` sent at startup, shown in `pg_stat_activity`. Default: `None`
    /// (the server's default, empty).
    pub application_name: Option<String>,
    /// Further startup parameters (`options`, `client_encoding`, any server setting such as
    /// `idle_session_timeout`), sent as given. Default: none.
    pub params: Vec<(String, String)>,
    /// Connect timeout from the string, applied by [`WireConfig::pool_config`]. Default:
    /// `None` (the pool's own default).
    pub connect_timeout: Option<Duration>,
    /// TLS with libpq's meaning, as far as pg-wired can honour it (see
    /// [`WireTls`](crate::WireTls)). Default: `TlsSettings::default()` (`prefer`).
    pub tls: TlsSettings,
    /// Pool settings from the string (`pool_max_size`, ...), applied by
    /// [`WireConfig::pool_config`]. Default: none.
    pub pool: PoolSettings,
}

impl Default for WireConfig {
    fn default() -> Self {
        Self {
            addr: "127.0.0.1:5432".into(),
            user: "postgres".into(),
            password: String::new(),
            database: "postgres".into(),
            application_name: None,
            params: Vec::new(),
            connect_timeout: None,
            tls: TlsSettings::default(),
            pool: PoolSettings::default(),
        }
    }
}

impl WireConfig {
    /// The settings of `ConnPool::new`'s four strings, with every other setting at its
    /// default (TLS as libpq's `prefer`).
    pub(crate) fn from_target(target: &pg_pool_core::ConnectTarget) -> Self {
        Self {
            addr: target.addr.clone(),
            user: target.user.clone(),
            password: target.password.clone(),
            database: target.database.clone(),
            ..Self::default()
        }
    }
}

// Manual impl: the password must never reach a log.
impl fmt::Debug for WireConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WireConfig")
            .field("addr", &self.addr)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .field("application_name", &self.application_name)
            .field("params", &self.params)
            .field("connect_timeout", &self.connect_timeout)
            .field("tls", &self.tls)
            .field("pool", &self.pool)
            .finish()
    }
}

impl FromStr for WireConfig {
    type Err = WireError;

    fn from_str(s: &str) -> Result<Self, WireError> {
        Self::from_url(s)
    }
}

impl WireConfig {
    /// Parses a libpq connection string: `postgres://user:password@host:port/database?key=value`
    /// or `host=... user=... key=value`. Every part is optional: the port defaults to 5432,
    /// the user to `postgres`, the database to the user name. Environment variables are not
    /// read (see [`WireConfig::from_env`]); a `passfile` key is, when no password is given.
    ///
    /// # Errors
    ///
    /// [`WireError::ConnInfo`] for a malformed string, an unknown key or an invalid value
    /// (never showing the user name or password); [`WireError::Config`] for a valid setting
    /// pg-pool-wire cannot honour (several hosts, a unix socket, `target_session_attrs`, an
    /// unknown `pool_*` key).
    pub fn from_url(s: &str) -> Result<Self, WireError> {
        // No environment; only a `passfile` key given in the string is read.
        Self::from_conninfo(ConnInfo::parse_with_env(s, |_| None)?)
    }

    /// Reads libpq's environment: `DATABASE_URL` if set, with `PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGPASSWORD`, `PGDATABASE`, ... and the password file filling what it leaves unset
    /// (see `ConnInfo::parse_with_env`).
    ///
    /// # Errors
    ///
    /// As [`WireConfig::from_url`], naming the variable at fault.
    pub fn from_env() -> Result<Self, WireError> {
        Self::from_env_with(pg_pool_conninfo::process_env)
    }

    /// [`WireConfig::from_env`] with the variables looked up by `env` (for tests, or a
    /// configuration source of your own).
    ///
    /// # Errors
    ///
    /// As [`WireConfig::from_env`].
    ///
    /// # Examples
    ///
    /// ```
    /// use pg_pool_wire::WireConfig;
    ///
    /// let config = WireConfig::from_env_with(|name| match name {
    ///     "PGHOST" => Some("10.0.0.7".into()),
    ///     "PGUSER" => Some("app".into()),
    ///     _ => None,
    /// })?;
    /// assert_eq!((config.addr.as_str(), config.database.as_str()), ("10.0.0.7:5432", "app"));
    /// # Ok::<(), pg_pool_wire::WireError>(())
    /// ```
    pub fn from_env_with(env: impl Fn(&str) -> Option<String>) -> Result<Self, WireError> {
        Self::from_conninfo(ConnInfo::from_env(env)?)
    }

    /// The settings of a parsed connection string.
    ///
    /// # Errors
    ///
    /// [`WireError::Config`] naming the key pg-pool-wire cannot honour: several hosts, a
    /// unix socket directory, a `target_session_attrs` other than `any`, an unknown
    /// `pool_*` key; or a value [`WireConfig::validate`] refuses.
    pub fn from_conninfo(info: ConnInfo) -> Result<Self, WireError> {
        let mut config = WireConfig::default();
        match info.hosts.as_slice() {
            [] => {}
            [one] => match &one.host {
                Host::Tcp(name) if name.contains(':') => {
                    config.addr = format!("[{name}]:{}", one.port)
                }
                Host::Tcp(name) => config.addr = format!("{name}:{}", one.port),
                _ => {
                    return Err(WireError::config(
                        "host",
                        "is a unix socket directory; pg-wired connects over TCP only",
                    ));
                }
            },
            several => {
                return Err(WireError::config(
                    "host",
                    format!(
                        "lists {} hosts; pg-pool-wire connects to exactly one \
                         (pg-pool-tokio-postgres tries several in order)",
                        several.len()
                    ),
                ));
            }
        }
        if info.target_session_attrs != TargetSessionAttrs::Any {
            return Err(WireError::config(
                "target_session_attrs",
                "pg-pool-wire does not check the server's role; only any is supported \
                 (pg-pool-tokio-postgres supports read-write and read-only)",
            ));
        }
        if info.keepalives.is_set() {
            return Err(WireError::config(
                "keepalives",
                "pg-pool-wire cannot set socket options (pg-wired owns its socket); \
                 remove the keepalives keys or use pg-pool-tokio-postgres",
            ));
        }
        if info.tcp_user_timeout.is_some() {
            return Err(WireError::config(
                "tcp_user_timeout",
                "pg-pool-wire cannot set socket options (pg-wired owns its socket); \
                 remove it or use pg-pool-tokio-postgres",
            ));
        }
        if let Some((key, _)) = info.pool.driver.first() {
            return Err(WireError::config(
                key,
                "is not a pool setting pg-pool-wire knows",
            ));
        }
        if let Some(user) = info.user.as_ref() {
            config.user.clone_from(user);
        }
        if let Some(password) = &info.password {
            config.password = password.expose().to_owned();
        }
        config.database = info.dbname.clone().unwrap_or_else(|| config.user.clone());
        config.application_name = info.effective_application_name().map(str::to_owned);
        if let Some(options) = info.options {
            config.params.push(("options".into(), options));
        }
        config.params.extend(info.params);
        config.connect_timeout = info.connect_timeout;
        config.tls = info.tls;
        config.pool = info.pool;
        config.validate()?;
        Ok(config)
    }

    /// Checks what goes into the startup message: no NUL byte in the user, password,
    /// database, application name or any startup parameter (one would end the value early
    /// and smuggle in parameters of its own), no empty or reserved parameter name (`user`,
    /// `database`, `application_name`, `replication`, `_pq_.*`), a non-empty address.
    /// Called by [`WireConfig::from_url`] and before every connection attempt, so a config
    /// built in code is checked too.
    ///
    /// # Errors
    ///
    /// [`WireError::Config`] naming the field (never showing the password or user name).
    pub fn validate(&self) -> Result<(), WireError> {
        let nul = |field: &str| {
            WireError::config(
                field,
                "contains a NUL byte, which no PostgreSQL protocol message can carry",
            )
        };
        if self.addr.is_empty() {
            return Err(WireError::config("addr", "is empty"));
        }
        let fields = [
            ("addr", self.addr.as_str()),
            ("user", self.user.as_str()),
            ("password", self.password.as_str()),
            ("database", self.database.as_str()),
            (
                "application_name",
                self.application_name.as_deref().unwrap_or(""),
            ),
        ];
        for (field, value) in fields {
            if value.contains('\0') {
                return Err(nul(field));
            }
        }
        for (name, value) in &self.params {
            if name.is_empty() || name.contains('\0') {
                return Err(WireError::config(
                    "params",
                    "a startup parameter name is empty or contains a NUL byte",
                ));
            }
            if RESERVED_PARAMS.contains(&name.as_str()) || name.starts_with("_pq_.") {
                return Err(WireError::config(
                    name,
                    "cannot be set as a startup parameter here (use the field of its own, if any)",
                ));
            }
            if value.contains('\0') {
                return Err(nul(name));
            }
        }
        Ok(())
    }

    /// A [`ConnPoolConfig`] with this address, user, password and database (for pools built
    /// with `ConnPool::new`), this connect timeout if set, and the string's `pool_*`
    /// settings (`pool_connect_timeout` wins over `connect_timeout`); every other field has
    /// its default.
    ///
    /// # Examples
    ///
    /// ```
    /// use pg_pool_wire::WireConfig;
    ///
    /// let wire = WireConfig::from_url("postgres://app@db.internal:5433/shop?connect_timeout=3&pool_max_size=4")?;
    /// let pool = wire.pool_config();
    /// assert_eq!(pool.addr, "db.internal:5433");
    /// assert_eq!(pool.connect_timeout.as_secs(), 3);
    /// assert_eq!(pool.max_size, 4);
    /// # Ok::<(), pg_pool_wire::WireError>(())
    /// ```
    pub fn pool_config(&self) -> ConnPoolConfig {
        let mut config = ConnPoolConfig::default();
        config.addr.clone_from(&self.addr);
        config.user.clone_from(&self.user);
        config.password.clone_from(&self.password);
        config.database.clone_from(&self.database);
        if let Some(limit) = self.connect_timeout {
            config.connect_timeout = limit;
        }
        self.pool.apply(&mut config);
        config
    }

    /// Sets `application_name`; for chaining.
    pub fn with_application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }

    /// Adds a startup parameter (any server setting, such as `idle_session_timeout`); for
    /// chaining. Checked by [`WireConfig::validate`].
    pub fn with_param(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.params.push((name.into(), value.into()));
        self
    }

    /// The startup parameters to send: `application_name` first, then [`WireConfig::params`].
    pub(crate) fn startup_params(&self) -> Vec<(&str, &str)> {
        self.application_name
            .iter()
            .map(|name| ("application_name", name.as_str()))
            .chain(self.params.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .collect()
    }

    /// Opens a bare `WireConn` with this address, these credentials, startup parameters
    /// and TLS settings; both pooled connection kinds start here. The config is validated
    /// first, so nothing unchecked reaches the startup message.
    pub(crate) async fn connect(&self) -> Result<pg_wired::WireConn, WireError> {
        self.validate()?;
        crate::tls::WireTls::new(self)?
            .connect(self, &self.password)
            .await
    }
}
