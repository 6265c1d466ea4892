//! [`PgConnection`]: a pooled `tokio_postgres::Client` that knows enough about its session
//! for the pool to hand it to the next user clean.

use std::fmt;
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use futures_lite::StreamExt as _;
use pg_pool_core::Poolable;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, SimpleQueryMessage, Statement, Transaction};

use crate::config::{PgConfig, Profile};
use crate::error::{PgError, is_fatal_driver_error};
use crate::reset::{CLEAN_SQL, IDLE_CHECK_SQL, ResetStrategy};
use crate::session::may_open_transaction;
use crate::statement_cache::StatementCache;

/// Parameters of a statement, as tokio-postgres takes them.
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Parameters with explicit types, for unnamed statements (`query_typed`).
pub type TypedParams<'a> = &'a [(&'a (dyn ToSql + Sync), Type)];

/// A pooled tokio-postgres session.
///
/// Run statements through its methods; they mirror [`Client`]'s and keep what the pool
/// needs:
///
/// - whether the session was **used** since it was last reset. The reset runs (with the
///   configured [`ResetStrategy`]) only for a session that was used: a session nobody sent
///   a statement to is provably unchanged, and goes back to the pool synchronously. Any
///   statement counts as use; the wrapper does not guess from SQL text which statements
///   change session state, because a plain `SELECT f()` can `SET`, take an advisory lock or
///   create a temporary table inside `f`.
/// - whether a **transaction** may be open: SQL that may start one (`BEGIN`,
///   `START TRANSACTION`) or raw [`client`](Self::client) access makes the reset check the
///   transaction status first, and a session inside a transaction (open or failed) is
///   destroyed, never reset. Transactions through [`transaction`](Self::transaction) end
///   with the `PgTransaction` (committed, or rolled back when dropped) and need no check.
/// - whether a **fatal** error was seen (`57P01` terminated, `57P05` idle timeout, class
///   `08`, `FATAL`): the session is destroyed, as is one whose driver task has ended
///   ([`Client::is_closed`]).
/// - a **statement cache** ([`prepare_cached`](Self::prepare_cached)), cleared whenever a
///   reset drops the server's prepared statements.
///
/// Under [`Profile::PoolerSafe`] statements are sent unnamed (`query_typed`); methods that
/// need a named statement return [`PgError::NamedStatementsDisabled`].
///
/// A cancelled call (its future dropped) leaves the session consistent: tokio-postgres
/// still reads the response, so the next statement waits for it.
pub struct PgConnection {
    client: Client,
    config: Arc<PgConfig>,
    cache: Mutex<StatementCache>,
    used: AtomicBool,
    txn_unknown: AtomicBool,
    fatal: AtomicBool,
}

// Manual impl: `Client`'s Debug prints internals of no use here.
impl fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnection")
            .field("profile", &self.config.profile)
            .field("closed", &self.client.is_closed())
            .field("used", &self.used.load(Ordering::Relaxed))
            .field("cached_statements", &self.cached_statements())
            .finish_non_exhaustive()
    }
}

impl PgConnection {
    /// Wraps an open client whose session is idle and unchanged since startup.
    pub fn new(client: Client, config: Arc<PgConfig>) -> Self {
        let capacity = match config.profile {
            Profile::Session => config.statement_cache_capacity,
            Profile::PoolerSafe => 0,
        };
        Self {
            client,
            cache: Mutex::new(StatementCache::new(capacity)),
            config,
            used: AtomicBool::new(false),
            txn_unknown: AtomicBool::new(false),
            fatal: AtomicBool::new(false),
        }
    }

    /// The underlying client. The pool can no longer tell what the session did, so it is
    /// reset and its transaction status checked on return.
    pub fn client(&self) -> &Client {
        self.used.store(true, Ordering::Relaxed);
        self.txn_unknown.store(true, Ordering::Relaxed);
        &self.client
    }

    /// Unwraps the client.
    pub fn into_client(self) -> Client {
        self.client
    }

    /// The settings this connection was opened with.
    pub fn config(&self) -> &PgConfig {
        &self.config
    }

    /// Whether the session is gone: the driver task ended or a fatal error was seen.
    pub fn is_broken(&self) -> bool {
        self.fatal.load(Ordering::Relaxed) || self.client.is_closed()
    }

