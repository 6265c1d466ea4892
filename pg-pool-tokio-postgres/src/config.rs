//! Connection settings: a `tokio_postgres::Config` plus what the pool does with sessions.

use std::str::FromStr;
use std::time::Duration;

use pg_pool_conninfo::{
    ChannelBinding, ConnInfo, Host, PoolSettings, SslMode, TargetSessionAttrs, TlsSettings,
};
use pg_pool_core::ConnPoolConfig;

use crate::error::PgError;
use crate::opened::SessionOptions;
use crate::reset::{ResetStrategy, ResetWhen};

/// How the pool treats sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Profile {
    /// A pooled connection is one PostgreSQL session: named prepared statements and the
    /// statement cache are available, and the [`ResetStrategy`] cleans the session on
    /// return. The default, for direct connections (and pgbouncer in session mode).
    #[default]
    Session,
    /// For pgbouncer in transaction mode, where consecutive transactions of one client may
    /// run on different server sessions: no named statements (statements are sent unnamed,
    /// as `query_typed` does; `prepare`, `prepare_cached` and parameterised `query` are
    /// refused), no reset round trip (the reset strategy is ignored: a reset would run on
    /// whichever server session pgbouncer picks), and the ping is an empty query, which
    /// pgbouncer must pass to a server, so the bounded probe notices a PostgreSQL that is
    /// down even though the TCP link to pgbouncer is up.
    ///
    /// What it guarantees: named statements never break or collide across server sessions,
    /// and transaction-scoped state (`SET LOCAL`, `pg_advisory_xact_lock`) never outlives
    /// its transaction. What it cannot: **session-level state leaks** to other clients of
    /// pgbouncer, at once and whatever this pool does: a plain `SET`, `set_config(.., false)`,
    /// session advisory locks, `LISTEN`, temporary tables and SQL `PREPARE` stay on the
    /// server session, which pgbouncer hands to the next client as soon as the statement
    /// ends. Keep such state inside transactions (`SET LOCAL`, `pg_advisory_xact_lock`).
    /// `tests/pgbouncer.rs` checks both sides.
    PoolerSafe,
}

