//! [`AsyncWirePoolable`]: a pooled `pg_wired::AsyncConn` for pipelined use.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::BytesMut;
use pg_pool_core::{Connect, ConnectTarget, Poolable};
use pg_wired::protocol::types::RawRow;
use pg_wired::{AsyncConn, FormatCode, PgWireError, ResponseCollector, WireConn};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::batch::Outbox;
use crate::config::WireConfig;
use crate::error::WireError;
use crate::exchange::Tracker;

/// A pooled [`AsyncConn`]: a pipelining connection whose reader and writer run as tokio
/// tasks.
///
/// Its request methods ([`submit`](Self::submit), [`exec_query`](Self::exec_query),
/// [`submit_stream`](Self::submit_stream), [`copy_in`](Self::copy_in), ...) take `&self`, so
/// one checked-out connection can carry many concurrent, pipelined queries. They are
/// [`AsyncConn`]'s own methods, with the same names and signatures, tracked so that the pool
/// knows what happened on the connection without the caller doing anything:
///
/// - an error that **proves the connection dead** (I/O error, "connection closed", a
///   protocol error, a server error that ends the session: `FATAL`/`PANIC`, `57P01`,
///   `57P02`, `57P03`, `57P05`, class `08`) marks it broken, and the pool destroys it when
///   it comes back. After a server restart, each connection that died fails at most one
///   checkout (the one whose request met the closed socket), instead of being handed out
///   again and again: pg-wired's [`AsyncConn::is_alive`] stays true after the server closed
///   the socket until a write fails, so the pool cannot see the death before a request does;
/// - a request whose future is **dropped midway** (a timeout around a query, a `select!`),
///   or a [`RowStream`] not read to its end, leaves an **exchange outstanding**: the server
///   may still be running the statement. Such a connection is never reused: the pool
///   destroys it, and its close first sends a cancel request ([`AsyncConn::cancel_token`])
///   so the server stops the statement, then `Terminate`.
///
/// Why destroy rather than cancel, wait for the connection to become idle and reuse it:
/// pg-wired's `CancelToken::cancel` returns once the request is written, before the server
/// acts on it, so a cancel that lands late would hit the next user's statement on a reused
/// connection; on a destroyed connection it can only hit a statement nobody waits for. The
/// capacity is freed at once and the pool opens a replacement, so it is back to full size
/// within one connect.
///
/// What the pool does with it:
///
/// - **broken** when an error proved it dead, an exchange is outstanding, its writer task
///   has stopped ([`AsyncConn::is_alive`] is false) or a caller declared it broken
///   ([`mark_broken`](Self::mark_broken)): destroyed, never reused;
/// - **reset** when a request made through this wrapper may have changed the session, or
///   when [`AsyncConn::take_state_mutated`] says so (pg-wired's reader sets it only when a
///   `ReadyForQuery` is not idle), or when the raw connection was reached: `DISCARD ALL`,
///   then the statement cache is cleared since `DISCARD ALL` dropped the server's prepared
///   statements. A transaction still open makes `DISCARD ALL` fail, and the connection is
///   destroyed. Every request's SQL is judged before it is sent (the `Query` and `Parse`
///   messages of a buffer given to [`submit`](Self::submit)): `SET` (but `SET LOCAL`),
///   `PREPARE`, `LISTEN`, `DECLARE`, `DISCARD`, `DEALLOCATE`, temporary tables, advisory
///   locks, `set_config`, and any code the statement runs: `DO`, `CALL`, a call of a
///   function that is not a known harmless built-in (`SELECT my_function()`). A plain
///   `SELECT`, `INSERT`, `UPDATE` or `DELETE` needs no reset. What a statement does not
///   name (a trigger, a column default or a view calling a function that changes the
///   session) cannot be seen: declare it with
///   [`mark_state_mutated`](Self::mark_state_mutated);
/// - **closed** on destroy: a cancel request first if an exchange is outstanding, then
///   [`AsyncConn::close`]. An `AsyncConn` that is merely dropped keeps its reader task, and
///   with it the server session, alive for as long as the process runs.
///
/// # The raw connection
///
/// [`async_conn`](Self::async_conn) and `Deref` give the raw [`AsyncConn`], whose requests
/// this wrapper cannot see. Reaching it is recorded, and the pool then resets the connection
/// with `DISCARD ALL` when it comes back: that round trip waits behind anything still
/// queued, so a dead connection or a statement still running fails or outlasts the reset
/// (bounded by `checkin_timeout`) and the connection is destroyed. Every other method of
/// `AsyncConn` has a counterpart here, so method calls on a checked-out connection never go
/// through `Deref` by accident.
///
/// # What is not detected
///
/// - A connection that died while idle in the pool is noticed by the first request made on
///   it (that request fails), or earlier by a ping when `test_on_checkout` or the health
///   probe is on: pg-wired offers no cheap socket check.
/// - Requests made on the raw connection are judged by the reset round trip only.
/// - A server that stops being what `target_session_attrs` asked for while the session
///   lives (a standby promoted, a primary turned read-only) is not noticed: pg-wired's
///   reader task does not pass the server's `ParameterStatus` reports on.
///   [`WirePoolable`](crate::WirePoolable) notices both. A write refused with `25006`
///   is noticed by both.
/// - pg-wired's reader task never exits, even after the connection is closed, so each
///   destroyed connection leaves a parked task and its socket behind until the process
///   exits (a pg-wired 0.4 limitation; the server session itself ends).
///
/// Requires the tokio runtime: connecting spawns the connection's tasks.
///
/// # Examples
///
/// ```no_run
/// use pg_pool_core::{ConnPoolConfig, LifecycleHooks};
/// use pg_pool_tokio::ConnPool;
/// use pg_pool_wire::AsyncWirePoolable;
///
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// let pool = ConnPool::<AsyncWirePoolable>::new(ConnPoolConfig::default(), LifecycleHooks::default()).await?;
/// let conn = pool.get().await?;
/// // Two queries pipelined on one connection.
/// let (a, b) = tokio::join!(
///     conn.exec_query("SELECT 1", &[], &[]),
///     conn.exec_query("SELECT 2", &[], &[]),
/// );
/// assert_eq!((a?.len(), b?.len()), (1, 1));
/// # Ok(()) }
/// ```
///
/// [`RowStream`]: crate::RowStream
#[derive(Debug)]
pub struct AsyncWirePoolable {
    /// Shared with the batch tasks of [`SharedWire`](crate::SharedWire) requests.
    conn: Arc<AsyncConn>,
    /// The runtime the connection's tasks run on; `close` is spawned there so it works
    /// when the pool polls it from a thread outside the runtime.
    handle: Handle,
    /// What the requests made through this wrapper did.
    tracker: Arc<Tracker>,
    /// Shared users' requests waiting to be sent in one batch.
    outbox: Arc<Outbox>,
    /// `take_state_mutated` or the tracker said so at the last return; cleared by a
    /// successful reset.
    reset_due: bool,
}

