//! Connection settings, from code or from a `postgres://` URL.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use pg_pool_core::ConnPoolConfig;

use crate::error::WireError;

/// Where and how to connect: address, credentials, database and startup parameters.
///
/// Plain data with a [`Default`]; build it in code, or parse a URL with
/// [`WireConfig::from_url`] (also available through [`FromStr`]). Startup parameters such as
/// `application_name` are sent in the startup message, so they are in effect from the first
/// query and visible in `pg_stat_activity`; they survive `DISCARD ALL` and `RESET ALL`.
///
/// pg-wired has no connect timeout of its own: the pool bounds every attempt by
/// [`ConnPoolConfig::connect_timeout`]; a `connect_timeout` URL parameter is carried in
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
    /// Database name. Default: `"postgres"`.
    pub database: String,
    /// `application_name` sent at startup, shown in `pg_stat_activity`. Default: `None`
    /// (the server's default, empty).
    pub application_name: Option<String>,
    /// Further startup parameters (`options`, `client_encoding`, any server setting such as
    /// `idle_session_timeout`), sent as given. Default: none.
    pub params: Vec<(String, String)>,
    /// Connect timeout from the URL, applied by [`WireConfig::pool_config`]. Default: `None`
    /// (the pool's own default).
    pub connect_timeout: Option<Duration>,
    /// TLS with libpq's meaning, as far as pg-wired can honour it (see
    /// [`WireTls`](crate::WireTls)). Default: `TlsSettings::default()` (`prefer`).
    pub tls: pg_pool_conninfo::TlsSettings,
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
            tls: pg_pool_conninfo::TlsSettings::default(),
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
            .finish()
    }
}

impl FromStr for WireConfig {
    type Err = WireError;

    fn from_str(url: &str) -> Result<Self, WireError> {
        Self::from_url(url)
    }
}

impl WireConfig {
    /// Parses `postgres://user:password@host:port/database?application_name=x`.
    ///
    /// The scheme may be `postgres` or `postgresql`. Every part after the scheme is
    /// optional: the port defaults to 5432, the user to `postgres`, the database to the
    /// user name. User, password, database and parameter values are percent-decoded.
    /// Parameters: `application_name`, `connect_timeout` (seconds), `sslmode` (`disable`,
    /// `allow` or `prefer`; TLS is not built in), `options`, `client_encoding`, and any
    /// other name is sent to the server as a startup parameter (a server setting such as
    /// `idle_session_timeout=5000`; the server rejects names it does not know).
    ///
    /// # Errors
    ///
    /// [`WireError::Url`] naming what is malformed (never echoing the password), or
    /// [`WireError::Config`] for an unsupported parameter value.
    pub fn from_url(url: &str) -> Result<Self, WireError> {
        let bad = |reason: String| WireError::Url { reason };
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| {
                let scheme = url.split_once("://").map_or("(none)", |(s, _)| s);
                bad(format!(
                    "scheme must be postgres:// or postgresql://, found {scheme}"
                ))
            })?;
        let (rest, query) = match rest.split_once('?') {
            Some((rest, query)) => (rest, Some(query)),
            None => (rest, None),
        };
        let (authority, path) = match rest.split_once('/') {
            Some((authority, path)) => (authority, Some(path)),
            None => (rest, None),
        };
        // The password may contain an unencoded '@'; the host never does.
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) => (Some(userinfo), hostport),
            None => (None, authority),
        };
        let mut config = WireConfig::default();
        if let Some(userinfo) = userinfo {
            let (user, password) = match userinfo.split_once(':') {
                Some((user, password)) => (user, Some(password)),
                None => (userinfo, None),
            };
            if !user.is_empty() {
                config.user = decode(user, "user name")?;
            }
            if let Some(password) = password {
                config.password = decode(password, "password")?;
            }
        }
        config.addr = parse_hostport(hostport)?;
        config.database = match path.filter(|p| !p.is_empty()) {
            Some(path) => decode(path, "database name")?,
            None => config.user.clone(),
        };
        for pair in query
            .into_iter()
            .flat_map(|q| q.split('&'))
            .filter(|p| !p.is_empty())
        {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| bad(format!("parameter `{pair}` has no `=value`")))?;
            let key = decode(key, "parameter name")?;
            let value = decode(value, "parameter value")?;
            config.set_param(&key, value)?;
        }
        Ok(config)
    }

    /// Applies one URL parameter.
    fn set_param(&mut self, key: &str, value: String) -> Result<(), WireError> {
        let invalid = |reason: &str| WireError::Config {
            setting: key.to_owned(),
            reason: reason.to_owned(),
        };
        match key {
            "application_name" => self.application_name = Some(value),
            "connect_timeout" => {
                let secs: u64 = value
                    .parse()
                    .map_err(|_| invalid("must be a whole number of seconds"))?;
                if secs == 0 {
                    return Err(invalid("must be at least 1 second"));
                }
                self.connect_timeout = Some(Duration::from_secs(secs));
            }
            "sslmode" => match value.as_str() {
                "disable" | "allow" | "prefer" => {}
                "require" | "verify-ca" | "verify-full" => {
                    return Err(invalid(
                        "TLS is not supported by this build; use disable or prefer",
                    ));
                }
                _ => {
                    return Err(invalid(
                        "must be disable, allow, prefer, require, verify-ca or verify-full",
                    ));
                }
            },
            "user" => self.user = value,
            "password" => self.password = value,
            "dbname" => self.database = value,
            "host" | "port" | "hostaddr" => {
                return Err(invalid(
                    "give the host and port in the URL's authority part",
                ));
            }
            _ => {
                if key.is_empty() || key.contains(char::is_whitespace) {
                    return Err(invalid("is not a valid parameter name"));
                }
                self.params.push((key.to_owned(), value));
            }
        }
        Ok(())
    }

    /// A [`ConnPoolConfig`] with this address, user, password and database (for pools built
    /// with `ConnPool::new`) and, if set, this connect timeout; every other field has its
    /// default.
    ///
    /// # Examples
    ///
    /// ```
    /// use pg_pool_wire::WireConfig;
    ///
    /// let wire = WireConfig::from_url("postgres://app@db.internal:5433/shop?connect_timeout=3")?;
    /// let pool = wire.pool_config();
    /// assert_eq!(pool.addr, "db.internal:5433");
    /// assert_eq!(pool.connect_timeout.as_secs(), 3);
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
        config
    }

    /// Sets `application_name`; for chaining.
    pub fn with_application_name(mut self, name: impl Into<String>) -> Self {
        self.application_name = Some(name.into());
        self
    }

    /// Adds a startup parameter; for chaining.
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
    /// and TLS settings; both pooled connection kinds start here.
    pub(crate) async fn connect(&self) -> Result<pg_wired::WireConn, WireError> {
        crate::tls::WireTls::new(self)?
            .connect(self, &self.password)
            .await
    }
}

