//! Shared use of an [`AsyncWirePoolable`]: pg-wired's `AsyncConn` pipelines requests from
//! many tasks on one session, so [`ConnPool::get_shared`](pg_pool_core::ConnPool::get_shared)
//! can put many users on one connection. Each gets a [`SharedWire`], which offers single
//! statements through the connection's statement cache and nothing that could open a
//! transaction or send several statements at once. The users' statements reach the server
//! in batches, several requests in one write (see `batch.rs`).

use std::fmt;

use pg_pool_core::{Shareable, SharedGuard};
use pg_wired::FormatCode;
use pg_wired::protocol::types::RawRow;

use crate::async_poolable::AsyncWirePoolable;
use crate::error::WireError;
use pg_pool_conninfo::sql::first_word;

/// A shared lease on an [`AsyncWirePoolable`], from
/// [`ConnPool::get_shared`](pg_pool_core::ConnPool::get_shared); its
/// [`handle`](SharedGuard::handle) is a [`SharedWire`].
pub type AsyncWireSharedGuard<R> = SharedGuard<AsyncWirePoolable, R>;

impl Shareable for AsyncWirePoolable {
    type Handle<'a> = SharedWire<'a>;

    fn share(&self) -> SharedWire<'_> {
        SharedWire { conn: self }
    }

    /// Dead for every user: the session closed or failed, or a request proved it dead.
    /// Other users' requests in flight are normal here, unlike on an exclusive checkout.
    fn is_broken(&self) -> bool {
        self.is_dead()
    }
}

/// One user's handle on a shared [`AsyncWirePoolable`]: single statements, pipelined with
/// the other users' on the same session.
///
/// A statement goes into the connection's outbox; a short-lived task spawned for each batch
/// lets the other users that are ready to run add theirs, then hands the whole outbox to
/// pg-wired at once, which writes it with one system call (rather than one per statement),
/// and the server reads it with one. Each request keeps its own `Sync`, so its error or
/// answer is its own.
///
/// Only statements that begin (after comments and opening parentheses) with `SELECT`,
/// `WITH`, `VALUES`, `TABLE`, `INSERT`, `UPDATE`, `DELETE` or `MERGE` are sent; anything
/// else (`BEGIN`, `SET`, `LISTEN`, `DO`, `CALL`, ...) is refused with
/// [`WireError::NotShareable`] before anything reaches the server, because the other users
/// of the session would run inside it. A statement that changes the session anyway (say
/// `SELECT set_config(...)`) is undone by the ordinary reset once the connection goes back.
#[derive(Clone, Copy)]
pub struct SharedWire<'a> {
    conn: &'a AsyncWirePoolable,
}

impl fmt::Debug for SharedWire<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedWire")
            .field("conn", self.conn)
            .finish()
    }
}

/// The first keywords a statement may start with on a shared session.
const SHAREABLE: [&str; 8] = [
    "select", "with", "values", "table", "insert", "update", "delete", "merge",
];

/// Refuses what must not run on a shared session, before anything is sent.
fn shareable(sql: &str) -> Result<(), WireError> {
    if sql.contains('\0') {
        return Err(WireError::InvalidStatement {
            reason: "the text contains a NUL byte",
        });
    }
    match first_word(sql) {
        Some(word) if SHAREABLE.iter().any(|ok| word.eq_ignore_ascii_case(ok)) => Ok(()),
        _ => Err(WireError::NotShareable {
            reason: "only single SELECT, WITH, VALUES, TABLE, INSERT, UPDATE, DELETE or MERGE \
                     statements run on a shared connection",
        }),
    }
}

