//! A throwaway primary with streaming standbys, for failover and read/write
//! routing tests.

use std::io::ErrorKind;
use std::process::{Child, Command};
use std::sync::{Mutex, PoisonError};
use std::thread;

use tempfile::TempDir;

mod failover;
mod lsn;
mod member;
mod provision;
mod status;

pub use lsn::{Lsn, ReplicationLag};
pub use member::ClusterMember;

use crate::{Error, util};
use member::{TEST_DATABASE, TEST_PASSWORD, TEST_USER, Tools};

/// The most standbys [`ReplicatedCluster::start`] accepts.
pub const MAX_STANDBYS: usize = 4;

/// A throwaway PostgreSQL primary with streaming standbys on this machine.
///
/// Member 0 is initialised like a [`TestCluster`](crate::TestCluster)
/// (`initdb` as the `postgres` OS user when root, `127.0.0.1` only, SCRAM
/// authentication, `fsync=off`, the test role `pgpool` owning the database
/// `pgpool`, a password-protected superuser for admin SQL), plus
/// `wal_level=replica`, `hot_standby=on`, `wal_log_hints=on` and
/// `full_page_writes=on` (so `pg_rewind` works), WAL senders, a replication
/// role with its `host replication` line in `pg_hba.conf`, and
/// `wal_keep_size` (no replication slots). Each standby is a
/// `pg_basebackup -R` of member 0 in its own data directory, on its own free
/// port, streaming from the primary.
///
/// Members are addressed by index (`0..len()`). Which one is the primary
/// changes with [`promote`](Self::promote) and [`rejoin`](Self::rejoin); ask
/// [`primary`](Self::primary). Operations take the member's index and fail
/// with an error naming the member, what failed and the tail of its server
/// log; every wait is bounded.
///
/// Every method blocks the calling thread (it runs `psql` and the
/// PostgreSQL tools as child processes); from async tests, call them through
/// the runtime's blocking-task facility.
///
/// Always a throwaway cluster (`PG_POOL_TEST_URL` is ignored). Dropping it
/// stops every member (immediate mode) and removes the directory holding the
/// data directories and logs; a watchdog process does the same once the test
/// process has died.
///
/// # Examples
///
/// ```no_run
/// use std::time::Duration;
/// use pg_pool_test_support::ReplicatedCluster;
///
/// let cluster = ReplicatedCluster::start(1)?;
/// // Give this to the pool: it routes writes to whichever member is primary.
/// let url = cluster.multi_host_url(Some("read-write"));
/// cluster.sql(0, "CREATE TABLE t (x int)")?;
/// cluster.wait_for_replay(1, Duration::from_secs(30))?;
/// assert_eq!(cluster.sql(1, "SELECT count(*) FROM t")?, "0");
///
/// // Fail over: crash the primary, promote the standby.
/// cluster.stop_immediate(0)?;
/// cluster.promote(1)?;
/// assert_eq!(cluster.primary()?, 1);
/// // Bring the old primary back as a standby of the new one.
/// cluster.rejoin(0)?;
/// cluster.wait_for_replay(0, Duration::from_secs(30))?;
/// # let _ = url;
/// # Ok::<(), pg_pool_test_support::Error>(())
/// ```
#[derive(Debug)]
pub struct ReplicatedCluster {
    tools: Tools,
    members: Vec<ClusterMember>,
    watchdog: Mutex<Option<Child>>,
    // Declared last: removed after every member has been stopped.
    dir: TempDir,
}

/// How [`ReplicatedCluster::rejoin`] turned a member into a standby.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RejoinMethod {
    /// `pg_rewind` against the primary (also when no rewind was needed).
    Rewind,
    /// A fresh `pg_basebackup`, because `pg_rewind` failed.
    BaseBackup {
        /// Why `pg_rewind` failed.
        rewind_error: String,
    },
}

