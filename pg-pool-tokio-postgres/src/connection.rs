//! [`PgConnection`]: a pooled `tokio_postgres::Client` that knows enough about its session
//! for the pool to hand it to the next user clean.

use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row, SimpleQueryMessage};

use crate::cancel::SessionRuntime;
use crate::config::{PgConfig, Profile};
use crate::error::PgError;
use crate::opened::PgSession;
use crate::reset::ResetWhen;
use crate::session::{SqlFlags, classify};
use crate::state::State;
use crate::tap::TapShared;
use crate::transaction::{PgTransaction, PgTransactionBuilder};

/// Parameters of a statement, as tokio-postgres takes them.
pub type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

/// Parameters with explicit types, for unnamed statements (`query_typed`).
pub type TypedParams<'a> = &'a [(&'a (dyn ToSql + Sync), Type)];

/// A pooled tokio-postgres session.
///
/// Run statements through its methods; they mirror [`Client`]'s and keep what the pool
/// needs:
///
/// - whether the session was **used** since it was last reset. A session nobody sent a
///   statement to is provably unchanged and goes back to the pool synchronously. A used
///   one goes back without a reset when the protocol tap of its stream (see the crate
///   docs, "When is a session reset?") showed nothing that changed session state, nothing
///   outstanding and no open transaction; otherwise it is reset. SQL text alone is never
///   taken as proof: a plain `SELECT f()` can `SET` inside `f` (the server then reports a
///   reported setting, which the tap sees; an unreported one it cannot see, hence
///   [`ResetWhen::Used`](crate::ResetWhen::Used)).
/// - whether a call is **in flight**: a call dropped before its response was read (a
///   timeout around it, a `select!`, a [`PgRowStream`](crate::PgRowStream) dropped early) leaves an exchange
///   outstanding. Such a session is never handed out as is: on its return the pool waits
///   for every earlier request to finish, sends a server-side cancel if that takes more
///   than a moment, and destroys the session if it is not idle within `checkin_timeout`.
/// - whether a **transaction** may be open: SQL that may start one (`BEGIN`,
///   `START TRANSACTION`) makes the return path check the transaction status; a session
///   inside a transaction (open or failed) is destroyed, never reset. Transactions through
///   [`transaction`](Self::transaction) end with the [`PgTransaction`] (committed, or rolled
///   back when dropped).
/// - whether an error proved the session **dead** (I/O, closed, protocol desync, `FATAL`,
///   SQLSTATEs of class `08`, `57P01`/`02`/`03`/`05`): it is destroyed on return without
///   the caller doing anything; so is one whose driver task ended ([`Client::is_closed`]).
/// - a **statement cache** ([`prepare_cached`](Self::prepare_cached)), least recently used
///   evicted first, which survives the default reset. By default the plain-SQL methods
///   (`query`, `query_one`, `query_opt`, `execute`) use it too, so repeated SQL costs one
///   round trip ([`PgConfig::auto_prepare`]).
///
/// # The raw client
///
/// `PgConnection` dereferences to [`Client`], so code written for tokio-postgres runs as
/// is, and `&**conn` (on a pool guard) is a [`tokio_postgres::GenericClient`]. The wrapper
/// sees nothing of what is done through the raw client, so a deref counts as use of every
/// kind: the return then runs on a pool task, bounded by `checkin_timeout`. With the
/// protocol tap (the default), it queues a marker (an empty query carrying a one-time
/// random nonce) and waits one hop through the connection task for the tap to see it
/// written, which proves every request queued before it written and judged: a session
/// whose requests are all answered, outside a transaction, goes back with no server round
/// trip, with the strategy's reset queued ahead of the next user only if it changed.
/// Otherwise (something still running, a transaction open, no tap) it takes the checked
/// path: a round trip proving every earlier request finished, as the client answers in
/// order, cancelling server-side if that takes long; the transaction status checked; the
/// reset. Errors through the raw client are not seen either; a closed connection still is.
///
/// Under [`Profile::PoolerSafe`] statements are sent unnamed (`query_typed`); methods that
/// need a named statement return [`PgError::NamedStatementsDisabled`].
pub struct PgConnection {
    /// Boxed: the pool moves a connection on every checkout and return, and a pointer moves
    /// for less than the few hundred bytes of a `Client` and its bookkeeping.
    pub(crate) inner: Box<Inner>,
}

/// What a [`PgConnection`] holds.
pub(crate) struct Inner {
    pub(crate) client: Client,
    pub(crate) config: Arc<PgConfig>,
    pub(crate) state: State,
    pub(crate) runtime: Option<Arc<dyn SessionRuntime>>,
    /// The protocol tap of a session this crate opened ([`crate::tap`]).
    pub(crate) tap: Option<Arc<TapShared>>,
    /// The last return found the tap reading this session (it saw the use written).
    pub(crate) tap_vouched: bool,
    /// Plain-SQL calls go through the statement cache ([`PgConfig::auto_prepares`]).
    pub(crate) auto_prepare: bool,
}

// Manual impl: `Client`'s Debug prints internals of no use here.
impl fmt::Debug for PgConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgConnection")
            .field("profile", &self.inner.config.profile)
            .field("closed", &self.inner.client.is_closed())
            .field("state", &self.inner.state)
            .field("tapped", &self.inner.tap.is_some())
            .field("cached_statements", &self.cached_statements())
            .field("auto_cached_statements", &self.auto_cached_statements())
            .finish_non_exhaustive()
    }
}