    /// Whether the pool will reset this session when it comes back.
    pub fn is_dirty(&self) -> bool {
        self.used.load(Ordering::Relaxed) || self.txn_unknown.load(Ordering::Relaxed)
    }

    /// The server process ID of this session (one round trip; does not count as use).
    ///
    /// # Errors
    ///
    /// The driver's error.
    pub async fn backend_pid(&self) -> Result<i32, PgError> {
        let row = self.note(
            self.client
                .query_typed_one("SELECT pg_backend_pid()", &[])
                .await,
        )?;
        Ok(row.get(0))
    }

    /// Records use and the outcome of a call: a fatal error breaks the session.
    fn note<T>(&self, result: Result<T, tokio_postgres::Error>) -> Result<T, PgError> {
        result.map_err(|e| {
            if is_fatal_driver_error(&e) {
                self.fatal.store(true, Ordering::Relaxed);
            }
            PgError::Driver(e)
        })
    }

    fn touch(&self, sql: &str) {
        self.used.store(true, Ordering::Relaxed);
        if may_open_transaction(sql) {
            self.txn_unknown.store(true, Ordering::Relaxed);
        }
    }

    fn named_allowed(&self, what: &'static str) -> Result<(), PgError> {
        match self.config.profile {
            Profile::Session => Ok(()),
            Profile::PoolerSafe => Err(PgError::NamedStatementsDisabled { what }),
        }
    }

    /// Runs `sql` and returns its rows. Under [`Profile::PoolerSafe`] only parameterless
    /// SQL is accepted here (sent as an unnamed statement); use
    /// [`query_typed`](Self::query_typed) for parameters.
    ///
    /// # Errors
    ///
    /// The driver's error; [`PgError::NamedStatementsDisabled`] as above.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in that the session stays usable; the statement may or may not run.
    pub async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, PgError> {
        self.touch(sql);
        match self.config.profile {
            Profile::Session => self.note(self.client.query(sql, params).await),
            Profile::PoolerSafe if params.is_empty() => {
                self.note(self.client.query_typed(sql, &[]).await)
            }
            Profile::PoolerSafe => Err(PgError::NamedStatementsDisabled {
                what: "query with parameters but no types",
            }),
        }
    }

    /// Runs `sql` and returns its only row.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query), and an error unless exactly one row comes back.
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, PgError> {
        let mut rows = self.query(sql, params).await?;
        match rows.len() {
            1 => Ok(rows.remove(0)),
            n => Err(PgError::config(
                "query_one",
                format!("expected one row, got {n}"),
            )),
        }
    }

