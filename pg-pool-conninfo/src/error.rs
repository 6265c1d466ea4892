//! [`ConnInfoError`]: what is wrong with a connection string, never showing a secret.

use std::fmt;

/// What kind of problem a [`ConnInfoError`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConnInfoErrorKind {
    /// The string does not follow the URL or `key=value` grammar (a missing `=`, an
    /// unterminated quote, a missing `]`, a wrong scheme).
    Syntax,
    /// A `%` not followed by two hex digits, or percent-decoded bytes that are not UTF-8.
    PercentEncoding,
    /// A key libpq does not know.
    UnknownKey,
    /// A libpq key (or a value of one) that pg-pool does not implement.
    Unsupported,
    /// A value that is not valid for its key.
    InvalidValue,
    /// A value containing a NUL byte, which would corrupt a protocol message.
    Nul,
}

/// A connection string (URL or `key=value`), an environment variable or a setting made in
/// code that cannot be used.
///
/// `Display` is lowercase, names the part or key and the problem, and never shows the user
/// name or password (nor any value of a URL's user-info or host part, where a password
/// containing an unencoded `/` or `?` ends up when a URL is malformed). Values of other keys
/// are shown escaped and shortened, so that a message stays on one line.
///
/// # Examples
///
/// ```
/// use pg_pool_conninfo::{ConnInfo, ConnInfoErrorKind};
///
/// // A password with an unencoded `/`: the URL is malformed, and the error says so
/// // without showing any part of the password.
/// let err = ConnInfo::parse("postgres://app:Tr0ub4dor/X9q@db/shop").unwrap_err();
/// let message = err.to_string();
/// assert!(!message.contains("Tr0ub4dor") && !message.contains("X9q"));
/// assert!(message.contains("percent-encode"));
/// let err = ConnInfo::parse("host=h sslmode=maybe").unwrap_err();
/// assert_eq!(err.key(), Some("sslmode"));
/// assert_eq!(err.kind(), ConnInfoErrorKind::InvalidValue);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnInfoError {
    kind: ConnInfoErrorKind,
    part: String,
    key: Option<String>,
    problem: String,
    /// Whether the problem is in the string (not in an environment variable or a file).
    in_string: bool,
}

impl ConnInfoError {
    /// An error about `part` (a key, an environment variable, a piece of the URL).
    pub(crate) fn new(
        kind: ConnInfoErrorKind,
        part: impl Into<String>,
        problem: impl Into<String>,
    ) -> Self {
        Self {
            kind,
            part: part.into(),
            key: None,
            problem: problem.into(),
            in_string: true,
        }
    }

    /// An error about the value of `key`; `origin` names where it came from (an
    /// environment variable), or is empty.
    pub(crate) fn for_key(
        kind: ConnInfoErrorKind,
        key: &str,
        origin: &str,
        problem: impl Into<String>,
    ) -> Self {
        let part = if origin.is_empty() {
            format!("`{key}`")
        } else {
            format!("`{key}` (from {origin})")
        };
        Self {
            kind,
            part,
            key: Some(key.to_owned()),
            problem: problem.into(),
            in_string: origin.is_empty(),
        }
    }

    /// The same error, said to come from the environment variable `var` (`DATABASE_URL`).
    pub(crate) fn in_variable(mut self, var: &str) -> Self {
        if self.in_string {
            self.part = format!("{} (in {var})", self.part);
            self.in_string = false;
        }
        self
    }

    /// The same error, marked as not coming from the string.
    pub(crate) fn outside_string(mut self) -> Self {
        self.in_string = false;
        self
    }

    /// What kind of problem this is.
    pub fn kind(&self) -> ConnInfoErrorKind {
        self.kind
    }

    /// The libpq key whose value is wrong, if the problem is one key's value (an unknown key
    /// has none: its name may be a fragment of a mistyped password).
    pub fn key(&self) -> Option<&str> {
        self.key.as_deref()
    }
}

impl fmt::Display for ConnInfoError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid connection string: {}: {}",
            self.part, self.problem
        )
    }
}

impl std::error::Error for ConnInfoError {}

/// `value` quoted for an error message: escaped (no control characters reach a log line)
/// and cut at 48 characters. Only ever called for values that are not secret.
pub(crate) fn shown(value: &str) -> String {
    let mut out = String::from("`");
    for (i, c) in value.chars().enumerate() {
        if i == 48 {
            out.push_str("...");
            break;
        }
        out.extend(c.escape_debug());
    }
    out.push('`');
    out
}
