//! [`SharedClient`]: what a user of a shared `PgConnection` may do (`ConnPool::get_shared`).

use std::fmt;

use pg_pool_core::{Shareable, SharedGuard};
use tokio_postgres::{Row, Statement};

use crate::connection::{Params, PgConnection, TypedParams};
use crate::error::PgError;
use crate::session::classify;

/// A shared lease of a [`PgConnection`]: what [`ConnPool::get_shared`] returns for a
/// tokio-postgres pool. Use it through [`SharedGuard::handle`], a [`SharedClient`].
///
/// [`ConnPool::get_shared`]: pg_pool_core::ConnPool::get_shared
pub type PgSharedGuard<R> = SharedGuard<PgConnection, R>;

impl Shareable for PgConnection {
    type Handle<'a> = SharedClient<'a>;

    fn share(&self) -> SharedClient<'_> {
        SharedClient { conn: self }
    }

    /// The driver task ended or an error proved the session dead
    /// ([`PgConnection::is_broken`]); calls in flight do not count.
    fn is_broken(&self) -> bool {
        PgConnection::is_broken(self)
    }
}

/// Statement-level access to a [`PgConnection`] that other tasks use at the same time
/// ([`ConnPool::get_shared`](pg_pool_core::ConnPool::get_shared)). tokio-postgres sends the
/// requests of every user in order on the one connection (pipelining) and hands each
/// response to its caller.
///
/// It offers statements only: `query`, `query_one`, `query_opt`, `execute`, the typed and
/// prepared forms, and the statement cache. There is no `transaction`, `batch_execute`,
/// `simple_query` or raw `Client`, because a transaction or a multi-statement batch would
/// take in the other users' statements. SQL that may open a transaction (`BEGIN`,
/// `START TRANSACTION`, even inside a `DO` block or a string) is refused with
/// [`PgError::NotShareable`] before anything is sent.
///
/// Other SQL text still runs as written: a `SET`, a `set_config()`, a temporary table or an
/// advisory lock taken by a statement changes the session for every user sharing it until
/// the connection goes back to the pool, where the ordinary reset (as after an exclusive
/// checkout) undoes it. Keep such statements on exclusive connections.
///
/// An error that proves the session dead (the backend terminated, the socket closed)
/// fails every call in flight on it, takes the connection out of the shared set at once
/// and has it destroyed when its last user lets go; the next `get_shared` gets another.
///
/// # Examples
///
/// ```no_run
/// # #[cfg(feature = "tokio")]
/// # async fn run(pool: pg_pool_tokio_postgres::PgPool<pg_pool_tokio::Tokio>) -> Result<(), Box<dyn std::error::Error>> {
/// let db = pool.get_shared().await?;
/// let client = db.handle();
/// let statement = client.prepare_cached("SELECT $1::int + 1").await?;
/// let row = client.query_prepared(&statement, &[&41]).await?;
/// assert_eq!(row[0].get::<_, i32>(0), 42);
/// # Ok(()) }
/// ```
#[derive(Clone, Copy)]
pub struct SharedClient<'a> {
    conn: &'a PgConnection,
}

impl fmt::Debug for SharedClient<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedClient")
            .field("conn", self.conn)
            .finish()
    }
}

/// Refuses SQL that may open a transaction block.
fn shareable(sql: &str, what: &'static str) -> Result<(), PgError> {
    // `classify` pairs `START` with `TRANSACTION` only when adjacent; the lexer also sees
    // them across comments (`START /* x */ TRANSACTION`). Lexing is only needed when the
    // word is there.
    let split_start = || {
        sql.as_bytes()
            .windows(11)
            .any(|w| w.eq_ignore_ascii_case(b"transaction"))
            && pg_pool_conninfo::sql::opens_transaction(sql)
    };
    if classify(sql).opens_transaction || split_start() {
        return Err(PgError::NotShareable { what });
    }
    Ok(())
}

