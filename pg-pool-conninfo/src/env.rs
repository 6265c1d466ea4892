//! libpq's environment variables and passfile, layered under a connection string.

use std::path::PathBuf;

use crate::error::ConnInfoError;
use crate::info::{ConnInfo, split};
use crate::keys;
use crate::passfile::{Passfile, PassfileError};
use crate::raw::{Entry, Origin, Value};

/// The environment variables read by [`ConnInfo::parse_with_env`], and the key each one
/// sets when the string does not: libpq's variables for the keys pg-pool implements.
pub const ENV_VARS: &[(&str, &str)] = &[
    ("PGHOST", "host"),
    ("PGPORT", "port"),
    ("PGUSER", "user"),
    ("PGPASSWORD", "password"),
    ("PGPASSFILE", "passfile"),
    ("PGDATABASE", "dbname"),
    ("PGAPPNAME", "application_name"),
    ("PGOPTIONS", "options"),
    ("PGCONNECT_TIMEOUT", "connect_timeout"),
    ("PGSSLMODE", "sslmode"),
    ("PGSSLROOTCERT", "sslrootcert"),
    ("PGSSLCERT", "sslcert"),
    ("PGSSLKEY", "sslkey"),
    ("PGCHANNELBINDING", "channel_binding"),
    ("PGTARGETSESSIONATTRS", "target_session_attrs"),
    ("PGCLIENTENCODING", "client_encoding"),
    ("PGDATESTYLE", "datestyle"),
    ("PGTZ", "timezone"),
];

/// Reads a variable of this process's environment: the `env` argument to pass to
/// [`ConnInfo::parse_with_env`] and [`ConnInfo::from_env`] outside tests. A value that is
/// not valid UTF-8 is converted lossily (and then fails to match any host or key).
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
}

impl ConnInfo {
    /// Parses `s` (as [`ConnInfo::parse`]) and fills what it leaves unset as libpq does:
    ///
    /// 1. every key of [`ENV_VARS`] the string does not give, from its variable (an empty
    ///    variable counts as unset);
    /// 2. then, if there is still no password, the password file: `passfile` (or
    ///    `PGPASSFILE`), else `$HOME/.pgpass`, in libpq's format (see [`Passfile`]). It is
    ///    matched with each host and its port, the database (default: the user), and the
    ///    user (default: `postgres`, the drivers' default). A file that is missing is
    ///    skipped silently; one that is group- or world-accessible, not a plain file, or
    ///    unreadable is skipped with a `tracing` warning, as libpq warns on stderr.
    ///
    /// `env` looks a variable up; pass [`process_env`] for the process environment, or a
    /// closure over a map in tests.
    ///
    /// # Errors
    ///
    /// As [`ConnInfo::parse`], for the string or a variable's value (the error names the
    /// variable). Also an error if several hosts match different passwords in the password
    /// file: the drivers send one password to whichever host they reach.
    ///
    /// # Examples
    ///
    /// ```
    /// use pg_pool_conninfo::ConnInfo;
    ///
    /// let env = |name: &str| match name {
    ///     "PGHOST" => Some("db.internal".to_owned()),
    ///     "PGUSER" => Some("reporting".to_owned()),
    ///     _ => None,
    /// };
    /// let info = ConnInfo::parse_with_env("user=app", env)?;
    /// assert_eq!(info.user.as_deref(), Some("app")); // the string wins
    /// assert_eq!(info.hosts.len(), 1); // PGHOST
    /// # Ok::<(), pg_pool_conninfo::ConnInfoError>(())
    /// ```
    pub fn parse_with_env(
        s: &str,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, ConnInfoError> {
        let mut raw = split(s)?;
        for &(var, key) in ENV_VARS {
            if raw.has(key) {
                continue;
            }
            if let Some(value) = env(var).filter(|v| !v.is_empty()) {
                raw.set(Entry {
                    key: key.to_owned(),
                    value: Value::Text(value),
                    origin: Origin::Env(var),
                    after_password: false,
                });
            }
        }
        let mut info = keys::build(raw)?;
        if info.password.is_none() {
            let path = info.passfile.clone().or_else(|| {
                env("HOME")
                    .filter(|home| !home.is_empty())
                    .map(|home| PathBuf::from(home).join(".pgpass"))
            });
            if let Some(path) = path {
                match Passfile::load(&path) {
                    Ok(file) => info.password = file.password_for(&info)?,
                    Err(PassfileError::Missing) => {}
                    Err(e) => {
                        tracing::warn!(path = %path.display(), "{e}; the password file is ignored");
                    }
                }
            }
        }
        Ok(info)
    }

    /// [`ConnInfo::parse_with_env`] with the string taken from `DATABASE_URL` (none if it is
    /// unset or empty): the whole configuration from the environment.
    ///
    /// # Errors
    ///
    /// As [`ConnInfo::parse_with_env`]; errors in `DATABASE_URL` say so.
    ///
    /// # Examples
    ///
    /// ```
    /// use pg_pool_conninfo::ConnInfo;
    ///
    /// let env = |name: &str| match name {
    ///     "DATABASE_URL" => Some("postgres://app@db/shop".to_owned()),
    ///     "PGDATABASE" => Some("ignored".to_owned()),
    ///     "PGSSLMODE" => Some("require".to_owned()),
    ///     _ => None,
    /// };
    /// let info = ConnInfo::from_env(env)?;
    /// assert_eq!(info.dbname.as_deref(), Some("shop"));
    /// assert_eq!(info.tls.mode, pg_pool_conninfo::SslMode::Require);
    /// # Ok::<(), pg_pool_conninfo::ConnInfoError>(())
    /// ```
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, ConnInfoError> {
        let url = env("DATABASE_URL").unwrap_or_default();
        let from_url = !url.is_empty();
        Self::parse_with_env(&url, env).map_err(|e| {
            if from_url {
                e.in_variable("DATABASE_URL")
            } else {
                e
            }
        })
    }
}
