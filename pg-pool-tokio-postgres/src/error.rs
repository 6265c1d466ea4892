//! The error type of the tokio-postgres adapter.

use std::error::Error as _;
use std::fmt;
use std::io;

use pg_pool_conninfo::TargetSessionAttrs;
use tokio_postgres::error::{DbError, SqlState};

use crate::host_errors::HostFailures;
use crate::session_attrs::spelling;

/// What went wrong talking to PostgreSQL through tokio-postgres, or configuring the pool.
///
/// Server errors keep the server's words: a wrong password reads
/// `FATAL 28P01: password authentication failed for user "app"` (tokio-postgres's own
/// `Display` says only "db error"). Use [`PgError::db_error`] and [`PgError::code`] to
/// inspect them, and [`PgError::is_fatal`] to tell whether the session is gone.
///
/// # Examples
///
/// ```
/// use pg_pool_tokio_postgres::{PgConfig, PgError};
///
/// let err = PgConfig::from_url("postgres://h/db?pool_reset=sometimes").unwrap_err();
/// assert!(matches!(err, PgError::Config { .. }));
/// assert!(err.to_string().contains("pool_reset"));
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PgError {
    /// The driver failed: I/O, a protocol violation, the connection closed, or an error
    /// response from the server (authentication, SQL, termination).
    #[error("{}", DriverDisplay(.0))]
    Driver(#[from] tokio_postgres::Error),
    /// Opening the TCP connection to one host failed (on the runtime-neutral connect path;
    /// on tokio the driver reports this as [`PgError::Driver`]).
    #[error("could not connect to {host}:{port}: {source}")]
    Connect {
        /// The host that was tried.
        host: String,
        /// Its port.
        port: u16,
        /// The I/O error.
        #[source]
        source: io::Error,
    },
    /// A connection string (URL or `key=value`) or environment variable could not be
    /// parsed; the message is `pg_pool_conninfo`'s, the same as pg-pool-wire reports for the
    /// same string, and never includes the user name or password.
    #[error(transparent)]
    ConnInfo(#[from] pg_pool_conninfo::ConnInfoError),
    /// A call that wants one row (`query_one`, `query_opt` and their `_prepared` forms) got
    /// another number of rows. Every row was read: the session is idle and reusable.
    #[error("{call} expected {expected}, got {got} rows")]
    RowCount {
        /// The call.
        call: &'static str,
        /// What it wanted: `one row`, `at most one row`.
        expected: &'static str,
        /// The rows the statement returned.
        got: usize,
    },
    /// A connection setting makes no sense or is not supported by this driver.
    #[error("invalid connection setting `{setting}`: {reason}")]
    Config {
        /// The offending setting.
        setting: String,
        /// Why it was rejected.
        reason: String,
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
    /// The server reached does not have the `target_session_attrs` asked for (for
    /// example `server is not a standby (target_session_attrs=standby)`); the session was
    /// closed. Not permanent for the pool: a failover can change the answer.
    #[error("{reason} (target_session_attrs={})", spelling(*.wanted))]
    SessionAttrs {
        /// What was asked for in this pass over the hosts (`standby` in the first pass of
        /// `prefer-standby`).
        wanted: TargetSessionAttrs,
        /// What the server is instead.
        reason: &'static str,
    },
    /// Every host of a config with several hosts failed: the error names each host and
    /// why, [`HostFailures`] gives each error, and `source()` is the first host's. A config
    /// with one host reports that host's error alone.
    #[error(transparent)]
    AllHostsFailed(HostFailures),
    /// The connection came back inside a transaction (open or failed); it is destroyed,
    /// never rolled back and reused.
    #[error("connection returned inside a transaction; it will not be reused")]
    TransactionOpen,
    /// The reset queued for this session when it was last returned (read ahead of this
    /// call, whose statement went out behind it) failed: the call's statement may have run
    /// on a session that was not clean. The session is destroyed on return. (The default
    /// reset's first statement fails with `22012` division by zero when the session is,
    /// against the wrapper's knowledge, inside a transaction block.)
    #[error("the session's reset failed, so this call's result cannot be trusted: {}", DriverDisplay(.0))]
    ResetFailed(#[source] tokio_postgres::Error),
    /// The connection broke earlier (closed, or a fatal server error was seen).
    #[error("connection is broken and cannot be used again")]
    Broken,
    /// The pooler-safe profile sends unnamed statements only: use the `_typed` methods
    /// (with explicit parameter types) or parameterless SQL.
    #[error(
        "named prepared statements are disabled by the pooler-safe profile; {what} \
         (use query_typed/execute_typed with explicit parameter types)"
    )]
    NamedStatementsDisabled {
        /// What was attempted.
        what: &'static str,
    },
    /// SQL that may open a transaction block (`BEGIN`, `START TRANSACTION`, also inside a
    /// `DO` block or a string) was refused on a shared connection
    /// ([`SharedClient`](crate::SharedClient)): every user of the connection would run
    /// inside it. Nothing was sent. Use an exclusive connection (`pool.get()`).
    #[error(
        "{what} refused on a shared connection: the SQL may open a transaction, which every \
         user sharing the connection would run inside (use an exclusive connection)"
    )]
    NotShareable {
        /// What was attempted.
        what: &'static str,
    },
}

impl PgError {
    /// The server's error response behind this error, if the server sent one; for
    /// [`PgError::AllHostsFailed`], the first host's that did (so a wrong password on
    /// every host still reads `28P01`).
    pub fn db_error(&self) -> Option<&DbError> {
        match self {
            PgError::Driver(e) | PgError::ResetFailed(e) => e.as_db_error(),
            PgError::AllHostsFailed(hosts) => hosts.iter().find_map(|h| h.error().db_error()),
            _ => None,
        }
    }

