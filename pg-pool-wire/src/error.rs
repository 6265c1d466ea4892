//! The error type of the pg-wired adapter.

use std::time::Duration;

use pg_wired::{PgError, PgWireError};

use crate::hosts::HostsError;
use crate::session::TransactionStatus;

/// What went wrong talking to PostgreSQL through pg-wired, or configuring the connection.
///
/// Server errors keep the server's message, SQLSTATE, detail and hint: a wrong password
/// reads `PostgreSQL error: 28P01: password authentication failed for user "app"`.
/// Use [`WireError::server_error`] and [`WireError::code`] to inspect them, and
/// [`WireError::is_fatal`] to tell whether the connection is gone.
///
/// # Examples
///
/// ```
/// use pg_pool_wire::{WireConfig, WireError};
///
/// let err = "mysql://localhost/db".parse::<WireConfig>().unwrap_err();
/// assert!(matches!(err, WireError::ConnInfo(_)));
/// assert!(err.to_string().contains("postgres://"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// The driver failed: I/O, a protocol violation, the connection closed, or an error
    /// response from the server (authentication, SQL, termination).
    /// Boxed: the driver's error is large, and errors travel on every `Result`.
    #[error(transparent)]
    Driver(Box<PgWireError>),
    /// A connection string (URL or `key=value`) or environment variable could not be
    /// parsed; the message is `pg_pool_conninfo`'s, the same as pg-pool-tokio-postgres
    /// reports for the same string, and never includes the user name or password.
    #[error(transparent)]
    ConnInfo(#[from] pg_pool_conninfo::ConnInfoError),
    /// A connection setting is not supported or makes no sense.
    #[error("invalid connection setting `{setting}`: {reason}")]
    Config {
        /// The offending setting.
        setting: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The connection was returned with a transaction still open or failed; it is not
    /// reused (its session state is unknown to the next user).
    #[error("connection returned with its transaction {0}; it will not be reused")]
    TransactionOpen(TransactionStatus),
    /// The connection broke earlier (I/O error, fatal server error, or an exchange that was
    /// abandoned midway) and cannot be used again.
    #[error("connection is broken and cannot be used again")]
    Broken,
    /// The statement cannot be sent as given (its text contains a NUL byte, which the
    /// protocol cannot carry); nothing was sent and the connection is unaffected.
    #[error("invalid statement: {reason}")]
    InvalidStatement {
        /// What is wrong with the statement.
        reason: &'static str,
    },
    /// The statement may not run on a shared connection
    /// ([`SharedWire`](crate::SharedWire)): it could open a transaction or change the
    /// session for every other user of it. Nothing was sent.
    #[error("statement not allowed on a shared connection: {reason}")]
    NotShareable {
        /// What is allowed instead.
        reason: &'static str,
    },
    /// TLS could not be set up with the server: it does not offer TLS under a mode that
    /// requires it, or the handshake failed (the reason names a certificate problem in
    /// plain words).
    #[error("TLS with {addr} failed: {reason}")]
    Tls {
        /// The server address.
        addr: String,
        /// What went wrong.
        reason: String,
        /// The driver's error.
        #[source]
        source: Box<PgWireError>,
    },
    /// The password provider failed or panicked before a connect attempt; nothing was sent
    /// to the server. The provider's own error is the `source()`, not part of `Display`.
    #[error(
        "the password provider failed, so no connection was attempted (see the source for why)"
    )]
    PasswordProvider {
        /// The provider's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Several hosts were given and none could be used: every host's own error, in the
    /// order tried ([`HostsError::errors`]). `Display` names every host and why it failed;
    /// `source()` is the first host's error.
    #[error(transparent)]
    Hosts(HostsError),
    /// The server accepted the session but is not what `target_session_attrs` asks for
    /// (for example a standby when `read-write` was asked); the session was closed.
    #[error("server is {found} (target_session_attrs={wanted})")]
    SessionAttrs {
        /// The `target_session_attrs` value asked for: `read-write`, `read-only`,
        /// `primary`, `standby` or `prefer-standby`.
        wanted: &'static str,
        /// What the server is instead: `read-only`, `not read-only`, `a standby`,
        /// `not a standby`.
        found: &'static str,
    },
    /// One host did not finish dialing, TLS, startup and the `target_session_attrs`
    /// check within its `connect_timeout` (per host, as in libpq).
    #[error("no session within connect_timeout ({limit:?}, per host)")]
    HostTimeout {
        /// The per-host limit that passed.
        limit: Duration,
    },
    /// A tokio runtime is needed (pg-wired's `AsyncConn` spawns tokio tasks) but none is
    /// running on this thread.
    #[error("pg-wired needs a tokio runtime, and none is running on this thread")]
    NoTokio,
}

