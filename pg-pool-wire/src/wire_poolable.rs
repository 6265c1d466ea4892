//! [`WirePoolable`]: a pooled `pg_wired::WireConn` with a small simple-query API that tracks
//! the session's transaction status and whether its state was changed.

use pg_pool_core::{Connect, ConnectTarget, Poolable};
use pg_wired::protocol::types::BackendMsg;
use pg_wired::{PgWireError, WireConn};

use crate::attrs::Watch;
use crate::config::WireConfig;
use crate::error::{WireError, is_fatal_server_error, server_change, server_change_code};
use crate::session::{TransactionStatus, tag_changes_session};
use pg_pool_conninfo::sql::sql_changes_session;

/// The `Terminate` message.
pub(crate) const TERMINATE: [u8; 5] = [b'X', 0, 0, 0, 4];

/// A row of a simple query: one text value per column, `None` for SQL `NULL`.
pub type TextRow = Vec<Option<String>>;

/// A pooled [`WireConn`]: one PostgreSQL session driven with the simple query protocol.
///
/// Run statements with [`simple_query`](Self::simple_query), [`execute`](Self::execute) and
/// [`query_value`](Self::query_value). These keep what the pool needs to hand the session
/// to the next user clean:
///
/// - the **transaction status** of the last `ReadyForQuery`: a connection returned inside a
///   transaction (open or failed) is destroyed, never rolled back and reused;
/// - whether the **session may have changed**: `SET`, `PREPARE`, `LISTEN`, `DECLARE`,
///   temporary tables, advisory locks, `set_config`, any code the statement runs (`DO`,
///   `CALL`, a call of a function that is not a known harmless built-in, such as
///   `SELECT my_function()`), and any `ParameterStatus` the server reports. Judged from
///   the SQL before it runs and from the command tags after. Only then does the pool run
///   `DISCARD ALL` at checkin; a plain `SELECT`, `INSERT`, `UPDATE` or `DELETE` goes back
///   synchronously at no round trip. The detection errs on the safe side; for what the
///   statement does not name (a trigger, a column default or a view calling a function
///   that changes session state), call
///   [`mark_session_changed`](Self::mark_session_changed);
/// - whether an exchange is **in flight**: every method that talks to the server marks the
///   exchange started before its first write and finished only once the `ReadyForQuery`
///   ending it has been read. A future dropped in between (a timeout around a query, a
///   `select!`) leaves it in flight, and the connection is destroyed, never reused: the
///   protocol is mid-response, or mid-message when the write itself was cut;
/// - whether the connection **broke**: an I/O error, the connection closed, a protocol
///   error, or a server error that ends the session (`FATAL`/`PANIC`, `57P01`
///   `pg_terminate_backend` or shutdown, `57P02`, `57P03`, `57P05` idle session timeout,
///   class `08`). The connection is destroyed when it comes back, without the caller doing
///   anything, so a dead connection fails at most one checkout.
///
/// [`wire_mut`](Self::wire_mut) gives the raw [`WireConn`]; since the pool then cannot know
/// what happened, the connection is reset with `DISCARD ALL` on return (and destroyed if
/// that fails, for example inside a transaction, after an I/O error, or when a statement is
/// still running past `checkin_timeout`). Bytes left unread in the driver's buffer destroy
/// it too.
///
/// # What is not detected, and why
///
/// - A connection that died while idle in the pool (server restart, `idle_session_timeout`)
///   is noticed by the first exchange on it, which fails, or earlier by a ping when
///   `test_on_checkout` or the health probe is on: pg-wired's `WireConn` offers no socket
///   liveness check.
/// - An abandoned statement is not cancelled on the server: pg-wired 0.4's `WireConn` does
///   not expose the session's cancel key, so no cancel request can be built. The
///   connection is destroyed (its capacity is freed at once) and the server runs the
///   statement to its end. Setting `client_connection_check_interval` (PostgreSQL 14+,
///   for example as a startup parameter of [`WireConfig`]) makes the server stop it soon
///   after the socket closes. [`AsyncWirePoolable`](crate::AsyncWirePoolable) does cancel.
///
/// # Examples
///
/// ```no_run
/// use pg_pool_core::{ConnPoolConfig, LifecycleHooks};
/// use pg_pool_tokio::ConnPool;
/// use pg_pool_wire::WirePoolable;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = ConnPool::<WirePoolable>::new(ConnPoolConfig::default(), LifecycleHooks::default()).await?;
/// let mut conn = pool.get().await?;
/// let answer = conn.query_value("SELECT 40 + 2").await?;
/// assert_eq!(answer.as_deref(), Some("42"));
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct WirePoolable {
    conn: WireConn,
    status: TransactionStatus,
    session_changed: bool,
    raw_access: bool,
    in_flight: bool,
    broken: bool,
    /// What a failed request said about the server (`Poolable::server_changed`).
    server_change: Option<&'static str>,
    /// What the server's `ParameterStatus` reports can say against the
    /// `target_session_attrs` the session was opened for.
    watch: Watch,
}

