//! The error type of the test kit.

use std::io;

/// What can go wrong while setting up or driving the test infrastructure.
///
/// Every message names the problem and, where it helps, the fix (for example
/// running `bash scripts/install-test-deps.sh`).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A required program (PostgreSQL binaries, `psql`, `pgbouncer`) was not found.
    #[error(
        "{program} not found (searched: {searched}); run `bash scripts/install-test-deps.sh` \
         (as root) to install the test dependencies"
    )]
    NotInstalled {
        /// The program that is missing.
        program: String,
        /// Where it was looked for.
        searched: String,
    },
    /// Running as root, but the `postgres` OS user (needed because PostgreSQL
    /// and PgBouncer refuse to run as root) does not exist.
    #[error(
        "running as root, but the OS user `postgres` does not exist (initdb/postgres/pgbouncer \
         refuse to run as root); run `bash scripts/install-test-deps.sh` to create it"
    )]
    NoPostgresUser,
    /// `initdb` exited unsuccessfully.
    #[error("initdb failed ({status}): {stderr}")]
    InitdbFailed {
        /// Exit status of initdb.
        status: String,
        /// What initdb printed on stderr (and stdout).
        stderr: String,
    },
    /// The PostgreSQL server did not start.
    #[error("PostgreSQL server failed to start: {message}\n--- server log ---\n{log}")]
    StartFailed {
        /// What failed.
        message: String,
        /// The tail of the server log.
        log: String,
    },
    /// An external command (for example `pg_ctl`) failed.
    #[error("`{command}` failed ({status}): {output}")]
    CommandFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
        /// What it printed on stderr (and stdout).
        output: String,
    },
    /// An SQL statement run through `psql` failed.
    #[error("SQL failed: {query}: {stderr}")]
    Sql {
        /// The statement.
        query: String,
        /// psql's error output.
        stderr: String,
    },
    /// A fault-injection operation was requested on a server given by
    /// `PG_POOL_TEST_URL`, which the kit does not own.
    #[error(
        "{operation}: fault injection needs a throwaway cluster, but this TestCluster uses the \
         external server named by PG_POOL_TEST_URL (unset it to run destructive tests)"
    )]
    NotThrowaway {
        /// The operation that was refused.
        operation: &'static str,
    },
    /// A `postgres://` URL could not be parsed.
    #[error("invalid PostgreSQL URL {url:?}: {reason}")]
    BadUrl {
        /// The URL (password masked).
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// PgBouncer did not start.
    #[error("pgbouncer failed to start: {message}\n--- pgbouncer log ---\n{log}")]
    PgBouncerFailed {
        /// What failed.
        message: String,
        /// The tail of pgbouncer's log.
        log: String,
    },
    /// An I/O error, with what was being done.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}
