//! Plain-SQL calls through the statement cache ([`PgConfig::auto_prepare`]): the first call
//! of a text prepares it into the connection's cache, later ones bind the cached statement
//! (one round trip instead of two); a statement the server forgot or whose plan went stale
//! is evicted and, outside a transaction block, prepared again once.
//!
//! [`PgConfig::auto_prepare`]: crate::PgConfig::auto_prepare

use std::future::Future;
use std::time::Duration;

use tokio_postgres::Statement;
use tokio_postgres::error::SqlState;

use pg_pool_conninfo::sql::sql_changes_session;

use crate::connection::PgConnection;
use crate::error::PgError;
use crate::session::SqlFlags;
use crate::state::State;
use crate::statement_cache::Admission;
use crate::tap::TapShared;

/// The server routine that refuses a cached plan whose result type changed (`0A000`,
/// "cached plan must not change result type"): it runs when the statement is bound, before
/// anything executes.
const REVALIDATE_ROUTINE: &str = "RevalidateCachedQuery";

/// The first keywords of the statements plain-SQL calls cache: those the server plans.
/// Utility statements (`SET`, `BEGIN`, DDL, `DISCARD`, `ALTER ROLE ... PASSWORD`, ...)
/// have no plan to keep and run as without the cache, so their text (a password, say) is
/// not left in a session the next user of the connection could list.
const CACHEABLE: [&str; 8] = [
    "select", "with", "values", "table", "insert", "update", "delete", "merge",
];

/// Whether plain-SQL calls cache `sql` (by its first keyword, after whitespace, comments
/// and parentheses).
pub(crate) fn cacheable(sql: &str) -> bool {
    pg_pool_conninfo::sql::first_word(sql)
        .is_some_and(|word| CACHEABLE.iter().any(|c| word.eq_ignore_ascii_case(c)))
}

/// How long a failed call waits for the protocol tap to see the `ReadyForQuery` after the
/// error (the server sends it as soon as it reads the `Sync` sent with the statement).
const SETTLE_WAIT: Duration = Duration::from_millis(250);

/// What an error of a cached statement says about the statement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stale {
    /// Not about the statement: keep it.
    No,
    /// The statement is of no more use: evict it. `retry`: the error came before the
    /// statement ran, so running a freshly prepared one is safe.
    Yes { retry: bool },
}

/// Reads a cached statement's error by its SQLSTATE (and, for `0A000`, the reporting
/// routine, a field the server never translates).
fn stale(error: &PgError) -> Stale {
    let PgError::Driver(error) = error else {
        return Stale::No;
    };
    match error.code() {
        // `prepared statement "s1" does not exist`: a `DEALLOCATE` or `DISCARD ALL` by the
        // user; the `Bind` fails before anything runs.
        Some(code) if *code == SqlState::INVALID_SQL_STATEMENT_NAME => Stale::Yes { retry: true },
        // The table behind the statement changed shape. Any other `0A000` is evicted too
        // (a fresh statement costs one prepare), but retried only when the server says it
        // came from revalidating the plan, before execution.
        Some(code) if *code == SqlState::FEATURE_NOT_SUPPORTED => Stale::Yes {
            retry: error
                .as_db_error()
                .and_then(|db| db.routine())
                .is_some_and(|routine| routine == REVALIDATE_ROUTINE),
        },
        _ => Stale::No,
    }
}

