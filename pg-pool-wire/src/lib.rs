//! [pg-wired](https://docs.rs/pg-wired) connections for pg-pool.
//!
//! - [`WirePoolable`]: a pooled `WireConn` with a simple-query API that tracks the
//!   transaction status and session changes, so the pool resets (`DISCARD ALL`) only a
//!   session that was changed, and destroys one returned inside a transaction.
//! - [`AsyncWirePoolable`]: a pooled, pipelining `AsyncConn`, reset only when a request's
//!   SQL may have changed the session (or `take_state_mutated()` says so) and closed
//!   properly when destroyed. Its request methods
//!   mirror `AsyncConn`'s; [`RowStream`] carries the rows of a streaming request.
//! - [`WireConfig`] (also from a `postgres://` URL) and [`WireConnector`] for startup
//!   parameters such as `application_name`.
//! - **Several hosts**, tried in order on every connect as libpq does, with libpq's
//!   `target_session_attrs` (`any`, `read-write`, `read-only`, `primary`, `standby`,
//!   `prefer-standby`) and `connect_timeout` per host; when none can be used the error
//!   ([`HostsError`]) names every host and why. See [`WireConfig`]'s
//!   [Several hosts](WireConfig#several-hosts).
//! - [`WireError`]: the driver's error, with the server's message, plus URL and config
//!   errors.
//!
//! - [`WireTls`]: libpq's `sslmode` from [`WireConfig::tls`], mapped onto pg-wired's
//!   TLS (feature `tls`, default), which always verifies chain and host name; what it
//!   cannot honour (`verify-ca`, unix sockets) is refused when the connector is built.
//! - [`PasswordProvider`]: a fresh password before each connect (rotating credentials).
//!
//! # What the pool learns without the caller's help
//!
//! Both connection kinds watch every exchange made through their methods:
//!
//! - **A dead connection** (an I/O error, "connection closed", a protocol error, or a server
//!   error that ends the session: `FATAL`/`PANIC`, `57P01`, `57P02`, `57P03`, `57P05`,
//!   class `08`) is marked broken by the error itself, and the pool destroys it when it comes
//!   back. Each connection that dies fails at most one checkout; neither kind can tell that a
//!   connection died while idle before something is sent on it (pg-wired has no socket
//!   liveness check), so turn on `test_on_checkout` or the health probe to catch those
//!   before a caller does.
//! - **An exchange in flight** (a request sent and its response not fully read: a future
//!   dropped by a timeout, a row stream not read to its end) is never handed to the next
//!   caller: the connection is destroyed, its capacity freed at once and a replacement
//!   opened, so the pool is back to full size within one connect.
//!   [`AsyncWirePoolable`] first sends a cancel request, so the server stops the abandoned
//!   statement; [`WirePoolable`] cannot (pg-wired's `WireConn` does not expose the cancel
//!   key), so the server finishes the statement unless `client_connection_check_interval`
//!   is set.
//! - **A server that is no longer what the session was opened for**: a
//!   [`WirePoolable`] opened as `standby`, `read-only` or `prefer-standby` on a standby
//!   reports a server change when the server says `in_hot_standby` turned off (it was
//!   promoted), one opened as `read-write` when `default_transaction_read_only` turned
//!   on; with `25006`, `57P01/02/03`, class `08` and a lost connection this makes the
//!   pool evict every connection and walk the hosts again.
//! - **Raw access** to the driver's connection ([`WirePoolable::wire_mut`],
//!   [`AsyncWirePoolable::async_conn`] or `Deref`) costs a `DISCARD ALL` at checkin, which
//!   also proves the connection alive and idle, or gets it destroyed.
//!
//! pg-wired has no connect timeout: the pool enforces `connect_timeout` on every attempt
//! and bounds pings by `probe_timeout`. pg-wired is tokio-only, so these pools run on tokio.
//!
//! # Examples
//!
//! ```no_run
//! use pg_pool_wire::{WireConnector, WirePool};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // Pool settings ride in the URL; the builder takes them from the connector.
//! let connector = WireConnector::from_url(
//!     "postgres://app:secret@127.0.0.1:5432/shop?application_name=api&pool_max_size=20",
//! )?;
//! let pool = WirePool::builder(connector).build().await?;
//! let mut conn = pool.get().await?;
//! conn.execute("INSERT INTO orders (item) VALUES ('tea')").await?;
//! # Ok(()) }
//! ```

mod async_accessors;
mod async_poolable;
mod async_requests;
mod attrs;
mod batch;
mod config;
mod connector;
mod encoding;
mod error;
mod exchange;
mod hosts;
mod lag;
mod session;
mod shared_handle;
mod tls;
mod wire_poolable;

pub use async_poolable::AsyncWirePoolable;
pub use config::WireConfig;
pub use connector::WireConnector;
pub use error::WireError;
pub use exchange::RowStream;
pub use hosts::{HostError, HostsError};
pub use pg_pool_conninfo;
pub use pg_pool_conninfo::PasswordProvider;
pub use pg_wired;
pub use session::TransactionStatus;
pub use shared_handle::{AsyncWireSharedGuard, SharedWire};
pub use tls::WireTls;
pub use wire_poolable::{TextRow, WirePoolable};

/// A tokio pool of [`WirePoolable`] connections.
pub type WirePool = pg_pool_tokio::ConnPool<WirePoolable>;

/// A tokio pool of pipelining [`AsyncWirePoolable`] connections.
pub type AsyncWirePool = pg_pool_tokio::ConnPool<AsyncWirePoolable>;
