//! What a connection string says.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::error::{ConnInfoError, ConnInfoErrorKind};
use crate::keys::{STARTUP_SETTINGS, check_nul};
use crate::pool::PoolSettings;
use crate::raw::Origin;
use crate::secret::Secret;
use crate::tls::{RootCerts, TlsSettings};
use crate::{keys, keyvalue, url};

/// A server to connect to: a TCP host name or address, or a unix socket directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Host {
    /// A host name or an IP address.
    Tcp(String),
    /// A directory holding the server's unix socket (`.s.PGSQL.<port>`).
    Unix(PathBuf),
}

/// One host and its port, in the order the connection string lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// The host.
    pub host: Host,
    /// The port (also the socket file's suffix for a unix socket). Default: 5432.
    pub port: u16,
}

/// libpq's `target_session_attrs`: which server of several hosts is acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TargetSessionAttrs {
    /// Any server (the default).
    #[default]
    Any,
    /// A server that accepts writes by default.
    ReadWrite,
    /// A server that is read-only by default.
    ReadOnly,
    /// A server that is not in recovery.
    Primary,
    /// A server in recovery.
    Standby,
    /// A standby if any host is one, otherwise any server.
    PreferStandby,
}

/// A parsed connection string.
///
/// Fields left unset by the string are `None` (or empty) so that environment defaults and
/// the driver's own defaults can be layered under it. `Debug` never prints the password.
///
/// Parse one with [`ConnInfo::parse`] (or [`FromStr`]); layer libpq's environment
/// variables and passfile under it with [`ConnInfo::parse_with_env`] or
/// [`ConnInfo::from_env`]. The keys are listed in the [crate documentation](crate).
///
/// An empty `user`, `password`, `dbname`, `passfile`, `sslcert`, `sslkey` or
/// `sslrootcert` means "not given" (`None`), as in libpq.
///
/// # Examples
///
/// ```
/// use pg_pool_conninfo::{ConnInfo, Host, SslMode};
///
/// let url: ConnInfo = "postgres://app:s%3Acret@db1:5433,[::1]/shop?sslmode=verify-full".parse()?;
/// let kv = ConnInfo::parse("host=db1,::1 port=5433,5432 user=app password='s:cret' dbname=shop sslmode=verify-full")?;
/// assert_eq!(url, kv);
/// assert_eq!(url.hosts[1].host, Host::Tcp("::1".into()));
/// assert_eq!(url.password.as_ref().unwrap().expose(), "s:cret");
/// assert_eq!(url.tls.mode, SslMode::VerifyFull);
/// # Ok::<(), pg_pool_conninfo::ConnInfoError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ConnInfo {
    /// `host` and `port`: hosts with their ports, tried in order. Empty: not given.
    pub hosts: Vec<HostPort>,
    /// `user`.
    pub user: Option<String>,
    /// `password`.
    pub password: Option<Secret>,
    /// `dbname`.
    pub dbname: Option<String>,
    /// `application_name`.
    pub application_name: Option<String>,
    /// `fallback_application_name`: the application name when `application_name` is not
    /// given (see [`ConnInfo::effective_application_name`]).
    pub fallback_application_name: Option<String>,
    /// `options` (command-line options sent to the server at startup, such as
    /// `-c search_path=app`).
    pub options: Option<String>,
    /// `connect_timeout`, per host as in libpq. Zero or negative in the string means no
    /// per-host limit (`None`), as in libpq; the pool still bounds every attempt.
    pub connect_timeout: Option<Duration>,
    /// `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `channel_binding`.
    pub tls: TlsSettings,
    /// `keepalives`, `keepalives_idle`, `keepalives_interval`, `keepalives_count`: TCP
    /// keepalive, as in libpq.
    pub keepalives: Keepalives,
    /// `tcp_user_timeout` (milliseconds in the string): how long transmitted data may stay
    /// unacknowledged before the connection is dropped (Linux `TCP_USER_TIMEOUT`). `None`:
    /// the system default.
    pub tcp_user_timeout: Option<Duration>,
    /// `target_session_attrs`.
    pub target_session_attrs: TargetSessionAttrs,
    /// Startup parameters sent to the server as given, in the order given:
    /// `client_encoding` and the server settings listed in the
    /// [crate documentation](crate).
    pub params: Vec<(String, String)>,
    /// `passfile`: the password file consulted by [`ConnInfo::parse_with_env`] when no
    /// password is given.
    pub passfile: Option<PathBuf>,
    /// The `pool_*` keys.
    pub pool: PoolSettings,
}

/// TCP keepalive settings from a connection string. Unset fields take the driver's
/// defaults (keepalive on; the operating system's idle time, interval and count, or the
/// driver's own where it sets one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Keepalives {
    /// `keepalives`: `1` (on) or `0` (off); `None` when not given.
    pub enabled: Option<bool>,
    /// `keepalives_idle`: seconds of silence before the first probe.
    pub idle: Option<Duration>,
    /// `keepalives_interval`: seconds between unanswered probes.
    pub interval: Option<Duration>,
    /// `keepalives_count`: unanswered probes before the connection is dropped.
    pub count: Option<u32>,
}

impl Keepalives {
    /// Whether the string set any of the keepalive keys.
    pub fn is_set(&self) -> bool {
        *self != Self::default()
    }
}

