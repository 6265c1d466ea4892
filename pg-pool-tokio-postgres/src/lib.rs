//! [tokio-postgres](https://docs.rs/tokio-postgres) sessions for pg-pool, on tokio,
//! async-std and smol.
//!
//! - [`PgConnection`]: a pooled `tokio_postgres::Client` (it dereferences to one, so
//!   tokio-postgres code and `GenericClient` functions run on it) that tracks whether its
//!   session was used, has a call in flight, may be inside a transaction, or saw a fatal
//!   error, with a per-connection LRU statement cache ([`PgConnection::prepare_cached`]) that
//!   survives the default reset; [`PgTransaction`], [`PgRowStream`].
//! - Plain SQL is prepared once per connection: `query`, `query_one`, `query_opt` and
//!   `execute` with a `&str` run through the statement cache by default, as pgx and sqlx do,
//!   so a text run before on that connection costs one round trip instead of two
//!   ([`PgConfig::auto_prepare`], `pool_auto_prepare=false` to turn it off; never under the
//!   pooler-safe profile). The first call of each text on each connection still pays the
//!   prepare; a stale statement (a schema change, a user's `DISCARD ALL`) is evicted and,
//!   outside a transaction block, prepared again once.
//! - [`PgConnector`]: opens sessions on the pool's runtime `R` ([`PgRuntime`]) and drives
//!   each `Connection` future with `R::spawn`. Every runtime goes through one host loop,
//!   [`connect_raw`]: tokio dials with its own streams; smol and async-std dial with
//!   `async-net` and adapt the stream with `tokio-util`'s compat layer, so no tokio runtime
//!   is needed. A session can forward its `LISTEN`/`NOTIFY` notifications
//!   ([`SessionOptions`], [`PgSession`]).
//! - [`PgListener`]: `LISTEN`/`NOTIFY` on a dedicated session outside the pool, which
//!   reconnects with backoff, listens again and reports the gap
//!   ([`ListenerEvent::Reconnected`]).
//! - [`PgConfig`]: a `tokio_postgres::Config` (also from a `postgres://` URL, with several
//!   hosts, every libpq `target_session_attrs` value (`any`, `read-write`, `read-only`,
//!   `primary`, `standby`, `prefer-standby`), `application_name`, `connect_timeout`), a
//!   [`ResetStrategy`] and a [`Profile`] (`Session`, or `PoolerSafe` for pgbouncer in
//!   transaction mode).
//! - [`PgError`]: the driver's error with the server's message, plus config and session
//!   errors; when every host of a multi-host config fails, one error naming each host and
//!   why ([`HostFailures`]).
//!
//! Features: `tokio` (default), `tls` (default: rustls, libpq's `sslmode` from
//! [`PgConfig::tls`], see [`PgTls`]), `smol`, `async-std`; any combination builds.
//!
//! # Several hosts
//!
//! Hosts are tried in order, as libpq does, each within `connect_timeout`, on every
//! runtime; `target_session_attrs` chooses among them: `any`, `read-write`
//! (`transaction_read_only` off), `read-only` (on), `primary` (not in recovery), `standby`
//! (in recovery) and `prefer-standby` (a standby if one answers, otherwise any server),
//! checked with one query after the startup. A server that refuses the session with an
//! error (a wrong password) ends the search, as in libpq, except `57P03` (starting up,
//! shutting down). When every host tried fails, [`PgError::AllHostsFailed`] names each
//! host and why. See [`connect_raw_with`].
//!
//! Hosts given as a directory (`host_path`) are unix sockets on every runtime. A
//! [`PasswordProvider`] fetches a fresh password before each connect (rotating
//! credentials).
//!
//! # When is a session reset?
//!
//! When it changed ([`ResetWhen::Changed`], the default). Every session this crate opens
//! (through [`connect_raw`], so on every runtime, TLS included) is read by a protocol tap
//! that sits on its stream above TLS and frames the PostgreSQL messages both ways. From the
//! command tags, the `ParameterStatus` and `ReadyForQuery` messages, and the SQL the client
//! sends, it knows whether any exchange since the last reset changed session state (`SET`,
//! `PREPARE`, `LISTEN`, `DECLARE`, `DO`, `CALL`, a call of a function that is not a
//! read-only built-in, a temporary table, a session-level advisory lock, a session-level
//! `set_config`, a reported
//! setting, a statement prepared from such SQL run again by name), whether
//! anything is still outstanding, and the transaction status. A session that only ran
//! `SELECT`s, `INSERT`s, `UPDATE`s, transactions or cached statements goes back at once
//! without any reset: no server round trip at all. A changed one gets the default
//! [`ResetStrategy::Full`], pipelined: queued at checkin without waiting, it precedes the
//! next user's first statement on the wire, and its outcome is read before that
//! statement's result is handed back (a failure destroys the session).
//!
//! What the SQL text cannot show is session state (reported settings aside) changed by
//! code the server runs without the statement naming it: triggers, column defaults (such
//! as `nextval` behind `currval`/`lastval`), views, rules, row security policies,
//! user-defined operators and casts. If such code changes the session, set
//! `pool_reset_when=used` ([`ResetWhen::Used`]): every used session is then reset, at the
//! cost of one more server request cycle per checkout. Sessions the tap cannot read
//! ([`PgSession::from_client`], a runtime of your own that does not use [`connect_raw`])
//! are reset after every use too.
//!
//! A session that was checked out and not used is provably unchanged and returns
//! synchronously. Anything the wrapper cannot see the end of (raw [`tokio_postgres::Client`]
//! access, a call abandoned mid-way, a session inside a transaction) takes the checked path
//! on a pool task within `checkin_timeout`: every earlier request is waited out (a
//! server-side cancel is sent through the pool's runtime if that takes more than 50 ms),
//! the transaction status is checked (a session inside a transaction is destroyed), then
//! the reset runs (with the tap, only if the session changed). With the tap, raw access and
//! abandoned calls first get a cheaper proof: the return queues a marker (an empty query
//! carrying a one-time random nonce) and waits one hop through the connection task for the
//! tap to see it written, which proves every request queued before it written and judged;
//! if all of them are answered and handed over and no transaction is open, the session goes
//! back without a server round trip (a changed one with its reset pipelined). A session
//! whose call was abandoned mid-way is thus never handed out with its exchange still in
//! flight. Errors
//! that prove a session dead (I/O, closed, protocol desync, `FATAL`, class `08`,
//! `57P01`/`02`/`03`/`05`) destroy it on return. The tap also sees the server's
//! `in_hot_standby` change (a standby promoted, a primary demoted) and reports it through
//! `Poolable::server_changed`, so the pool starts a new generation of connections. The
//! pooler-safe profile keeps no session state and runs no reset (see
//! [`Profile::PoolerSafe`] for what that cannot prevent).
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

