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

/// Command tags (first word) of statements that leave no session state behind by
/// themselves; their SQL is judged separately ([`crate::sql_effects`]). `DO` and `CALL`
/// are not here: they run arbitrary code, which may `SET` anything.
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
    "GRANT",
    "REVOKE",
    "COMMENT",
    "NOTIFY",
    "RESET",
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

/// Whether a statement that completed with command tag `tag` may have changed session
/// state (`SET`, `PREPARE`, `LISTEN`, `DECLARE CURSOR`, `DO`, `CALL`, `DISCARD`, ...).
/// The statement's SQL is judged before it runs ([`crate::sql_effects`]); this is the
/// server's word on what actually ran.
pub(crate) fn tag_changes_session(tag: &str) -> bool {
    let first = tag.split_ascii_whitespace().next().unwrap_or("");
    !NEUTRAL_TAGS.contains(&first)
}

#[cfg(test)]
mod tests {
    use super::tag_changes_session;

    #[test]
    fn classifies_tags() {
        for tag in [
            "SET",
            "PREPARE",
            "LISTEN",
            "UNLISTEN",
            "DECLARE CURSOR",
            "DO",
            "CALL",
            "DISCARD ALL",
            "DEALLOCATE",
            "LOAD",
            "",
        ] {
            assert!(tag_changes_session(tag), "{tag}");
        }
        for tag in [
            "SELECT 1",
            "INSERT 0 1",
            "CREATE TABLE",
            "COMMIT",
            "UPDATE 3",
        ] {
            assert!(!tag_changes_session(tag), "{tag}");
        }
    }
}
