//! [`AsyncWirePoolable`]: a pooled `pg_wired::AsyncConn` for pipelined use.

use std::future::Future;
use std::ops::Deref;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;
use pg_pool_core::{Connect, ConnectTarget, Poolable};
use pg_wired::{AsyncConn, PgWireError, ResponseCollector, WireConn};
use tokio::runtime::Handle;
use tokio::task::JoinHandle;

use crate::config::WireConfig;
use crate::error::WireError;

/// A pooled [`AsyncConn`]: a pipelining connection whose reader and writer run as tokio
/// tasks.
///
/// Dereferences to the [`AsyncConn`], whose methods take `&self`, so one checked-out
/// connection can carry many concurrent, pipelined queries.
///
/// What the pool does with it:
///
/// - **broken** when its tasks have stopped ([`AsyncConn::is_alive`] is false) or a caller
///   declared it broken ([`AsyncConn::mark_broken`]): destroyed, never reused;
/// - **reset** only when [`AsyncConn::take_state_mutated`] says the session changed (the
///   reader sets it when a `ReadyForQuery` is not idle; callers set it with
///   [`AsyncConn::mark_state_mutated`] after `SET`, temporary tables, advisory locks and
///   the like): `DISCARD ALL`, then the statement cache is cleared since `DISCARD ALL`
///   dropped the server's prepared statements. A transaction still open makes
///   `DISCARD ALL` fail, and the connection is destroyed;
/// - **closed** with [`AsyncConn::close`] on destroy. An `AsyncConn` that is merely dropped
///   keeps its reader task, and with it the server session, alive for as long as the
///   process runs; closing sends `Terminate` and waits for both tasks to end.
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
#[derive(Debug)]
pub struct AsyncWirePoolable {
    conn: AsyncConn,
    /// The runtime the connection's tasks run on; `close` is spawned there so it works
    /// when the pool polls it from a thread outside the runtime.
    handle: Handle,
    /// `take_state_mutated` said so at the last return; cleared by a successful reset.
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
            conn: AsyncConn::new(conn),
            handle,
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
        let conn = config.connect().await?;
        Self::new(conn)
    }

    /// The underlying connection (also reachable through `Deref`).
    pub fn async_conn(&self) -> &AsyncConn {
        &self.conn
    }

    /// Runs a simple query and waits for its `ReadyForQuery`, failing on an error response.
    async fn simple(&self, sql: &str) -> Result<(), WireError> {
        let mut buf = BytesMut::with_capacity(sql.len() + 6);
        buf.extend_from_slice(b"Q");
        let len = i32::try_from(sql.len() + 5).unwrap_or(i32::MAX);
        buf.extend_from_slice(&len.to_be_bytes());
        buf.extend_from_slice(sql.as_bytes());
        buf.extend_from_slice(&[0]);
        self.conn.submit(buf, ResponseCollector::Rows).await?;
        Ok(())
    }
}

impl Deref for AsyncWirePoolable {
    type Target = AsyncConn;

    fn deref(&self) -> &AsyncConn {
        &self.conn
    }
}

impl Poolable for AsyncWirePoolable {
    type Error = WireError;

    fn has_pending_data(&self) -> bool {
        !self.conn.is_alive() || self.conn.is_broken()
    }

    fn needs_reset(&mut self) -> bool {
        self.reset_due |= self.conn.take_state_mutated();
        self.reset_due
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
        Ok(())
    }

    /// An empty query: one round trip through the pipeline.
    async fn ping(&mut self) -> Result<(), WireError> {
        self.simple("").await
    }

    /// Runs [`AsyncConn::close`] on the connection's runtime; dropping the returned future
    /// (the pool bounds it by `checkin_timeout`) aborts the close.
    fn close(self) -> impl Future<Output = ()> + Send + 'static {
        let conn = self.conn;
        let task = self.handle.spawn(async move {
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
    async fn connect(target: &ConnectTarget) -> Result<Self, WireError> {
        let conn = WireConn::connect(
            &target.addr,
            &target.user,
            &target.password,
            &target.database,
        )
        .await?;
        Self::new(conn)
    }
}
