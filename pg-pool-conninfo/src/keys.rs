//! The keys a connection string may set, and how each value is checked and typed.

use std::path::PathBuf;
use std::time::Duration;

use crate::error::{ConnInfoError, ConnInfoErrorKind, shown};
use crate::hosts::pair_hosts;
use crate::info::{ConnInfo, TargetSessionAttrs};
use crate::pool::MAX_DURATION;
use crate::raw::{Entry, Origin, Raw, Value};
use crate::secret::Secret;
use crate::tls::{ChannelBinding, RootCerts, SslMode};

/// Server settings passed through as startup parameters, besides `client_encoding`.
pub const STARTUP_SETTINGS: &[&str] = &[
    "client_encoding",
    "datestyle",
    "intervalstyle",
    "timezone",
    "search_path",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
];

/// libpq keys accepted only with the value that matches what pg-pool does.
const FIXED: &[(&str, &[&str], &str)] = &[
    (
        "gssencmode",
        &["disable", "prefer"],
        "GSSAPI encryption is not implemented; use disable or prefer",
    ),
    (
        "sslnegotiation",
        &["postgres"],
        "only the PostgreSQL negotiation (postgres) is implemented",
    ),
    (
        "load_balance_hosts",
        &["disable"],
        "hosts are tried in the order given; only disable is implemented",
    ),
    (
        "sslcompression",
        &["0"],
        "TLS compression is not implemented; use 0",
    ),
];

/// libpq keys pg-pool does not implement.
const UNSUPPORTED: &[&str] = &[
    "hostaddr",
    "require_auth",
    "replication",
    "sslpassword",
    "sslcertmode",
    "sslcrl",
    "sslcrldir",
    "sslsni",
    "sslkeylogfile",
    "requirepeer",
    "ssl_min_protocol_version",
    "ssl_max_protocol_version",
    "min_protocol_version",
    "max_protocol_version",
    "krbsrvname",
    "gsslib",
    "gssdelegation",
    "service",
];

/// Checks and types every key of `raw`.
pub(crate) fn build(raw: Raw) -> Result<ConnInfo, ConnInfoError> {
    let mut info = ConnInfo::default();
    let mut hosts: Option<(Vec<String>, Origin)> = None;
    let mut ports: Option<(Vec<String>, Origin)> = None;
    let mut sslmode_given = false;
    for entry in raw.into_entries() {
        let Entry {
            key,
            value,
            origin,
            after_password,
        } = entry;
        let value = match value {
            Value::List(list) => {
                for item in &list {
                    check_nul(&key, origin, item)?;
                }
                match key.as_str() {
                    "host" => hosts = Some((list, origin)),
                    "port" => ports = Some((list, origin)),
                    _ => unreachable!("only host and port come as lists"),
                }
                continue;
            }
            Value::Text(text) => text,
        };
        if !is_known(&key) {
            // Before any check that names the key: an unknown key may be a piece of a
            // password with an unquoted space.
            return Err(unknown_key(&key, origin, after_password));
        }
        check_nul(&key, origin, &value)?;
        let ctx = Ctx {
            key: &key,
            origin,
            value: &value,
        };
        match key.as_str() {
            "host" => hosts = Some((split_list(&value), origin)),
            "port" => ports = Some((split_list(&value), origin)),
            "user" => info.user = non_empty(value),
            "password" => info.password = non_empty(value).map(Secret::from),
            "passfile" => info.passfile = non_empty(value).map(PathBuf::from),
            "dbname" => info.dbname = non_empty(value),
            "application_name" => info.application_name = Some(value),
            "fallback_application_name" => info.fallback_application_name = Some(value),
            "options" => info.options = Some(value),
            "connect_timeout" => info.connect_timeout = ctx.connect_timeout()?,
            "sslmode" => {
                info.tls.mode = ctx.one_of(&[
                    ("disable", SslMode::Disable),
                    ("allow", SslMode::Allow),
                    ("prefer", SslMode::Prefer),
                    ("require", SslMode::Require),
                    ("verify-ca", SslMode::VerifyCa),
                    ("verify-full", SslMode::VerifyFull),
                ])?;
                sslmode_given = true;
            }
            "sslrootcert" => {
                info.tls.root_certs = match value.as_str() {
                    "" => None,
                    "system" => Some(RootCerts::System),
                    _ => Some(RootCerts::File(PathBuf::from(value))),
                }
            }
            "sslcert" => info.tls.client_cert = non_empty(value).map(PathBuf::from),
            "sslkey" => info.tls.client_key = non_empty(value).map(PathBuf::from),
            "channel_binding" => {
                info.tls.channel_binding = ctx.one_of(&[
                    ("disable", ChannelBinding::Disable),
                    ("prefer", ChannelBinding::Prefer),
                    ("require", ChannelBinding::Require),
                ])?;
            }
            "keepalives" => {
                info.keepalives.enabled = Some(ctx.one_of(&[("1", true), ("0", false)])?);
            }
            "keepalives_idle" => info.keepalives.idle = Some(ctx.positive_secs()?),
            "keepalives_interval" => info.keepalives.interval = Some(ctx.positive_secs()?),
            "keepalives_count" => {
                let count = ctx.whole(i32::MAX as u64)?;
                info.keepalives.count = Some(u32::try_from(count).unwrap_or(u32::MAX));
            }
            "tcp_user_timeout" => {
                let millis = ctx.whole(MAX_DURATION.as_millis() as u64)?;
                info.tcp_user_timeout = (millis > 0).then(|| Duration::from_millis(millis));
            }
            "target_session_attrs" => {
                info.target_session_attrs = ctx.one_of(&[
                    ("any", TargetSessionAttrs::Any),
                    ("read-write", TargetSessionAttrs::ReadWrite),
                    ("read-only", TargetSessionAttrs::ReadOnly),
                    ("primary", TargetSessionAttrs::Primary),
                    ("standby", TargetSessionAttrs::Standby),
                    ("prefer-standby", TargetSessionAttrs::PreferStandby),
                ])?;
            }
            k if STARTUP_SETTINGS.contains(&k) => info.params.push((key.clone(), value)),
            k if k.starts_with("pool_") => info.pool.set(&key, &value, origin)?,
            k => ctx.other_key(k, after_password)?,
        }
    }
    info.hosts = pair_hosts(hosts, ports)?;
    // As libpq: `sslrootcert=system` makes verify-full the default and weaker modes an error.
    if info.tls.root_certs == Some(RootCerts::System) {
        if !sslmode_given {
            info.tls.mode = SslMode::VerifyFull;
        } else if info.tls.mode != SslMode::VerifyFull {
            return Err(ConnInfoError::for_key(
                ConnInfoErrorKind::InvalidValue,
                "sslmode",
                "",
                "must be verify-full when sslrootcert is system (as libpq)",
            ));
        }
    }
    Ok(info)
}

