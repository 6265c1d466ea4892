//! How a returned session is brought back to a clean state.

use crate::session::SqlFlags;

/// SQL of [`ResetStrategy::Clean`]: everything `DISCARD ALL` does except
/// `DEALLOCATE ALL`, so prepared statements (and the statement cache) survive.
pub const CLEAN_SQL: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
     UNLISTEN *; SELECT pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

/// SQL of [`ResetStrategy::Full`]: everything `DISCARD ALL` does except `DEALLOCATE ALL`;
/// SQL-level prepared statements are deallocated separately ([`DEALLOCATE_SQL_PREPARED`]).
pub const FULL_SQL: &str = "CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; \
     UNLISTEN *; SELECT pg_catalog.pg_advisory_unlock_all(); DISCARD TEMP; DISCARD SEQUENCES";

/// Deallocates the statements made with SQL `PREPARE` (`from_sql`), keeping those prepared
/// through the protocol, which the statement cache holds.
pub const DEALLOCATE_SQL_PREPARED: &str = "DO $pgpool$DECLARE s text; BEGIN \
     FOR s IN SELECT name FROM pg_catalog.pg_prepared_statements WHERE from_sql LOOP \
     EXECUTE pg_catalog.format('DEALLOCATE %I', s); END LOOP; END$pgpool$";

/// [`FULL_SQL`] behind the transaction check, which also releases the advisory locks.
const PIPELINED_FULL_SQL: &str = "SELECT 1 / (pg_catalog.now() = \
     pg_catalog.statement_timestamp())::int, pg_catalog.pg_advisory_unlock_all(); \
     CLOSE ALL; SET SESSION AUTHORIZATION DEFAULT; RESET ALL; UNLISTEN *; DISCARD TEMP; \
     DISCARD SEQUENCES";

/// The transaction check alone, ahead of the statement-keeping clean sequence.
const ASSERT_IDLE_SQL: &str =
    "SELECT 1 / (pg_catalog.now() = pg_catalog.statement_timestamp())::int";

/// A query that answers `t` outside a transaction block and `f` inside one (and fails in
/// a failed one): outside a block every statement of a query message starts its own
/// transaction, so the transaction and statement timestamps are the same.
pub(crate) const IDLE_CHECK_SQL: &str =
    "SELECT pg_catalog.now() = pg_catalog.statement_timestamp()";

/// The texts of the pipelined resets, each with the NUL that ends it in a `Query` message:
/// the protocol tap recognises them on the wire (see [`crate::tap`]). A `Query` that is,
/// byte for byte, one of them resets the session whoever sent it.
pub(crate) fn reset_texts() -> &'static [Box<[u8]>] {
    static TEXTS: std::sync::LazyLock<Vec<Box<[u8]>>> = std::sync::LazyLock::new(|| {
        let mut texts: Vec<Box<[u8]>> = Vec::new();
        for sql in ResetStrategy::all_pipelined() {
            let mut bytes = sql.into_bytes();
            bytes.push(0);
            if !texts.iter().any(|t| **t == *bytes) {
                texts.push(bytes.into_boxed_slice());
            }
        }
        texts
    });
    &TEXTS
}

/// When a returned session is reset.
///
/// # Examples
///
/// ```
/// use pg_pool_tokio_postgres::{PgConfig, ResetWhen};
///
/// let config = PgConfig::from_url("postgres://app@127.0.0.1/shop?pool_reset_when=used")?;
/// assert_eq!(config.reset_when, ResetWhen::Used);
/// assert_eq!(PgConfig::default().reset_when, ResetWhen::Changed);
/// # Ok::<(), pg_pool_tokio_postgres::PgError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ResetWhen {
    /// The default: only when the session provably changed, as the protocol shows it. The
    /// pool reads the messages of every session it opened (above TLS) and resets a session
    /// on return only when one of its exchanges since the last reset changed session
    /// state: a command tag other than plain data access (`SET`, `PREPARE`, `LISTEN`,
    /// `DECLARE`, `DO`, `LOAD`, ...), a `ParameterStatus` from the server, SQL the shared
    /// judge ([`pg_pool_conninfo::sql::sql_changes_session`]) does not know harmless (also
    /// when a statement prepared from such SQL is run again later, by name), or a function
    /// call message. The judge counts every statement that does not start with a plain
    /// keyword (`CALL`, `DO`, `EXECUTE`, `LISTEN`, ...), that names a temporary object, an
    /// advisory lock or `set_config`, or that calls any function but the read-only
    /// built-ins it lists (`SELECT my_function()`, `VALUES (f())`, `WHERE x = f()`). A
    /// session that only ran `SELECT`s, `INSERT`s, `UPDATE`s (calling built-ins at most),
    /// transactions or cached statements goes back without any reset; the transaction
    /// status comes from the server's `ReadyForQuery`.
    ///
    /// What the SQL text cannot show: code the server runs without the statement naming
    /// it (triggers, column defaults such as `nextval` behind `currval`/`lastval`, views,
    /// rules, row security policies, user-defined operators and casts) changing state the
    /// server does not report. If such code changes the session, use [`ResetWhen::Used`].
    ///
    /// Sessions not opened by this crate ([`PgSession::from_client`](crate::PgSession::from_client),
    /// a [`PgRuntime`](crate::PgRuntime) of your own that does not use
    /// [`connect_raw`](crate::connect_raw)) cannot be read and are reset after every use.
    #[default]
    Changed,
    /// After every use, whatever it did (`pool_reset_when=used`): one more server request
    /// cycle per checkout that sends anything.
    Used,
}

