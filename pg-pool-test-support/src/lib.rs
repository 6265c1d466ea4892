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
//! - [`ReplicatedCluster`]: a throwaway primary with streaming standbys
//!   (each a [`ClusterMember`] on its own port), a multi-host URL over all of
//!   them, and failover controls: promote, kill/stop/start, rejoin an old
//!   primary through `pg_rewind`, pause/resume replay, wait for replay,
//!   measure lag ([`ReplicationLag`], [`Lsn`]).
//!
//! A failover test with [`ReplicatedCluster`]:
//!
//! ```no_run
//! use std::time::Duration;
//! use pg_pool_test_support::ReplicatedCluster;
//!
//! let cluster = ReplicatedCluster::start(1).unwrap();
//! let url = cluster.multi_host_url(Some("read-write")); // give this to the pool
//! cluster.stop_immediate(0).unwrap(); // the primary crashes
//! cluster.promote(1).unwrap(); // writes now go to member 1
//! cluster.rejoin(0).unwrap(); // member 0 follows member 1
//! cluster.wait_for_replay(0, Duration::from_secs(30)).unwrap();
//! # let _ = url;
//! ```
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
mod capture;
mod certs;
mod cluster;
mod error;
mod pool;
mod proxy;
mod replicated;
mod util;

pub use bouncer::PgBouncer;
pub use capture::{TraceCapture, error_chain};
pub use certs::TlsFiles;
pub use cluster::{TestCluster, URL_ENV};
pub use error::Error;
pub use pool::{eventually, test_pool_config};
pub use proxy::{FaultProxy, ProxyMode};
pub use replicated::{
    ClusterMember, Lsn, MAX_STANDBYS, RejoinMethod, ReplicatedCluster, ReplicationLag,
};
