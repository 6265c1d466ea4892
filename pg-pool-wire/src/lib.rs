//! [pg-wired](https://docs.rs/pg-wired) connections for pg-pool.
//!
//! - [`WirePoolable`]: a pooled `WireConn` with a simple-query API that tracks the
//!   transaction status and session changes, so the pool resets (`DISCARD ALL`) only a
//!   session that was changed, and destroys one returned inside a transaction.
//! - [`AsyncWirePoolable`]: a pooled, pipelining `AsyncConn`, reset only when
//!   `take_state_mutated()` says so and closed properly when destroyed. Its request methods
//!   mirror `AsyncConn`'s; [`RowStream`] carries the rows of a streaming request.
//! - [`WireConfig`] (also from a `postgres://` URL) and [`WireConnector`] for startup
//!   parameters such as `application_name`.
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
mod config;
mod connector;
mod error;
mod exchange;
mod hosts;
mod lag;
mod session;
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
pub use tls::WireTls;
pub use wire_poolable::{TextRow, WirePoolable};

/// A tokio pool of [`WirePoolable`] connections.
pub type WirePool = pg_pool_tokio::ConnPool<WirePoolable>;

/// A tokio pool of pipelining [`AsyncWirePoolable`] connections.
pub type AsyncWirePool = pg_pool_tokio::ConnPool<AsyncWirePoolable>;
