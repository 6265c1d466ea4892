//! [tokio-postgres](https://docs.rs/tokio-postgres) sessions for pg-pool, on tokio,
//! async-std and smol.
//!
//! - [`PgConnection`]: a pooled `tokio_postgres::Client` that tracks whether its session
//!   was used, may be inside a transaction, or saw a fatal error, with a per-connection
//!   statement cache ([`PgConnection::prepare_cached`]).
//! - [`PgConnector`]: opens sessions on the pool's runtime `R` ([`PgRuntime`]) and drives
//!   each `Connection` future with `R::spawn`. On tokio it uses `Config::connect`; on smol
//!   and async-std it dials with `async-net`, adapts the stream with `tokio-util`'s compat
//!   layer and calls `Config::connect_raw` ([`connect_raw`]), so no tokio runtime is needed.
//! - [`PgConfig`]: a `tokio_postgres::Config` (also from a `postgres://` URL, with several
//!   hosts, `target_session_attrs`, `application_name`, `connect_timeout`), a
//!   [`ResetStrategy`] and a [`Profile`] (`Session`, or `PoolerSafe` for pgbouncer in
//!   transaction mode).
//! - [`PgError`]: the driver's error with the server's message, plus config and session
//!   errors.
//!
//! Features: `tokio` (default), `smol`, `async-std`; any combination builds.
//!
//! # When is a session reset?
//!
//! When it comes back after any use (a statement sent through any method). A session that
//! was checked out and not used is provably unchanged and returns synchronously. SQL text
//! cannot prove a session unchanged (`SELECT f()` may `SET` inside `f`), so the wrapper
//! does not try. A session that may be inside a transaction is destroyed instead; so is one
//! that saw a fatal error. The pooler-safe profile keeps no session state and has no reset
//! round trip.
//!
//! # Examples
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use pg_pool_tokio::Tokio;
//! use pg_pool_tokio_postgres::{PgConfig, PgConnector};
//!
//! let config = PgConfig::from_url("postgres://app:secret@127.0.0.1/shop?pool_reset=clean")?;
//! let pool = PgConnector::<Tokio>::current(config)?.build_pool(None).await?;
//! let conn = pool.get().await?;
//! let statement = conn.prepare_cached("SELECT $1::int + 1").await?;
//! let rows = conn.query_prepared(&statement, &[&41]).await?;
//! assert_eq!(rows[0].get::<_, i32>(0), 42);
//! # Ok(()) }
//! ```

mod cancel;
mod checkin;
mod config;
mod connection;
mod connector;
mod error;
mod pipeline;
mod raw_connect;
mod reset;
mod row_stream;
mod runtime;
mod session;
mod state;
mod statement_cache;
mod tracker;
mod transaction;

pub use config::{PgConfig, Profile};
pub use connection::{Params, PgConnection, TypedParams};
pub use connector::{PgConnector, PgPool};
pub use error::PgError;
pub use raw_connect::connect_raw;
pub use reset::{CLEAN_SQL, DEALLOCATE_SQL_PREPARED, FULL_SQL, ResetStrategy};
pub use row_stream::PgRowStream;
pub use runtime::PgRuntime;
pub use tokio_postgres;
pub use transaction::{PgTransaction, PgTransactionBuilder};
