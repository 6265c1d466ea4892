//! libpq connection strings, parsed once for every pg-pool PostgreSQL driver.
//!
//! [`ConnInfo`] is what a connection string says: hosts and ports, credentials, the
//! database, startup parameters, [`TlsSettings`] with libpq's `sslmode` semantics,
//! `target_session_attrs`, and [`PoolSettings`] (`pool_max_size`, ...). The driver adapters
//! translate it into their own configuration, so `pg-pool-wire` and
//! `pg-pool-tokio-postgres` accept the same strings and report the same errors.
//!
//! Secrets never reach `Debug` or an error message: the password is a [`Secret`].
//!
//! # Forms
//!
//! - URL: `postgres[ql]://[user[:password]@][host[:port][,host[:port]...]][/dbname][?key=value&...]`.
//!   IPv6 addresses go in brackets (`[::1]:5432`). Every part is percent-decoded; a `%` not
//!   followed by two hex digits is an error. A host that decodes to an absolute path
//!   (`%2Fvar%2Frun%2Fpostgresql`) is a unix socket directory. Query keys may set any key
//!   below (also `host=` and `port=` lists). Percent-encode `/ ? @ & = %` inside values.
//! - `key=value`: pairs separated by whitespace, optional spaces around `=`; a value is bare
//!   (up to the next whitespace) or single-quoted, and a backslash takes the next character
//!   literally (`'it\'s'`, `'C:\\dir'`). An empty value is written `''`.
//!
//! A key given twice takes the later value. Unknown keys are errors, as in libpq.
//!
//! # Keys
//!
//! | key | meaning |
//! |---|---|
//! | `host` | comma-separated hosts; an absolute path is a unix socket directory; an empty entry is `localhost` |
//! | `port` | one port for all hosts, or one per host; an empty entry is 5432 |
//! | `user`, `password`, `dbname` | credentials and database (empty: not given) |
//! | `passfile` | the password file (default `~/.pgpass`), read by [`ConnInfo::parse_with_env`] |
//! | `application_name`, `fallback_application_name` | shown in `pg_stat_activity` |
//! | `options` | server command-line options, e.g. `-c statement_timeout=5s` |
//! | `connect_timeout` | seconds per host; `0` or negative: no per-host limit |
//! | `sslmode` | `disable`, `allow`, `prefer` (default), `require`, `verify-ca`, `verify-full` |
//! | `sslrootcert` | a PEM file, or `system` (then `sslmode` defaults to, and must be, `verify-full`, as libpq) |
//! | `sslcert`, `sslkey` | client certificate and key files |
//! | `channel_binding` | `disable`, `prefer` (default), `require` |
//! | `keepalives` | `1` (default) or `0`: TCP keepalive on the connection |
//! | `keepalives_idle`, `keepalives_interval` | seconds (whole, positive) before the first probe and between probes |
//! | `keepalives_count` | unanswered probes before the connection is dropped |
//! | `tcp_user_timeout` | milliseconds transmitted data may stay unacknowledged (`0`: the system default) |
//! | `target_session_attrs` | `any` (default), `read-write`, `read-only`, `primary`, `standby`, `prefer-standby` |
//! | `client_encoding`, `datestyle`, `intervalstyle`, `timezone`, `search_path`, `statement_timeout`, `lock_timeout`, `idle_in_transaction_session_timeout`, `idle_session_timeout` | server settings sent at startup ([`ConnInfo::params`]); other settings go through `options=-c name=value` |
//! | `gssencmode` (`disable`, `prefer`), `sslnegotiation` (`postgres`), `load_balance_hosts` (`disable`), `sslcompression` (`0`) | accepted with these values only, which are what pg-pool does |
//! | `pool_name` | the pool's name in metrics and logs |
//! | `pool_max_size`, `pool_min_idle`, `pool_max_connecting` | counts |
//! | `pool_checkout_timeout`, `pool_connect_timeout`, `pool_max_lifetime_jitter`, `pool_reaper_interval`, `pool_probe_timeout`, `pool_test_on_checkout_after`, `pool_connect_backoff`, `pool_connect_backoff_max`, `pool_slow_checkout_threshold`, `pool_checkin_timeout` | durations: `500ms`, `30s`, `5m`, `1h`, `1h30m` (a bare number is an error) |
//! | `pool_idle_timeout`, `pool_max_lifetime`, `pool_health_check_interval`, `pool_leak_detection_threshold` | durations, or `off` |
//! | `pool_test_on_checkout` | `true`/`false` (`on`/`off`, `yes`/`no`, `1`/`0`) |
//! | `pool_idle_order` | `lifo` or `fifo` |
//! | `pool_fairness` | `strict` or `bounded:<duration>` (`bounded:1ms`; see `pg_pool_core::Fairness`) |
//! | other `pool_*` | kept in [`PoolSettings::driver`] for the driver, which rejects those it does not know |
//!
//! Other libpq keys (`hostaddr`, `sslcrl`, `service`, ...) are reported as not implemented
//! rather than ignored. A driver that cannot honour a key it receives (pg-pool-wire cannot
//! set socket options, so refuses the keepalive keys and `tcp_user_timeout`) says so when
//! its config is built.
//!
//! # Environment
//!
//! [`ConnInfo::parse_with_env`] and [`ConnInfo::from_env`] fill what the string leaves
//! unset from libpq's variables (`PGHOST`, `PGPORT`, ...; see [`ENV_VARS`]) and then, when
//! no password is given, from the passfile ([`Passfile`]).
//!
//! Pool settings have variables of their own, `PG_POOL_*` ([`POOL_ENV_VARS`]:
//! `PG_POOL_MAX_SIZE=20` sets `pool_max_size`), read by [`PoolSettings::from_env`] and
//! `ConnSettings`, not by [`ConnInfo::from_env`], and laid over the string's keys.
//!
//! # Configuration files
//!
//! With the `serde` feature, `ConnSettings` is a driver's settings as a file holds them: an
//! optional `url`, an optional `password`, and a `pool` table of `pool_*` keys without the
//! prefix, laid over the string's own. Durations everywhere use one grammar,
//! [`pg_pool_core::parse_duration`].
//!
//! # Examples
//!
//! ```
//! use pg_pool_conninfo::{ConnInfo, TargetSessionAttrs};
//!
//! let info = ConnInfo::parse(
//!     "postgresql://app@db1,db2:5433/shop?target_session_attrs=read-write&pool_max_size=8",
//! )?;
//! assert_eq!(info.hosts.len(), 2);
//! assert_eq!((info.hosts[0].port, info.hosts[1].port), (5432, 5433));
//! assert_eq!(info.target_session_attrs, TargetSessionAttrs::ReadWrite);
//! assert_eq!(info.pool.max_size, Some(8));
//! # Ok::<(), pg_pool_conninfo::ConnInfoError>(())
//! ```
#![doc = include_str!("../README.md")]

mod credentials;
mod env;
mod error;
mod hosts;
mod info;
mod keys;
mod keyvalue;
mod lag;
mod passfile;
mod pool;
mod pool_env;
mod raw;
#[cfg(feature = "rustls")]
pub mod rustls;
mod secret;
#[cfg(feature = "serde")]
mod settings;
pub mod sql;
mod tls;
mod url;

pub use credentials::{PasswordProvider, ProviderError};
pub use env::{ENV_VARS, process_env};
pub use error::{ConnInfoError, ConnInfoErrorKind};
pub use info::{ConnInfo, Host, HostPort, Keepalives, TargetSessionAttrs};
pub use keys::STARTUP_SETTINGS;
pub use lag::{REPLICA_LAG_SQL, parse_replica_lag};
pub use passfile::{Passfile, PassfileError};
pub use pool::PoolSettings;
pub use pool_env::POOL_ENV_VARS;
pub use secret::Secret;
#[cfg(feature = "serde")]
pub use settings::ConnSettings;
pub use tls::{ChannelBinding, RootCerts, SslMode, TlsSettings};