/// What one simple-query exchange produced.
struct Outcome {
    rows: Vec<TextRow>,
    last_tag: String,
}

impl WirePoolable {
    /// Wraps an open connection, assumed idle and unchanged since startup.
    pub fn new(conn: WireConn) -> Self {
        Self {
            conn,
            status: TransactionStatus::Idle,
            session_changed: false,
            raw_access: false,
            in_flight: false,
            broken: false,
            server_change: None,
            watch: Watch::Nothing,
        }
    }

    /// Sets what to watch in the server's reports (from the `target_session_attrs` check).
    pub(crate) fn watching(mut self, watch: Watch) -> Self {
        self.watch = watch;
        self
    }

    /// Opens a connection with `config`'s address, credentials and startup parameters.
    ///
    /// pg-wired has no connect timeout: bound the call yourself, or let the pool do it
    /// (`connect_timeout`).
    ///
    /// # Errors
    ///
    /// [`WireError::Driver`] with the I/O error (refused, unreachable) or the server's error
    /// response (for example `28P01` for a wrong password, `3D000` for a missing database).
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future closes the half-open socket.
    pub async fn open(config: &WireConfig) -> Result<Self, WireError> {
        let opened = config.connect().await?;
        Ok(Self::new(opened.conn).watching(opened.watch))
    }

    /// Runs one or more `;`-separated statements with the simple query protocol and
    /// returns the rows of all of them, as text.
    ///
    /// # Errors
    ///
    /// [`WireError::Driver`] with the server's error (the rest of the statements are
    /// skipped, as PostgreSQL does) or the I/O error; [`WireError::Broken`] when the
    /// connection broke earlier.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe in the sense that the statements may or may not have run; dropping
    /// the future midway leaves the connection marked as abandoned, so the pool destroys it
    /// on return instead of reusing it.
    pub async fn simple_query(&mut self, sql: &str) -> Result<Vec<TextRow>, WireError> {
        Ok(self.exchange(sql, None).await?.rows)
    }

    /// Runs statements like [`simple_query`](Self::simple_query) and returns the command
    /// tag of the last one (for example `"INSERT 0 1"`).
    ///
    /// # Errors
    ///
    /// As [`simple_query`](Self::simple_query).
    ///
    /// # Cancel safety
    ///
    /// As [`simple_query`](Self::simple_query).
    pub async fn execute(&mut self, sql: &str) -> Result<String, WireError> {
        Ok(self.exchange(sql, None).await?.last_tag)
    }

    /// Runs a query and returns the first column of its first row; `None` when there is no
    /// row or the value is `NULL`.
    ///
    /// # Errors
    ///
    /// As [`simple_query`](Self::simple_query).
    ///
    /// # Cancel safety
    ///
    /// As [`simple_query`](Self::simple_query).
    pub async fn query_value(&mut self, sql: &str) -> Result<Option<String>, WireError> {
        let rows = self.simple_query(sql).await?;
        Ok(rows
            .into_iter()
            .next()
            .and_then(|row| row.into_iter().next().flatten()))
    }

    /// The transaction status of the last `ReadyForQuery`.
    pub fn transaction_status(&self) -> TransactionStatus {
        self.status
    }

    /// Whether the pool will run `DISCARD ALL` when this connection comes back.
    pub fn session_changed(&self) -> bool {
        self.session_changed || self.raw_access
    }