    /// Each host tried and why it failed, when every host of a multi-host config failed
    /// ([`PgError::AllHostsFailed`]).
    pub fn host_failures(&self) -> Option<&HostFailures> {
        match self {
            PgError::AllHostsFailed(hosts) => Some(hosts),
            _ => None,
        }
    }

    /// The SQLSTATE of the server's error, for example `"28P01"` for a wrong password.
    pub fn code(&self) -> Option<&str> {
        self.db_error().map(|e| e.code().code())
    }

    /// Whether the error means the session is gone: the connection closed or failed, or
    /// the server sent a `FATAL`/`PANIC` error or one of the SQLSTATEs that end a session
    /// (class `08`, `57P01` admin shutdown, `57P02` crash shutdown, `57P03` cannot connect
    /// now, `57P05` idle session timeout).
    pub fn is_fatal(&self) -> bool {
        match self {
            PgError::Driver(e) => is_fatal_driver_error(e),
            PgError::Connect { .. }
            | PgError::SessionAttrs { .. }
            | PgError::AllHostsFailed(_)
            | PgError::Broken
            | PgError::TransactionOpen
            | PgError::PasswordProvider { .. }
            | PgError::ResetFailed(_) => true,
            PgError::Config { .. }
            | PgError::RowCount { .. }
            | PgError::ConnInfo(_)
            | PgError::NamedStatementsDisabled { .. }
            | PgError::NotShareable { .. } => false,
        }
    }

    pub(crate) fn config(setting: &str, reason: impl Into<String>) -> Self {
        PgError::Config {
            setting: setting.to_owned(),
            reason: reason.into(),
        }
    }
}

/// What a failed call says about the server, for `Poolable::server_changed`: it became a
/// read-only standby (`25006` on a write), is shutting down or refusing connections
/// (`57P01`, `57P02`, `57P03`), or the connection was lost (class `08`, closed, I/O).
pub(crate) fn server_change(e: &tokio_postgres::Error) -> Option<&'static str> {
    if e.is_closed() {
        return Some("connection lost");
    }
    match e.as_db_error() {
        Some(db) => match db.code().code() {
            "25006" => Some("25006 read_only_sql_transaction"),
            "57P01" => Some("57P01 admin_shutdown"),
            "57P02" => Some("57P02 crash_shutdown"),
            "57P03" => Some("57P03 cannot_connect_now"),
            // A protocol violation is this session's alone (its client sent something the
            // server could not parse): it ends the session, but says nothing of the server.
            "08P01" => None,
            code if code.starts_with("08") => Some("08 connection_exception"),
            _ => None,
        },
        None => e
            .source()
            .is_some_and(|s| s.is::<io::Error>())
            .then_some("connection lost"),
    }
}

/// Whether a failed connect fails the same way every time with these settings: wrong
/// password or user, unknown database, no `pg_hba.conf` entry, insufficient privilege, or
/// settings this driver cannot honour; for several hosts, when every host failed so. A
/// server without the `target_session_attrs` asked for is not permanent (a failover
/// changes it).
pub(crate) fn is_permanent_connect_error(e: &PgError) -> bool {
    match e {
        PgError::Config { .. } | PgError::ConnInfo(_) => true,
        PgError::AllHostsFailed(hosts) => {
            hosts.iter().all(|h| is_permanent_connect_error(h.error()))
        }
        PgError::Driver(e) => e.as_db_error().is_some_and(|db| {
            let code = db.code().code();
            code.starts_with("28") || matches!(code, "3D000" | "42501")
        }),
        _ => false,
    }
}

/// Whether a driver error ends the session.
pub(crate) fn is_fatal_driver_error(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        Some(db) => is_fatal_db_error(db),
        // Db errors are per statement; I/O errors, a response that cannot be parsed and an
        // unexpected message (the protocol is out of step) break the session. Errors made
        // on the client side (serializing a parameter, reading a column, encoding a query
        // with a NUL byte) do not. The driver exposes no kind for these, only messages.
        None => {
            let text = e.to_string();
            (e.source().is_some_and(|s| s.is::<io::Error>())
                && !text.starts_with("error encoding message"))
                || text.starts_with("unexpected message from server")
        }
    }
}

fn is_fatal_db_error(db: &DbError) -> bool {
    let code = db.code();
    matches!(db.severity(), "FATAL" | "PANIC")
        || code.code().starts_with("08")
        || [
            SqlState::ADMIN_SHUTDOWN,
            SqlState::CRASH_SHUTDOWN,
            SqlState::CANNOT_CONNECT_NOW,
            SqlState::IDLE_SESSION_TIMEOUT,
        ]
        .contains(code)
}

/// tokio-postgres's error with the server's message spelled out.
struct DriverDisplay<'a>(&'a tokio_postgres::Error);

impl fmt::Display for DriverDisplay<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.as_db_error() {
            Some(db) => {
                write!(
                    f,
                    "{} {}: {}",
                    db.severity(),
                    db.code().code(),
                    db.message()
                )?;
                if let Some(detail) = db.detail() {
                    write!(f, " (detail: {detail})")?;
                }
                if let Some(hint) = db.hint() {
                    write!(f, " (hint: {hint})")?;
                }
                Ok(())
            }
            None => {
                write!(f, "{}", self.0)?;
                if let Some(source) = self.0.source() {
                    write!(f, ": {source}")?;
                }
                Ok(())
            }
        }
    }
}