/// Where and how to connect, and how the pool treats the sessions.
///
/// Build it from a [`tokio_postgres::Config`] with [`PgConfig::new`] (or `From`), from a
/// libpq connection string (a `postgres://` URL or `key=value` pairs, as `pg_pool_conninfo`
/// documents them) with [`PgConfig::from_url`] (also [`FromStr`]), or from libpq's
/// environment variables with [`PgConfig::from_env`]. Several hosts
/// (`postgres://u@h1:5432,h2:5433/db`, tried in order), unix socket directories,
/// `target_session_attrs` (every libpq value: `any`, `read-write`, `read-only`, `primary`,
/// `standby`, `prefer-standby`; see [`PgConfig::target_session_attrs`]),
/// `application_name`, `connect_timeout`, `options`, `channel_binding` and the TLS keys
/// are supported.
///
/// Mapping notes, all checked when the string is parsed:
///
/// - The server settings a string may give (`search_path`, `statement_timeout`, ...) are
///   appended to `options` as `-c name=value`: tokio-postgres sends no other startup
///   parameters. `client_encoding` must be UTF8, which tokio-postgres always uses.
/// - `target_session_attrs` is kept whole in [`PgConfig::target_session_attrs`] and checked
///   by this crate's own host loop on every runtime; `pg`'s own `target_session_attrs`
///   (tokio-postgres knows only `any`, `read-write` and `read-only`) gets the same value
///   when it has it, and `any` otherwise. As in libpq, a server that refuses the session
///   during startup (a wrong password, an unknown database) ends the search over the
///   hosts, except with `57P03` (starting up or shutting down); when every host tried
///   fails, one error names each host and why ([`PgError::AllHostsFailed`]).
/// - `sslmode` is kept whole in [`PgConfig::tls`]; the driver's own mode gets the closest
///   it has: `disable`, `prefer` (also for `allow`, which succeeds wherever `prefer` does),
///   or `require` (for `require`, `verify-ca`, `verify-full`; verification is the TLS
///   connector's job).
/// - `pool_*` keys flow into [`PgConfig::pool_config`]; five more are this driver's:
///   `pool_reset` (`full`, `none`, `discard_all`, `clean`), `pool_reset_when` (`changed`,
///   the default: reset a session only when the protocol shows it changed; `used`: after
///   every use; see [`ResetWhen`]), `pool_profile` (`session`, `pooler_safe`),
///   `pool_statement_cache` (capacity, `0` disables it) and `pool_auto_prepare`
///   (`true`, the default, or `false`: whether plain-SQL calls use the statement cache,
///   see [`PgConfig::auto_prepare`]). Any other unknown `pool_*` key is an error.
///
/// TLS: [`PgConfig::tls`], with libpq's `sslmode` semantics (see [`PgTls`](crate::PgTls)).
///
/// # Examples
///
/// ```
/// use pg_pool_tokio_postgres::{PgConfig, Profile, ResetStrategy};
///
/// let config = PgConfig::from_url(
///     "postgres://app:secret@10.0.0.1:5432,10.0.0.2:5432/shop\
///      ?target_session_attrs=read-write&application_name=api&connect_timeout=3&pool_reset=clean",
/// )?;
/// assert_eq!(config.pg.get_hosts().len(), 2);
/// assert_eq!(config.reset, ResetStrategy::Clean);
/// assert_eq!(config.profile, Profile::Session);
/// // Three seconds per host, two hosts.
/// assert_eq!(config.pool_config().connect_timeout.as_secs(), 6);
/// # Ok::<(), pg_pool_tokio_postgres::PgError>(())
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct PgConfig {
    /// The driver's connection settings (its `Debug` redacts the password).
    /// Default: tokio-postgres's default with host `127.0.0.1`, port 5432, user `postgres`.
    pub pg: tokio_postgres::Config,
    /// What the pool does with sessions. Default: [`Profile::Session`].
    pub profile: Profile,
    /// How a returned session is cleaned (ignored by [`Profile::PoolerSafe`]).
    /// Default: [`ResetStrategy::Full`], pipelined, keeping the statement cache.
    pub reset: ResetStrategy,
    /// When the reset runs: [`ResetWhen::Changed`] (the default: only after a use that
    /// provably changed the session, as the protocol shows it) or [`ResetWhen::Used`]
    /// (after every use; for functions that change session state out of the protocol's
    /// sight).
    pub reset_when: ResetWhen,
    /// Most statements [`prepare_cached`](crate::PgConnection::prepare_cached) keeps per
    /// connection; the oldest is dropped (and closed on the server) beyond it. `0` disables
    /// the cache. Default: 256, plenty for an application's fixed set of queries.
    pub statement_cache_capacity: usize,
    /// Whether the plain-SQL methods (`query`, `query_one`, `query_opt`, `execute` with a
    /// `&str`, on [`PgConnection`](crate::PgConnection), [`PgTransaction`](crate::PgTransaction)
    /// and [`SharedClient`](crate::SharedClient)) run their SQL through the statement cache,
    /// as pgx and sqlx do by default: the first call of a text prepares it (two round
    /// trips, as without the cache), every later call on the same connection binds the
    /// cached statement (one round trip). `pool_auto_prepare` in a connection string
    /// (`true`/`false`, `on`/`off`, `yes`/`no`, `1`/`0`).
    ///
    /// It takes effect only under [`Profile::Session`] with a
    /// [`statement_cache_capacity`](Self::statement_cache_capacity) above 0; the
    /// pooler-safe profile never leaves a named statement on the server. Only statements
    /// the server plans are cached (first keyword `SELECT`, `WITH`, `VALUES`, `TABLE`,
    /// `INSERT`, `UPDATE`, `DELETE`, `MERGE`); `SET`, `BEGIN`, DDL and other utility
    /// statements run as without the cache.
    ///
    /// What it costs: the cache is per connection, so each text is prepared once on every
    /// connection that runs it (the first call pays the prepare, as every call did
    /// before); the server keeps up to the capacity of statements per session, and their
    /// text stays listed in that session's `pg_prepared_statements`, which a later user of
    /// the connection can read (pass secrets as parameters, or turn this off); parameter
    /// types are those inferred when the text was first prepared. Once the cache is full,
    /// a text not cached is admitted (evicting the least recently used) only when it comes
    /// again soon, so SQL with inline literals, distinct on every call, keeps the two
    /// round trips it always cost and never pushes out the application's own statements;
    /// at most 128 cached statements may be ones whose SQL changes the session
    /// (`set_config`, calls of your own functions), so the pool can still tell a clean
    /// use from a changing one. A statement made stale by a schema change (`cached plan
    /// must not change result type`) or dropped by the user's `DEALLOCATE`/`DISCARD ALL`
    /// is evicted and, outside a transaction block, prepared again and run once more;
    /// inside one the error is returned (the transaction is aborted anyway) and the next
    /// call prepares afresh. Default: `true`.
    pub auto_prepare: bool,
    /// TLS with libpq's meaning (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`,
    /// `channel_binding`); it replaces `pg`'s own `ssl_mode` and `channel_binding`,
    /// except that `require` there (for example from a URL's `sslmode=require`) is
    /// never weakened: the stricter of the two applies.
    /// Checked when the connector is built (see [`PgTls`](crate::PgTls)).
    /// Default: `TlsSettings::default()` (`prefer`, as libpq).
    pub tls: TlsSettings,
    /// Pool settings from the string (`pool_max_size`, ...), applied by
    /// [`PgConfig::pool_config`]. Default: none.
    pub pool: PoolSettings,
    /// Which server of the hosts is acceptable, with libpq's full set of values
    /// (`any`, `read-write`, `read-only`, `primary`, `standby`, `prefer-standby`; see
    /// [`connect_raw_with`](crate::connect_raw_with) for how each is checked). `None`
    /// means `pg`'s own `target_session_attrs`, which knows only the first three. A
    /// connection string always sets it. Default: `None`.
    pub target_session_attrs: Option<TargetSessionAttrs>,
}