impl AsyncWirePoolable {
    /// Wraps a connection opened from `conn`, spawning its tasks on the current tokio
    /// runtime.
    ///
    /// # Errors
    ///
    /// [`WireError::NoTokio`] outside a tokio runtime.
    pub fn new(conn: WireConn) -> Result<Self, WireError> {
        let handle = Handle::try_current().map_err(|_| WireError::NoTokio)?;
        Ok(Self {
            conn: Arc::new(AsyncConn::new(conn)),
            handle,
            tracker: Arc::default(),
            outbox: Arc::default(),
            reset_due: false,
        })
    }

    /// Opens a connection with `config`'s address, credentials and startup parameters.
    ///
    /// # Errors
    ///
    /// [`WireError::Driver`] with the I/O error or the server's error response;
    /// [`WireError::NoTokio`] outside a tokio runtime.
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: dropping the future closes the half-open socket.
    pub async fn open(config: &WireConfig) -> Result<Self, WireError> {
        let conn = config.connect().await?.conn;
        Self::new(conn)
    }

    /// The raw connection (also reachable through `Deref`). Requests made on it are not
    /// tracked, so the pool resets the connection with `DISCARD ALL` when it comes back.
    pub fn async_conn(&self) -> &AsyncConn {
        self.tracker.mark_raw();
        &self.conn
    }

    /// Whether the pool will destroy this connection when it comes back: an error proved it
    /// dead, an exchange is outstanding (a request dropped midway, a row stream not read to
    /// its end), its writer task stopped, or it was marked broken.
    pub fn is_broken(&self) -> bool {
        self.is_dead() || self.tracker.outstanding()
    }

    /// Whether the session itself is gone: its writer task stopped, it was marked broken,
    /// or an error proved it dead. Unlike [`is_broken`](Self::is_broken), requests in
    /// flight do not count (a shared connection always has some).
    pub(crate) fn is_dead(&self) -> bool {
        !self.conn.is_alive() || self.conn.is_broken() || self.tracker.is_dead()
    }

    /// The connection without marking raw access, for this crate's own use.
    pub(crate) fn raw(&self) -> &AsyncConn {
        &self.conn
    }