impl PgConnection {
    /// Wraps an open client whose session is idle and unchanged since startup.
    ///
    /// A connection made this way has no runtime: an abandoned call is waited for (within
    /// the pool's `checkin_timeout`) but not cancelled server-side. [`PgConnector`] opens
    /// connections with [`PgConnection::with_runtime`].
    ///
    /// [`PgConnector`]: crate::PgConnector
    pub fn new(client: Client, config: Arc<PgConfig>) -> Self {
        let capacity = match config.profile {
            Profile::Session => config.statement_cache_capacity,
            Profile::PoolerSafe => 0,
        };
        let auto_prepare = config.auto_prepares();
        Self {
            inner: Box::new(Inner {
                client,
                state: State::new(capacity),
                auto_prepare,
                config,
                runtime: None,
                tap: None,
                tap_vouched: false,
            }),
        }
    }

    /// Wraps an open session, with what its opener saw of it (the protocol tap of a
    /// session opened through [`connect_raw`](crate::connect_raw)).
    pub(crate) fn from_session(session: PgSession, config: Arc<PgConfig>) -> Self {
        let tap = session.tap.clone();
        let mut conn = Self::new(session.into_client(), config);
        conn.inner.tap = tap;
        conn
    }

    /// The tap, when the return path may trust it: armed, framing sound, and the
    /// configuration resets only changed sessions.
    pub(crate) fn live_tap(&self) -> Option<&TapShared> {
        let tap = self.inner.tap.as_deref()?;
        (self.inner.config.reset_when == ResetWhen::Changed && tap.live()).then_some(tap)
    }

    /// Gives the connection the pool's runtime, for the server-side cancel of an abandoned
    /// call and the timer of its return path.
    pub fn with_runtime<R: crate::PgRuntime>(mut self, runtime: R) -> Self {
        self.inner.runtime = Some(crate::cancel::session_runtime(runtime, None));
        self
    }

    /// As [`PgConnection::with_runtime`], for a session opened with `tls`: its server-side
    /// cancel goes over TLS when the session did.
    pub(crate) fn with_session_runtime<R: crate::PgRuntime>(
        mut self,
        runtime: R,
        tls: crate::PgTls,
    ) -> Self {
        self.inner.runtime = Some(crate::cancel::session_runtime(runtime, Some(tls)));
        self
    }