mod auto_prepare;
mod cancel;
#[cfg(feature = "tls")]
mod channel_binding;
mod checkin;
mod config;
mod connection;
mod connector;
#[cfg(any(feature = "raw-connect", feature = "tokio"))]
mod dial;
mod driver_stop;
mod error;
mod host_errors;
mod hosts;
mod listener;
mod opened;
mod pipeline;
mod prepared;
mod raw_connect;
mod reset;
mod row_stream;
mod runtime;
mod session;
mod session_attrs;
mod shared_client;
mod sslmode;
mod state;
mod statement_cache;
mod tap;
mod tap_scan;
mod tap_stream;
#[cfg(test)]
mod test_rng;
#[cfg(feature = "tls")]
mod tls;
mod tracker;
mod transaction;

pub use config::{PgConfig, Profile};
pub use connection::{Params, PgConnection, TypedParams};
pub use connector::{PgConnector, PgPool};
pub use error::PgError;
pub use host_errors::{HostFailure, HostFailures};
pub use listener::{ChannelProblem, Gap, ListenerError, ListenerEvent, PgListener};
pub use opened::{NotificationReceiver, PgSession, SessionOptions};
pub use pg_pool_conninfo;
pub use pg_pool_conninfo::PasswordProvider;
pub use raw_connect::{DialTarget, connect_raw, connect_raw_with};
pub use reset::{CLEAN_SQL, DEALLOCATE_SQL_PREPARED, FULL_SQL, ResetStrategy, ResetWhen};
pub use row_stream::PgRowStream;
pub use runtime::PgRuntime;
pub use shared_client::{PgSharedGuard, SharedClient};
pub use sslmode::PgTls;
pub use tokio_postgres;
pub use transaction::{PgTransaction, PgTransactionBuilder};