impl From<PgWireError> for WireError {
    fn from(e: PgWireError) -> Self {
        WireError::Driver(Box::new(e))
    }
}

impl WireError {
    pub(crate) fn config(setting: &str, reason: impl Into<String>) -> Self {
        WireError::Config {
            setting: setting.to_owned(),
            reason: reason.into(),
        }
    }

    /// The server's error response behind this error, if the server sent one. Of
    /// several hosts ([`WireError::Hosts`]): the error of the host that stopped the walk
    /// (an authentication failure, see [`HostsError::stopped_early`]), if any.
    pub fn server_error(&self) -> Option<&PgError> {
        match self {
            WireError::Driver(e) => match &**e {
                PgWireError::Pg(e) => Some(e),
                _ => None,
            },
            WireError::Hosts(hosts) if hosts.stopped_early() => {
                hosts.errors().last().and_then(|h| h.error().server_error())
            }
            _ => None,
        }
    }

    /// The SQLSTATE code of the server's error, for example `"28P01"` for a wrong password.
    pub fn code(&self) -> Option<&str> {
        self.server_error().map(|e| e.code.as_str())
    }

    /// Whether the error means the session is gone: the connection closed, an I/O or
    /// protocol error, a `FATAL` or `PANIC` server error, or one of the SQLSTATEs that end a
    /// session (class `08`, `57P01` admin shutdown, `57P02` crash shutdown, `57P03`
    /// cannot connect now, `57P05` idle session timeout).
    pub fn is_fatal(&self) -> bool {
        match self {
            WireError::Driver(e) => proves_dead(e),
            WireError::Broken => true,
            _ => false,
        }
    }
}

/// Whether a driver error proves the connection unusable: an I/O error, the connection
/// closed, a protocol error (the client and server no longer agree on where a message
/// starts), or a server error that ends the session.
pub(crate) fn proves_dead(e: &PgWireError) -> bool {
    match e {
        PgWireError::Pg(e) => is_fatal_server_error(e),
        _ => true,
    }
}

/// What a failed request says about the server, for `Poolable::server_changed`: the
/// server became a read-only standby (`25006` on a write), is shutting down or refusing
/// connections (`57P01`, `57P02`, `57P03`), or the connection was lost (class `08`, an I/O
/// error, the connection closed). Every pooled connection to that server is then suspect.
pub(crate) fn server_change(e: &PgWireError) -> Option<&'static str> {
    match e {
        PgWireError::Pg(e) => server_change_code(&e.code),
        PgWireError::Io(_) | PgWireError::ConnectionClosed => Some("connection lost"),
        _ => None,
    }
}

/// The cause named for a SQLSTATE that signals a changed server, if it is one.
pub(crate) fn server_change_code(code: &str) -> Option<&'static str> {
    match code {
        "25006" => Some("25006 read_only_sql_transaction"),
        "57P01" => Some("57P01 admin_shutdown"),
        "57P02" => Some("57P02 crash_shutdown"),
        "57P03" => Some("57P03 cannot_connect_now"),
        // A protocol violation is this session's alone (its client sent something the
        // server could not parse): it ends the session, but says nothing of the server.
        "08P01" => None,
        code if code.starts_with("08") => Some("08 connection_exception"),
        _ => None,
    }
}

/// Whether a failed connect will fail the same way every time with these settings: wrong
/// password or user, unknown database, no `pg_hba.conf` entry, insufficient privilege.
///
/// Of several hosts: when every host tried failed so (the walk stops at such an error, as
/// libpq's does, so a host after it is never reached with these settings).
pub(crate) fn is_permanent_connect_error(e: &WireError) -> bool {
    match e {
        WireError::Hosts(hosts) => {
            !hosts.errors().is_empty()
                && hosts
                    .errors()
                    .iter()
                    .all(|h| is_permanent_connect_error(h.error()))
        }
        _ => e.code().is_some_and(is_permanent_code),
    }
}

/// SQLSTATEs of a startup that will fail the same way every time with these settings.
pub(crate) fn is_permanent_code(code: &str) -> bool {
    code.starts_with("28") || matches!(code, "3D000" | "42501")
}

/// Whether a server error ends the session.
pub(crate) fn is_fatal_server_error(e: &PgError) -> bool {
    matches!(e.severity.as_str(), "FATAL" | "PANIC")
        || e.code.starts_with("08")
        || matches!(e.code.as_str(), "57P01" | "57P02" | "57P03" | "57P05")
}
