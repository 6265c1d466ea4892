//! One server of a [`ReplicatedCluster`](crate::ReplicatedCluster): its
//! address, data directory and log, and the `pg_ctl`/`psql` plumbing that
//! drives it (errors always name the member and carry its log tail).

use std::fmt::{self, Display};
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::{Mutex, PoisonError};

use crate::Error;
use crate::cluster::{find_pg_bin, make_url};
use crate::util::{self, RunAs};

pub(crate) const HOST: &str = "127.0.0.1";
pub(crate) const TEST_USER: &str = "pgpool";
pub(crate) const TEST_PASSWORD: &str = "pgpool-test-pw";
pub(crate) const TEST_DATABASE: &str = "pgpool";
pub(crate) const ADMIN_USER: &str = "postgres";
pub(crate) const ADMIN_PASSWORD: &str = "pgpool-admin-pw";
pub(crate) const ADMIN_DATABASE: &str = "postgres";
pub(crate) const REPLICATION_USER: &str = "pgpool_replicator";
pub(crate) const REPLICATION_PASSWORD: &str = "pgpool-replication-pw";
const ADMIN_APP_NAME: &str = "pg-pool-test-support";
const PG_CTL_TIMEOUT_SECS: &str = "60";
/// How much of a member's server log an error message carries.
const LOG_TAIL_BYTES: usize = 3000;

/// The programs and places every member shares.
#[derive(Debug)]
pub(crate) struct Tools {
    pub(crate) initdb: PathBuf,
    pub(crate) pg_ctl: PathBuf,
    pub(crate) pg_basebackup: PathBuf,
    pub(crate) pg_rewind: PathBuf,
    pub(crate) pg_controldata: PathBuf,
    pub(crate) psql: PathBuf,
    pub(crate) run_as: Option<RunAs>,
    /// The cluster's temporary directory (sockets, logs, data directories).
    pub(crate) dir: PathBuf,
    /// libpq password file for the replication and admin roles (servers and
    /// PostgreSQL tools read it; no password appears on a command line).
    pub(crate) pgpass: PathBuf,
}

impl Tools {
    /// Finds the programs, preferring the directory `initdb` is in.
    pub(crate) fn find(dir: &Path) -> Result<Tools, Error> {
        let initdb = find_pg_bin("initdb")?;
        let bindir = initdb.parent().unwrap_or(Path::new("/")).to_owned();
        let sibling = |name: &str| match bindir.join(name) {
            p if util::is_executable(&p) => Ok(p),
            _ => find_pg_bin(name),
        };
        Ok(Tools {
            pg_ctl: sibling("pg_ctl")?,
            pg_basebackup: sibling("pg_basebackup")?,
            pg_rewind: sibling("pg_rewind")?,
            pg_controldata: sibling("pg_controldata")?,
            psql: find_pg_bin("psql")?,
            initdb,
            run_as: util::server_run_as()?,
            dir: dir.to_owned(),
            pgpass: dir.join("pgpass"),
        })
    }

    /// `program` as the server's OS user, with the password file and no
    /// ambient libpq settings.
    pub(crate) fn command(&self, program: &Path) -> Command {
        let mut c = util::command_as(self.run_as.as_ref(), program, &self.dir);
        c.env("PGPASSFILE", &self.pgpass)
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGDATA")
            .env_remove("PGPASSWORD")
            .env_remove("PGSERVICE");
        c
    }

    /// `psql -X -At -w -v ON_ERROR_STOP=1 -h 127.0.0.1 -p PORT -U USER -d DB`,
    /// run as this process's user.
    pub(crate) fn psql(&self, port: u16, user: &str, password: &str, db: &str) -> Command {
        let mut c = self.psql_base();
        c.args(["-h", HOST, "-p"])
            .arg(port.to_string())
            .args(["-U", user, "-d", db])
            .env("PGPASSWORD", password);
        c
    }