/// Runs `sql` through the statement cache of `state`: `prepare` makes a statement,
/// `execute` runs one. `None` when the text is not [`cacheable`] or the cache declines it
/// ([`Admission::Bypass`]): the caller then runs it as it would without the cache. `retry`
/// says whether a stale statement may be prepared again and run once more (outside a
/// transaction block). A user's `DISCARD ALL` or `DEALLOCATE` seen by the session's
/// protocol `tap` empties the cache first, so no statement the server forgot is bound.
///
/// The call is tracked with `flags` (the SQL judge's view of the text, as without the
/// cache); the prepare with no flags, as [`PgConnection::prepare_cached`] does. Statements
/// cached here are not remembered as the user's (`State::remember`): only their text runs
/// them, and its flags come with every call.
///
/// [`PgConnection::prepare_cached`]: crate::PgConnection::prepare_cached
pub(crate) async fn run_cached<T, R, RF, P, PF, E, EF>(
    state: &State,
    tap: Option<&TapShared>,
    sql: &str,
    flags: SqlFlags,
    retry: R,
    prepare: P,
    execute: E,
) -> Option<Result<T, PgError>>
where
    R: FnOnce() -> RF,
    RF: Future<Output = bool>,
    P: Fn() -> PF,
    PF: Future<Output = Result<Statement, tokio_postgres::Error>>,
    E: Fn(Statement) -> EF,
    EF: Future<Output = Result<T, tokio_postgres::Error>>,
{
    if !cacheable(sql) {
        return None;
    }
    if tap.is_some_and(TapShared::take_statements_dropped) {
        state.cache().clear();
    }
    let mut admission = state.cache().admit(sql);
    let mut retry = Some(retry);
    loop {
        let (statement, id) = match admission {
            Admission::Hit(statement, id) => (statement, Some(id)),
            Admission::Bypass => return None,
            Admission::Prepare { stateful } => {
                match state.run(SqlFlags::default(), false, prepare()).await {
                    Ok(statement) => {
                        let id =
                            state
                                .cache()
                                .insert(sql, statement.clone(), flags, stateful, false);
                        (statement, id)
                    }
                    // A syntax error and the like: the same error as without the cache.
                    Err(error) => return Some(Err(error)),
                }
            }
        };
        let result = state.run(flags, false, execute(statement.clone())).await;
        let Err(error) = &result else {
            return Some(result);
        };
        match stale(error) {
            Stale::No => return Some(result),
            Stale::Yes { retry: may_retry } => {
                if let Some(id) = id {
                    state.cache().evict(sql, id);
                }
                drop(statement);
                let Some(retry) = retry.take().filter(|_| may_retry) else {
                    return Some(result);
                };
                if !retry().await {
                    return Some(result);
                }
                tracing::debug!(error = %error, "a cached statement went stale; preparing it again");
                admission = Admission::Prepare {
                    stateful: sql_changes_session(sql),
                };
            }
        }
    }
}

impl PgConnection {
    /// Runs `sql` through the statement cache when [`PgConfig::auto_prepares`] (see
    /// [`run_cached`]); `None` when the caller must run it as without the cache.
    ///
    /// A stale statement is prepared again only outside a transaction block
    /// ([`outside_block`](Self::outside_block)).
    ///
    /// [`PgConfig::auto_prepares`]: crate::PgConfig::auto_prepares
    pub(crate) async fn cached<T, E, EF>(
        &self,
        sql: &str,
        flags: SqlFlags,
        execute: E,
    ) -> Option<Result<T, PgError>>
    where
        E: Fn(Statement) -> EF,
        EF: Future<Output = Result<T, tokio_postgres::Error>>,
    {
        if !self.inner.auto_prepare {
            return None;
        }
        let state = &self.inner.state;
        let client = self.raw_client();
        run_cached(
            state,
            self.inner.tap.as_deref(),
            sql,
            flags,
            || self.outside_block(),
            || client.prepare(sql),
            execute,
        )
        .await
    }

    /// Whether the session is outside a transaction block after a failed call. The protocol
    /// tap knows from the `ReadyForQuery` that follows the error, which may come a moment
    /// after it (waited for up to [`SETTLE_WAIT`] on the pool's runtime). Without the tap's
    /// answer: only if the wrapper saw no SQL that may have opened a block since the last
    /// reset (`BEGIN`, also a `DO` block's).
    async fn outside_block(&self) -> bool {
        if let Some(tap) = self.inner.tap.as_deref().filter(|tap| tap.live()) {
            if tap.view().outstanding > 0
                && let Some(runtime) = &self.inner.runtime
            {
                futures_lite::future::or(tap.settled(), runtime.sleep(SETTLE_WAIT)).await;
            }
            let view = tap.view();
            if tap.live() && view.outstanding == 0 {
                return view.status == b'I';
            }
        }
        !self.inner.state.tracker.snapshot().flags.opens_transaction
    }
}

#[cfg(test)]
mod tests {
    use super::cacheable;

    #[test]
    fn only_planned_statements_are_cached() {
        for sql in [
            "SELECT 1",
            "  select $1::int",
            "/* c */ (SELECT 1) UNION (SELECT 2)",
            "-- note\nWITH x AS (SELECT 1) SELECT * FROM x",
            "VALUES (1)",
            "TABLE t",
            "insert into t values ($1)",
            "UPDATE t SET x = 1",
            "DELETE FROM t",
            "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
        ] {
            assert!(cacheable(sql), "{sql}");
        }
        for sql in [
            "SET work_mem = '8MB'",
            "BEGIN",
            "ALTER ROLE app PASSWORD 'x'",
            "DISCARD ALL",
            "DEALLOCATE ALL",
            "CREATE TABLE t (x int)",
            "LISTEN c",
            "",
            "-- only a comment",
            "selectx 1",
            "EXECUTE s",
        ] {
            assert!(!cacheable(sql), "{sql}");
        }
    }
}
