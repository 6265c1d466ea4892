//! libpq connection strings, parsed once for every pg-pool PostgreSQL driver.
//!
//! [`ConnInfo`] is what a connection string says: hosts and ports, credentials, the
//! database, startup parameters, [`TlsSettings`] with libpq's `sslmode` semantics,
//! `target_session_attrs`, and pool settings (`pool_max_size`, ...). The driver adapters
//! translate it into their own configuration, so `pg-pool-wire` and
//! `pg-pool-tokio-postgres` accept the same strings.
//!
//! Secrets never reach `Debug`: the password is a [`Secret`].
#![doc = include_str!("../README.md")]

mod info;
#[cfg(feature = "rustls")]
pub mod rustls;
mod secret;
mod tls;

pub use info::{ConnInfo, Host, HostPort, TargetSessionAttrs};
pub use secret::Secret;
pub use tls::{ChannelBinding, RootCerts, SslMode, TlsSettings};
