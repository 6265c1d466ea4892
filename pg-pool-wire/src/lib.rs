//! [pg-wired](https://docs.rs/pg-wired) connections for pg-pool.
//!
//! - [`WirePoolable`]: a pooled `WireConn` with a simple-query API that tracks the
//!   transaction status and session changes, so the pool resets (`DISCARD ALL`) only a
//!   session that was changed, and destroys one returned inside a transaction.
//! - [`AsyncWirePoolable`]: a pooled, pipelining `AsyncConn`, reset only when
//!   `take_state_mutated()` says so and closed properly when destroyed.
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
//! pg-wired has no connect timeout: the pool enforces `connect_timeout` on every attempt
//! and bounds pings by `probe_timeout`. pg-wired is tokio-only, so these pools run on tokio.
//!
//! # Examples
//!
//! ```no_run
//! use pg_pool_core::LifecycleHooks;
//! use pg_pool_wire::{WireConnector, WirePool};
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let connector = WireConnector::from_url("postgres://app:secret@127.0.0.1:5432/shop?application_name=api")?;
//! let pool = WirePool::with_connector(connector.config().pool_config(), LifecycleHooks::default(), connector).await?;
//! let mut conn = pool.get().await?;
//! conn.execute("INSERT INTO orders (item) VALUES ('tea')").await?;
//! # Ok(()) }
//! ```

mod async_poolable;
mod config;
mod connector;
mod credentials;
mod error;
mod session;
mod tls;
mod wire_poolable;

pub use async_poolable::AsyncWirePoolable;
pub use config::WireConfig;
pub use connector::WireConnector;
pub use credentials::PasswordProvider;
pub use error::WireError;
pub use pg_pool_conninfo;
pub use pg_wired;
pub use session::TransactionStatus;
pub use tls::WireTls;
pub use wire_poolable::{TextRow, WirePoolable};

/// A tokio pool of [`WirePoolable`] connections.
pub type WirePool = pg_pool_tokio::ConnPool<WirePoolable>;

/// A tokio pool of pipelining [`AsyncWirePoolable`] connections.
pub type AsyncWirePool = pg_pool_tokio::ConnPool<AsyncWirePoolable>;
