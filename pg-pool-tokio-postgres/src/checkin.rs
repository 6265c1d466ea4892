//! The pool's side of a [`PgConnection`]: broken checks, the pipelined reset queued at
//! checkin, and the checked return path (wait out what is in flight, cancel server-side,
//! check the transaction status, reset), or, with the protocol tap, the marker proof
//! (`marker.rs`).

mod marker;

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
use crate::tap::{TapShared, TapView};
use crate::tracker::Snapshot;

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
        let Some(runtime) = self.inner.runtime.clone() else {
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
            Err(e) => return self.inner.state.note(Err(e)),
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

impl PgConnection {
    /// Queues the strategy's pipelined reset for `flags`; `true` if the checked path must
    /// run instead.
    fn queue_reset(&mut self, flags: SqlFlags) -> bool {
        let strategy = self.config().effective_reset();
        let Some(sql) = strategy.pipelined_sql(flags) else {
            return true;
        };
        let discards = strategy.discards_statements();
        match pipeline::queue(self.raw_client(), &sql) {
            Some(Ok(pending)) => {
                self.inner.state.set_pending(pending);
                if discards {
                    self.inner.state.cache().clear();
                }
                self.inner.state.tracker.clear();
                false
            }
            Some(Err(error)) => {
                tracing::debug!(error = %PgError::from(error), "could not queue the session reset");
                self.inner.state.tracker.mark_fatal();
                true
            }
            None => true,
        }
    }

    /// Empties the statement cache if the user's own `DISCARD ALL` or `DEALLOCATE` may have
    /// removed its statements from the server (the next `prepare_cached` prepares again).
    fn forget_dropped_statements(&mut self) {
        if self
            .inner
            .tap
            .as_deref()
            .is_some_and(TapShared::take_statements_dropped)
        {
            tracing::debug!(
                "the session discarded prepared statements; emptying the statement cache"
            );
            self.inner.state.cache().clear();
        }
    }

    /// The return decided from what the protocol tap saw (see `needs_reset`); `None` to
    /// decide as without it.
    fn tapped_return(&mut self, seen: Snapshot, view: TapView) -> Option<bool> {
        self.inner.tap_vouched = false;
        if seen.raw || seen.abandoned || self.inner.state.has_pending() {
            return Some(true);
        }
        // Every call of the wrapper that counts as use writes something: if the tap saw
        // nothing written, it is not reading this session (trust it no further this time).
        self.inner.tap_vouched = self.inner.state.tracker.tap_advanced(view.sent);
        if !self.inner.tap_vouched {
            tracing::debug!("the protocol tap saw nothing of a used session; resetting it");
            return None;
        }
        if !view.idle() {
            // A dropped `PgTransaction` queued its `ROLLBACK`, perhaps not written yet: as
            // without the tap, the reset queued behind it checks the status.
            let rollback_queued =
                view.outstanding == 0 && seen.transaction_seen && !seen.flags.opens_transaction;
            return (!rollback_queued).then_some(true);
        }
        if !view.dirty || *self.config().effective_reset() == ResetStrategy::None {
            self.inner.state.tracker.clear();
            return Some(false);
        }
        let flags = SqlFlags {
            opens_transaction: false,
            prepares: seen.flags.prepares || view.prepared,
        };
        Some(self.queue_reset(flags))
    }

    /// Waits, for at most [`CANCEL_AFTER`], for the tap to see every exchange complete
    /// (a `ReadyForQuery` can arrive just after the rows it ends were handed over).
    /// Whether the session is then idle outside a transaction.
    async fn settled(&self, tap: &TapShared) -> bool {
        if !tap.view().idle() {
            let Some(runtime) = self.inner.runtime.clone() else {
                return false;
            };
            future::or(tap.settled(), runtime.sleep(CANCEL_AFTER)).await;
        }
        tap.live() && tap.view().idle()
    }
}

impl Poolable for PgConnection {
    type Error = PgError;

    /// Broken (see [`PgConnection::is_broken`]), or a pipelined reset already answered with
    /// an error.
    fn has_pending_data(&self) -> bool {
        self.is_broken() || !self.inner.state.poll_pending()
    }

    fn server_changed(&self) -> Option<&'static str> {
        self.inner.state.tracker.server_change().or_else(|| {
            self.inner
                .tap
                .as_ref()
                .is_some_and(|tap| tap.role_changed())
                .then_some("in_hot_standby changed: the server was promoted or demoted")
        })
    }

    fn is_permanent_connect_error(error: &PgError) -> bool {
        crate::error::is_permanent_connect_error(error)
    }

    /// Unused: no. With the protocol tap ([`ResetWhen::Changed`](crate::ResetWhen), the
    /// default): used only through the wrapper's methods, every call read to its end,
    /// nothing outstanding on the wire and the server idle outside a transaction: back at
    /// once, with the strategy's reset queued only if the session changed. Without the tap
    /// (or under [`ResetWhen::Used`](crate::ResetWhen)): used only through the wrapper's
    /// methods, every call read to its end, outside any transaction it cannot see the end
    /// of: the strategy's reset is queued now, without waiting. Anything else: the checked
    /// path.
    fn needs_reset(&mut self) -> bool {
        let seen = self.inner.state.tracker.snapshot();
        if !seen.used && !seen.raw && !seen.abandoned {
            return false;
        }
        self.forget_dropped_statements();
        self.inner.tap_vouched = false;
        if let Some(view) = self.live_tap().map(TapShared::view)
            && let Some(decision) = self.tapped_return(seen, view)
        {
            return decision;
        }
        if seen.needs_checked_path() || self.inner.state.has_pending() {
            return true;
        }
        if *self.config().effective_reset() == ResetStrategy::None {
            self.inner.state.tracker.clear();
            return false;
        }
        self.queue_reset(seen.flags)
    }

    /// The checked path: proves the session idle (cancelling server-side what is still
    /// running), then runs the strategy's reset; with the protocol tap, only if the session
    /// changed, and without a round trip where the tap can prove it: a session whose only
    /// doubt was a `ReadyForQuery` still on its way is proven idle by the tap; one reached
    /// raw or with a call dropped mid-way, by a marker the tap sees written (one hop through
    /// the connection task; `checkin/marker.rs`), after which a changed session gets the
    /// strategy's reset queued ahead of the next user's first statement. A session inside a
    /// transaction fails it and is destroyed.
    async fn reset(&mut self) -> Result<(), PgError> {
        if self.is_broken() {
            return Err(PgError::Broken);
        }
        self.forget_dropped_statements();
        let seen = self.inner.state.tracker.snapshot();
        let mut flags = if seen.raw {
            SqlFlags::UNKNOWN
        } else {
            seen.flags
        };
        // Superseded: this reset proves everything itself.
        drop(self.inner.state.take_pending());
        let mut tap = self.live_tap().and(self.inner.tap.clone());
        let mut marked = false;
        let proven = match &tap {
            Some(tap) if self.inner.tap_vouched => self.settled(tap).await,
            Some(tap) => {
                marked = self.marker_proof(tap).await?;
                marked
            }
            None => false,
        };
        if !proven {
            let before = tap.as_ref().map(|tap| tap.view().sent);
            self.prove_idle().await?;
            // The check went through the tap, or the tap is not reading this session.
            if let (Some(t), Some(before)) = (&tap, before)
                && t.view().sent <= before
            {
                tracing::debug!("the protocol tap missed the idle check; resetting");
                tap = None;
            }
        }
        let strategy = self.config().effective_reset().clone();
        if let Some(tap) = &tap {
            // Every exchange is complete: what the tap says is the whole story.
            let view = tap.view();
            if marked {
                // The tap read this session: the next return trusts it from here.
                self.inner.state.tracker.tap_advanced(view.sent);
            }
            if !view.dirty || strategy == ResetStrategy::None {
                self.inner.state.tracker.clear();
                return Ok(());
            }
            flags.prepares |= view.prepared;
            let queued = SqlFlags {
                opens_transaction: false,
                prepares: flags.prepares,
            };
            // Proven idle by the marker: as the tapped return does, the reset goes out
            // ahead of the next user's first statement, not waited for here.
            if marked && !self.queue_reset(queued) {
                return Ok(());
            }
        }
        if let Some(sql) = strategy.checked_sql(flags) {
            let result = self.raw_client().batch_execute(&sql).await;
            self.inner.state.note(result)?;
        }
        if strategy.discards_statements() {
            self.inner.state.cache().clear();
        }
        if let Some(tap) = &tap {
            tap.reset_completed();
        }
        self.inner.state.tracker.clear();
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
