//! Several hosts, tried in order as libpq tries them, and the error that names each one.

use std::fmt;
use std::time::Duration;

use pg_pool_conninfo::TargetSessionAttrs;
use pg_pool_core::ConnPoolConfig;
use pg_wired::WireConn;

use crate::attrs::{Want, Watch, check_session};
use crate::config::WireConfig;
use crate::error::{WireError, is_permanent_code};
use crate::tls::WireTls;

/// One host's failed attempt, as part of a [`HostsError`].
///
/// `Display` is `host:port: why` (a TLS error names its host itself); the host's own error is [`HostError::error`], and
/// `source()` is that error's source.
#[derive(Debug)]
pub struct HostError {
    addr: String,
    error: WireError,
}

impl HostError {
    /// The host and port tried, as given (`host:port`).
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Why this host could not be used: a dial error (refused, unreachable, the name did
    /// not resolve), a TLS failure, the server's error response,
    /// [`WireError::HostTimeout`], or [`WireError::SessionAttrs`].
    pub fn error(&self) -> &WireError {
        &self.error
    }

    /// The host's error, by value.
    pub fn into_error(self) -> WireError {
        self.error
    }
}

impl fmt::Display for HostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.error {
            // Already names the host: "TLS with host:port failed: ...".
            WireError::Tls { addr, .. } if *addr == self.addr => write!(f, "{}", self.error),
            error => write!(f, "{}: {error}", self.addr),
        }
    }
}

impl std::error::Error for HostError {
    // The host's error is part of `Display` already; its own cause comes next.
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        std::error::Error::source(&self.error)
    }
}

/// No host of several could be used: each host's error, in the order tried.
///
/// `Display` names every host and why it failed, for example `could not connect to any
/// of 2 hosts: 127.0.0.1:5433: I/O error: Connection refused (os error 111);
/// 127.0.0.1:5434: server is not a standby (target_session_attrs=standby)`. `source()`
/// is the first host's [`HostError`]. No error here shows the password or the user name.
///
/// A host whose server refuses the credentials or the database (SQLSTATE class `28`,
/// `3D000`, `42501`) ends the walk, as in libpq: the hosts after it are not tried, and
/// [`HostsError::stopped_early`] says so.
#[derive(Debug)]
pub struct HostsError {
    hosts: usize,
    errors: Vec<HostError>,
}

impl HostsError {
    /// Every host tried, in order, with its error.
    pub fn errors(&self) -> &[HostError] {
        &self.errors
    }

    /// The host errors, by value.
    pub fn into_errors(self) -> Vec<HostError> {
        self.errors
    }

    /// How many hosts the configuration lists.
    pub fn hosts(&self) -> usize {
        self.hosts
    }

    /// Whether an authentication or database error on one host ended the walk before
    /// the hosts after it were tried.
    pub fn stopped_early(&self) -> bool {
        self.errors.len() < self.hosts
    }
}

