//! A bounded per-connection cache of prepared statements, keyed by SQL text, least recently
//! used evicted first.

use std::collections::HashMap;

use tokio_postgres::Statement;

use crate::session::SqlFlags;

/// One cached statement, with what its SQL may do and when it was last used.
#[derive(Debug)]
struct Entry {
    statement: Statement,
    flags: SqlFlags,
    last_used: u64,
}

/// Prepared statements by SQL text, dropping the least recently used beyond `capacity` (a
/// dropped `Statement` closes itself on the server).
#[derive(Debug, Default)]
pub(crate) struct StatementCache {
    capacity: usize,
    statements: HashMap<String, Entry>,
    tick: u64,
}

impl StatementCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    pub(crate) fn get(&mut self, sql: &str) -> Option<(Statement, SqlFlags)> {
        self.tick += 1;
        let tick = self.tick;
        self.statements.get_mut(sql).map(|entry| {
            entry.last_used = tick;
            (entry.statement.clone(), entry.flags)
        })
    }

    pub(crate) fn insert(&mut self, sql: &str, statement: Statement, flags: SqlFlags) {
        if self.capacity == 0 || self.statements.contains_key(sql) {
            return;
        }
        while self.statements.len() >= self.capacity {
            let Some(oldest) = self
                .statements
                .iter()
                .min_by_key(|(_, e)| e.last_used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            self.statements.remove(&oldest);
        }
        self.tick += 1;
        self.statements.insert(
            sql.to_owned(),
            Entry {
                statement,
                flags,
                last_used: self.tick,
            },
        );
    }

    pub(crate) fn clear(&mut self) {
        self.statements.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.statements.len()
    }
}