impl ReplicatedCluster {
    /// Starts a primary (member 0) and `standbys` streaming standbys
    /// (members `1..=standbys`), and waits until every standby accepts
    /// read-only connections.
    ///
    /// # Errors
    ///
    /// [`Error::NotInstalled`] if a PostgreSQL program is missing; otherwise
    /// the failing step (initdb, start, base backup), naming the member. A
    /// `standbys` of 0 or above [`MAX_STANDBYS`] is refused.
    pub fn start(standbys: usize) -> Result<ReplicatedCluster, Error> {
        if standbys == 0 || standbys > MAX_STANDBYS {
            return Err(Error::io(
                "ReplicatedCluster::start",
                std::io::Error::new(
                    ErrorKind::InvalidInput,
                    format!("standbys must be 1..={MAX_STANDBYS}, got {standbys}"),
                ),
            ));
        }
        let dir = tempfile::Builder::new()
            .prefix("pg-pool-replicated-")
            .tempdir()
            .map_err(|e| Error::io("creating the cluster's temporary directory", e))?;
        let tools = Tools::find(dir.path())?;
        util::chown(dir.path(), tools.run_as.as_ref())?;
        let data_dirs: Vec<_> = (0..=standbys)
            .map(|i| dir.path().join(format!("member{i}")))
            .collect();
        let dir_refs: Vec<_> = data_dirs.iter().map(|d| d.as_path()).collect();
        // Watchdog first, so that everything goes away even if the test
        // process dies during startup.
        let watchdog = provision::spawn_watchdog(&tools, &dir_refs)?;
        let mut cluster = ReplicatedCluster {
            tools,
            members: Vec::with_capacity(standbys + 1),
            watchdog: Mutex::new(Some(watchdog)),
            dir,
        };
        provision::write_pgpass(&cluster.tools)?;
        let log_of = |index: usize| cluster.dir.path().join(format!("member{index}.log"));
        let mut data_dirs = data_dirs.into_iter();
        let primary_data = data_dirs.next().unwrap_or_default();
        provision::init_primary(&cluster.tools, &primary_data)?;
        let port = member::start_on_free_port(&cluster.tools, 0, &primary_data, &log_of(0))?;
        let primary = ClusterMember::new(0, port, primary_data, log_of(0));
        let sql = provision::bootstrap_sql();
        let statements: Vec<&str> = sql.iter().map(String::as_str).collect();
        let bootstrapped = primary.sql(&cluster.tools, &statements);
        cluster.members.push(primary);
        bootstrapped?;
        // The standbys' base backups and starts run in parallel.
        let tools = &cluster.tools;
        let standbys: Vec<_> = thread::scope(|scope| {
            let handles: Vec<_> = data_dirs
                .enumerate()
                .map(|(i, data)| {
                    let (index, log) = (i + 1, log_of(i + 1));
                    scope.spawn(move || -> Result<ClusterMember, Error> {
                        let who = format!("member {index}");
                        provision::base_backup(tools, &who, &log, port, &data)?;
                        provision::configure_standby(tools, index, &data, None, port)?;
                        let own = member::start_on_free_port(tools, index, &data, &log)?;
                        Ok(ClusterMember::new(index, own, data, log))
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join().unwrap_or_else(|_| {
                        Err(Error::io(
                            "starting a standby",
                            std::io::Error::other("the thread panicked"),
                        ))
                    })
                })
                .collect()
        });
        for standby in standbys {
            cluster.members.push(standby?);
        }
        Ok(cluster)
    }

    /// Number of members (the primary and the standbys).
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Always false (there is at least a primary and a standby).
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Every member, by index.
    pub fn members(&self) -> &[ClusterMember] {
        &self.members
    }

    /// Member `index`, if there is one.
    pub fn member(&self, index: usize) -> Option<&ClusterMember> {
        self.members.get(index)
    }

    /// The test role.
    pub fn user(&self) -> &str {
        TEST_USER
    }

    /// The test role's password.
    pub fn password(&self) -> &str {
        TEST_PASSWORD
    }

    /// The test database.
    pub fn database(&self) -> &str {
        TEST_DATABASE
    }

    /// One URL over every member in index order,
    /// `postgres://pgpool:PW@127.0.0.1:P0,127.0.0.1:P1/pgpool`, with
    /// `?target_session_attrs=ATTRS` when given (e.g. `read-write`,
    /// `read-only`, `primary`, `standby`, `prefer-standby`, `any`; the value
    /// is percent-encoded, not checked).
    pub fn multi_host_url(&self, target_session_attrs: Option<&str>) -> String {
        let hosts: Vec<String> = self
            .members
            .iter()
            .map(|m| format!("{}:{}", m.host(), m.port()))
            .collect();
        let mut url = format!(
            "postgres://{}:{}@{}/{}",
            util::percent_encode(TEST_USER),
            util::percent_encode(TEST_PASSWORD),
            hosts.join(","),
            util::percent_encode(TEST_DATABASE)
        );
        if let Some(attrs) = target_session_attrs {
            url.push_str("?target_session_attrs=");
            url.push_str(&util::percent_encode(attrs));
        }
        url
    }

    /// The directory holding every member's data directory and log (removed
    /// on drop).
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }

    pub(crate) fn get(&self, index: usize) -> Result<&ClusterMember, Error> {
        self.members.get(index).ok_or_else(|| {
            Error::io(
                format!("member {index}"),
                std::io::Error::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "no such member: this cluster has members 0..={}",
                        self.members.len().saturating_sub(1)
                    ),
                ),
            )
        })
    }

    pub(crate) fn tools(&self) -> &Tools {
        &self.tools
    }

    /// Runs admin SQL as the superuser on member `index` through `psql` and
    /// returns its trimmed, unaligned, tuples-only output (rows on lines,
    /// columns separated by `|`).
    ///
    /// # Errors
    ///
    /// [`Error::Sql`] naming the member, with psql's message and the
    /// member's log tail (for example when it is down, or when writing to a
    /// standby).
    pub fn sql(&self, index: usize, query: &str) -> Result<String, Error> {
        self.get(index)?.sql(&self.tools, &[query])
    }

    /// A `psql` command connected to member `index` as the test role (`-X
    /// -At -w -v ON_ERROR_STOP=1 -h -p -U -d`, password in `PGPASSWORD`).
    /// Add e.g. `-c QUERY`. Stdin is null.
    ///
    /// # Errors
    ///
    /// If there is no member `index`.
    pub fn psql(&self, index: usize) -> Result<Command, Error> {
        let m = self.get(index)?;
        Ok(self
            .tools
            .psql(m.port(), TEST_USER, TEST_PASSWORD, TEST_DATABASE))
    }

    /// A `psql` command connecting with `conninfo` (a URL such as
    /// [`multi_host_url`](Self::multi_host_url) or `key=value` pairs), so that
    /// libpq itself picks the member. Add e.g. `-c QUERY`. Stdin is null.
    pub fn psql_conninfo(&self, conninfo: &str) -> Command {
        let mut c = self.tools.psql_base();
        c.arg("-d").arg(conninfo);
        c
    }
}

impl Drop for ReplicatedCluster {
    fn drop(&mut self) {
        if let Some(mut w) = self
            .watchdog
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            util::stop_watchdog(&mut w);
        }
        // Every planned data directory, including one whose member failed
        // to finish starting.
        let planned = (0..=MAX_STANDBYS).map(|i| self.dir.path().join(format!("member{i}")));
        for data in planned {
            if data.join("postmaster.pid").exists() {
                let log = data.with_extension("log");
                let _ = member::pg_ctl(
                    &self.tools,
                    &data.display().to_string(),
                    &data,
                    &log,
                    &["stop", "-m", "immediate"],
                    false,
                );
            }
        }
        // `dir` (a TempDir) is removed when the fields are dropped.
    }
}