    /// The request tracker.
    pub(crate) fn tracker(&self) -> &Arc<Tracker> {
        &self.tracker
    }

    /// A parameterised statement through the statement cache, sent in a batch with the
    /// other shared users' (see [`crate::batch`]); tracked as [`Self::exec_query`] is, the
    /// caller having judged `sql` (no NUL byte).
    pub(crate) async fn exec_batched(
        &self,
        sql: &str,
        params: &[Option<&[u8]>],
        param_oids: &[u32],
        param_formats: &[FormatCode],
        result_formats: &[FormatCode],
    ) -> Result<Vec<RawRow>, PgWireError> {
        self.tracker.note_sql(sql);
        let exchange = self.tracker.start();
        let fut = crate::batch::exec_batched(
            &self.outbox,
            &self.conn,
            &self.handle,
            sql,
            params,
            param_oids,
            param_formats,
            result_formats,
        );
        exchange.finish(fut.await)
    }

    /// Runs a simple query and waits for its `ReadyForQuery`, failing on an error response.
    async fn simple(&self, sql: &str) -> Result<(), WireError> {
        let mut buf = BytesMut::with_capacity(sql.len() + 6);
        buf.extend_from_slice(b"Q");
        let len = i32::try_from(sql.len() + 5).unwrap_or(i32::MAX);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(sql.as_bytes());
        buf.extend_from_slice(&[0]);
        self.submit(buf, ResponseCollector::Rows).await?;
        Ok(())
    }
}

impl Deref for AsyncWirePoolable {
    type Target = AsyncConn;

    /// The raw connection; see [`AsyncWirePoolable::async_conn`].
    fn deref(&self) -> &AsyncConn {
        self.async_conn()
    }
}

impl Poolable for AsyncWirePoolable {
    type Error = WireError;

    /// [`is_broken`](AsyncWirePoolable::is_broken): dead, broken, or an exchange outstanding.
    fn has_pending_data(&self) -> bool {
        self.is_broken()
    }

    fn server_changed(&self) -> Option<&'static str> {
        self.tracker.server_change()
    }

    fn is_permanent_connect_error(error: &WireError) -> bool {
        crate::error::is_permanent_connect_error(error)
    }

    fn needs_reset(&mut self) -> bool {
        // Both marks taken (not short-circuited): a successful reset answers for both.
        self.reset_due |= self.conn.take_state_mutated() | self.tracker.take_changed();
        self.reset_due || self.tracker.is_raw()
    }

    async fn reset(&mut self) -> Result<(), WireError> {
        // Fails inside a transaction block (25001) or a failed one (25P02): destroyed.
        self.simple("DISCARD ALL").await?;
        self.conn.clear_statement_cache();
        if self.conn.take_state_mutated() {
            return Err(
                PgWireError::Protocol("session still not idle after DISCARD ALL".into()).into(),
            );
        }
        self.reset_due = false;
        // The reset's own `DISCARD ALL` marked the session changed.
        self.tracker.take_changed();
        self.tracker.clear_raw();
        Ok(())
    }

    /// An empty query: one round trip through the pipeline.
    async fn ping(&mut self) -> Result<(), WireError> {
        self.simple("").await
    }

    /// Runs, on the connection's runtime, a cancel request when an exchange is outstanding
    /// (so the server stops the abandoned statement), then [`AsyncConn::close`]. Dropping
    /// the returned future (the pool bounds it by `checkin_timeout`) aborts the close.
    fn close(self) -> impl Future<Output = ()> + Send + 'static {
        let cancel = (self.tracker.outstanding() && !self.tracker.is_dead())
            .then(|| self.conn.cancel_token());
        let conn = self.conn;
        let task = self.handle.spawn(async move {
            if let Some(token) = cancel
                && let Err(e) = token.cancel().await
            {
                tracing::debug!(error = %e, "cancel request for an abandoned statement failed");
            }
            let _ = conn.close().await;
        });
        AbortOnDrop(task)
    }
}

/// Waits for a spawned task, aborting it if dropped first.
#[derive(Debug)]
struct AbortOnDrop(JoinHandle<()>);

impl Future for AbortOnDrop {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        Pin::new(&mut self.0).poll(cx).map(drop)
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Connect for AsyncWirePoolable {
    /// Validated and through the TLS settings' default (libpq's `prefer`), as every other
    /// connect path of this crate.
    async fn connect(target: &ConnectTarget) -> Result<Self, WireError> {
        let conn = WireConfig::from_target(target).connect().await?.conn;
        Self::new(conn)
    }
}
