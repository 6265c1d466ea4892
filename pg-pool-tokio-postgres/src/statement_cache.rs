//! A bounded per-connection cache of prepared statements, keyed by SQL text.

use std::collections::{HashMap, VecDeque};

use tokio_postgres::Statement;

/// Prepared statements by SQL text, dropping the oldest beyond `capacity` (a dropped
/// `Statement` closes itself on the server).
#[derive(Debug, Default)]
pub(crate) struct StatementCache {
    capacity: usize,
    statements: HashMap<String, Statement>,
    /// Insertion order, oldest first.
    order: VecDeque<String>,
}

impl StatementCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    pub(crate) fn get(&self, sql: &str) -> Option<Statement> {
        self.statements.get(sql).cloned()
    }

    pub(crate) fn insert(&mut self, sql: &str, statement: Statement) {
        if self.capacity == 0 || self.statements.contains_key(sql) {
            return;
        }
        while self.statements.len() >= self.capacity {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            self.statements.remove(&oldest);
        }
        self.order.push_back(sql.to_owned());
        self.statements.insert(sql.to_owned(), statement);
    }

    pub(crate) fn clear(&mut self) {
        self.statements.clear();
        self.order.clear();
    }

    pub(crate) fn len(&self) -> usize {
        self.statements.len()
    }
}