/// The keys [`build`] handles itself.
const HANDLED: &[&str] = &[
    "host",
    "port",
    "user",
    "password",
    "passfile",
    "dbname",
    "application_name",
    "fallback_application_name",
    "options",
    "connect_timeout",
    "sslmode",
    "sslrootcert",
    "sslcert",
    "sslkey",
    "channel_binding",
    "target_session_attrs",
    "keepalives",
    "keepalives_idle",
    "keepalives_interval",
    "keepalives_count",
    "tcp_user_timeout",
];

/// Whether `key` is a key this crate knows (handled, passed through, fixed, unsupported,
/// or a `pool_*` key).
fn is_known(key: &str) -> bool {
    HANDLED.contains(&key)
        || STARTUP_SETTINGS.contains(&key)
        || key.starts_with("pool_")
        || FIXED.iter().any(|(name, _, _)| *name == key)
        || UNSUPPORTED.contains(&key)
}

/// One value being checked.
struct Ctx<'a> {
    key: &'a str,
    origin: Origin,
    value: &'a str,
}

impl Ctx<'_> {
    fn error(&self, kind: ConnInfoErrorKind, problem: impl Into<String>) -> ConnInfoError {
        ConnInfoError::for_key(kind, self.key, &self.origin.label(), problem)
    }

    /// The value for the message: shown if the origin allows, otherwise "the value".
    fn shown(&self) -> String {
        if self.origin.may_show() {
            shown(self.value)
        } else {
            "the value".to_owned()
        }
    }

    fn one_of<T: Copy>(&self, choices: &[(&str, T)]) -> Result<T, ConnInfoError> {
        choices
            .iter()
            .find(|(name, _)| *name == self.value)
            .map(|&(_, value)| value)
            .ok_or_else(|| {
                let names: Vec<&str> = choices.iter().map(|(name, _)| *name).collect();
                self.error(
                    ConnInfoErrorKind::InvalidValue,
                    format!("{} is not one of {}", self.shown(), names.join(", ")),
                )
            })
    }

    /// libpq's integer seconds; zero or negative means no per-host limit (as libpq).
    fn connect_timeout(&self) -> Result<Option<Duration>, ConnInfoError> {
        let text = self.value.trim_end();
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text.strip_prefix('+').unwrap_or(text)),
        };
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.error(
                ConnInfoErrorKind::InvalidValue,
                format!("{} is not a whole number of seconds", self.shown()),
            ));
        }
        let secs: u64 = digits.parse().map_err(|_| {
            self.error(
                ConnInfoErrorKind::InvalidValue,
                format!("{} is too large", self.shown()),
            )
        })?;
        if !negative && Duration::from_secs(secs) > MAX_DURATION {
            return Err(self.error(
                ConnInfoErrorKind::InvalidValue,
                format!("{} is too large (at most a year)", self.shown()),
            ));
        }
        Ok((!negative && secs > 0).then(|| Duration::from_secs(secs)))
    }

    /// A whole number (an optional leading `+`, digits, trailing spaces) up to `max`.
    fn whole(&self, max: u64) -> Result<u64, ConnInfoError> {
        let text = self.value.trim_end();
        let digits = text.strip_prefix('+').unwrap_or(text);
        if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(self.error(
                ConnInfoErrorKind::InvalidValue,
                format!("{} is not a whole number", self.shown()),
            ));
        }
        match digits.parse::<u64>() {
            Ok(n) if n <= max => Ok(n),
            _ => Err(self.error(
                ConnInfoErrorKind::InvalidValue,
                format!("{} is too large (at most {max})", self.shown()),
            )),
        }
    }

    /// Whole seconds, at least one, at most [`MAX_DURATION`].
    fn positive_secs(&self) -> Result<Duration, ConnInfoError> {
        let secs = self.whole(MAX_DURATION.as_secs())?;
        if secs == 0 {
            return Err(self.error(ConnInfoErrorKind::InvalidValue, "must be at least 1 second"));
        }
        Ok(Duration::from_secs(secs))
    }

    /// A key that is not implemented: a fixed-value libpq key, an unsupported libpq key, or
    /// an unknown one.
    fn other_key(&self, key: &str, after_password: bool) -> Result<(), ConnInfoError> {
        if let Some((_, allowed, why)) = FIXED.iter().find(|(name, _, _)| *name == key) {
            if allowed.contains(&self.value) {
                return Ok(());
            }
            return Err(self.error(
                ConnInfoErrorKind::Unsupported,
                format!("{} is not supported: {why}", self.shown()),
            ));
        }
        if UNSUPPORTED.contains(&key) {
            return Err(self.error(
                ConnInfoErrorKind::Unsupported,
                "is a libpq setting pg-pool does not implement",
            ));
        }
        Err(unknown_key(key, self.origin, after_password))
    }
}