impl Default for PgConfig {
    fn default() -> Self {
        Self::new(default_pg())
    }
}

impl From<tokio_postgres::Config> for PgConfig {
    fn from(pg: tokio_postgres::Config) -> Self {
        Self::new(pg)
    }
}

impl FromStr for PgConfig {
    type Err = PgError;

    fn from_str(s: &str) -> Result<Self, PgError> {
        Self::from_url(s)
    }
}

/// tokio-postgres's config with the adapter's defaults: `127.0.0.1:5432`, user `postgres`.
fn default_pg() -> tokio_postgres::Config {
    let mut pg = tokio_postgres::Config::new();
    pg.host("127.0.0.1").port(5432).user("postgres");
    pg
}

impl PgConfig {
    /// Session profile, [`ResetStrategy::Full`] reset, a 256-statement cache that the
    /// plain-SQL methods use too ([`PgConfig::auto_prepare`]).
    pub fn new(pg: tokio_postgres::Config) -> Self {
        Self {
            pg,
            profile: Profile::Session,
            reset: ResetStrategy::Full,
            reset_when: ResetWhen::Changed,
            statement_cache_capacity: 256,
            auto_prepare: true,
            tls: TlsSettings::default(),
            pool: PoolSettings::default(),
            target_session_attrs: None,
        }
    }

    /// The `target_session_attrs` in force: [`PgConfig::target_session_attrs`], or `pg`'s
    /// own when that is `None`.
    ///
    /// # Examples
    ///
    /// ```
    /// use pg_pool_tokio_postgres::PgConfig;
    /// use pg_pool_tokio_postgres::pg_pool_conninfo::TargetSessionAttrs;
    ///
    /// let config = PgConfig::from_url("host=a,b target_session_attrs=prefer-standby")?;
    /// assert_eq!(config.session_attrs(), TargetSessionAttrs::PreferStandby);
    ///
    /// let mut pg = tokio_postgres::Config::new();
    /// pg.target_session_attrs(tokio_postgres::config::TargetSessionAttrs::ReadWrite);
    /// assert_eq!(PgConfig::new(pg).session_attrs(), TargetSessionAttrs::ReadWrite);
    /// # Ok::<(), pg_pool_tokio_postgres::PgError>(())
    /// ```
    pub fn session_attrs(&self) -> TargetSessionAttrs {
        self.target_session_attrs.unwrap_or_else(|| {
            crate::session_attrs::from_driver(self.pg.get_target_session_attrs())
        })
    }

    /// The [`SessionOptions`] a session of this config is opened with: the
    /// [`session_attrs`](Self::session_attrs) in force, nothing else asked for. Start from
    /// these when opening sessions yourself with [`PgRuntime::open`](crate::PgRuntime::open),
    /// so that `primary`, `standby` and `prefer-standby` are honoured.
    pub fn session_options(&self) -> SessionOptions {
        SessionOptions::default().with_target_session_attrs(self.session_attrs())
    }

