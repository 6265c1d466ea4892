//! What a pooled session knows about its own state: the transaction status from
//! `ReadyForQuery`, and whether a statement may have changed session state.

use std::fmt;

/// The transaction status the server reported in its last `ReadyForQuery`.
///
/// A connection goes back into the pool only when this is [`TransactionStatus::Idle`]; one
/// returned inside a transaction is destroyed, never rolled back and reused.
///
/// # Examples
///
/// ```
/// use pg_pool_wire::TransactionStatus;
///
/// assert_eq!(TransactionStatus::from_byte(b'T'), Some(TransactionStatus::InTransaction));
/// assert_eq!(TransactionStatus::InTransaction.to_string(), "open");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum TransactionStatus {
    /// Not in a transaction block (`I`).
    #[default]
    Idle,
    /// In a transaction block (`T`).
    InTransaction,
    /// In a failed transaction block, awaiting `ROLLBACK` (`E`).
    Failed,
}

impl TransactionStatus {
    /// Decodes the status byte of a `ReadyForQuery` message.
    pub fn from_byte(status: u8) -> Option<Self> {
        match status {
            b'I' => Some(Self::Idle),
            b'T' => Some(Self::InTransaction),
            b'E' => Some(Self::Failed),
            _ => None,
        }
    }
}

impl fmt::Display for TransactionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Idle => "idle",
            Self::InTransaction => "open",
            Self::Failed => "failed",
        })
    }
}

/// Command tags of statements that leave no session state behind, as long as the SQL does
/// not also mention one of [`STATEFUL_WORDS`].
const NEUTRAL_TAGS: &[&str] = &[
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "MERGE",
    "BEGIN",
    "START",
    "COMMIT",
    "ROLLBACK",
    "END",
    "ABORT",
    "SAVEPOINT",
    "RELEASE",
    "COPY",
    "FETCH",
    "MOVE",
    "SHOW",
    "EXPLAIN",
    "CREATE",
    "ALTER",
    "DROP",
    "TRUNCATE",
    "VACUUM",
    "ANALYZE",
    "CALL",
    "DO",
    "GRANT",
    "REVOKE",
    "COMMENT",
    "NOTIFY",
    "RESET",
    "DISCARD",
    "CHECKPOINT",
    "CLUSTER",
    "REINDEX",
    "REFRESH",
    "LOCK",
    "CLOSE",
    "SECURITY",
    "IMPORT",
    "REASSIGN",
    "VALUES",
    "TABLE",
];

/// Words whose presence in otherwise neutral SQL suggests session state (temporary tables,
/// session advisory locks, `set_config`).
const STATEFUL_WORDS: &[&str] = &["temp", "advisory", "set_config"];

/// Whether a statement that completed with `tag`, sent as `sql`, may have changed session
/// state (`SET`, `PREPARE`, `LISTEN`, `DECLARE`, temporary tables, advisory locks, ...).
///
/// Errs on the safe side: a false positive costs one `DISCARD ALL` at checkin.
pub(crate) fn changes_session(tag: &str, sql: &str) -> bool {
    let first = tag.split_ascii_whitespace().next().unwrap_or("");
    if !NEUTRAL_TAGS.contains(&first) {
        return true;
    }
    let lower = sql.to_ascii_lowercase();
    STATEFUL_WORDS.iter().any(|word| lower.contains(word))
}

#[cfg(test)]
mod tests {
    use super::changes_session;

    #[test]
    fn classifies_statements() {
        assert!(changes_session("SET", "set search_path = x"));
        assert!(changes_session("PREPARE", "prepare p as select 1"));
        assert!(changes_session("LISTEN", "listen c"));
        assert!(changes_session(
            "DECLARE CURSOR",
            "declare c cursor for select 1"
        ));
        assert!(changes_session(
            "CREATE TABLE",
            "create temp table t (x int)"
        ));
        assert!(changes_session("SELECT 1", "select pg_advisory_lock(1)"));
        assert!(changes_session(
            "SELECT 1",
            "select set_config('a.b', '1', false)"
        ));
        assert!(!changes_session("SELECT 1", "select 1"));
        assert!(!changes_session("INSERT 0 1", "insert into t values (1)"));
        assert!(!changes_session("CREATE TABLE", "create table t (x int)"));
        assert!(!changes_session("COMMIT", "commit"));
    }
}