    /// `psql -X -At -w -v ON_ERROR_STOP=1` without connection options.
    pub(crate) fn psql_base(&self) -> Command {
        let mut c = Command::new(&self.psql);
        c.args(["-X", "-At", "-w", "-v", "ON_ERROR_STOP=1"])
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGSERVICE")
            .env_remove("PGPASSFILE")
            .env_remove("PGTARGETSESSIONATTRS")
            .stdin(Stdio::null());
        c
    }
}

/// One PostgreSQL server of a [`ReplicatedCluster`](crate::ReplicatedCluster).
///
/// Its address never changes (rejoining keeps the port); whether it is the
/// primary or a standby does, so ask the cluster
/// ([`primary`](crate::ReplicatedCluster::primary)).
pub struct ClusterMember {
    index: usize,
    port: u16,
    url: String,
    data: PathBuf,
    log: PathBuf,
    /// Serialises pg_ctl and data-directory changes.
    ctl: Mutex<()>,
}

/// Leaves out the URL (it holds the test role's password).
impl fmt::Debug for ClusterMember {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClusterMember")
            .field("index", &self.index)
            .field("port", &self.port)
            .field("data", &self.data)
            .field("log", &self.log)
            .finish_non_exhaustive()
    }
}

impl ClusterMember {
    pub(crate) fn new(index: usize, port: u16, data: PathBuf, log: PathBuf) -> ClusterMember {
        ClusterMember {
            index,
            port,
            url: make_url(TEST_USER, TEST_PASSWORD, HOST, port, TEST_DATABASE),
            data,
            log,
            ctl: Mutex::new(()),
        }
    }

    /// Position in the cluster (member 0 is the first primary).
    pub fn index(&self) -> usize {
        self.index
    }

    /// Always `"127.0.0.1"`.
    pub fn host(&self) -> &str {
        HOST
    }

    /// The server's port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `postgres://pgpool:PASSWORD@127.0.0.1:PORT/pgpool`: the test role on
    /// this member only.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// The server log (kept across rejoins).
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `max_bytes` of the server log.
    pub fn server_log_tail(&self, max_bytes: usize) -> String {
        util::tail_file(&self.log, max_bytes)
    }

    /// The postmaster's process id from `postmaster.pid` (`None` when the
    /// file is absent: the server is stopped, in any `pg_ctl stop` mode; a
    /// postmaster killed by a signal leaves the file, and so a stale id).
    pub fn postmaster_pid(&self) -> Option<u32> {
        let text = fs::read_to_string(self.data.join("postmaster.pid")).ok()?;
        text.lines().next()?.trim().parse().ok()
    }

    /// `member N (127.0.0.1:PORT)`, for messages.
    pub(crate) fn describe(&self) -> String {
        format!("member {} ({HOST}:{})", self.index, self.port)
    }

    fn log_section(&self) -> String {
        log_section(&self.describe(), &self.log)
    }

    /// An error about this member: `context` says what was being done,
    /// `detail` what went wrong; the log tail follows.
    pub(crate) fn error(&self, kind: io::ErrorKind, context: &str, detail: impl Display) -> Error {
        Error::io(
            format!("{}: {context}", self.describe()),
            io::Error::new(kind, format!("{detail}\n{}", self.log_section())),
        )
    }