    /// The [`Profile::PoolerSafe`] settings for `pg`: for pgbouncer in transaction mode.
    pub fn pooler_safe(pg: tokio_postgres::Config) -> Self {
        Self {
            profile: Profile::PoolerSafe,
            reset: ResetStrategy::None,
            statement_cache_capacity: 0,
            ..Self::new(pg)
        }
    }

    /// Parses a libpq connection string (a `postgres://` URL or `key=value` pairs),
    /// including the `pool_*` keys described on [`PgConfig`]. Environment variables are
    /// not read (see [`PgConfig::from_env`]); a `passfile` key is, when no password is
    /// given.
    ///
    /// # Errors
    ///
    /// [`PgError::ConnInfo`] for a malformed string, an unknown key or an invalid value
    /// (never showing the user name or password; the same message pg-pool-wire gives);
    /// [`PgError::Config`] for a valid setting this driver cannot honour, naming the key.
    pub fn from_url(s: &str) -> Result<Self, PgError> {
        // No environment; only a `passfile` key given in the string is read.
        Self::from_conninfo(ConnInfo::parse_with_env(s, |_| None)?)
    }

    /// Reads libpq's environment: `DATABASE_URL` if set, with `PGHOST`, `PGPORT`, `PGUSER`,
    /// `PGPASSWORD`, `PGDATABASE`, ... and the password file filling what it leaves unset
    /// (see `ConnInfo::parse_with_env`).
    ///
    /// # Errors
    ///
    /// As [`PgConfig::from_url`], naming the variable at fault.
    pub fn from_env() -> Result<Self, PgError> {
        Self::from_env_with(pg_pool_conninfo::process_env)
    }

    /// [`PgConfig::from_env`] with the variables looked up by `env`.
    ///
    /// # Errors
    ///
    /// As [`PgConfig::from_env`].
    ///
    /// # Examples
    ///
    /// ```
    /// use pg_pool_tokio_postgres::PgConfig;
    ///
    /// let config = PgConfig::from_env_with(|name| match name {
    ///     "PGHOST" => Some("db1,db2".into()),
    ///     "PGTARGETSESSIONATTRS" => Some("read-write".into()),
    ///     _ => None,
    /// })?;
    /// assert_eq!(config.pg.get_hosts().len(), 2);
    /// # Ok::<(), pg_pool_tokio_postgres::PgError>(())
    /// ```
    pub fn from_env_with(env: impl Fn(&str) -> Option<String>) -> Result<Self, PgError> {
        Self::from_conninfo(ConnInfo::from_env(env)?)
    }