impl fmt::Display for HostsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "could not connect to any of {} hosts: ", self.hosts)?;
        for (i, host) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{host}")?;
        }
        if self.stopped_early() {
            write!(
                f,
                "; {} more not tried: the server refused the credentials or the database \
                 (libpq stops there too)",
                self.hosts - self.errors.len()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for HostsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.errors
            .first()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

impl WireConfig {
    /// The addresses of [`WireConfig::addr`], in the order they are tried.
    pub fn addrs(&self) -> impl Iterator<Item = &str> {
        split_addrs(&self.addr)
    }

    /// The bound on each host's attempt (dial, TLS, startup, `target_session_attrs`):
    /// [`WireConfig::connect_timeout`] when set, as in libpq. Without it, one host has no
    /// bound of its own (the pool's `connect_timeout` bounds the attempt); several hosts
    /// share the pool's connect timeout (`pool_connect_timeout`, else the default 10 s)
    /// in equal parts, one per attempt a connect may make, so that a host that never
    /// answers cannot keep the next from being tried. Set `connect_timeout` when you give
    /// the pool a `connect_timeout` of your own.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    /// use pg_pool_wire::WireConfig;
    ///
    /// let one = WireConfig::from_url("postgres://db1/shop")?;
    /// assert_eq!(one.per_host_timeout(), None);
    /// let two = WireConfig::from_url("postgres://db1,db2/shop")?;
    /// assert_eq!(two.per_host_timeout(), Some(Duration::from_secs(5)));
    /// let set = WireConfig::from_url("postgres://db1,db2/shop?connect_timeout=2")?;
    /// assert_eq!(set.per_host_timeout(), Some(Duration::from_secs(2)));
    /// # Ok::<(), pg_pool_wire::WireError>(())
    /// ```
    pub fn per_host_timeout(&self) -> Option<Duration> {
        if self.connect_timeout.is_some() {
            return self.connect_timeout;
        }
        let attempts = attempts(self);
        if attempts <= 1 {
            return None;
        }
        let total = self
            .pool
            .connect_timeout
            .unwrap_or(ConnPoolConfig::default().connect_timeout);
        Some(total / attempts)
    }
}

/// The addresses of [`WireConfig::addr`]: one `host:port`, or several separated by commas.
pub(crate) fn split_addrs(addr: &str) -> impl Iterator<Item = &str> {
    addr.split(',').map(str::trim)
}

/// Why one address cannot be dialed, if it cannot: empty, a unix socket, no port, a port
/// out of range, an IPv6 address without brackets.
pub(crate) fn check_addr(addr: &str) -> Result<(), String> {
    if addr.is_empty() {
        return Err("lists an empty address".into());
    }
    if addr.starts_with('/') || addr.starts_with('@') {
        return Err(UNIX_SOCKETS.into());
    }
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err("lists an address without a port; write host:port".into());
    };
    let port_ok = !port.is_empty()
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p != 0);
    if !port_ok {
        return Err("lists an address whose port is not a number from 1 to 65535".into());
    }
    if host.is_empty() || host == "[]" {
        return Err("lists an address without a host".into());
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err("lists an IPv6 address without brackets; write [::1]:5432".into());
    }
    Ok(())
}

/// The message for a unix-socket address.
pub(crate) const UNIX_SOCKETS: &str = "unix sockets are not supported by pg-wired, which \
     connects over TCP only; use a TCP host, or pg-pool-tokio-postgres for unix sockets";

/// How many attempts a walk may make: every host, twice for `prefer-standby`.
pub(crate) fn attempts(config: &WireConfig) -> u32 {
    let hosts = u32::try_from(split_addrs(&config.addr).count()).unwrap_or(u32::MAX);
    let passes = match config.target_session_attrs {
        TargetSessionAttrs::PreferStandby => 2,
        _ => 1,
    };
    hosts.saturating_mul(passes)
}

/// A session opened by [`connect`], and what to watch on it.
pub(crate) struct Opened {
    pub(crate) conn: WireConn,
    pub(crate) watch: Watch,
}

