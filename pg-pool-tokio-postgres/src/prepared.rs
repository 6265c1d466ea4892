//! [`PgConnection`]'s named statements (the statement cache) and streamed rows.

use tokio_postgres::types::{BorrowToSql, ToSql, Type};
use tokio_postgres::{Row, Statement};

use crate::connection::{Params, PgConnection, first_of, row_count};
use crate::error::PgError;
use crate::row_stream::PgRowStream;
use crate::session::{SqlFlags, classify};

impl PgConnection {
    /// Runs `sql` as an unnamed statement with typed parameters and streams its rows. The
    /// exchange counts as in flight until the stream has ended: dropping it early makes
    /// the pool cancel and wait out the rest before reusing the session.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn query_typed_raw<P, I>(
        &self,
        sql: &str,
        params: I,
    ) -> Result<PgRowStream<'_>, PgError>
    where
        P: BorrowToSql,
        I: IntoIterator<Item = (P, Type)>,
    {
        PgRowStream::start(
            &self.inner.state,
            classify(sql),
            self.raw_client().query_typed_raw(sql, params),
        )
        .await
    }

    /// Runs a prepared statement and streams its rows; see
    /// [`query_typed_raw`](Self::query_typed_raw) for what dropping the stream early does.
    ///
    /// # Errors
    ///
    /// As [`query_prepared`](Self::query_prepared).
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn query_raw<P, I>(
        &self,
        statement: &Statement,
        params: I,
    ) -> Result<PgRowStream<'_>, PgError>
    where
        P: BorrowToSql,
        I: IntoIterator<Item = P>,
        I::IntoIter: ExactSizeIterator,
    {
        let flags = self.inner.state.prepared_flags();
        PgRowStream::start(
            &self.inner.state,
            flags,
            self.raw_client().query_raw(statement, params),
        )
        .await
    }

    /// Runs a prepared statement and returns its rows.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query) (for a statement discarded by a `DISCARD ALL` reset:
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
        let flags = self.inner.state.prepared_flags();
        self.inner
            .state
            .run(flags, false, self.raw_client().query(statement, params))
            .await
    }

    /// Runs a prepared statement and returns its only row (no `Vec` of rows is built).
    ///
    /// # Errors
    ///
    /// As [`query_prepared`](Self::query_prepared), and [`PgError::RowCount`] unless exactly
    /// one row comes back.
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn query_one_prepared(
        &self,
        statement: &Statement,
        params: Params<'_>,
    ) -> Result<Row, PgError> {
        match self.first_prepared_row(statement, params).await? {
            (Some(row), 1) => Ok(row),
            (_, count) => Err(row_count("query_one_prepared", "one row", count)),
        }
    }

    /// Runs a prepared statement and returns its row, if any.
    ///
    /// # Errors
    ///
    /// As [`query_prepared`](Self::query_prepared), and [`PgError::RowCount`] if more than
    /// one row comes back.
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn query_opt_prepared(
        &self,
        statement: &Statement,
        params: Params<'_>,
    ) -> Result<Option<Row>, PgError> {
        match self.first_prepared_row(statement, params).await? {
            (first, 0 | 1) => Ok(first),
            (_, count) => Err(row_count("query_opt_prepared", "at most one row", count)),
        }
    }

    async fn first_prepared_row(
        &self,
        statement: &Statement,
        params: Params<'_>,
    ) -> Result<(Option<Row>, usize), PgError> {
        let flags = self.inner.state.prepared_flags();
        let rows = self
            .raw_client()
            .query_raw(statement, params.iter().map(|p| *p as &dyn ToSql));
        self.inner.state.run(flags, false, first_of(rows)).await
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
        let flags = self.inner.state.prepared_flags();
        self.inner
            .state
            .run(flags, false, self.raw_client().execute(statement, params))
            .await
    }

    /// Prepares a named statement (not cached).
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query); [`PgError::NamedStatementsDisabled`] under
    /// [`Profile::PoolerSafe`](crate::Profile::PoolerSafe).
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn prepare(&self, sql: &str) -> Result<Statement, PgError> {
        self.named_allowed("prepare")?;
        let statement = self
            .inner
            .state
            .run(SqlFlags::default(), false, self.raw_client().prepare(sql))
            .await?;
        self.inner.state.remember(classify(sql));
        Ok(statement)
    }

    /// Returns the cached statement for `sql`, preparing and caching it on a miss.
    ///
    /// The cache belongs to this connection (statements live in one server session),
    /// evicts the least recently used statement beyond its capacity, survives the default
    /// [`ResetStrategy::Full`](crate::ResetStrategy::Full) and is cleared when a reset drops
    /// the session's prepared statements
    /// ([`ResetStrategy::discards_statements`](crate::ResetStrategy::discards_statements)),
    /// so a cached statement is never stale. The plain-SQL methods
    /// ([`query`](Self::query), [`execute`](Self::execute), ...) use the same cache by
    /// default ([`PgConfig::auto_prepare`](crate::PgConfig::auto_prepare)), so a text they
    /// ran is a hit here, and the other way round.
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
        if let Some((statement, promoted)) = self.inner.state.cache().get(sql) {
            // Cached by a plain-SQL call, which does not remember its flags: in the user's
            // hands, it runs without its text.
            if let Some(flags) = promoted {
                self.inner.state.remember(flags);
            }
            return Ok(statement);
        }
        let statement = self
            .inner
            .state
            .run(SqlFlags::default(), false, self.raw_client().prepare(sql))
            .await?;
        let flags = classify(sql);
        self.inner.state.remember(flags);
        let stateful = pg_pool_conninfo::sql::sql_changes_session(sql);
        self.inner
            .state
            .cache()
            .insert(sql, statement.clone(), flags, stateful, true);
        Ok(statement)
    }

    /// How many statements of [`prepare_cached`](Self::prepare_cached) the cache holds
    /// (a text a plain-SQL call cached counts once `prepare_cached` handed it out).
    pub fn cached_statements(&self) -> usize {
        self.inner.state.cache().user_len()
    }

    /// How many statements the plain-SQL methods cached and `prepare_cached` has not handed
    /// out ([`PgConfig::auto_prepare`](crate::PgConfig::auto_prepare)). With
    /// [`cached_statements`](Self::cached_statements), what the cache holds, at most
    /// [`PgConfig::statement_cache_capacity`](crate::PgConfig::statement_cache_capacity):
    /// the named statements this wrapper keeps on the server for this session.
    pub fn auto_cached_statements(&self) -> usize {
        self.inner.state.cache().auto_len()
    }

    /// Empties the statement cache (closing the statements on the server).
    pub fn clear_statement_cache(&self) {
        self.inner.state.cache().clear();
    }
}