impl SharedWire<'_> {
    /// [`AsyncWirePoolable::exec_query`] for a shareable statement: parameters in text
    /// format, the statement prepared once per session through the connection's cache.
    ///
    /// # Errors
    ///
    /// [`WireError::NotShareable`] or [`WireError::InvalidStatement`] before anything is
    /// sent; otherwise the driver's error ([`WireError::is_fatal`] when the session died,
    /// which fails every user's request in flight on it and retires the connection).
    ///
    /// # Cancel safety
    ///
    /// Dropped after the request was queued, the statement still runs and its response is
    /// read and discarded; the connection is destroyed, not reused, once its last user is
    /// done (as for an exclusive checkout).
    pub async fn exec_query(
        &self,
        sql: &str,
        params: &[Option<&[u8]>],
        param_oids: &[u32],
    ) -> Result<Vec<RawRow>, WireError> {
        shareable(sql)?;
        let fut = self.conn.exec_batched(sql, params, param_oids, &[], &[]);
        Ok(fut.await?)
    }

    /// [`AsyncWirePoolable::exec_query_with_formats`] for a shareable statement.
    ///
    /// # Errors
    ///
    /// As [`exec_query`](Self::exec_query).
    ///
    /// # Cancel safety
    ///
    /// As [`exec_query`](Self::exec_query).
    pub async fn exec_query_with_formats(
        &self,
        sql: &str,
        params: &[Option<&[u8]>],
        param_oids: &[u32],
        param_formats: &[FormatCode],
        result_formats: &[FormatCode],
    ) -> Result<Vec<RawRow>, WireError> {
        shareable(sql)?;
        let fut = self
            .conn
            .exec_batched(sql, params, param_oids, param_formats, result_formats);
        Ok(fut.await?)
    }

    /// The session's backend process id (for `pg_stat_activity`, `pg_cancel_backend`).
    pub fn backend_pid(&self) -> i32 {
        self.conn.raw().backend_pid()
    }

    /// Whether the session is dead (see [`Shareable::is_broken`]).
    pub fn is_broken(&self) -> bool {
        self.conn.is_dead()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn first_keywords() {
        for (sql, word) in [
            ("SELECT 1", Some("SELECT")),
            ("  \n\tselect 1", Some("select")),
            ("((SELECT 1))", Some("SELECT")),
            ("-- note\nWITH x AS (SELECT 1) TABLE x", Some("WITH")),
            (
                "/* a /* nested */ comment */ insert into t values (1)",
                Some("insert"),
            ),
            ("/* unterminated", None),
            ("-- only a comment", None),
            ("", None),
            ("   ", None),
            ("1", None),
            ("BEGIN; SELECT 1", Some("BEGIN")),
        ] {
            assert_eq!(first_word(sql), word, "{sql:?}");
        }
    }

    #[test]
    fn only_single_statements_are_shareable() {
        for sql in [
            "SELECT 1",
            "with x as (select 1) select * from x",
            "VALUES (1)",
            "TABLE t",
            "INSERT INTO t VALUES (1)",
            "update t set a = 1",
            "DELETE FROM t",
            "MERGE INTO t USING s ON true WHEN MATCHED THEN DELETE",
            "(select 1)",
        ] {
            assert!(shareable(sql).is_ok(), "{sql:?}");
        }
        for sql in [
            "BEGIN",
            "start transaction",
            "COMMIT",
            "rollback",
            "SAVEPOINT a",
            "SET search_path TO x",
            "RESET ALL",
            "DISCARD ALL",
            "LISTEN c",
            "PREPARE p AS SELECT 1",
            "DEALLOCATE ALL",
            "DO $$ BEGIN END $$",
            "CALL p()",
            "LOCK TABLE t",
            "COPY t FROM STDIN",
            "/* select */ begin",
            "-- select\nset x = 1",
            "",
            "/* select",
            "SELECT 1\0; BEGIN",
        ] {
            assert!(shareable(sql).is_err(), "{sql:?}");
        }
    }

    proptest! {
        /// Any text at all: no panic, and what passes starts with an allowed keyword after
        /// whitespace, comments and parentheses.
        #[test]
        fn never_panics(sql in ".{0,64}") {
            if shareable(&sql).is_ok() {
                let word = first_word(&sql).expect("a keyword");
                prop_assert!(SHAREABLE.iter().any(|ok| word.eq_ignore_ascii_case(ok)));
                prop_assert!(!sql.contains('\0'));
            }
        }

        /// A refused statement stays refused behind any comment or whitespace.
        #[test]
        fn comments_do_not_hide_a_statement(
            pad in "[ \t\n(]{0,4}",
            note in "[a-z ]{0,10}",
            word in prop::sample::select(vec!["BEGIN", "set", "Listen", "do", "call"]),
        ) {
            let sql = format!("{pad}/* {note} */{pad}-- {note}\n{pad}{word} x");
            prop_assert!(shareable(&sql).is_err(), "{}", sql);
        }
    }
}