    /// Declares that the session's state was changed in a way the statement tags do not
    /// show, so the pool resets it with `DISCARD ALL` on return.
    pub fn mark_session_changed(&mut self) {
        self.session_changed = true;
    }

    /// Whether the connection broke or an exchange on it was abandoned midway; the pool
    /// destroys such a connection.
    pub fn is_broken(&self) -> bool {
        self.broken || self.in_flight || self.conn.has_pending_data()
    }

    /// The server process ID of this session.
    pub fn backend_pid(&self) -> i32 {
        self.conn.pid()
    }

    /// A parameter the server reported at startup (`server_version`, `application_name`,
    /// `TimeZone`, ...). Not updated by later `SET`s.
    pub fn server_param(&self, name: &str) -> Option<&str> {
        self.conn.params.get(name).map(String::as_str)
    }

    /// The underlying connection.
    pub fn wire(&self) -> &WireConn {
        &self.conn
    }

    /// The underlying connection, mutably. The pool can no longer tell what the session
    /// did, so it resets it with `DISCARD ALL` on return.
    pub fn wire_mut(&mut self) -> &mut WireConn {
        self.raw_access = true;
        &mut self.conn
    }

    /// Unwraps the connection.
    pub fn into_wire(self) -> WireConn {
        self.conn
    }

    /// Sends `sql` as a simple query and reads every response up to `ReadyForQuery`.
    ///
    /// With `resync`, responses left over from raw use are skipped: the exchange ends only at
    /// the `ReadyForQuery` after a `CommandComplete` with that tag, or after an error.
    async fn exchange(&mut self, sql: &str, resync: Option<&str>) -> Result<Outcome, WireError> {
        if self.is_broken() {
            return Err(WireError::Broken);
        }
        if sql.contains('\0') {
            return Err(WireError::InvalidStatement {
                reason: "the text contains a NUL byte",
            });
        }
        // Judged before it runs: a statement may change the session and still fail later.
        if sql_changes_session(sql) {
            self.session_changed = true;
        }
        self.in_flight = true;
        if let Err(e) = self.conn.send_raw(&frame(b'Q', sql.as_bytes())).await {
            self.broken = true;
            self.server_change = server_change(&e);
            return Err(e.into());
        }
        let mut rows = Vec::new();
        let mut last_tag = String::new();
        let mut error = None;
        let mut seen_own = resync.is_none();
        loop {
            let msg = match self.conn.recv_msg().await {
                Ok(msg) => msg,
                Err(e) => {
                    self.broken = true;
                    // A FATAL error response explains the closed socket better.
                    let e = error.map_or(e, PgWireError::Pg);
                    self.server_change = self.server_change.or(server_change(&e));
                    return Err(e.into());
                }
            };
            match msg {
                BackendMsg::DataRow(row) => rows.push(
                    row.iter()
                        .map(|cell| cell.map(|b| String::from_utf8_lossy(b).into_owned()))
                        .collect(),
                ),
                BackendMsg::CommandComplete { tag } => {
                    if tag_changes_session(&tag) {
                        self.session_changed = true;
                    }
                    if resync == Some(tag.as_str()) {
                        seen_own = true;
                    }
                    last_tag = tag;
                }
                BackendMsg::ErrorResponse { fields } => {
                    if is_fatal_server_error(&fields) {
                        self.broken = true;
                    }
                    if let Some(cause) = server_change_code(&fields.code) {
                        self.server_change = Some(cause);
                    }
                    error.get_or_insert(fields);
                }
                BackendMsg::ParameterStatus { name, value } => {
                    self.session_changed = true;
                    if let Some(cause) = self.watch.server_change(&name, &value) {
                        self.server_change = Some(cause);
                    }
                }
                BackendMsg::CopyInResponse { .. } => {
                    let abort = frame(b'f', b"COPY FROM STDIN is not supported by simple_query");
                    if let Err(e) = self.conn.send_raw(&abort).await {
                        self.broken = true;
                        return Err(e.into());
                    }
                }
                BackendMsg::ReadyForQuery { status } => {
                    self.status =
                        TransactionStatus::from_byte(status).unwrap_or(TransactionStatus::Failed);
                    if seen_own || error.is_some() {
                        break;
                    }
                }
                _ => {}
            }
        }
        self.in_flight = false;
        if self.conn.has_pending_data() {
            self.read_unsolicited().await;
        }
        match error {
            Some(fields) => Err(PgWireError::Pg(fields).into()),
            None => Ok(Outcome { rows, last_tag }),
        }
    }