impl ResetWhen {
    /// Parses the `pool_reset_when` URL parameter: `changed` or `used`.
    pub(crate) fn from_param(value: &str) -> Option<Self> {
        match value {
            "changed" => Some(ResetWhen::Changed),
            "used" => Some(ResetWhen::Used),
            _ => None,
        }
    }
}

/// How the pool cleans a session before the next user gets it.
///
/// Whatever the strategy, a session returned inside a transaction is destroyed, never
/// reset: `DISCARD ALL` refuses to run in one, and the other strategies run a transaction
/// check first (in the same message).
///
/// # When the reset runs, and what it costs
///
/// A session nobody sent a statement to is not reset; under the default
/// [`ResetWhen::Changed`], neither is one whose protocol showed no change (see there). A
/// session to reset that was used only through
/// [`PgConnection`](crate::PgConnection)'s own methods, outside any transaction it cannot
/// see the end of, with every call read to its end, gets a **pipelined** reset
/// ([`ResetStrategy::Full`], [`ResetStrategy::Clean`], [`ResetStrategy::DiscardAll`]): the
/// reset is queued on the connection when it is returned, without waiting, and goes out
/// ahead of the next user's first statement, in the same write; its outcome is read before
/// that statement's result is handed back, and a failed reset fails that call
/// ([`PgError::ResetFailed`](crate::PgError::ResetFailed)) and destroys the session. Any other
/// used session (raw [`Client`](tokio_postgres::Client) access, a call dropped mid-way, SQL
/// that may have opened a transaction, a [`ResetStrategy::Custom`] reset) takes the
/// **checked** path on a pool task within `checkin_timeout`: wait for every earlier request
/// to finish (sending a server-side cancel if that takes long), check the transaction status,
/// then run the reset. With the protocol tap, raw access and a call dropped mid-way are
/// first proven idle without a round trip where possible (a marker the tap sees written;
/// see [`PgConnection`](crate::PgConnection)), and a changed session then gets the pipelined
/// reset.
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
    /// (the statement cache is cleared, so `prepare_cached` prepares again after every use).
    DiscardAll,
    /// The default: everything `DISCARD ALL` resets ([`FULL_SQL`]: cursors, session
    /// authorization, every setting, `LISTEN`s, advisory locks, temporary tables, sequence
    /// state) and SQL-level prepared statements ([`DEALLOCATE_SQL_PREPARED`], run when the
    /// session sent SQL mentioning `PREPARE` or was reached raw), while the statements of the
    /// statement cache survive, so [`prepare_cached`](crate::PgConnection::prepare_cached)
    /// stays warm across users.
    ///
    /// One gap: a statement prepared with SQL `PREPARE` by *dynamic SQL inside a function*
    /// (`EXECUTE 'PREPARE ...'` in PL/pgSQL), called through the wrapper's methods with SQL
    /// that does not mention `PREPARE`, survives. Use [`ResetStrategy::DiscardAll`] if your
    /// functions do that.
    #[default]
    Full,
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
            ResetStrategy::Full => Some(FULL_SQL),
            ResetStrategy::Clean => Some(CLEAN_SQL),
            ResetStrategy::Custom { sql, .. } => Some(sql),
        }
    }

    /// Whether the reset drops the session's prepared statements.
    pub fn discards_statements(&self) -> bool {
        match self {
            ResetStrategy::None | ResetStrategy::Clean | ResetStrategy::Full => false,
            ResetStrategy::DiscardAll => true,
            ResetStrategy::Custom {
                discards_statements,
                ..
            } => *discards_statements,
        }
    }

    /// The reset queued without waiting at checkin, when the wrapper saw everything the
    /// session did (see the type's docs); `None` for strategies that are never pipelined.
    pub(crate) fn pipelined_sql(&self, flags: SqlFlags) -> Option<String> {
        match self {
            ResetStrategy::None | ResetStrategy::Custom { .. } => None,
            ResetStrategy::DiscardAll => Some("DISCARD ALL".into()),
            ResetStrategy::Clean => Some(format!("{ASSERT_IDLE_SQL}; {CLEAN_SQL}")),
            ResetStrategy::Full => {
                let mut sql = PIPELINED_FULL_SQL.to_owned();
                if flags.prepares {
                    sql.push_str("; ");
                    sql.push_str(DEALLOCATE_SQL_PREPARED);
                }
                Some(sql)
            }
        }
    }

    /// The reset run on the checked path, once the session is known idle.
    pub(crate) fn checked_sql(&self, flags: SqlFlags) -> Option<String> {
        match self {
            ResetStrategy::None => None,
            ResetStrategy::Full if flags.prepares => {
                Some(format!("{FULL_SQL}; {DEALLOCATE_SQL_PREPARED}"))
            }
            other => other.sql().map(str::to_owned),
        }
    }

    /// Every text [`pipelined_sql`](Self::pipelined_sql) can produce.
    fn all_pipelined() -> impl Iterator<Item = String> {
        let strategies = [
            ResetStrategy::Full,
            ResetStrategy::Clean,
            ResetStrategy::DiscardAll,
        ];
        strategies.into_iter().flat_map(|strategy| {
            [SqlFlags::default(), SqlFlags::UNKNOWN]
                .into_iter()
                .filter_map(move |flags| strategy.pipelined_sql(flags))
        })
    }

    /// Parses the `pool_reset` URL parameter: `none`, `full`, `discard_all`, `clean`.
    pub(crate) fn from_param(value: &str) -> Option<Self> {
        match value {
            "none" => Some(ResetStrategy::None),
            "full" => Some(ResetStrategy::Full),
            "discard_all" | "discard" => Some(ResetStrategy::DiscardAll),
            "clean" => Some(ResetStrategy::Clean),
            _ => None,
        }
    }
}
