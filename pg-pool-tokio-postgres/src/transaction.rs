//! [`PgTransaction`]: a transaction on a pooled session, and its builder.

use std::fmt;
use std::ops::Deref;

use tokio_postgres::{IsolationLevel, Row, SimpleQueryMessage, Transaction};

use crate::config::{PgConfig, Profile};
use crate::connection::{Params, PgConnection, TypedParams, rows_affected};
use crate::error::PgError;
use crate::session::{SqlFlags, classify};
use crate::state::State;
use crate::tap::TapShared;

/// A transaction on a [`PgConnection`].
///
/// Dropped without [`commit`](Self::commit), it rolls back (tokio-postgres queues the
/// `ROLLBACK` before any later statement), so the session is idle for the next user.
///
/// Its own methods are tracked like the connection's. It also dereferences to
/// [`tokio_postgres::Transaction`] (a [`tokio_postgres::GenericClient`]), for code written
/// for tokio-postgres; as with the connection's deref, the wrapper then sees nothing of
/// what is done, and the session takes the checked return path.
pub struct PgTransaction<'a> {
    /// `None` once committed or rolled back.
    inner: Option<Transaction<'a>>,
    state: &'a State,
    profile: Profile,
    /// Plain SQL goes through the statement cache ([`PgConfig::auto_prepares`]).
    auto_prepare: bool,
    /// The session's protocol tap, which sees a `DEALLOCATE` the cache must follow.
    tap: Option<&'a TapShared>,
}

// Manual impl: tokio-postgres's `Transaction` has no `Debug`.
impl fmt::Debug for PgTransaction<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTransaction")
            .field("profile", &self.profile)
            .finish_non_exhaustive()
    }
}

impl<'a> PgTransaction<'a> {
    /// Commits the transaction.
    ///
    /// # Errors
    ///
    /// The driver's error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in that the session is reused only once proven idle and outside any
    /// transaction; whether the commit happened is then unknown.
    pub async fn commit(mut self) -> Result<(), PgError> {
        let inner = self.take();
        self.state
            .run(SqlFlags::default(), false, inner.commit())
            .await
    }

    fn take(&mut self) -> Transaction<'a> {
        self.inner.take().expect("a transaction is ended only once")
    }

    fn inner(&self) -> &Transaction<'a> {
        self.inner
            .as_ref()
            .expect("a transaction is ended only once")
    }

    /// Rolls the transaction back.
    ///
    /// # Errors
    ///
    /// The driver's error.
    ///
    /// # Cancel safety
    ///
    /// As [`commit`](Self::commit).
    pub async fn rollback(mut self) -> Result<(), PgError> {
        let inner = self.take();
        self.state
            .run(SqlFlags::default(), false, inner.rollback())
            .await
    }

    /// Runs `sql` and returns its rows, as [`PgConnection::query`] does, through the
    /// statement cache by default ([`PgConfig::auto_prepare`]); a cached statement made
    /// stale by a schema change fails the call (and the transaction) once, and is prepared
    /// afresh by the next call.
    ///
    /// # Errors
    ///
    /// As [`PgConnection::query`].
    ///
    /// # Cancel safety
    ///
    /// As [`commit`](Self::commit).
    pub async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, PgError> {
        let flags = classify(sql);
        match self.profile {
            Profile::Session => {
                let txn = self.inner();
                let cached = self.cached(sql, flags, |statement| async move {
                    txn.query(&statement, params).await
                });
                if let Some(result) = cached.await {
                    return result;
                }
                self.state.run(flags, false, txn.query(sql, params)).await
            }
            Profile::PoolerSafe if params.is_empty() => {
                self.state
                    .run(flags, false, self.inner().query_typed(sql, &[]))
                    .await
            }
            Profile::PoolerSafe => Err(PgError::NamedStatementsDisabled {
                what: "query with parameters but no types",
            }),
        }
    }

    /// Runs `sql` and returns the number of rows it affected, as [`PgConnection::execute`]
    /// does (through the statement cache by default, as [`query`](Self::query)).
    ///
    /// # Errors
    ///
    /// As [`PgConnection::query`].
    ///
    /// # Cancel safety
    ///
    /// As [`commit`](Self::commit).
    pub async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, PgError> {
        let flags = classify(sql);
        match self.profile {
            Profile::Session => {
                let txn = self.inner();
                let cached = self.cached(sql, flags, |statement| async move {
                    txn.execute(&statement, params).await
                });
                if let Some(result) = cached.await {
                    return result;
                }
                self.state.run(flags, false, txn.execute(sql, params)).await
            }
            Profile::PoolerSafe if params.is_empty() => {
                let messages = self
                    .state
                    .run(flags, false, self.inner().simple_query(sql))
                    .await?;
                Ok(rows_affected(&messages))
            }
            Profile::PoolerSafe => Err(PgError::NamedStatementsDisabled {
                what: "execute with parameters but no types",
            }),
        }
    }

    /// Runs `sql` as an unnamed statement with typed parameters.
    ///
    /// # Errors
    ///
    /// As [`PgConnection::query`].
    ///
    /// # Cancel safety
    ///
    /// As [`commit`](Self::commit).
    pub async fn query_typed(
        &self,
        sql: &str,
        params: TypedParams<'_>,
    ) -> Result<Vec<Row>, PgError> {
        self.state
            .run(classify(sql), false, self.inner().query_typed(sql, params))
            .await
    }

    /// Runs `sql` through the statement cache when [`PgConfig::auto_prepares`]; a stale
    /// statement is evicted and its error returned, never retried (the transaction is
    /// aborted). `None` when the caller must run it as without the cache.
    async fn cached<T, E, EF>(
        &self,
        sql: &str,
        flags: SqlFlags,
        execute: E,
    ) -> Option<Result<T, PgError>>
    where
        E: Fn(tokio_postgres::Statement) -> EF,
        EF: std::future::Future<Output = Result<T, tokio_postgres::Error>>,
    {
        if !self.auto_prepare {
            return None;
        }
        let txn = self.inner();
        crate::auto_prepare::run_cached(
            self.state,
            self.tap,
            sql,
            flags,
            || async { false },
            || txn.prepare(sql),
            execute,
        )
        .await
    }

    /// Runs `;`-separated statements with the simple query protocol.
    ///
    /// # Errors
    ///
    /// As [`PgConnection::query`].
    ///
    /// # Cancel safety
    ///
    /// As [`commit`](Self::commit).
    pub async fn simple_query(&self, sql: &str) -> Result<Vec<SimpleQueryMessage>, PgError> {
        self.state
            .run(classify(sql), false, self.inner().simple_query(sql))
            .await
    }

    /// Runs `;`-separated statements with the simple query protocol, ignoring their rows.
    ///
    /// # Errors
    ///
    /// As [`PgConnection::query`].
    ///
    /// # Cancel safety
    ///
    /// As [`commit`](Self::commit).
    pub async fn batch_execute(&self, sql: &str) -> Result<(), PgError> {
        self.state
            .run(classify(sql), false, self.inner().batch_execute(sql))
            .await
    }
}