impl SharedClient<'_> {
    /// Runs `sql` and returns its rows ([`PgConnection::query`]).
    ///
    /// # Errors
    ///
    /// As [`PgConnection::query`]; [`PgError::NotShareable`] for SQL that may open a
    /// transaction.
    ///
    /// # Cancel safety
    ///
    /// As [`PgConnection::query`]: the statement may or may not run; the response is read
    /// and dropped by the driver, so the other users are not disturbed.
    pub async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, PgError> {
        shareable(sql, "query")?;
        self.conn.query(sql, params).await
    }

    /// Runs `sql` and returns its only row ([`PgConnection::query_one`]).
    ///
    /// # Errors
    ///
    /// As [`SharedClient::query`], and an error unless exactly one row comes back.
    ///
    /// # Cancel safety
    ///
    /// As [`SharedClient::query`].
    pub async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, PgError> {
        shareable(sql, "query_one")?;
        self.conn.query_one(sql, params).await
    }

    /// Runs `sql` and returns its row, if any ([`PgConnection::query_opt`]).
    ///
    /// # Errors
    ///
    /// As [`SharedClient::query`], and an error if more than one row comes back.
    ///
    /// # Cancel safety
    ///
    /// As [`SharedClient::query`].
    pub async fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, PgError> {
        shareable(sql, "query_opt")?;
        self.conn.query_opt(sql, params).await
    }

    /// Runs `sql` and returns the number of rows it affected ([`PgConnection::execute`]).
    ///
    /// # Errors
    ///
    /// As [`SharedClient::query`].
    ///
    /// # Cancel safety
    ///
    /// As [`SharedClient::query`].
    pub async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, PgError> {
        shareable(sql, "execute")?;
        self.conn.execute(sql, params).await
    }

    /// Runs `sql` as an unnamed statement with typed parameters
    /// ([`PgConnection::query_typed`]).
    ///
    /// # Errors
    ///
    /// As [`SharedClient::query`].
    ///
    /// # Cancel safety
    ///
    /// As [`SharedClient::query`].
    pub async fn query_typed(
        &self,
        sql: &str,
        params: TypedParams<'_>,
    ) -> Result<Vec<Row>, PgError> {
        shareable(sql, "query_typed")?;
        self.conn.query_typed(sql, params).await
    }

    /// Like [`SharedClient::query_typed`], returning the number of rows affected.
    ///
    /// # Errors
    ///
    /// As [`SharedClient::query`].
    ///
    /// # Cancel safety
    ///
    /// As [`SharedClient::query`].
    pub async fn execute_typed(&self, sql: &str, params: TypedParams<'_>) -> Result<u64, PgError> {
        shareable(sql, "execute_typed")?;
        self.conn.execute_typed(sql, params).await
    }

    /// Prepares `sql` as a named statement ([`PgConnection::prepare`]).
    ///
    /// # Errors
    ///
    /// As [`PgConnection::prepare`]; [`PgError::NotShareable`] for SQL that may open a
    /// transaction.
    ///
    /// # Cancel safety
    ///
    /// As [`SharedClient::query`].
    pub async fn prepare(&self, sql: &str) -> Result<Statement, PgError> {
        shareable(sql, "prepare")?;
        self.conn.prepare(sql).await
    }

    /// Prepares `sql` through the connection's statement cache
    /// ([`PgConnection::prepare_cached`]), shared by every user of the connection.
    ///
    /// # Errors
    ///
    /// As [`SharedClient::prepare`].
    ///
    /// # Cancel safety
    ///
    /// As [`SharedClient::query`].
    pub async fn prepare_cached(&self, sql: &str) -> Result<Statement, PgError> {
        shareable(sql, "prepare_cached")?;
        self.conn.prepare_cached(sql).await
    }

    /// Runs a statement prepared on this connection ([`PgConnection::query_prepared`]).
    ///
    /// # Errors
    ///
    /// As [`PgConnection::query_prepared`].
    ///
    /// # Cancel safety
    ///
    /// As [`SharedClient::query`].
    pub async fn query_prepared(
        &self,
        statement: &Statement,
        params: Params<'_>,
    ) -> Result<Vec<Row>, PgError> {
        self.conn.query_prepared(statement, params).await
    }

    /// Runs a statement prepared on this connection, returning the number of rows affected
    /// ([`PgConnection::execute_prepared`]).
    ///
    /// # Errors
    ///
    /// As [`PgConnection::execute_prepared`].
    ///
    /// # Cancel safety
    ///
    /// As [`SharedClient::query`].
    pub async fn execute_prepared(
        &self,
        statement: &Statement,
        params: Params<'_>,
    ) -> Result<u64, PgError> {
        self.conn.execute_prepared(statement, params).await
    }

    /// Statements of `prepare_cached` in the connection's cache
    /// ([`PgConnection::cached_statements`]).
    pub fn cached_statements(&self) -> usize {
        self.conn.cached_statements()
    }

    /// Statements the plain-SQL methods cached on the connection
    /// ([`PgConnection::auto_cached_statements`]).
    pub fn auto_cached_statements(&self) -> usize {
        self.conn.auto_cached_statements()
    }

    /// The server process ID of this session ([`PgConnection::backend_pid`]).
    ///
    /// # Errors
    ///
    /// The driver's error.
    ///
    /// # Cancel safety
    ///
    /// As [`SharedClient::query`].
    pub async fn backend_pid(&self) -> Result<i32, PgError> {
        self.conn.backend_pid().await
    }

    /// Whether the session is gone ([`PgConnection::is_broken`]).
    pub fn is_broken(&self) -> bool {
        self.conn.is_broken()
    }
}
