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
/// # Several hosts
///
/// A string may list several hosts (`host=a,b port=5432,5433`, or
/// `postgres://u@a:5432,b:5433/db`; one port for all hosts, or one per host). They are
/// kept in [`WireConfig::addr`] as `a:5432,b:5433` and tried **in order on every
/// connect**, as libpq tries them:
///
/// - each host's attempt (dialing, with the name resolved anew each time; TLS, verified
///   against that host's own name; startup; the `target_session_attrs` check) is bounded
///   by [`WireConfig::per_host_timeout`]: `connect_timeout` per host, as in libpq;
/// - a host that fails, or whose server is not what `target_session_attrs` asks for, is
///   closed cleanly (`Terminate`) and the next one tried;
/// - a server that **refuses the credentials or the database** (SQLSTATE class `28`, such
///   as a wrong password, `3D000`, `42501`) ends the walk: the hosts after it are not
///   tried. libpq does the same (checked with libpq 15: `psql` against a wrong password
///   on the first host does not try the second, whose password is right);
/// - when no host can be used, the error ([`WireError::Hosts`]) names every host and why
///   each failed, for example `could not connect to any of 2 hosts: 127.0.0.1:5433: I/O
///   error: Connection refused (os error 111); 127.0.0.1:5434: server is not a standby
///   (target_session_attrs=standby)`; with one host, the error is that host's own.
///
/// `target_session_attrs` ([`WireConfig::target_session_attrs`]) takes libpq's values:
///
/// | value | accepts a server where |
/// |---|---|
/// | `any` (default) | always; no check |
/// | `read-write` | `transaction_read_only` is off (neither `default_transaction_read_only` nor `in_hot_standby` is on) |
/// | `read-only` | `transaction_read_only` is on |
/// | `primary` | `pg_is_in_recovery()` is false (`in_hot_standby` off) |
/// | `standby` | `pg_is_in_recovery()` is true (`in_hot_standby` on) |
/// | `prefer-standby` | a standby, looking at every host; if none is, any host that answered, in order |
///
/// The check reads `in_hot_standby` and `default_transaction_read_only` from the
/// server's startup report (PostgreSQL 14 and later) and costs no round trip; an older
/// server is asked with one query (`SHOW transaction_read_only` or
/// `SELECT pg_is_in_recovery()`). `prefer-standby`'s second pass goes back only to the
/// hosts that answered but were not standbys (libpq walks every host again; a host that
/// could not be reached a moment ago is not waited for twice).
///
/// A pooled [`WirePoolable`](crate::WirePoolable) keeps watching what its server reports:
/// one opened as `standby`, `read-only` or `prefer-standby` on a standby reports a server
/// change when the server says `in_hot_standby` turned off (the standby was promoted), one
/// opened as `read-write` when `default_transaction_read_only` turned on; the pool then
/// evicts every connection and the next connects walk the hosts again. Neither change is
/// visible through [`AsyncWirePoolable`](crate::AsyncWirePoolable) (pg-wired's reader
/// task does not pass `ParameterStatus` on).
///
/// A unix socket directory is refused with [`WireError::Config`] naming `host` (pg-wired
/// dials TCP only; pg-pool-tokio-postgres supports them). `pool_*` keys flow into
/// [`WireConfig::pool_config`]; pg-pool-wire has no driver-specific `pool_*` key, so an
/// unknown one is an error.
///
/// Server settings other than the ones the connection string accepts go through
/// `options=-c name=value`, or in code through [`WireConfig::with_param`].
///
/// pg-wired has no connect timeout of its own: the pool bounds every attempt by
/// [`ConnPoolConfig::connect_timeout`], and the connector bounds each host by
/// [`WireConfig::per_host_timeout`]; a `connect_timeout` key is carried in
/// [`WireConfig::connect_timeout`] (per host) and [`WireConfig::pool_config`] makes the
/// pool's bound fit every host in turn.
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
///
/// // Two hosts, the one that takes writes wins.
/// let config = WireConfig::from_url(
///     "host=db1,db2 port=5432,5433 user=app target_session_attrs=read-write connect_timeout=3",
/// )?;
/// assert_eq!(config.addr, "db1:5432,db2:5433");
/// assert_eq!(config.addrs().collect::<Vec<_>>(), ["db1:5432", "db2:5433"]);
/// assert_eq!(config.pool_config().connect_timeout.as_secs(), 6);
/// # Ok::<(), pg_pool_wire::WireError>(())
/// ```
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct WireConfig {
    /// Server address, `host:port` (IPv6 as `[::1]:5432`), or several separated by commas
    /// (`db1:5432,db2:5433`), tried in order on every connect. Host names are resolved
    /// anew on every connect. Default: `"127.0.0.1:5432"`.
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
    /// Connect timeout from the string: per host, as in libpq (see
    /// [`WireConfig::per_host_timeout`]); [`WireConfig::pool_config`] multiplies it by the
    /// attempts a connect may make. Default: `None` (the pool's own default).
    pub connect_timeout: Option<Duration>,
    /// Which server of [`WireConfig::addr`]'s hosts is acceptable, with libpq's meaning
    /// (see [Several hosts](WireConfig#several-hosts)). Default: `any`.
    pub target_session_attrs: TargetSessionAttrs,
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
            target_session_attrs: TargetSessionAttrs::Any,
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
            .field("target_session_attrs", &self.target_session_attrs)
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
    /// pg-pool-wire cannot honour (a unix socket, an unknown `pool_*` key).
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
    /// [`WireError::Config`] naming the key pg-pool-wire cannot honour: a unix socket
    /// directory, an unknown `pool_*` key; or a value [`WireConfig::validate`] refuses.
    pub fn from_conninfo(info: ConnInfo) -> Result<Self, WireError> {
        let mut config = WireConfig::default();
        if !info.hosts.is_empty() {
            let mut addrs = Vec::with_capacity(info.hosts.len());
            for one in &info.hosts {
                match &one.host {
                    Host::Tcp(name) if name.contains(':') => {
                        addrs.push(format!("[{name}]:{}", one.port));
                    }
                    Host::Tcp(name) => addrs.push(format!("{name}:{}", one.port)),
                    _ => {
                        return Err(WireError::config(
                            "host",
                            "is a unix socket directory; pg-wired connects over TCP only",
                        ));
                    }
                }
            }
            config.addr = addrs.join(",");
        }
        config.target_session_attrs = info.target_session_attrs;
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
    /// `database`, `application_name`, `replication`, `_pq_.*`); and the address: one
    /// `host:port` or several separated by commas, each with a host and a port from 1 to
    /// 65535 (IPv6 in brackets), none a unix socket; and no `client_encoding` other than
    /// UTF-8, as a parameter or inside `options` (pg-wired reads and writes UTF-8 only).
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
        if !self.addr.contains('\0') {
            for addr in self.addrs() {
                crate::hosts::check_addr(addr)
                    .map_err(|reason| WireError::config("addr", reason))?;
            }
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
        crate::encoding::check(&self.params)
    }

    /// A [`ConnPoolConfig`] with this address, user, password and database (for pools built
    /// with `ConnPool::new`), this connect timeout if set (per host, times the attempts a
    /// connect may make: every host, twice for `prefer-standby`, so that trying each host
    /// in turn fits), and the string's `pool_*` settings (`pool_connect_timeout` wins over
    /// `connect_timeout`); every other field has its default.
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
            config.connect_timeout = limit.saturating_mul(crate::hosts::attempts(self).max(1));
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

    /// Opens a bare `WireConn` with these hosts, credentials, startup parameters, TLS
    /// settings and `target_session_attrs`; both pooled connection kinds start here. The
    /// config is validated first, so nothing unchecked reaches the startup message.
    pub(crate) async fn connect(&self) -> Result<crate::hosts::Opened, WireError> {
        self.validate()?;
        let tls = crate::tls::WireTls::new(self)?;
        crate::hosts::connect(self, &tls, &self.password).await
    }
}