/// Tries the hosts of `config` in order, as libpq does: each within the per-host limit
/// ([`WireConfig::per_host_timeout`]) for dialing (the name resolved anew), TLS verified
/// against that host's name, startup and the `target_session_attrs` check; a host that
/// does not match is closed (`Terminate`) and the next tried. `prefer-standby` first looks
/// for a standby, then takes any host that answered but was not one. An authentication or
/// database error ends the walk (as in libpq).
///
/// # Errors
///
/// With one host, that host's error; with several, [`WireError::Hosts`] naming each.
///
/// # Cancel safety
///
/// Cancel safe: dropping the future drops the half-open session, if any.
pub(crate) async fn connect(
    config: &WireConfig,
    tls: &WireTls,
    password: &str,
) -> Result<Opened, WireError> {
    config.validate()?;
    let addrs: Vec<&str> = split_addrs(&config.addr).collect();
    let wanted = config.target_session_attrs;
    let limit = config.per_host_timeout();
    let first = match wanted {
        TargetSessionAttrs::PreferStandby => Want::Standby { preferred: true },
        other => Want::from(other),
    };
    let mut errors: Vec<HostError> = Vec::with_capacity(addrs.len());
    let mut not_standby = Vec::new();
    let mut stopped = false;
    for &addr in &addrs {
        match attempt(config, tls, password, addr, first, limit).await {
            Ok(opened) => return Ok(opened),
            Err(error) => {
                stopped = error.code().is_some_and(is_permanent_code);
                if first == (Want::Standby { preferred: true })
                    && matches!(error, WireError::SessionAttrs { .. })
                {
                    not_standby.push(errors.len());
                }
                tracing::debug!(host = addr, %error, "could not use this host");
                errors.push(HostError {
                    addr: addr.to_owned(),
                    error,
                });
                if stopped {
                    break;
                }
            }
        }
    }
    if !stopped {
        // prefer-standby's second pass: the hosts that answered but were not standbys.
        for i in not_standby {
            let addr = addrs[i];
            match attempt(config, tls, password, addr, Want::Any, limit).await {
                Ok(opened) => return Ok(opened),
                Err(error) => errors[i].error = error,
            }
        }
    }
    if addrs.len() == 1
        && let Some(only) = errors.pop()
    {
        return Err(only.error);
    }
    Err(WireError::Hosts(HostsError {
        hosts: addrs.len(),
        errors,
    }))
}

/// One host: dial, TLS, startup and the session check, within `limit`.
async fn attempt(
    config: &WireConfig,
    tls: &WireTls,
    password: &str,
    addr: &str,
    want: Want,
    limit: Option<Duration>,
) -> Result<Opened, WireError> {
    let work = async {
        let conn = tls.connect(config, addr, password).await?;
        check_session(conn, want).await
    };
    match limit {
        Some(limit) => tokio::time::timeout(limit, work)
            .await
            .unwrap_or(Err(WireError::HostTimeout { limit })),
        None => work.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_one_by_one() {
        for good in ["127.0.0.1:5432", "db.internal:1", "[::1]:65535", "a:5432"] {
            assert_eq!(check_addr(good), Ok(()), "{good}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("/var/run/postgresql:5432", "unix sockets"),
            ("@abstract", "unix sockets"),
            ("localhost", "without a port"),
            ("h:0", "port"),
            ("h:65536", "port"),
            ("h:+5", "port"),
            ("h:", "port"),
            (":5432", "without a host"),
            ("::1:5432", "brackets"),
        ] {
            let reason = check_addr(bad).unwrap_err();
            assert!(reason.contains(why), "{bad}: {reason}");
        }
        let list: Vec<_> = split_addrs("a:1, b:2,c:3").collect();
        assert_eq!(list, ["a:1", "b:2", "c:3"]);
    }

    #[test]
    fn the_aggregate_names_every_host_and_its_first_cause() {
        let refused = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused");
        let error = HostsError {
            hosts: 3,
            errors: vec![
                HostError {
                    addr: "127.0.0.1:5433".into(),
                    error: pg_wired::PgWireError::Io(refused).into(),
                },
                HostError {
                    addr: "127.0.0.1:5434".into(),
                    error: WireError::SessionAttrs {
                        wanted: "standby",
                        found: "not a standby",
                    },
                },
            ],
        };
        let text = error.to_string();
        assert!(
            text.starts_with("could not connect to any of 3 hosts: "),
            "{text}"
        );
        assert!(
            text.contains("127.0.0.1:5433: I/O error: refused"),
            "{text}"
        );
        assert!(
            text.contains("127.0.0.1:5434: server is not a standby (target_session_attrs=standby)"),
            "{text}"
        );
        assert!(text.contains("1 more not tried"), "{text}");
        let first = std::error::Error::source(&error).expect("the first host");
        assert!(first.to_string().starts_with("127.0.0.1:5433"), "{first}");
        assert!(error.stopped_early());
        assert_eq!(error.errors().len(), 2);
    }
}