    /// Admin SQL on this member through psql (one `-c` per statement, each in
    /// its own transaction); the trimmed output of the last one.
    pub(crate) fn sql(&self, tools: &Tools, statements: &[&str]) -> Result<String, Error> {
        let mut cmd = tools.psql(self.port, ADMIN_USER, ADMIN_PASSWORD, ADMIN_DATABASE);
        cmd.env("PGAPPNAME", ADMIN_APP_NAME);
        for s in statements {
            cmd.arg("-c").arg(s);
        }
        let out = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Error::io(format!("running {}", tools.psql.display()), e))?;
        if out.status.success() {
            let stdout = String::from_utf8_lossy(&out.stdout);
            Ok(stdout.trim().lines().last().unwrap_or_default().to_owned())
        } else {
            Err(Error::Sql {
                query: statements.join("; "),
                stderr: format!(
                    "{} (on {})\n{}",
                    util::combined_output(&out),
                    self.describe(),
                    self.log_section()
                ),
            })
        }
    }

    /// `pg_ctl ARGS -D data -w -t 60` (with `-l LOG` when `logged`).
    pub(crate) fn pg_ctl(&self, tools: &Tools, args: &[&str], logged: bool) -> Result<(), Error> {
        let _guard = self.lock();
        pg_ctl(tools, &self.describe(), &self.data, &self.log, args, logged)
    }

    /// Whether a server is running on this data directory (`pg_ctl status`).
    pub(crate) fn is_running(&self, tools: &Tools) -> Result<bool, Error> {
        let _guard = self.lock();
        let mut cmd = tools.command(&tools.pg_ctl);
        cmd.arg("status").arg("-D").arg(&self.data);
        let out = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Error::io(format!("running `{}`", util::describe(&cmd)), e))?;
        // 0: running; 3: not running; 4: no usable data directory.
        Ok(out.status.success())
    }

    /// Holds the member's control lock (for multi-step data directory work).
    pub(crate) fn lock(&self) -> std::sync::MutexGuard<'_, ()> {
        self.ctl.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn log_section(who: &str, log: &Path) -> String {
    format!(
        "--- server log of {who} (last {LOG_TAIL_BYTES} bytes) ---\n{}",
        util::tail_file(log, LOG_TAIL_BYTES)
    )
}

/// Runs `cmd`; a failure names `who` and carries the tail of `log`.
pub(crate) fn run_for(who: &str, log: &Path, cmd: &mut Command) -> Result<Output, Error> {
    match util::run(cmd) {
        Err(Error::CommandFailed {
            command,
            status,
            output,
        }) => Err(Error::CommandFailed {
            command,
            status,
            output: format!("{output} (on {who})\n{}", log_section(who, log)),
        }),
        other => other,
    }
}

/// `pg_ctl ARGS -D data -w -t 60`, with `-l log` when `logged`.
pub(crate) fn pg_ctl(
    tools: &Tools,
    who: &str,
    data: &Path,
    log: &Path,
    args: &[&str],
    logged: bool,
) -> Result<(), Error> {
    let mut cmd = tools.command(&tools.pg_ctl);
    cmd.args(args)
        .arg("-D")
        .arg(data)
        .args(["-w", "-t", PG_CTL_TIMEOUT_SECS]);
    if logged {
        cmd.arg("-l").arg(log);
    }
    run_for(who, log, &mut cmd).map(drop)
}

/// Appends `port = N` and starts the server on `data`, retrying on another
/// free port if the chosen one was taken meanwhile. Returns the port.
pub(crate) fn start_on_free_port(
    tools: &Tools,
    index: usize,
    data: &Path,
    log: &Path,
) -> Result<u16, Error> {
    let mut last_err = None;
    for _attempt in 0..3 {
        let port = util::free_port().map_err(|e| Error::io("finding a free port", e))?;
        append(&data.join("postgresql.conf"), &format!("port = {port}\n"))?;
        let who = format!("member {index} ({HOST}:{port})");
        match pg_ctl(tools, &who, data, log, &["start"], true) {
            Ok(()) => return Ok(port),
            Err(e) => {
                let tail = util::tail_file(log, 4000);
                let port_taken =
                    tail.contains("could not bind") || tail.contains("Address already in use");
                let err = Error::StartFailed {
                    message: format!("{who}: {e}"),
                    log: tail,
                };
                if !port_taken {
                    return Err(err);
                }
                last_err = Some(err);
            }
        }
    }
    Err(last_err.unwrap_or_else(|| Error::StartFailed {
        message: format!("member {index}: no free port"),
        log: String::new(),
    }))
}

/// Appends `text` to the file at `path`.
pub(crate) fn append(path: &Path, text: &str) -> Result<(), Error> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

/// Writes `text` to a new file at `path` owned by the server's OS user.
pub(crate) fn write_owned(tools: &Tools, path: &Path, text: &str) -> Result<(), Error> {
    fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    util::chown(path, tools.run_as.as_ref())
}
