//! The pool's side of a [`PgConnection`]: broken checks, the pipelined reset queued at
//! checkin, and the checked return path (wait out what is in flight, cancel server-side,
//! check the transaction status, reset).

use std::time::Duration;

use futures_lite::future;
use pg_pool_core::Poolable;
use tokio_postgres::SimpleQueryMessage;
use tokio_postgres::error::SqlState;

use crate::connection::PgConnection;
use crate::error::PgError;
use crate::pipeline;
use crate::reset::{IDLE_CHECK_SQL, ResetStrategy};
use crate::session::SqlFlags;

/// How long the checked path waits for earlier requests before it sends a server-side
/// cancel: long enough for a response already on its way, short next to `checkin_timeout`.
const CANCEL_AFTER: Duration = Duration::from_millis(50);

impl PgConnection {
    /// Proves the session idle: every earlier request answered (the client answers in
    /// order, so the answer to a new query comes after all of them) and no transaction
    /// open. If the answer takes longer than [`CANCEL_AFTER`], a server-side cancel is sent
    /// through the pool's runtime, and once it has been delivered the check runs again, so
    /// a late cancel cannot hit the next user's statement.
    async fn prove_idle(&self) -> Result<(), PgError> {
        let client = self.raw_client();
        let mut probe = std::pin::pin!(client.simple_query(IDLE_CHECK_SQL));
        let Some(runtime) = self.runtime.clone() else {
            return self.idle_answer(probe.await, false).await;
        };
        let early = future::or(async { Some(probe.as_mut().await) }, async {
            runtime.sleep(CANCEL_AFTER).await;
            None
        })
        .await;
        if let Some(answer) = early {
            return self.idle_answer(answer, false).await;
        }
        tracing::debug!("a returned session is still busy; sending a server-side cancel");
        let cancel = runtime.cancel(client.cancel_token(), &self.config().pg);
        let (answer, cancelled) = future::zip(probe, cancel).await;
        if let Err(error) = &cancelled {
            tracing::debug!(%error, "the cancel request could not be sent");
        }
        // The cancel was delivered (or failed): a fresh check cannot be hit by it any more.
        self.idle_answer(answer, true).await?;
        let again = client.simple_query(IDLE_CHECK_SQL).await;
        self.idle_answer(again, true).await
    }

    /// Reads an idle check's answer; a check hit by our own cancel (`57014`) runs again.
    async fn idle_answer(
        &self,
        answer: Result<Vec<SimpleQueryMessage>, tokio_postgres::Error>,
        retried: bool,
    ) -> Result<(), PgError> {
        let messages = match answer {
            Ok(messages) => messages,
            Err(e) if e.code() == Some(&SqlState::QUERY_CANCELED) && !retried => {
                let again = self.raw_client().simple_query(IDLE_CHECK_SQL).await;
                return Box::pin(self.idle_answer(again, true)).await;
            }
            Err(e) if e.code() == Some(&SqlState::IN_FAILED_SQL_TRANSACTION) => {
                return Err(PgError::TransactionOpen);
            }
            Err(e) => return self.state.note(Err(e)),
        };
        let idle = messages.iter().find_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row.get(0) == Some("t")),
            _ => None,
        });
        match idle {
            Some(true) => Ok(()),
            _ => Err(PgError::TransactionOpen),
        }
    }
}

impl Poolable for PgConnection {
    type Error = PgError;

    /// Broken (see [`PgConnection::is_broken`]), or a pipelined reset already answered with
    /// an error.
    fn has_pending_data(&self) -> bool {
        self.is_broken() || !self.state.poll_pending()
    }

    fn server_changed(&self) -> Option<&'static str> {
        self.state.tracker.server_change()
    }

    fn is_permanent_connect_error(error: &PgError) -> bool {
        crate::error::is_permanent_connect_error(error)
    }

    /// Unused: no. Used only through the wrapper's methods, every call read to its end,
    /// outside any transaction it cannot see the end of: the strategy's reset is queued on
    /// the connection now, without waiting (or, for [`ResetStrategy::None`], nothing is
    /// needed), and the return stays synchronous. Anything else: the checked path.
    fn needs_reset(&mut self) -> bool {
        let seen = self.state.tracker.snapshot();
        if !seen.used && !seen.raw && !seen.abandoned {
            return false;
        }
        if seen.needs_checked_path() || self.state.has_pending() {
            return true;
        }
        let strategy = self.config().effective_reset();
        if *strategy == ResetStrategy::None {
            self.state.tracker.clear();
            return false;
        }
        let Some(sql) = strategy.pipelined_sql(seen.flags) else {
            return true;
        };
        let discards = strategy.discards_statements();
        match pipeline::queue(self.raw_client(), &sql) {
            Some(Ok(pending)) => {
                self.state.set_pending(pending);
                if discards {
                    self.state.cache().clear();
                }
                self.state.tracker.clear();
                false
            }
            Some(Err(error)) => {
                tracing::debug!(error = %PgError::from(error), "could not queue the session reset");
                self.state.tracker.mark_fatal();
                true
            }
            None => true,
        }
    }

    /// The checked path: proves the session idle (cancelling server-side what is still
    /// running), then runs the strategy's reset. A session inside a transaction fails it
    /// and is destroyed.
    async fn reset(&mut self) -> Result<(), PgError> {
        if self.is_broken() {
            return Err(PgError::Broken);
        }
        let seen = self.state.tracker.snapshot();
        let flags = if seen.raw {
            SqlFlags::UNKNOWN
        } else {
            seen.flags
        };
        // Superseded: this reset proves everything itself.
        drop(self.state.take_pending());
        self.prove_idle().await?;
        let strategy = self.config().effective_reset().clone();
        if let Some(sql) = strategy.checked_sql(flags) {
            let result = self.raw_client().batch_execute(&sql).await;
            self.state.note(result)?;
        }
        if strategy.discards_statements() {
            self.state.cache().clear();
        }
        self.state.tracker.clear();
        Ok(())
    }

    /// Session profile: a `Sync` message, the cheapest round trip. Pooler-safe: an empty
    /// query, which pgbouncer must pass to a PostgreSQL server.
    async fn ping(&mut self) -> Result<(), PgError> {
        self.check_connection().await
    }
}

impl pg_pool_core::ReplicaLag for PgConnection {
    /// A simple query, so it works under every profile (pgbouncer in transaction mode too).
    async fn replica_lag(&mut self) -> Result<Option<Duration>, PgError> {
        let messages = self.simple_query(pg_pool_conninfo::REPLICA_LAG_SQL).await?;
        let value = messages.iter().find_map(|message| match message {
            SimpleQueryMessage::Row(row) => Some(row.get(0)),
            _ => None,
        });
        pg_pool_conninfo::parse_replica_lag(value.flatten())
            .map_err(|reason| PgError::config("replica_lag", reason))
    }
}
