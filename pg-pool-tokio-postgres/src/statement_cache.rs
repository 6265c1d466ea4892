//! A bounded per-connection cache of prepared statements, keyed by SQL text, least recently
//! used evicted first, with a doorkeeper that keeps one-off SQL out once it is full.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};

use pg_pool_conninfo::sql::sql_changes_session;
use tokio_postgres::Statement;

use crate::session::SqlFlags;

/// Most slots of the doorkeeper (one `u64` each), whatever the capacity.
const DOORKEEPER_SLOTS_MAX: usize = 1024;

/// Most statements plain-SQL calls cache whose SQL may change the session (the judge's
/// [`sql_changes_session`]: `set_config`, advisory locks, calls of functions that are not
/// read-only built-ins). The protocol tap remembers such statements by name to see them
/// run again, up to 256; beyond that it counts every statement run as a change, and the
/// session would be reset after every use. Half of that leaves room for the user's own.
const STATEFUL_MAX: usize = 128;

/// One cached statement, with what its SQL may do and when it was last used.
#[derive(Debug)]
struct Entry {
    statement: Statement,
    flags: SqlFlags,
    last_used: u64,
    /// Tells this entry from a later one for the same text ([`StatementCache::evict`]).
    id: u64,
    /// Its SQL may change the session (counted against [`STATEFUL_MAX`]).
    stateful: bool,
    /// Handed out by `prepare_cached` (the user's), not only run by plain-SQL calls.
    user: bool,
}

/// What a plain-SQL call should do with its text ([`StatementCache::admit`]).
#[derive(Debug)]
pub(crate) enum Admission {
    /// Run this cached statement (with the id of its entry).
    Hit(Statement, u64),
    /// Prepare the text and cache it: there is room (made now if need be). `stateful`:
    /// the judge says its SQL may change the session (for [`StatementCache::insert`]).
    Prepare { stateful: bool },
    /// Run the text as before, without caching it: the cache is off, or full and the text
    /// was not seen lately, or it may change the session and [`STATEFUL_MAX`] such
    /// statements are cached.
    Bypass,
}

/// Prepared statements by SQL text, dropping the least recently used beyond `capacity` (a
/// dropped `Statement` closes itself on the server once no clone of it is left).
///
/// Plain-SQL calls ask [`admit`](Self::admit). While there is room, every text is
/// prepared and kept. Once the cache is full, a text not cached is kept only when it is
/// seen a second time while its hash still sits in the doorkeeper (a direct-mapped table
/// of hashes, at most [`DOORKEEPER_SLOTS_MAX`] slots): SQL with inline literals, distinct on
/// every call, then runs as it did without the cache, and evicts nothing the application
/// runs again and again.
#[derive(Debug, Default)]
pub(crate) struct StatementCache {
    capacity: usize,
    statements: HashMap<String, Entry>,
    tick: u64,
    /// Hashes of texts refused while the cache was full; allocated the first time it is.
    doorkeeper: Box<[u64]>,
    /// Entries whose SQL may change the session.
    stateful: usize,
    /// Entries handed out by `prepare_cached`.
    user: usize,
    hasher: RandomState,
}

impl StatementCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            capacity,
            ..Self::default()
        }
    }

    /// The cached statement for `sql`, marked as just used and as the user's
    /// (`prepare_cached` hands it out), with its flags if it was not the user's before
    /// (only plain-SQL calls ran it: its flags are not remembered yet).
    pub(crate) fn get(&mut self, sql: &str) -> Option<(Statement, Option<SqlFlags>)> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.statements.get_mut(sql)?;
        entry.last_used = tick;
        let promoted = !entry.user;
        if promoted {
            entry.user = true;
            self.user += 1;
        }
        Some((entry.statement.clone(), promoted.then_some(entry.flags)))
    }

    /// What a plain-SQL call does with `sql` (see the type's docs). A [`Admission::Prepare`]
    /// of a full cache has already dropped the least recently used statement, so its
    /// `Close` goes out ahead of the new statement's `Parse`.
    pub(crate) fn admit(&mut self, sql: &str) -> Admission {
        self.tick += 1;
        let tick = self.tick;
        if let Some(entry) = self.statements.get_mut(sql) {
            entry.last_used = tick;
            return Admission::Hit(entry.statement.clone(), entry.id);
        }
        if self.capacity == 0 {
            return Admission::Bypass;
        }
        let stateful = sql_changes_session(sql);
        if stateful && self.stateful >= STATEFUL_MAX {
            return Admission::Bypass;
        }
        if self.statements.len() < self.capacity {
            return Admission::Prepare { stateful };
        }
        if self.doorkeeper.is_empty() {
            self.doorkeeper = vec![0; self.capacity.min(DOORKEEPER_SLOTS_MAX)].into();
        }
        // Never 0, the empty slot.
        let hash = self.hasher.hash_one(sql) | 1;
        let slots = self.doorkeeper.len() as u64;
        let slot = &mut self.doorkeeper[(hash % slots) as usize];
        if *slot == hash {
            *slot = 0;
            self.evict_oldest();
            Admission::Prepare { stateful }
        } else {
            *slot = hash;
            Admission::Bypass
        }
    }

    /// Caches `statement` for `sql` (`stateful`: its SQL may change the session; `user`:
    /// `prepare_cached` hands it out), dropping the least recently used beyond the capacity,
    /// and returns the id of its entry. A text already cached (another caller prepared it
    /// meanwhile) keeps its statement: `None`, as when the cache is off.
    pub(crate) fn insert(
        &mut self,
        sql: &str,
        statement: Statement,
        flags: SqlFlags,
        stateful: bool,
        user: bool,
    ) -> Option<u64> {
        if self.capacity == 0 || self.statements.contains_key(sql) {
            return None;
        }
        while self.statements.len() >= self.capacity {
            if !self.evict_oldest() {
                break;
            }
        }
        self.tick += 1;
        self.stateful += usize::from(stateful);
        self.user += usize::from(user);
        self.statements.insert(
            sql.to_owned(),
            Entry {
                statement,
                flags,
                last_used: self.tick,
                id: self.tick,
                stateful,
                user,
            },
        );
        Some(self.tick)
    }

    /// Drops the entry for `sql` if it is still entry `id` (its statement was forgotten by
    /// the server, or its plan went stale); another caller may have cached a fresh one
    /// meanwhile.
    pub(crate) fn evict(&mut self, sql: &str, id: u64) {
        if self.statements.get(sql).is_some_and(|e| e.id == id) {
            self.remove(sql);
        }
    }

    /// Drops the least recently used statement; `false` if there was none.
    fn evict_oldest(&mut self) -> bool {
        let oldest = self
            .statements
            .iter()
            .min_by_key(|(_, e)| e.last_used)
            .map(|(k, _)| k.clone());
        match oldest {
            Some(key) => self.remove(&key),
            None => false,
        }
    }

    /// Drops the entry for `sql`, if any (closing its statement once no clone is left).
    fn remove(&mut self, sql: &str) -> bool {
        let Some(entry) = self.statements.remove(sql) else {
            return false;
        };
        self.stateful -= usize::from(entry.stateful);
        self.user -= usize::from(entry.user);
        true
    }

    pub(crate) fn clear(&mut self) {
        self.statements.clear();
        self.stateful = 0;
        self.user = 0;
    }

    /// Statements `prepare_cached` handed out.
    pub(crate) fn user_len(&self) -> usize {
        self.user
    }

    /// Statements only plain-SQL calls ran.
    pub(crate) fn auto_len(&self) -> usize {
        self.statements.len() - self.user
    }
}