    /// Runs `sql` and returns the number of rows it affected. Under
    /// [`Profile::PoolerSafe`], parameterless SQL goes through the simple query protocol.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, PgError> {
        self.touch(sql);
        match self.config.profile {
            Profile::Session => self.note(self.client.execute(sql, params).await),
            Profile::PoolerSafe if params.is_empty() => {
                let messages = self.note(self.client.simple_query(sql).await)?;
                Ok(messages
                    .iter()
                    .filter_map(|m| match m {
                        SimpleQueryMessage::CommandComplete(n) => Some(*n),
                        _ => None,
                    })
                    .last()
                    .unwrap_or(0))
            }
            Profile::PoolerSafe => Err(PgError::NamedStatementsDisabled {
                what: "execute with parameters but no types",
            }),
        }
    }

    /// Runs `sql` as an unnamed statement with explicitly typed parameters: one round trip,
    /// nothing left on the server, safe behind pgbouncer in transaction mode.
    ///
    /// # Errors
    ///
    /// The driver's error.
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn query_typed(
        &self,
        sql: &str,
        params: TypedParams<'_>,
    ) -> Result<Vec<Row>, PgError> {
        self.touch(sql);
        self.note(self.client.query_typed(sql, params).await)
    }

    /// Like [`query_typed`](Self::query_typed), returning the number of rows affected.
    ///
    /// # Errors
    ///
    /// The driver's error.
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn execute_typed(&self, sql: &str, params: TypedParams<'_>) -> Result<u64, PgError> {
        self.touch(sql);
        let params = params.iter().map(|(value, ty)| (*value, ty.clone()));
        let mut stream = Box::pin(self.note(self.client.query_typed_raw(sql, params).await)?);
        while let Some(row) = stream.next().await {
            self.note(row)?;
        }
        Ok(stream.rows_affected().unwrap_or(0))
    }

    /// Runs a prepared statement and returns its rows.
    ///
    /// # Errors
    ///
    /// The driver's error (for a statement discarded by a `DISCARD ALL` reset:
    /// `26000` prepared statement does not exist).
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn query_prepared(
        &self,
        statement: &Statement,
        params: Params<'_>,
    ) -> Result<Vec<Row>, PgError> {
        self.used.store(true, Ordering::Relaxed);
        self.note(self.client.query(statement, params).await)
    }

    /// Runs a prepared statement and returns the number of rows it affected.
    ///
    /// # Errors
    ///
    /// As [`query_prepared`](Self::query_prepared).
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn execute_prepared(
        &self,
        statement: &Statement,
        params: Params<'_>,
    ) -> Result<u64, PgError> {
        self.used.store(true, Ordering::Relaxed);
        self.note(self.client.execute(statement, params).await)
    }

    /// Prepares a named statement (not cached).
    ///
    /// # Errors
    ///
    /// The driver's error; [`PgError::NamedStatementsDisabled`] under
    /// [`Profile::PoolerSafe`].
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn prepare(&self, sql: &str) -> Result<Statement, PgError> {
        self.named_allowed("prepare")?;
        self.touch(sql);
        self.note(self.client.prepare(sql).await)
    }

    /// Returns the cached statement for `sql`, preparing and caching it on a miss.
    ///
    /// The cache belongs to this connection (statements live in one server session) and
    /// is cleared when a reset drops the session's prepared statements
    /// ([`ResetStrategy::discards_statements`]), so a cached statement is never stale.
    ///
    /// # Errors
    ///
    /// As [`prepare`](Self::prepare).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a statement is cached only once prepared.
    pub async fn prepare_cached(&self, sql: &str) -> Result<Statement, PgError> {
        self.named_allowed("prepare_cached")?;
        self.touch(sql);
        if let Some(statement) = self.lock_cache().get(sql) {
            return Ok(statement);
        }
        let statement = self.note(self.client.prepare(sql).await)?;
        self.lock_cache().insert(sql, statement.clone());
        Ok(statement)
    }

    /// How many statements the cache holds.
    pub fn cached_statements(&self) -> usize {
        self.lock_cache().len()
    }

    /// Empties the statement cache (closing the statements on the server).
    pub fn clear_statement_cache(&self) {
        self.lock_cache().clear();
    }

    fn lock_cache(&self) -> std::sync::MutexGuard<'_, StatementCache> {
        self.cache.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `;`-separated statements with the simple query protocol.
    ///
    /// # Errors
    ///
    /// The driver's error.
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn simple_query(&self, sql: &str) -> Result<Vec<SimpleQueryMessage>, PgError> {
        self.touch(sql);
        self.note(self.client.simple_query(sql).await)
    }

    /// Runs `;`-separated statements with the simple query protocol, ignoring their rows.
    ///
    /// # Errors
    ///
    /// The driver's error.
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn batch_execute(&self, sql: &str) -> Result<(), PgError> {
        self.touch(sql);
        self.note(self.client.batch_execute(sql).await)
    }

    /// Starts a transaction; it rolls back unless committed. Under
    /// [`Profile::PoolerSafe`] run its statements with the `_typed` methods.
    ///
    /// # Errors
    ///
    /// The driver's error.
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn transaction(&mut self) -> Result<PgTransaction<'_>, PgError> {
        *self.used.get_mut() = true;
        let fatal = &self.fatal;
        let inner = self.client.transaction().await.map_err(|e| {
            if is_fatal_driver_error(&e) {
                fatal.store(true, Ordering::Relaxed);
            }
            PgError::Driver(e)
        })?;
        Ok(PgTransaction { inner })
    }

    /// Answers `Ok` only when the session is outside any transaction block.
    async fn check_idle(&self) -> Result<(), PgError> {
        let messages = self.note(self.client.simple_query(IDLE_CHECK_SQL).await)?;
        idle_answer(&messages)
    }
}

