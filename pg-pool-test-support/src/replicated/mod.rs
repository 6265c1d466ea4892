//! A throwaway primary with streaming standbys, for failover and read/write
//! routing tests.

use std::io::ErrorKind;
use std::process::{Child, Command};
use std::sync::{Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

mod failover;
mod lsn;
mod member;
mod provision;

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
        for (index, data) in data_dirs.into_iter().enumerate() {
            let log = cluster.dir.path().join(format!("member{index}.log"));
            let who = format!("member {index}");
            if index == 0 {
                provision::init_primary(&cluster.tools, &data)?;
            } else {
                let source = cluster.members[0].port();
                provision::base_backup(&cluster.tools, &who, &log, source, &data)?;
                provision::configure_standby(&cluster.tools, index, &data, None, source)?;
            }
            let port = member::start_on_free_port(&cluster.tools, index, &data, &log)?;
            cluster
                .members
                .push(ClusterMember::new(index, port, data, log));
            if index == 0 {
                let sql = provision::bootstrap_sql();
                let statements: Vec<&str> = sql.iter().map(String::as_str).collect();
                cluster.members[0].sql(&cluster.tools, &statements)?;
            }
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

    /// Whether member `index` is a standby (`pg_is_in_recovery()`).
    ///
    /// # Errors
    ///
    /// If the member cannot be queried (down, or no such member).
    pub fn is_in_recovery(&self, index: usize) -> Result<bool, Error> {
        let m = self.get(index)?;
        match m
            .sql(&self.tools, &["SELECT pg_is_in_recovery()"])?
            .as_str()
        {
            "t" => Ok(true),
            "f" => Ok(false),
            other => Err(m.error(
                ErrorKind::InvalidData,
                "SELECT pg_is_in_recovery()",
                format!("unexpected output {other:?}"),
            )),
        }
    }

    /// The index of the member that accepts writes now: the one running
    /// member not in recovery. Members that are down are skipped.
    ///
    /// # Errors
    ///
    /// If no member, or more than one, is a running primary (the message
    /// gives each member's state).
    pub fn primary(&self) -> Result<usize, Error> {
        self.primary_excluding(None)
    }

    /// Like [`primary`](Self::primary), ignoring member `excluded`.
    pub(crate) fn primary_excluding(&self, excluded: Option<usize>) -> Result<usize, Error> {
        let mut primaries = Vec::new();
        let mut states = Vec::new();
        for m in self.members.iter().filter(|m| Some(m.index()) != excluded) {
            match self.is_in_recovery(m.index()) {
                Ok(false) => {
                    primaries.push(m.index());
                    states.push(format!("{}: primary", m.describe()));
                }
                Ok(true) => states.push(format!("{}: standby", m.describe())),
                Err(e) => {
                    let first = e.to_string();
                    let first = first.lines().next().unwrap_or_default().to_owned();
                    states.push(format!("{}: unreachable ({first})", m.describe()));
                }
            }
        }
        if let [only] = primaries[..] {
            return Ok(only);
        }
        let what = if primaries.is_empty() {
            "no running member accepts writes"
        } else {
            "more than one member accepts writes (split brain)"
        };
        let ignoring = excluded.map_or(String::new(), |i| format!(" (ignoring member {i})"));
        Err(Error::io(
            format!("finding the primary{ignoring}"),
            std::io::Error::new(
                ErrorKind::NotFound,
                format!("{what}: {}", states.join("; ")),
            ),
        ))
    }

    /// Member `index`'s last replayed WAL position.
    pub(crate) fn replay_lsn(&self, index: usize) -> Result<Lsn, Error> {
        let m = self.get(index)?;
        let out = m.sql(&self.tools, &["SELECT pg_last_wal_replay_lsn()"])?;
        Lsn::parse(&out).ok_or_else(|| {
            m.error(
                ErrorKind::InvalidData,
                "reading pg_last_wal_replay_lsn()",
                format!("got {out:?}; is it a standby?"),
            )
        })
    }

    /// A WAL position on member `primary` that covers every transaction
    /// committed there before the call and that has been flushed (so it
    /// will be streamed even with `synchronous_commit=off`): a transactional
    /// WAL message committed with `synchronous_commit=on`, then the flush
    /// position.
    pub(crate) fn flushed_primary_lsn(&self, primary: usize) -> Result<Lsn, Error> {
        let m = self.get(primary)?;
        let out = m.sql(
            &self.tools,
            &[
                "SET synchronous_commit = on",
                "SELECT pg_logical_emit_message(true, 'pg-pool-test-support', 'sync')",
                "SELECT pg_current_wal_flush_lsn()",
            ],
        )?;
        Lsn::parse(&out).ok_or_else(|| {
            m.error(
                ErrorKind::InvalidData,
                "reading pg_current_wal_flush_lsn()",
                format!("got {out:?}"),
            )
        })
    }

    /// Polls `done` every 20 ms until it returns `Some` or `timeout` passes.
    pub(crate) fn poll<T>(
        timeout: Duration,
        mut done: impl FnMut() -> Result<Option<T>, Error>,
    ) -> Result<Option<T>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = done()? {
                return Ok(Some(v));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Measures how far standby `index` is behind the current primary.
    ///
    /// # Errors
    ///
    /// If there is no single primary among the other members, or a member
    /// cannot be queried (`index` being the primary included).
    pub fn replication_lag(&self, index: usize) -> Result<ReplicationLag, Error> {
        let m = self.get(index)?;
        let p = self.primary_excluding(Some(index))?;
        let primary = self.get(p)?;
        let primary_lsn_text = primary.sql(&self.tools, &["SELECT pg_current_wal_lsn()"])?;
        let primary_lsn = Lsn::parse(&primary_lsn_text).ok_or_else(|| {
            primary.error(
                ErrorKind::InvalidData,
                "reading pg_current_wal_lsn()",
                format!("got {primary_lsn_text:?}"),
            )
        })?;
        let out = m.sql(
            &self.tools,
            &["SELECT coalesce(pg_last_wal_receive_lsn()::text, ''), \
               coalesce(pg_last_wal_replay_lsn()::text, ''), \
               pg_get_wal_replay_pause_state()"],
        )?;
        let fields: Vec<&str> = out.split('|').collect();
        let bad = |what: &str| {
            m.error(
                ErrorKind::InvalidData,
                "reading its WAL positions",
                format!("{what} in {out:?}; is it a standby?"),
            )
        };
        let [receive, replay, pause] = fields[..] else {
            return Err(bad("expected 3 fields"));
        };
        let replay_lsn = Lsn::parse(replay).ok_or_else(|| bad("no replay position"))?;
        let reported = primary.sql(
            &self.tools,
            &[&format!(
                "SELECT extract(epoch FROM replay_lag) FROM pg_stat_replication \
                 WHERE application_name = 'member{index}'"
            )],
        )?;
        let reported_replay_lag = reported
            .lines()
            .next()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        Ok(ReplicationLag {
            primary: p,
            primary_lsn,
            receive_lsn: Lsn::parse(receive),
            replay_lsn,
            bytes: primary_lsn.bytes_after(replay_lsn),
            replay_paused: pause != "not paused",
            reported_replay_lag,
        })
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