/// The error for an unknown key. Its name is shown only when it looks like a key name and
/// cannot be a piece of a password.
pub(crate) fn unknown_key(key: &str, origin: Origin, after_password: bool) -> ConnInfoError {
    let plausible = !key.is_empty()
        && key.len() <= 64
        && key.starts_with(|c: char| c.is_ascii_lowercase())
        && key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if after_password {
        let hint = match origin {
            Origin::KeyValue => "quote a password containing spaces: password='...'",
            _ => "percent-encode `&` in a password as %26",
        };
        ConnInfoError::new(
            ConnInfoErrorKind::UnknownKey,
            "unknown key after the password",
            format!("its name is not shown as it may be part of the password; {hint}"),
        )
    } else if origin.may_show() && plausible {
        ConnInfoError::new(
            ConnInfoErrorKind::UnknownKey,
            format!("unknown key `{key}`"),
            "libpq has no such setting (server settings go in options='-c name=value')",
        )
    } else {
        ConnInfoError::new(
            ConnInfoErrorKind::UnknownKey,
            "unknown key",
            "the name is not shown as it is not a key name (a misplaced value or password?)",
        )
    }
}

/// Rejects a NUL byte, which would end (or inject into) a protocol message.
pub(crate) fn check_nul(key: &str, origin: Origin, value: &str) -> Result<(), ConnInfoError> {
    if value.contains('\0') {
        return Err(ConnInfoError::for_key(
            ConnInfoErrorKind::Nul,
            key,
            &origin.label(),
            "contains a NUL byte, which no PostgreSQL protocol message can carry",
        ));
    }
    Ok(())
}

fn non_empty(value: String) -> Option<String> {
    (!value.is_empty()).then_some(value)
}

fn split_list(value: &str) -> Vec<String> {
    value.split(',').map(str::to_owned).collect()
}