impl<'a> Deref for PgTransaction<'a> {
    type Target = Transaction<'a>;

    /// The raw transaction; counts as raw use of the session.
    fn deref(&self) -> &Transaction<'a> {
        self.state.tracker.mark_raw();
        self.inner()
    }
}

impl Drop for PgTransaction<'_> {
    /// Drops the transaction first (tokio-postgres queues its `ROLLBACK` unless it was
    /// committed or rolled back), then tells the tracker it ended. A transaction leaked
    /// with `mem::forget` never gets here, so its session takes the checked return path.
    fn drop(&mut self) {
        drop(self.inner.take());
        self.state.tracker.transaction_ended();
    }
}

/// Builds a [`PgTransaction`] with an isolation level, read-only or deferrable mode
/// ([`PgConnection::build_transaction`]).
pub struct PgTransactionBuilder<'a> {
    conn: &'a mut PgConnection,
    isolation_level: Option<IsolationLevel>,
    read_only: Option<bool>,
    deferrable: Option<bool>,
}

// Manual impl: `IsolationLevel` has `Debug`, the connection's is long.
impl fmt::Debug for PgTransactionBuilder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTransactionBuilder")
            .field("isolation_level", &self.isolation_level)
            .field("read_only", &self.read_only)
            .field("deferrable", &self.deferrable)
            .finish_non_exhaustive()
    }
}

impl<'a> PgTransactionBuilder<'a> {
    pub(crate) fn new(conn: &'a mut PgConnection) -> Self {
        Self {
            conn,
            isolation_level: None,
            read_only: None,
            deferrable: None,
        }
    }

    /// Sets the isolation level.
    pub fn isolation_level(mut self, level: IsolationLevel) -> Self {
        self.isolation_level = Some(level);
        self
    }

    /// Sets read-only (or read-write) mode.
    pub fn read_only(mut self, read_only: bool) -> Self {
        self.read_only = Some(read_only);
        self
    }

    /// Sets deferrable mode (for serializable read-only transactions).
    pub fn deferrable(mut self, deferrable: bool) -> Self {
        self.deferrable = Some(deferrable);
        self
    }

    /// Begins the transaction.
    ///
    /// # Errors
    ///
    /// As [`PgConnection::query`].
    ///
    /// # Cancel safety
    ///
    /// As [`PgTransaction::commit`].
    pub async fn start(self) -> Result<PgTransaction<'a>, PgError> {
        let (client, state, config, tap): (_, &'a State, &'a PgConfig, _) = self.conn.parts_mut();
        let profile = config.profile;
        let auto_prepare = config.auto_prepares();
        let mut builder = client.build_transaction();
        if let Some(level) = self.isolation_level {
            builder = builder.isolation_level(level);
        }
        if let Some(read_only) = self.read_only {
            builder = builder.read_only(read_only);
        }
        if let Some(deferrable) = self.deferrable {
            builder = builder.deferrable(deferrable);
        }
        let inner = state
            .run(SqlFlags::default(), false, builder.start())
            .await?;
        state.tracker.transaction_began();
        Ok(PgTransaction {
            inner: Some(inner),
            state,
            profile,
            auto_prepare,
            tap,
        })
    }
}