    /// The settings of a parsed connection string.
    ///
    /// # Errors
    ///
    /// [`PgError::Config`] naming the key this driver cannot honour (see [`PgConfig`]), or
    /// a value [`PgConfig::validate`] refuses.
    pub fn from_conninfo(info: ConnInfo) -> Result<Self, PgError> {
        let mut pg = if info.hosts.is_empty() {
            default_pg()
        } else {
            tokio_postgres::Config::new()
        };
        for hp in &info.hosts {
            match &hp.host {
                Host::Tcp(name) => pg.host(name),
                #[cfg(unix)]
                Host::Unix(dir) => pg.host_path(dir),
                _ => return Err(PgError::config("host", "unix sockets need a Unix platform")),
            };
            pg.port(hp.port);
        }
        pg.user(info.user.as_deref().unwrap_or("postgres"));
        if let Some(password) = &info.password {
            pg.password(password.expose());
        }
        if let Some(dbname) = &info.dbname {
            pg.dbname(dbname);
        }
        if let Some(name) = info.effective_application_name() {
            pg.application_name(name);
        }
        if let Some(options) = startup_options(&info)? {
            pg.options(options);
        }
        if let Some(limit) = info.connect_timeout {
            pg.connect_timeout(limit);
        }
        if let Some(enabled) = info.keepalives.enabled {
            pg.keepalives(enabled);
        }
        if let Some(idle) = info.keepalives.idle {
            pg.keepalives_idle(idle);
        }
        if let Some(interval) = info.keepalives.interval {
            pg.keepalives_interval(interval);
        }
        if let Some(count) = info.keepalives.count {
            pg.keepalives_retries(count);
        }
        if let Some(limit) = info.tcp_user_timeout {
            pg.tcp_user_timeout(limit);
        }
        pg.ssl_mode(match info.tls.mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            _ => tokio_postgres::config::SslMode::Require,
        });
        pg.channel_binding(match info.tls.channel_binding {
            ChannelBinding::Disable => tokio_postgres::config::ChannelBinding::Disable,
            ChannelBinding::Require => tokio_postgres::config::ChannelBinding::Require,
            _ => tokio_postgres::config::ChannelBinding::Prefer,
        });
        // tokio-postgres's own enum gets what it can say; the whole value is kept below.
        pg.target_session_attrs(match info.target_session_attrs {
            TargetSessionAttrs::ReadWrite => tokio_postgres::config::TargetSessionAttrs::ReadWrite,
            TargetSessionAttrs::ReadOnly => tokio_postgres::config::TargetSessionAttrs::ReadOnly,
            _ => tokio_postgres::config::TargetSessionAttrs::Any,
        });
        let mut config = Self::new(pg);
        config.target_session_attrs = Some(info.target_session_attrs);
        for (key, value) in &info.pool.driver {
            config.set_pool_param(key, value)?;
        }
        config.tls = info.tls;
        config.pool = info.pool;
        config.validate()?;
        Ok(config)
    }

    /// Checks what goes into the startup message: no NUL byte in the user, password,
    /// database, options or application name (tokio-postgres would refuse it only when
    /// connecting). Called by [`PgConfig::from_url`]; call it on a config built in code.
    ///
    /// # Errors
    ///
    /// [`PgError::Config`] naming the setting (never showing its value).
    pub fn validate(&self) -> Result<(), PgError> {
        let fields = [
            ("user", self.pg.get_user().map(str::as_bytes)),
            ("password", self.pg.get_password()),
            ("dbname", self.pg.get_dbname().map(str::as_bytes)),
            ("options", self.pg.get_options().map(str::as_bytes)),
            (
                "application_name",
                self.pg.get_application_name().map(str::as_bytes),
            ),
        ];
        for (field, value) in fields {
            if value.is_some_and(|v| v.contains(&0)) {
                return Err(PgError::config(
                    field,
                    "contains a NUL byte, which no PostgreSQL protocol message can carry",
                ));
            }
        }
        Ok(())
    }

    fn set_pool_param(&mut self, key: &str, value: &str) -> Result<(), PgError> {
        match key {
            "pool_reset" => {
                self.reset = ResetStrategy::from_param(value).ok_or_else(|| {
                    PgError::config(key, "must be none, full, discard_all or clean")
                })?;
            }
            "pool_reset_when" => {
                self.reset_when = ResetWhen::from_param(value)
                    .ok_or_else(|| PgError::config(key, "must be changed or used"))?;
            }
            "pool_profile" => match value {
                "session" => self.profile = Profile::Session,
                "pooler_safe" | "transaction" => {
                    self.profile = Profile::PoolerSafe;
                    self.reset = ResetStrategy::None;
                    self.statement_cache_capacity = 0;
                }
                _ => return Err(PgError::config(key, "must be session or pooler_safe")),
            },
            "pool_statement_cache" => {
                self.statement_cache_capacity = value
                    .parse()
                    .map_err(|_| PgError::config(key, "must be a whole number"))?;
            }
            "pool_auto_prepare" => {
                self.auto_prepare = match value {
                    "true" | "on" | "yes" | "1" => true,
                    "false" | "off" | "no" | "0" => false,
                    _ => return Err(PgError::config(key, "must be true or false")),
                };
            }
            _ => {
                return Err(PgError::config(
                    key,
                    "is not a pool setting pg-pool-tokio-postgres knows",
                ));
            }
        }
        Ok(())
    }

    /// Sets the profile; for chaining.
    pub fn with_profile(mut self, profile: Profile) -> Self {
        self.profile = profile;
        self
    }

    /// Sets the reset strategy; for chaining.
    pub fn with_reset(mut self, reset: ResetStrategy) -> Self {
        self.reset = reset;
        self
    }

    /// Sets [`PgConfig::auto_prepare`]; for chaining.
    pub fn with_auto_prepare(mut self, auto_prepare: bool) -> Self {
        self.auto_prepare = auto_prepare;
        self
    }

    /// Whether the plain-SQL methods go through the statement cache: [`PgConfig::auto_prepare`]
    /// under [`Profile::Session`] with a cache capacity above 0.
    pub fn auto_prepares(&self) -> bool {
        self.auto_prepare && self.profile == Profile::Session && self.statement_cache_capacity > 0
    }

    /// Sets when the reset runs; for chaining.
    pub fn with_reset_when(mut self, reset_when: ResetWhen) -> Self {
        self.reset_when = reset_when;
        self
    }

    /// The reset strategy in effect: [`ResetStrategy::None`] under
    /// [`Profile::PoolerSafe`], otherwise [`PgConfig::reset`].
    pub fn effective_reset(&self) -> &ResetStrategy {
        match self.profile {
            Profile::PoolerSafe => &ResetStrategy::None,
            Profile::Session => &self.reset,
        }
    }

    /// A [`ConnPoolConfig`] matching these settings; every other field has its default.
    ///
    /// - `connect_timeout`: the URL's `connect_timeout` (per host, as in libpq) times the
    ///   number of hosts (twice that under `target_session_attrs=prefer-standby`, which may
    ///   go over the hosts twice), so trying every host in order fits; the pool enforces it
    ///   over the whole startup (TCP connect, authentication, `target_session_attrs`
    ///   check), which tokio-postgres's own timeout (TCP connect only) does not.
    /// - `name`: the `application_name`, if any.
    /// - `addr`, `user`, `database`: the first host and the user and database, for logs
    ///   only (the pool opens connections through [`PgConnector`](crate::PgConnector)). The
    ///   password is not copied.
    /// - [`Profile::PoolerSafe`]: `probe_timeout` 2 s and a health probe every 5 s, so a
    ///   PostgreSQL that went down behind pgbouncer is noticed without a caller waiting on it.
    /// - Then the string's `pool_*` settings ([`PgConfig::pool`]), which win over all of the
    ///   above (`pool_name` over the application name, `pool_connect_timeout` over
    ///   `connect_timeout` times the hosts).
    pub fn pool_config(&self) -> ConnPoolConfig {
        let mut config = ConnPoolConfig::default();
        let hosts = self
            .pg
            .get_hosts()
            .len()
            .max(self.pg.get_hostaddrs().len())
            .max(1);
        if let Some(&per_host) = self.pg.get_connect_timeout() {
            let passes = match self.session_attrs() {
                TargetSessionAttrs::PreferStandby => 2,
                _ => 1,
            };
            let hosts = u32::try_from(hosts.saturating_mul(passes)).unwrap_or(u32::MAX);
            config.connect_timeout = per_host.saturating_mul(hosts);
        }
        if let Some(name) = self.pg.get_application_name() {
            config.name = name.to_owned();
        }
        let host = match self.pg.get_hosts().first() {
            Some(tokio_postgres::config::Host::Tcp(host)) => host.clone(),
            #[cfg(unix)]
            Some(tokio_postgres::config::Host::Unix(path)) => path.display().to_string(),
            None => "127.0.0.1".into(),
        };
        let port = self.pg.get_ports().first().copied().unwrap_or(5432);
        config.addr = format!("{host}:{port}");
        if let Some(user) = self.pg.get_user() {
            config.user = user.to_owned();
        }
        if let Some(db) = self.pg.get_dbname() {
            config.database = db.to_owned();
        }
        config.password = String::new();
        if self.profile == Profile::PoolerSafe {
            config.probe_timeout = Duration::from_secs(2);
            config.health_check_interval = Some(Duration::from_secs(5));
        }
        self.pool.apply(&mut config);
        config
    }
}

/// `options` plus the string's server settings as `-c name=value` (tokio-postgres sends no
/// other startup parameters), each value escaped for the server's option splitting.
fn startup_options(info: &ConnInfo) -> Result<Option<String>, PgError> {
    let mut options = info.options.clone();
    for (name, value) in &info.params {
        if name == "client_encoding" {
            let utf8 = ["utf8", "utf-8", "unicode"]
                .iter()
                .any(|e| value.eq_ignore_ascii_case(e));
            if !utf8 {
                return Err(PgError::config(
                    "client_encoding",
                    "tokio-postgres always uses UTF8; no other encoding is supported",
                ));
            }
            continue;
        }
        let options = options.get_or_insert_with(String::new);
        if !options.is_empty() {
            options.push(' ');
        }
        options.push_str("-c ");
        for c in name
            .chars()
            .chain(std::iter::once('='))
            .chain(value.chars())
        {
            if c == '\\' || c.is_ascii_whitespace() {
                options.push('\\');
            }
            options.push(c);
        }
    }
    Ok(options)
}
