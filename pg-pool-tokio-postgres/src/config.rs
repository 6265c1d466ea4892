//! Connection settings: a `tokio_postgres::Config` plus what the pool does with sessions.

use std::str::FromStr;
use std::time::Duration;

use pg_pool_core::ConnPoolConfig;
use tokio_postgres::config::Host;

use crate::error::PgError;
use crate::reset::ResetStrategy;

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
/// Build it from a [`tokio_postgres::Config`] with [`PgConfig::new`] (or `From`), or from a
/// URL or `key=value` string with [`PgConfig::from_url`]. Everything tokio-postgres parses
/// is supported: several hosts (`postgres://u@h1:5432,h2:5433/db`, tried in order),
/// `target_session_attrs`, `application_name`, `connect_timeout`, `options`. Three more
/// URL parameters are taken out before tokio-postgres sees the URL: `pool_reset`
/// (`none`, `full`, `discard_all`, `clean`), `pool_profile` (`session`, `pooler_safe`) and
/// `pool_statement_cache` (capacity, `0` disables it).
///
/// TLS is not built in: `sslmode=require` fails to connect, `prefer` connects in clear.
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
    /// Most statements [`prepare_cached`](crate::PgConnection::prepare_cached) keeps per
    /// connection; the oldest is dropped (and closed on the server) beyond it. `0` disables
    /// the cache. Default: 256, plenty for an application's fixed set of queries.
    pub statement_cache_capacity: usize,
}

impl Default for PgConfig {
    fn default() -> Self {
        let mut pg = tokio_postgres::Config::new();
        pg.host("127.0.0.1").port(5432).user("postgres");
        Self::new(pg)
    }
}

impl From<tokio_postgres::Config> for PgConfig {
    fn from(pg: tokio_postgres::Config) -> Self {
        Self::new(pg)
    }
}

impl FromStr for PgConfig {
    type Err = PgError;

    fn from_str(url: &str) -> Result<Self, PgError> {
        Self::from_url(url)
    }
}

const POOL_PARAMS: [&str; 3] = ["pool_reset", "pool_profile", "pool_statement_cache"];

impl PgConfig {
    /// Session profile, [`ResetStrategy::Full`] reset, a 256-statement cache.
    pub fn new(pg: tokio_postgres::Config) -> Self {
        Self {
            pg,
            profile: Profile::Session,
            reset: ResetStrategy::Full,
            statement_cache_capacity: 256,
        }
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

    /// Parses a `postgres://` URL (or a libpq `key=value` string) with the three pool
    /// parameters described on [`PgConfig`].
    ///
    /// # Errors
    ///
    /// [`PgError::Config`] for a bad pool parameter, [`PgError::Driver`] for what
    /// tokio-postgres rejects (it never echoes the password).
    pub fn from_url(url: &str) -> Result<Self, PgError> {
        let mut pool_params = Vec::new();
        let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            match url.split_once('?') {
                Some((base, query)) => {
                    let kept: Vec<&str> = query
                        .split('&')
                        .filter(|pair| match pair.split_once('=') {
                            Some((k, v)) if POOL_PARAMS.contains(&k) => {
                                pool_params.push((k.to_owned(), v.to_owned()));
                                false
                            }
                            _ => true,
                        })
                        .collect();
                    if kept.is_empty() {
                        base.to_owned()
                    } else {
                        format!("{base}?{}", kept.join("&"))
                    }
                }
                None => url.to_owned(),
            }
        } else {
            let kept: Vec<&str> = url
                .split_whitespace()
                .filter(|token| match token.split_once('=') {
                    Some((k, v)) if POOL_PARAMS.contains(&k) => {
                        pool_params.push((k.to_owned(), v.to_owned()));
                        false
                    }
                    _ => true,
                })
                .collect();
            kept.join(" ")
        };
        let mut config = Self::new(rest.parse::<tokio_postgres::Config>()?);
        for (key, value) in pool_params {
            config.set_pool_param(&key, &value)?;
        }
        Ok(config)
    }

    fn set_pool_param(&mut self, key: &str, value: &str) -> Result<(), PgError> {
        match key {
            "pool_reset" => {
                self.reset = ResetStrategy::from_param(value).ok_or_else(|| {
                    PgError::config(key, "must be none, full, discard_all or clean")
                })?;
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
            _ => {
                self.statement_cache_capacity = value
                    .parse()
                    .map_err(|_| PgError::config(key, "must be a whole number"))?;
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
    ///   number of hosts, so trying every host in order fits; the pool enforces it over the
    ///   whole startup (TCP connect, authentication, `target_session_attrs` check), which
    ///   tokio-postgres's own timeout (TCP connect only) does not.
    /// - `name`: the `application_name`, if any.
    /// - `addr`, `user`, `database`: the first host and the user and database, for logs
    ///   only (the pool opens connections through [`PgConnector`](crate::PgConnector)). The
    ///   password is not copied.
    /// - [`Profile::PoolerSafe`]: `probe_timeout` 2 s and a health probe every 5 s, so a
    ///   PostgreSQL that went down behind pgbouncer is noticed without a caller waiting on it.
    pub fn pool_config(&self) -> ConnPoolConfig {
        let mut config = ConnPoolConfig::default();
        let hosts = self
            .pg
            .get_hosts()
            .len()
            .max(self.pg.get_hostaddrs().len())
            .max(1);
        if let Some(&per_host) = self.pg.get_connect_timeout() {
            let hosts = u32::try_from(hosts).unwrap_or(u32::MAX);
            config.connect_timeout = per_host.saturating_mul(hosts);
        }
        if let Some(name) = self.pg.get_application_name() {
            config.name = name.to_owned();
        }
        let host = match self.pg.get_hosts().first() {
            Some(Host::Tcp(host)) => host.clone(),
            #[cfg(unix)]
            Some(Host::Unix(path)) => path.display().to_string(),
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
        config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_params_are_taken_out() {
        let c = PgConfig::from_url(
            "postgres://u:pw@h1:1,h2:2/db?pool_profile=pooler_safe&application_name=x&pool_statement_cache=7",
        )
        .unwrap();
        assert_eq!(c.profile, Profile::PoolerSafe);
        assert_eq!(c.statement_cache_capacity, 7);
        assert_eq!(c.pg.get_application_name(), Some("x"));
        assert_eq!(c.pg.get_ports(), &[1, 2]);
        assert_eq!(c.effective_reset(), &ResetStrategy::None);
        assert!(!format!("{c:?}").contains("pw"));
        let c = PgConfig::from_url("host=h user=u pool_reset=none").unwrap();
        assert_eq!(c.reset, ResetStrategy::None);
        assert_eq!(c.pg.get_user(), Some("u"));
    }

    #[test]
    fn errors_are_clear() {
        let msg = |url: &str| PgConfig::from_url(url).unwrap_err().to_string();
        assert!(msg("postgres://h/d?pool_profile=x").contains("pool_profile"));
        assert!(msg("postgres://h/d?pool_statement_cache=x").contains("whole number"));
        assert!(!msg("postgres://u:secret@h/d?bogus=1").contains("secret"));
    }
}
