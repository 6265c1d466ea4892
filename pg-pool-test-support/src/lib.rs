//! Test kit for real-PostgreSQL integration tests of pg-pool.
//!
//! Runtime-free (std threads, std::net and child processes only), so tests on
//! any async runtime can use it:
//!
//! - [`TestCluster`]: a throwaway PostgreSQL cluster (or the server named by
//!   `PG_POOL_TEST_URL`), admin SQL through `psql`, and fault controls
//!   (stop/start/restart).
//! - [`FaultProxy`]: an in-process TCP proxy that injects network faults
//!   ([`ProxyMode`]) and counts accepted connections.
//! - [`PgBouncer`]: Debian's pgbouncer in front of a cluster.
//! - [`TestCluster::start_tls`]: a cluster with `ssl = on` and certificates made at test
//!   time ([`TlsFiles`]: CA, server and client certificates).
//!
//! Missing programs are reported as [`Error::NotInstalled`]; run
//! `bash scripts/install-test-deps.sh` (as root) to install them.
//!
//! ```no_run
//! use pg_pool_test_support::{FaultProxy, ProxyMode, TestCluster};
//!
//! let cluster = TestCluster::shared();
//! assert_eq!(cluster.sql("select 1").unwrap(), "1");
//! let proxy = FaultProxy::start(cluster.addr()).unwrap();
//! let url = cluster.url_for_addr(proxy.addr()); // give this to the pool
//! proxy.set_mode(ProxyMode::Blackhole);
//! # let _ = url;
//! ```

mod bouncer;
mod certs;
mod cluster;
mod error;
mod pool;
mod proxy;
mod util;

pub use bouncer::PgBouncer;
pub use certs::TlsFiles;
pub use cluster::{TestCluster, URL_ENV};
pub use error::Error;
pub use pool::{eventually, test_pool_config};
pub use proxy::{FaultProxy, ProxyMode};