    /// The underlying client (as a deref does). The pool can no longer tell what the
    /// session did, so it takes the checked return path (see the type's docs).
    pub fn client(&self) -> &Client {
        self.mark_raw();
        &self.inner.client
    }

    /// Records raw access. A reset queued for this session is read no more by the wrapper;
    /// the checked return path proves the session idle and resets it again.
    fn mark_raw(&self) {
        self.inner.state.tracker.mark_raw();
        drop(self.inner.state.take_pending());
    }

    pub(crate) fn raw_client(&self) -> &Client {
        &self.inner.client
    }

    pub(crate) fn parts_mut(&mut self) -> (&mut Client, &State, &PgConfig, Option<&TapShared>) {
        (
            &mut self.inner.client,
            &self.inner.state,
            &self.inner.config,
            self.inner.tap.as_deref(),
        )
    }

    /// Unwraps the client.
    pub fn into_client(self) -> Client {
        self.inner.client
    }

    /// The settings this connection was opened with.
    pub fn config(&self) -> &PgConfig {
        &self.inner.config
    }

    /// Whether the session is gone: the driver task ended or a fatal error was seen.
    pub fn is_broken(&self) -> bool {
        self.inner.state.tracker.is_fatal() || self.inner.client.is_closed()
    }

    /// Whether the session was used since its last reset, so it takes the return path that
    /// resets it if it changed (or after any use under [`ResetWhen::Used`]).
    pub fn is_dirty(&self) -> bool {
        self.inner.state.tracker.is_used()
    }

    /// The server process ID of this session (one round trip; does not count as use).
    ///
    /// # Errors
    ///
    /// The driver's error.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: the session is reused only once proven idle.
    pub async fn backend_pid(&self) -> Result<i32, PgError> {
        let row = self
            .inner
            .state
            .run(
                SqlFlags::default(),
                true,
                self.inner
                    .client
                    .query_typed_one("SELECT pg_backend_pid()", &[]),
            )
            .await?;
        Ok(row.get(0))
    }

    pub(crate) fn named_allowed(&self, what: &'static str) -> Result<(), PgError> {
        match self.inner.config.profile {
            Profile::Session => Ok(()),
            Profile::PoolerSafe => Err(PgError::NamedStatementsDisabled { what }),
        }
    }

    /// Runs `sql` and returns its rows. Under [`Profile::PoolerSafe`] only parameterless
    /// SQL is accepted here (sent as an unnamed statement); use
    /// [`query_typed`](Self::query_typed) for parameters.
    ///
    /// Under [`Profile::Session`], by default ([`PgConfig::auto_prepare`]), `sql` goes
    /// through the connection's statement cache, the one
    /// [`prepare_cached`](Self::prepare_cached) uses: the first call of a text on this
    /// connection prepares it (two round trips, as without the cache), later calls bind the
    /// cached statement (one). Once the cache is full, a text not in it is cached only if
    /// it comes again soon; until then it runs as without the cache. A cached statement
    /// that went stale (a schema change: `0A000` "cached plan must not change result type";
    /// or dropped by the user's `DEALLOCATE`/`DISCARD ALL`: `26000`) is evicted, then
    /// prepared again and run once more, unless SQL that may open a transaction block was
    /// sent since the last reset: then its error is returned and the next call prepares
    /// afresh. What the pool makes of the session (the reset on return) does not depend on
    /// the cache: a cached `SET` is still a change of the session.
    ///
    /// # Errors
    ///
    /// The driver's error (a syntax error is the server's, as without the cache, and
    /// leaves nothing cached); [`PgError::NamedStatementsDisabled`] as above;
    /// [`PgError::ResetFailed`] if the previous user's reset, read ahead of this call,
    /// failed.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe in that the pool never reuses the session before it is idle again; the
    /// statement may or may not run.
    pub async fn query(&self, sql: &str, params: Params<'_>) -> Result<Vec<Row>, PgError> {
        let flags = classify(sql);
        match self.inner.config.profile {
            Profile::Session => {
                let client = self.raw_client();
                let cached = self.cached(sql, flags, |statement| async move {
                    client.query(&statement, params).await
                });
                if let Some(result) = cached.await {
                    return result;
                }
                self.inner
                    .state
                    .run(flags, false, client.query(sql, params))
                    .await
            }
            Profile::PoolerSafe if params.is_empty() => {
                self.inner
                    .state
                    .run(flags, false, self.inner.client.query_typed(sql, &[]))
                    .await
            }
            Profile::PoolerSafe => Err(PgError::NamedStatementsDisabled {
                what: "query with parameters but no types",
            }),
        }
    }