/// `host`, `host:port`, `[v6]` or `[v6]:port` to `host:port`.
fn parse_hostport(hostport: &str) -> Result<String, WireError> {
    let bad = |reason: String| WireError::Url { reason };
    if hostport.contains(',') {
        return Err(bad("several hosts are not supported".into()));
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or_else(|| bad("IPv6 host is missing its closing `]`".into()))?;
        let port = match after {
            "" => None,
            _ => Some(
                after
                    .strip_prefix(':')
                    .ok_or_else(|| bad(format!("unexpected `{after}` after the IPv6 host")))?,
            ),
        };
        (format!("[{host}]"), port)
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (hostport.to_owned(), None),
        }
    };
    let host = if host.is_empty() || host == "[]" {
        // libpq would use a unix socket here; pg-wired speaks TCP only.
        "127.0.0.1".to_owned()
    } else {
        decode(&host, "host")?
    };
    let port = match port {
        None | Some("") => 5432,
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|&p| p != 0)
            .ok_or_else(|| bad(format!("port `{port}` is not a number from 1 to 65535")))?,
    };
    Ok(format!("{host}:{port}"))
}

/// Percent-decodes `input` (`what` names the part in the error, never its value).
fn decode(input: &str, what: &str) -> Result<String, WireError> {
    let bad = || WireError::Url {
        reason: format!("the {what} has an invalid percent-encoding (expected %XX hex)"),
    };
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes.get(i + 1..i + 3).ok_or_else(bad)?;
            let hex = std::str::from_utf8(hex).map_err(|_| bad())?;
            out.push(u8::from_str_radix(hex, 16).map_err(|_| bad())?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| WireError::Url {
        reason: format!("the {what} is not valid UTF-8 after percent-decoding"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_url() {
        let c = WireConfig::from_url(
            "postgresql://us%65r:p%3Ass%40w@db.example:6432/my%20db?application_name=a%20b&options=-c%20x%3D1&connect_timeout=7",
        )
        .unwrap();
        assert_eq!(c.addr, "db.example:6432");
        assert_eq!(c.user, "user");
        assert_eq!(c.password, "p:ss@w");
        assert_eq!(c.database, "my db");
        assert_eq!(c.application_name.as_deref(), Some("a b"));
        assert_eq!(c.params, vec![("options".to_owned(), "-c x=1".to_owned())]);
        assert_eq!(c.connect_timeout, Some(Duration::from_secs(7)));
        assert!(!format!("{c:?}").contains("p:ss@w"));
    }

    #[test]
    fn defaults_and_ipv6() {
        let c = WireConfig::from_url("postgres://").unwrap();
        assert_eq!(c.addr, "127.0.0.1:5432");
        assert_eq!(c.user, "postgres");
        assert_eq!(c.database, "postgres");
        let c = WireConfig::from_url("postgres://bob@[::1]/").unwrap();
        assert_eq!(c.addr, "[::1]:5432");
        assert_eq!(c.database, "bob");
        let c = WireConfig::from_url("postgres://[::1]:7000").unwrap();
        assert_eq!(c.addr, "[::1]:7000");
        // An unencoded '@' in the password is tolerated.
        let c = WireConfig::from_url("postgres://u:a@b@h/d").unwrap();
        assert_eq!((c.password.as_str(), c.addr.as_str()), ("a@b", "h:5432"));
    }

    #[test]
    fn errors_are_clear() {
        let msg = |url: &str| WireConfig::from_url(url).unwrap_err().to_string();
        assert!(msg("http://h/d").contains("scheme must be postgres://"));
        assert!(msg("postgres://h:99999/d").contains("port `99999`"));
        assert!(msg("postgres://h:abc/d").contains("port `abc`"));
        assert!(
            msg("postgres://u:secret%zz@h/d").contains("password has an invalid percent-encoding")
        );
        assert!(!msg("postgres://u:secret%zz@h/d").contains("secret"));
        assert!(msg("postgres://h/d?sslmode=require").contains("TLS is not supported"));
        assert!(msg("postgres://h/d?connect_timeout=x").contains("connect_timeout"));
        assert!(msg("postgres://h/d?flag").contains("has no `=value`"));
        assert!(msg("postgres://a,b/d").contains("several hosts"));
        assert!(msg("postgres://[::1/d").contains("closing `]`"));
    }
}