impl FromStr for ConnInfo {
    type Err = ConnInfoError;

    fn from_str(s: &str) -> Result<Self, ConnInfoError> {
        Self::parse(s)
    }
}

impl ConnInfo {
    /// Parses a connection string: a `postgres://` or `postgresql://` URL, or libpq
    /// `key=value` pairs. Environment variables are not consulted (see
    /// [`ConnInfo::parse_with_env`]).
    ///
    /// # Errors
    ///
    /// A [`ConnInfoError`] naming the key or part of the URL and the problem: malformed
    /// syntax or percent-encoding, an unknown or unsupported key, an invalid value, a NUL
    /// byte. It never shows the user name or password.
    ///
    /// # Examples
    ///
    /// ```
    /// use pg_pool_conninfo::ConnInfo;
    ///
    /// let info = ConnInfo::parse("host=/var/run/postgresql dbname=app pool_max_size=4")?;
    /// assert_eq!(info.pool.max_size, Some(4));
    /// assert!(ConnInfo::parse("postgres://h/db?ssl=true").is_err());
    /// # Ok::<(), pg_pool_conninfo::ConnInfoError>(())
    /// ```
    pub fn parse(s: &str) -> Result<Self, ConnInfoError> {
        keys::build(split(s)?)
    }

    /// The application name sent to the server: `application_name`, else
    /// `fallback_application_name`.
    pub fn effective_application_name(&self) -> Option<&str> {
        self.application_name
            .as_deref()
            .or(self.fallback_application_name.as_deref())
    }

    /// Checks a `ConnInfo` built or changed in code as parsing would: no NUL byte in any
    /// value, startup parameter names among the accepted server settings, no empty host
    /// name, no port 0.
    ///
    /// # Errors
    ///
    /// A [`ConnInfoError`] naming the field and the problem (never showing the user name or
    /// password).
    pub fn validate(&self) -> Result<(), ConnInfoError> {
        let code = Origin::Code;
        for hp in &self.hosts {
            match &hp.host {
                Host::Tcp(name) => {
                    check_nul("host", code, name)?;
                    if name.is_empty() {
                        return Err(ConnInfoError::for_key(
                            ConnInfoErrorKind::InvalidValue,
                            "host",
                            "",
                            "is empty",
                        ));
                    }
                }
                Host::Unix(path) => check_path("host", path)?,
            }
            if hp.port == 0 {
                return Err(ConnInfoError::for_key(
                    ConnInfoErrorKind::InvalidValue,
                    "port",
                    "",
                    "is 0; ports go from 1 to 65535",
                ));
            }
        }
        let texts = [
            ("user", self.user.as_deref()),
            ("password", self.password.as_ref().map(Secret::expose)),
            ("dbname", self.dbname.as_deref()),
            ("application_name", self.application_name.as_deref()),
            (
                "fallback_application_name",
                self.fallback_application_name.as_deref(),
            ),
            ("options", self.options.as_deref()),
            ("pool_name", self.pool.name.as_deref()),
        ];
        for (key, value) in texts {
            if let Some(value) = value {
                check_nul(key, code, value)?;
            }
        }
        for (name, value) in &self.params {
            if !STARTUP_SETTINGS.contains(&name.as_str()) {
                return Err(keys::unknown_key(name, code, false));
            }
            check_nul(name, code, value)?;
        }
        let paths = [
            ("passfile", self.passfile.as_ref()),
            ("sslcert", self.tls.client_cert.as_ref()),
            ("sslkey", self.tls.client_key.as_ref()),
        ];
        for (key, path) in paths {
            if let Some(path) = path {
                check_path(key, path)?;
            }
        }
        if let Some(RootCerts::File(path)) = &self.tls.root_certs {
            check_path("sslrootcert", path)?;
        }
        for (key, value) in &self.pool.driver {
            if !key.starts_with("pool_") || key.contains('\0') {
                return Err(ConnInfoError::for_key(
                    ConnInfoErrorKind::InvalidValue,
                    "pool_*",
                    "",
                    "a driver setting's name must start with pool_ and hold no NUL byte",
                ));
            }
            check_nul(key, code, value)?;
        }
        Ok(())
    }
}

/// Rejects a path that is empty or holds a NUL byte.
fn check_path(key: &str, path: &std::path::Path) -> Result<(), ConnInfoError> {
    let text = path.to_string_lossy();
    check_nul(key, Origin::Code, &text)?;
    if text.is_empty() {
        return Err(ConnInfoError::for_key(
            ConnInfoErrorKind::InvalidValue,
            key,
            "",
            "is an empty path",
        ));
    }
    Ok(())
}

/// Splits a URL or `key=value` string into its keys.
pub(crate) fn split(s: &str) -> Result<crate::raw::Raw, ConnInfoError> {
    if url::SCHEMES.iter().any(|scheme| s.starts_with(scheme)) {
        return url::parse(s);
    }
    let first = s
        .trim_start()
        .split(|c: char| c == '=' || c.is_whitespace())
        .next()
        .unwrap_or("");
    if let Some((scheme, _)) = first.split_once("://") {
        return Err(url::wrong_scheme(scheme));
    }
    keyvalue::parse(s)
}