    /// Runs `sql` and returns its only row (through the statement cache by default, as
    /// [`query`](Self::query)).
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query), and [`PgError::RowCount`] unless exactly one row comes
    /// back.
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn query_one(&self, sql: &str, params: Params<'_>) -> Result<Row, PgError> {
        let (first, count) = self.first_row(sql, params).await?;
        match first {
            Some(row) if count == 1 => Ok(row),
            _ => Err(row_count("query_one", "one row", count)),
        }
    }

    /// Runs `sql` and returns its row, if any (through the statement cache by default, as
    /// [`query`](Self::query)).
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query), and [`PgError::RowCount`] if more than one row comes back.
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn query_opt(&self, sql: &str, params: Params<'_>) -> Result<Option<Row>, PgError> {
        match self.first_row(sql, params).await? {
            (first, 0 | 1) => Ok(first),
            (_, count) => Err(row_count("query_opt", "at most one row", count)),
        }
    }

    /// Runs `sql` as [`query`](Self::query) does, keeping only the first row and counting
    /// the others (no `Vec` of rows).
    async fn first_row(
        &self,
        sql: &str,
        params: Params<'_>,
    ) -> Result<(Option<Row>, usize), PgError> {
        let flags = classify(sql);
        match self.inner.config.profile {
            Profile::Session => {
                let client = self.raw_client();
                let cached = self.cached(sql, flags, |statement| async move {
                    first_of(client.query_raw(&statement, params.iter().map(|p| *p as &dyn ToSql)))
                        .await
                });
                if let Some(result) = cached.await {
                    return result;
                }
                let rows = client.query_raw(sql, params.iter().map(|p| *p as &dyn ToSql));
                self.inner.state.run(flags, false, first_of(rows)).await
            }
            Profile::PoolerSafe if params.is_empty() => {
                let rows = self
                    .inner
                    .client
                    .query_typed_raw(sql, std::iter::empty::<(&dyn ToSql, Type)>());
                self.inner.state.run(flags, false, first_of(rows)).await
            }
            Profile::PoolerSafe => Err(PgError::NamedStatementsDisabled {
                what: "query with parameters but no types",
            }),
        }
    }

    /// Runs `sql` and returns the number of rows it affected, through the statement cache
    /// by default, as [`query`](Self::query). Under [`Profile::PoolerSafe`], parameterless
    /// SQL goes through the simple query protocol.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn execute(&self, sql: &str, params: Params<'_>) -> Result<u64, PgError> {
        let flags = classify(sql);
        match self.inner.config.profile {
            Profile::Session => {
                let client = self.raw_client();
                let cached = self.cached(sql, flags, |statement| async move {
                    client.execute(&statement, params).await
                });
                if let Some(result) = cached.await {
                    return result;
                }
                self.inner
                    .state
                    .run(flags, false, client.execute(sql, params))
                    .await
            }
            Profile::PoolerSafe if params.is_empty() => {
                let messages = self
                    .inner
                    .state
                    .run(flags, false, self.inner.client.simple_query(sql))
                    .await?;
                Ok(rows_affected(&messages))
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
    /// As [`query`](Self::query).
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn query_typed(
        &self,
        sql: &str,
        params: TypedParams<'_>,
    ) -> Result<Vec<Row>, PgError> {
        self.inner
            .state
            .run(
                classify(sql),
                false,
                self.inner.client.query_typed(sql, params),
            )
            .await
    }

    /// Like [`query_typed`](Self::query_typed), returning the number of rows affected.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn execute_typed(&self, sql: &str, params: TypedParams<'_>) -> Result<u64, PgError> {
        self.inner
            .state
            .run(
                classify(sql),
                false,
                self.inner.client.execute_typed(sql, params),
            )
            .await
    }

    /// Runs `;`-separated statements with the simple query protocol.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn simple_query(&self, sql: &str) -> Result<Vec<SimpleQueryMessage>, PgError> {
        self.inner
            .state
            .run(classify(sql), false, self.inner.client.simple_query(sql))
            .await
    }

    /// Runs `;`-separated statements with the simple query protocol, ignoring their rows.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn batch_execute(&self, sql: &str) -> Result<(), PgError> {
        self.inner
            .state
            .run(classify(sql), false, self.inner.client.batch_execute(sql))
            .await
    }

    /// Starts a transaction; it rolls back unless committed. Under
    /// [`Profile::PoolerSafe`] run its statements with the `_typed` methods.
    ///
    /// # Errors
    ///
    /// As [`query`](Self::query).
    ///
    /// # Cancel safety
    ///
    /// As [`query`](Self::query).
    pub async fn transaction(&mut self) -> Result<PgTransaction<'_>, PgError> {
        self.build_transaction().start().await
    }

    /// A builder for a transaction with an isolation level, read-only or deferrable mode.
    pub fn build_transaction(&mut self) -> PgTransactionBuilder<'_> {
        PgTransactionBuilder::new(self)
    }

    /// Checks that the server answers (a ping; does not count as use).
    ///
    /// # Errors
    ///
    /// The driver's error.
    ///
    /// # Cancel safety
    ///
    /// As [`backend_pid`](Self::backend_pid).
    pub async fn check_connection(&self) -> Result<(), PgError> {
        match self.inner.config.profile {
            Profile::Session => {
                self.inner
                    .state
                    .run(
                        SqlFlags::default(),
                        true,
                        self.inner.client.check_connection(),
                    )
                    .await
            }
            Profile::PoolerSafe => self
                .inner
                .state
                .run(
                    SqlFlags::default(),
                    true,
                    self.inner.client.simple_query(""),
                )
                .await
                .map(drop),
        }
    }
}

