//! How a returned session is brought back to a clean state.

/// SQL of [`ResetStrategy::Clean`]: everything `DISCARD ALL` does except
/// `DEALLOCATE ALL`, so prepared statements (and the statement cache) survive.
pub const CLEAN_SQL: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
     UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

/// A query that answers `t` outside a transaction block and `f` inside one (and fails in
/// a failed one): outside a block every statement of a query message starts its own
/// transaction, so the transaction and statement timestamps are the same.
pub(crate) const IDLE_CHECK_SQL: &str =
    "SELECT pg_catalog.now() = pg_catalog.statement_timestamp()";

/// How the pool cleans a session before the next user gets it.
///
/// Whatever the strategy, a session returned inside a transaction is destroyed, never
/// reset: `DISCARD ALL` refuses to run in one, and the other strategies run a transaction
/// check first (in the same round trip for [`ResetStrategy::Clean`]).
///
/// # Examples
///
/// ```
/// use pg_pool_tokio_postgres::ResetStrategy;
///
/// assert!(ResetStrategy::DiscardAll.discards_statements());
/// assert!(!ResetStrategy::Clean.discards_statements());
/// let custom = ResetStrategy::Custom { sql: "RESET ALL".into(), discards_statements: false };
/// assert_eq!(custom.sql(), Some("RESET ALL"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ResetStrategy {
    /// No reset: session state (settings, temporary tables, locks) carries over. Only
    /// the transaction check runs, and only when the session may have opened one.
    None,
    /// `DISCARD ALL`: the session is as good as new, and its prepared statements are gone
    /// (the statement cache is cleared). One round trip. The default: nothing can leak.
    #[default]
    DiscardAll,
    /// [`CLEAN_SQL`]: like `DISCARD ALL` but keeps prepared statements, so the statement
    /// cache stays warm. Statements prepared with SQL `PREPARE` survive too.
    Clean,
    /// Your own SQL, run as one simple query after the transaction check.
    Custom {
        /// The SQL to run.
        sql: String,
        /// Whether `sql` drops server-side prepared statements (`DISCARD ALL`,
        /// `DEALLOCATE ALL`), so the statement cache must be cleared.
        discards_statements: bool,
    },
}

impl ResetStrategy {
    /// The SQL the strategy runs, if any.
    pub fn sql(&self) -> Option<&str> {
        match self {
            ResetStrategy::None => None,
            ResetStrategy::DiscardAll => Some("DISCARD ALL"),
            ResetStrategy::Clean => Some(CLEAN_SQL),
            ResetStrategy::Custom { sql, .. } => Some(sql),
        }
    }

    /// Whether the reset drops the session's prepared statements.
    pub fn discards_statements(&self) -> bool {
        match self {
            ResetStrategy::None | ResetStrategy::Clean => false,
            ResetStrategy::DiscardAll => true,
            ResetStrategy::Custom {
                discards_statements,
                ..
            } => *discards_statements,
        }
    }

    /// Parses the `pool_reset` URL parameter: `none`, `discard_all`, `clean`.
    pub(crate) fn from_param(value: &str) -> Option<Self> {
        match value {
            "none" => Some(ResetStrategy::None),
            "discard_all" | "discard" => Some(ResetStrategy::DiscardAll),
            "clean" => Some(ResetStrategy::Clean),
            _ => None,
        }
    }
}