/// Reads the answer of [`IDLE_CHECK_SQL`], the first row of `messages`.
fn idle_answer(messages: &[SimpleQueryMessage]) -> Result<(), PgError> {
    let idle = messages.iter().find_map(|m| match m {
        SimpleQueryMessage::Row(row) => Some(row.get(0) == Some("t")),
        _ => None,
    });
    match idle {
        Some(true) => Ok(()),
        _ => Err(PgError::TransactionOpen),
    }
}

/// A transaction on a [`PgConnection`]; dereferences to [`tokio_postgres::Transaction`].
///
/// Dropped without [`commit`](Self::commit), it rolls back (tokio-postgres queues the
/// `ROLLBACK` before any later statement), so the session is idle for the next user.
pub struct PgTransaction<'a> {
    inner: Transaction<'a>,
}

// Manual impl: tokio-postgres's `Transaction` has no `Debug`.
impl fmt::Debug for PgTransaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTransaction").finish_non_exhaustive()
    }
}

impl<'a> PgTransaction<'a> {
    /// Commits the transaction.
    ///
    /// # Errors
    ///
    /// The driver's error.
    pub async fn commit(self) -> Result<(), PgError> {
        Ok(self.inner.commit().await?)
    }

    /// Rolls the transaction back.
    ///
    /// # Errors
    ///
    /// The driver's error.
    pub async fn rollback(self) -> Result<(), PgError> {
        Ok(self.inner.rollback().await?)
    }
}

impl<'a> Deref for PgTransaction<'a> {
    type Target = Transaction<'a>;

    fn deref(&self) -> &Transaction<'a> {
        &self.inner
    }
}

impl Poolable for PgConnection {
    type Error = PgError;

    fn has_pending_data(&self) -> bool {
        self.is_broken()
    }

    /// A used session is reset (unless the strategy is [`ResetStrategy::None`]); any
    /// session that may be inside a transaction is checked.
    fn needs_reset(&mut self) -> bool {
        let used = *self.used.get_mut();
        let txn_unknown = *self.txn_unknown.get_mut();
        match self.config.effective_reset() {
            ResetStrategy::None => txn_unknown,
            _ => used || txn_unknown,
        }
    }

    /// Runs the reset strategy; a session inside a transaction fails it and is destroyed.
    async fn reset(&mut self) -> Result<(), PgError> {
        if self.is_broken() {
            return Err(PgError::Broken);
        }
        let txn_unknown = *self.txn_unknown.get_mut();
        let config = Arc::clone(&self.config);
        let strategy = config.effective_reset();
        match strategy {
            ResetStrategy::None => {
                if txn_unknown {
                    self.check_idle().await?;
                }
            }
            // Refuses to run inside a transaction block: 25001, or 25P02 in a failed one.
            ResetStrategy::DiscardAll => match self.client.batch_execute("DISCARD ALL").await {
                Ok(()) => {}
                Err(e)
                    if e.as_db_error()
                        .is_some_and(|d| d.code().code().starts_with("25")) =>
                {
                    return Err(PgError::TransactionOpen);
                }
                Err(e) => return Err(self.note(Err::<(), _>(e)).unwrap_err()),
            },
            // The check and the clean-up in one round trip.
            ResetStrategy::Clean => {
                let sql = format!("{IDLE_CHECK_SQL}; {CLEAN_SQL}");
                let messages = self.note(self.client.simple_query(&sql).await)?;
                idle_answer(&messages)?;
            }
            ResetStrategy::Custom { sql, .. } => {
                self.check_idle().await?;
                self.note(self.client.batch_execute(sql).await)?;
            }
        }
        if strategy.discards_statements() {
            self.lock_cache().clear();
        }
        *self.used.get_mut() = false;
        *self.txn_unknown.get_mut() = false;
        Ok(())
    }

    /// Session profile: a `Sync` message (`check_connection`), the cheapest round trip.
    /// Pooler-safe: an empty query, which pgbouncer must pass to a PostgreSQL server.
    async fn ping(&mut self) -> Result<(), PgError> {
        match self.config.profile {
            Profile::Session => self.note(self.client.check_connection().await),
            Profile::PoolerSafe => self.note(self.client.simple_query("").await).map(drop),
        }
    }
}