/// Reads a row stream to its end (so the exchange completes), keeping the first row and
/// counting them all.
pub(crate) async fn first_of(
    rows: impl std::future::Future<Output = Result<tokio_postgres::RowStream, tokio_postgres::Error>>,
) -> Result<(Option<Row>, usize), tokio_postgres::Error> {
    let mut rows = std::pin::pin!(rows.await?);
    let mut first = None;
    let mut count = 0;
    while let Some(row) = futures_lite::StreamExt::next(&mut rows).await {
        let row = row?;
        count += 1;
        if first.is_none() {
            first = Some(row);
        }
    }
    Ok((first, count))
}

/// The error of a `query_one`/`query_opt` that got `count` rows.
pub(crate) fn row_count(call: &'static str, expected: &'static str, got: usize) -> PgError {
    PgError::RowCount {
        call,
        expected,
        got,
    }
}

/// The row count of the last command of a simple query.
pub(crate) fn rows_affected(messages: &[SimpleQueryMessage]) -> u64 {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::CommandComplete(n) => Some(*n),
            _ => None,
        })
        .next_back()
        .unwrap_or(0)
}

impl Deref for PgConnection {
    type Target = Client;

    /// The raw client; counts as use of every kind (see the type's docs).
    fn deref(&self) -> &Client {
        self.client()
    }
}