    /// Reads what the server sent after the exchange's `ReadyForQuery` and the last read
    /// already brought in: typically the `FATAL` error of a server shutting down
    /// (`57P01`) or of `pg_terminate_backend`, sent as the statement finished. Such an
    /// error marks the connection broken and says why (`Poolable::server_changed`), so
    /// the pool starts a new generation when it comes back instead of merely dropping
    /// it; notices and notifications are read and dropped. Each read is bounded: a
    /// message the server does not finish within a second marks the connection broken.
    async fn read_unsolicited(&mut self) {
        while self.conn.has_pending_data() && !self.broken {
            let next = tokio::time::timeout(UNSOLICITED_LIMIT, self.conn.recv_msg()).await;
            match next {
                Ok(Ok(BackendMsg::ErrorResponse { fields })) => {
                    self.broken = true;
                    self.server_change = self.server_change.or(server_change_code(&fields.code));
                }
                Ok(Ok(BackendMsg::ParameterStatus { name, value })) => {
                    self.session_changed = true;
                    if let Some(cause) = self.watch.server_change(&name, &value) {
                        self.server_change = Some(cause);
                    }
                }
                Ok(Ok(_)) => {}
                Ok(Err(e)) => {
                    self.broken = true;
                    self.server_change = self.server_change.or(server_change(&e));
                }
                Err(_) => self.broken = true,
            }
        }
    }
}

/// How long [`WirePoolable::read_unsolicited`] waits for the rest of a message.
const UNSOLICITED_LIMIT: std::time::Duration = std::time::Duration::from_secs(1);

/// A frontend message: type byte, length, body, NUL terminator.
fn frame(kind: u8, body: &[u8]) -> Vec<u8> {
    let len = i32::try_from(body.len() + 5).unwrap_or(i32::MAX);
    let mut out = Vec::with_capacity(body.len() + 6);
    out.push(kind);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(body);
    out.push(0);
    out
}

impl Poolable for WirePoolable {
    type Error = WireError;

    fn has_pending_data(&self) -> bool {
        self.is_broken()
    }

    fn server_changed(&self) -> Option<&'static str> {
        self.server_change
    }

    fn is_permanent_connect_error(error: &WireError) -> bool {
        crate::error::is_permanent_connect_error(error)
    }

    fn needs_reset(&mut self) -> bool {
        self.session_changed || self.raw_access || self.status != TransactionStatus::Idle
    }

    /// Destroys (returns an error for) a session inside a transaction; otherwise runs
    /// `DISCARD ALL`, which also fails inside a transaction.
    async fn reset(&mut self) -> Result<(), WireError> {
        if !self.raw_access && self.status != TransactionStatus::Idle {
            return Err(WireError::TransactionOpen(self.status));
        }
        let resync = self.raw_access.then_some("DISCARD ALL");
        self.exchange("DISCARD ALL", resync).await?;
        if self.status != TransactionStatus::Idle {
            return Err(WireError::TransactionOpen(self.status));
        }
        self.session_changed = false;
        self.raw_access = false;
        Ok(())
    }

    /// An empty query: one round trip, no parsing or planning on the server.
    async fn ping(&mut self) -> Result<(), WireError> {
        self.exchange("", None).await.map(drop)
    }

    /// Sends `Terminate` (so the server logs a clean disconnect) and closes the socket.
    async fn close(self) {
        let mut conn = self.conn;
        let _ = conn.send_raw(&TERMINATE).await;
    }
}

impl Connect for WirePoolable {
    /// Validated and through the TLS settings' default (libpq's `prefer`), as every other
    /// connect path of this crate.
    async fn connect(target: &ConnectTarget) -> Result<Self, WireError> {
        let opened = WireConfig::from_target(target).connect().await?;
        Ok(Self::new(opened.conn).watching(opened.watch))
    }
}
