//! [tokio-postgres](https://docs.rs/tokio-postgres) sessions for pg-pool, on tokio,
//! async-std and smol.
//!
//! - [`PgConnection`]: a pooled `tokio_postgres::Client` (it dereferences to one, so
//!   tokio-postgres code and `GenericClient` functions run on it) that tracks whether its
//!   session was used, has a call in flight, may be inside a transaction, or saw a fatal
//!   error, with a per-connection LRU statement cache ([`PgConnection::prepare_cached`]) that
//!   survives the default reset; [`PgTransaction`], [`PgRowStream`].
//! - [`PgConnector`]: opens sessions on the pool's runtime `R` ([`PgRuntime`]) and drives
//!   each `Connection` future with `R::spawn`. Every runtime goes through one host loop,
//!   [`connect_raw`]: tokio dials with its own streams; smol and async-std dial with
//!   `async-net` and adapt the stream with `tokio-util`'s compat layer, so no tokio runtime
//!   is needed. A session can forward its `LISTEN`/`NOTIFY` notifications
//!   ([`SessionOptions`], [`PgSession`]).
//! - [`PgConfig`]: a `tokio_postgres::Config` (also from a `postgres://` URL, with several
//!   hosts, `target_session_attrs`, `application_name`, `connect_timeout`), a
//!   [`ResetStrategy`] and a [`Profile`] (`Session`, or `PoolerSafe` for pgbouncer in
//!   transaction mode).
//! - [`PgError`]: the driver's error with the server's message, plus config and session
//!   errors.
//!
//! Features: `tokio` (default), `tls` (default: rustls, libpq's `sslmode` from
//! [`PgConfig::tls`], see [`PgTls`]), `smol`, `async-std`; any combination builds.
//!
//! Hosts given as a directory (`host_path`) are unix sockets on every runtime. A
//! [`PasswordProvider`] fetches a fresh password before each connect (rotating
//! credentials).
//!
//! # When is a session reset?
//!
//! When it comes back after any use (a statement sent through any method, or a deref to the
//! raw [`tokio_postgres::Client`]). A session that was checked out and not used is provably
//! unchanged and returns synchronously. SQL text cannot prove a session unchanged
//! (`SELECT f()` may `SET` inside `f`), so the wrapper does not try.
//!
//! A session used only through [`PgConnection`]'s methods, every call read to its end and no
//! transaction it cannot see the end of, gets the default [`ResetStrategy::Full`] pipelined:
//! queued at checkin without waiting, it precedes the next user's first statement on the
//! wire, and its outcome is read before that statement's result is handed back (a failure
//! destroys the session). Anything else takes the checked path on a pool task within
//! `checkin_timeout`: every earlier request is waited out (a server-side cancel is sent
//! through the pool's runtime if that takes more than 50 ms), the transaction status is
//! checked (a session inside a transaction is destroyed), then the reset runs. A session
//! whose call was abandoned mid-way is thus never handed out with its exchange still in
//! flight. Errors that prove a session dead (I/O, closed, protocol desync, `FATAL`, class
//! `08`, `57P01`/`02`/`03`/`05`) destroy it on return. The pooler-safe profile keeps no
//! session state and runs no reset (see [`Profile::PoolerSafe`] for what that cannot
//! prevent).
//!
//! # Examples
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use pg_pool_tokio::Tokio;
//! use pg_pool_tokio_postgres::{PgConfig, PgConnector, PgPool};
//!
//! let config = PgConfig::from_url("postgres://app:secret@127.0.0.1/shop")?;
//! let pool = PgPool::<Tokio>::builder(PgConnector::<Tokio>::current(config)?).build().await?;
//! let conn = pool.get().await?;
//! let statement = conn.prepare_cached("SELECT $1::int + 1").await?;
//! let rows = conn.query_prepared(&statement, &[&41]).await?;
//! assert_eq!(rows[0].get::<_, i32>(0), 42);
//! # Ok(()) }
//! ```

mod cancel;
#[cfg(feature = "tls")]
mod channel_binding;
mod checkin;
mod config;
mod connection;
mod connector;
mod dial;
mod error;
mod opened;
mod pipeline;
mod prepared;
mod raw_connect;
mod reset;
mod row_stream;
mod runtime;
mod session;
mod shared_client;
mod sslmode;
mod state;
mod statement_cache;
#[cfg(feature = "tls")]
mod tls;
mod tracker;
mod transaction;

pub use config::{PgConfig, Profile};
pub use connection::{Params, PgConnection, TypedParams};
pub use connector::{PgConnector, PgPool};
pub use error::PgError;
pub use opened::{NotificationReceiver, PgSession, SessionOptions};
pub use pg_pool_conninfo;
pub use pg_pool_conninfo::PasswordProvider;
pub use raw_connect::{DialTarget, connect_raw, connect_raw_with};
pub use reset::{CLEAN_SQL, DEALLOCATE_SQL_PREPARED, FULL_SQL, ResetStrategy};
pub use row_stream::PgRowStream;
pub use runtime::PgRuntime;
pub use shared_client::{PgSharedGuard, SharedClient};
pub use sslmode::PgTls;
pub use tokio_postgres;
pub use transaction::{PgTransaction, PgTransactionBuilder};
