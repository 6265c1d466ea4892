//! A throwaway PostgreSQL cluster (or an external server named by
//! `PG_POOL_TEST_URL`) plus runtime-free admin SQL through `psql`.

use std::ffi::OsString;
use std::fs::{self, OpenOptions};
use std::io::Write as _;
use std::net::{SocketAddr, ToSocketAddrs as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::Error;
use crate::certs::{self, TlsFiles};
use crate::util::{self, RunAs};

/// Environment variable naming an existing server
/// (`postgres://user:password@host:port/database`) to use instead of starting
/// a throwaway cluster.
pub const URL_ENV: &str = "PG_POOL_TEST_URL";

/// What every throwaway cluster is initialised with: the admin user (password from a
/// file), trust on the local socket for it, SCRAM over TCP, UTF-8, no fsync.
pub(crate) const INITDB_ARGS: [&str; 9] = [
    "-U",
    ADMIN_USER,
    "--auth-local=trust",
    "--auth-host=scram-sha-256",
    "-E",
    "UTF8",
    "--locale=C",
    "--no-sync",
    "--no-instructions",
];

const TEST_USER: &str = "pgpool";
const TEST_PASSWORD: &str = "pgpool-test-pw";
const TEST_DATABASE: &str = "pgpool";
const ADMIN_USER: &str = "postgres";
const ADMIN_PASSWORD: &str = "pgpool-admin-pw";
const ADMIN_DATABASE: &str = "postgres";
/// application_name of the kit's own admin psql sessions.
const ADMIN_APP_NAME: &str = "pg-pool-test-support";
const PG_CTL_TIMEOUT_SECS: &str = "60";

/// A PostgreSQL server for integration tests.
///
/// Normally a throwaway cluster: `initdb` into a temporary directory, listening
/// on `127.0.0.1` only, on a free port, tuned for speed (`fsync=off`, ...),
/// with SCRAM password authentication over TCP, a test login role
/// ([`user`](Self::user)/[`password`](Self::password), owning
/// [`database`](Self::database)) and a password-protected superuser used by
/// [`sql`](Self::sql).
///
/// When `PG_POOL_TEST_URL` is set, [`start`](Self::start) and
/// [`shared`](Self::shared) use that server instead; then
/// [`is_throwaway`](Self::is_throwaway) is false and the fault controls
/// ([`stop`](Self::stop), [`restart_fast`](Self::restart_fast), ...) return
/// [`Error::NotThrowaway`].
///
/// Dropping a throwaway cluster stops the server (immediate mode) and removes
/// its directory. A watchdog process also does that once the test process
/// has died, so clusters kept in statics or in killed processes do not leak.
#[derive(Debug)]
pub struct TestCluster {
    host: String,
    port: u16,
    addr: SocketAddr,
    user: String,
    password: String,
    database: String,
    admin_user: String,
    admin_password: String,
    admin_database: String,
    url: String,
    admin_url: String,
    psql: PathBuf,
    local: Option<LocalServer>,
    /// Certificates of a TLS cluster ([`TestCluster::start_tls`]).
    tls: Option<TlsFiles>,
}

/// The part of a throwaway cluster that owns processes and files.
#[derive(Debug)]
struct LocalServer {
    data: PathBuf,
    log: PathBuf,
    pg_ctl: PathBuf,
    run_as: Option<RunAs>,
    watchdog: Mutex<Option<Child>>,
    /// Serialises pg_ctl invocations.
    ctl: Mutex<()>,
    // Declared last: removed after the server has been stopped.
    dir: TempDir,
}

/// Where the PostgreSQL programs are.
#[derive(Debug)]
struct PgBins {
    initdb: PathBuf,
    pg_ctl: PathBuf,
}

impl TestCluster {
    /// The process-wide shared server, started on first use.
    ///
    /// For tests that do not break the server (no stop/restart, no
    /// `terminate_backends` of other tests' sessions). Use distinct
    /// `application_name`s per test to tell sessions apart.
    ///
    /// # Panics
    ///
    /// If the server cannot be started (the message says why; every later
    /// call panics with the same message).
    pub fn shared() -> &'static TestCluster {
        static SHARED: OnceLock<Result<TestCluster, String>> = OnceLock::new();
        match SHARED.get_or_init(|| TestCluster::start().map_err(|e| e.to_string())) {
            Ok(cluster) => cluster,
            Err(e) => panic!("TestCluster::shared(): {e}"),
        }
    }

    /// Starts a new throwaway cluster owned by the caller, for destructive
    /// tests; or, when `PG_POOL_TEST_URL` is set, connects to that server.
    pub fn start() -> Result<TestCluster, Error> {
        match std::env::var(URL_ENV) {
            Ok(url) if !url.trim().is_empty() => TestCluster::external(url.trim()),
            _ => TestCluster::start_throwaway(),
        }
    }

    /// Uses an existing server given as `postgres://user:password@host:port/db`
    /// (no fault injection possible). The same credentials are used for
    /// admin SQL.
    pub fn external(url: &str) -> Result<TestCluster, Error> {
        let parsed = ParsedUrl::parse(url)?;
        let addr = resolve(&parsed.host, parsed.port)?;
        Ok(TestCluster {
            host: parsed.host,
            port: parsed.port,
            addr,
            user: parsed.user.clone(),
            password: parsed.password.clone(),
            database: parsed.database.clone(),
            admin_user: parsed.user,
            admin_password: parsed.password,
            admin_database: parsed.database,
            url: url.to_owned(),
            admin_url: url.to_owned(),
            psql: find_pg_bin("psql")?,
            local: None,
            tls: None,
        })
    }

    /// Starts a throwaway cluster, ignoring `PG_POOL_TEST_URL`.
    pub fn start_throwaway() -> Result<TestCluster, Error> {
        TestCluster::start_local(false)
    }

    /// The process-wide shared TLS server ([`start_tls`](Self::start_tls)), started on
    /// first use.
    ///
    /// # Panics
    ///
    /// If the server cannot be started (the message says why).
    pub fn tls_shared() -> &'static TestCluster {
        static SHARED: OnceLock<Result<TestCluster, String>> = OnceLock::new();
        match SHARED.get_or_init(|| TestCluster::start_tls().map_err(|e| e.to_string())) {
            Ok(cluster) => cluster,
            Err(e) => panic!("TestCluster::tls_shared(): {e}"),
        }
    }

    /// Starts a throwaway cluster with `ssl = on` (always throwaway: `PG_POOL_TEST_URL`
    /// is ignored), with certificates made now by the `openssl` command ([`TlsFiles`]):
    ///
    /// - the server certificate is issued by a test CA for `localhost` only, so
    ///   `verify-full` succeeds for host `localhost` and fails for `127.0.0.1`, while
    ///   `verify-ca` succeeds for both;
    /// - [`TlsFiles::cert_user`] logs in with its client certificate (`hostssl ... cert`);
    /// - [`TlsFiles::tls_user`] has a password and may only connect over TLS (plain
    ///   connections are rejected by `pg_hba.conf`);
    /// - the usual test role ([`user`](Self::user)) may connect with or without TLS.
    ///
    /// Every other accessor works as on [`start_throwaway`](Self::start_throwaway),
    /// including [`socket_dir`](Self::socket_dir).
    pub fn start_tls() -> Result<TestCluster, Error> {
        TestCluster::start_local(true)
    }

    fn start_local(tls: bool) -> Result<TestCluster, Error> {
        let bins = PgBins::find()?;
        let psql = find_pg_bin("psql")?;
        let run_as = util::server_run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("pg-pool-test-")
            .tempdir()
            .map_err(|e| Error::io("creating the cluster's temporary directory", e))?;
        util::chown(dir.path(), run_as.as_ref())?;
        let data = dir.path().join("data");
        let log = dir.path().join("postgres.log");

        // Watchdog first, so that the directory goes away even if the test
        // process dies during startup.
        let mut stop_cmd: Vec<OsString> = Vec::new();
        if let Some(user) = &run_as {
            stop_cmd.push(
                util::find_tool("runuser")
                    .unwrap_or_else(|| "runuser".into())
                    .into(),
            );
            stop_cmd.extend(["-u".into(), user.name.clone().into(), "--".into()]);
        }
        stop_cmd.push(bins.pg_ctl.clone().into());
        stop_cmd.extend(["stop", "-D"].map(OsString::from));
        stop_cmd.push(data.clone().into());
        stop_cmd.extend(["-m", "immediate", "-w", "-t", "30"].map(OsString::from));
        let watchdog = util::spawn_watchdog(dir.path(), &stop_cmd)
            .map_err(|e| Error::io("starting the cleanup watchdog (sh)", e))?;

        let local = LocalServer {
            data,
            log,
            pg_ctl: bins.pg_ctl.clone(),
            run_as,
            watchdog: Mutex::new(Some(watchdog)),
            ctl: Mutex::new(()),
            dir,
        };
        local.initdb(&bins.initdb)?;
        let tls = if tls {
            Some(TlsFiles::generate(local.dir.path(), local.run_as())?)
        } else {
            None
        };
        let port = local.configure_and_start(tls.as_ref())?;

        let host = "127.0.0.1".to_owned();
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let cluster = TestCluster {
            url: make_url(TEST_USER, TEST_PASSWORD, &host, port, TEST_DATABASE),
            admin_url: make_url(ADMIN_USER, ADMIN_PASSWORD, &host, port, ADMIN_DATABASE),
            host,
            port,
            addr,
            user: TEST_USER.to_owned(),
            password: TEST_PASSWORD.to_owned(),
            database: TEST_DATABASE.to_owned(),
            admin_user: ADMIN_USER.to_owned(),
            admin_password: ADMIN_PASSWORD.to_owned(),
            admin_database: ADMIN_DATABASE.to_owned(),
            psql,
            local: Some(local),
            tls,
        };
        cluster.sql(&format!(
            "CREATE ROLE {TEST_USER} LOGIN PASSWORD {}",
            util::sql_literal(TEST_PASSWORD)
        ))?;
        cluster.sql(&format!(
            "CREATE DATABASE {TEST_DATABASE} OWNER {TEST_USER}"
        ))?;
        if cluster.tls.is_some() {
            cluster.sql(&format!(
                "CREATE ROLE {} LOGIN; CREATE ROLE {} LOGIN PASSWORD {}",
                certs::CERT_USER,
                certs::TLS_USER,
                util::sql_literal(certs::TLS_PASSWORD)
            ))?;
        }
        Ok(cluster)
    }

    /// Whether this is a throwaway cluster owned by the kit (false when
    /// `PG_POOL_TEST_URL` is used). Fault injection needs a throwaway cluster.
    pub fn is_throwaway(&self) -> bool {
        self.local.is_some()
    }

    /// The certificates of a TLS cluster ([`start_tls`](Self::start_tls)); `None` for a
    /// plain one.
    pub fn tls_files(&self) -> Option<&TlsFiles> {
        self.tls.as_ref()
    }

    /// The directory of the server's unix socket (`.s.PGSQL.PORT`) of a throwaway
    /// cluster, reachable by the test process; `pg_hba.conf` asks for the password
    /// (SCRAM) there too. `None` for an external server.
    pub fn socket_dir(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.dir.path())
    }

    /// Server host (`"127.0.0.1"` for a throwaway cluster).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Server port (stays the same across stop/start/restart).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Server socket address (`127.0.0.1:PORT` for a throwaway cluster), for
    /// example as the upstream of a [`FaultProxy`](crate::FaultProxy).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The test login role.
    pub fn user(&self) -> &str {
        &self.user
    }

    /// The test role's password.
    pub fn password(&self) -> &str {
        &self.password
    }

    /// The test database (owned by the test role).
    pub fn database(&self) -> &str {
        &self.database
    }

    /// `postgres://user:password@127.0.0.1:PORT/database` for the test role.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The test role's URL, but pointing at `addr` (e.g. a proxy's or
    /// PgBouncer's address).
    pub fn url_for_addr(&self, addr: SocketAddr) -> String {
        make_url(
            &self.user,
            &self.password,
            &addr.ip().to_string(),
            addr.port(),
            &self.database,
        )
    }

    /// URL of the superuser used for admin SQL (the same as [`url`](Self::url)
    /// for an external server).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// Path of the server log of a throwaway cluster.
    pub fn log_path(&self) -> Option<&Path> {
        self.local.as_ref().map(|l| l.log.as_path())
    }

    /// The last `max_bytes` of the server log (empty for an external server).
    pub fn server_log_tail(&self, max_bytes: usize) -> String {
        match &self.local {
            Some(l) => util::tail_file(&l.log, max_bytes),
            None => String::new(),
        }
    }

    /// A `psql` command connected as the test role (`-X -At -w -v
    /// ON_ERROR_STOP=1 -h -p -U -d`, password in `PGPASSWORD`). Add e.g.
    /// `-c QUERY`; set `PGAPPNAME` or override `PGPASSWORD` with `.env(..)`.
    /// Stdin is null.
    pub fn psql(&self) -> Command {
        self.psql_as(&self.user, &self.password, &self.database)
    }

    /// Like [`psql`](Self::psql), but connecting to `addr` (e.g. a
    /// [`FaultProxy`](crate::FaultProxy) or [`PgBouncer`](crate::PgBouncer)).
    pub fn psql_via(&self, addr: SocketAddr) -> Command {
        self.psql_command(
            &addr.ip().to_string(),
            addr.port(),
            &self.user,
            &self.password,
            &self.database,
        )
    }

    /// Like [`psql`](Self::psql), but as the admin (superuser) role.
    pub fn admin_psql(&self) -> Command {
        let mut c = self.psql_as(&self.admin_user, &self.admin_password, &self.admin_database);
        c.env("PGAPPNAME", ADMIN_APP_NAME);
        c
    }

    fn psql_as(&self, user: &str, password: &str, database: &str) -> Command {
        self.psql_command(&self.host, self.port, user, password, database)
    }

    fn psql_command(
        &self,
        host: &str,
        port: u16,
        user: &str,
        password: &str,
        database: &str,
    ) -> Command {
        let mut c = Command::new(&self.psql);
        c.args(["-X", "-At", "-w", "-v", "ON_ERROR_STOP=1", "-h"])
            .arg(host)
            .arg("-p")
            .arg(port.to_string())
            .arg("-U")
            .arg(user)
            .arg("-d")
            .arg(database)
            .env("PGPASSWORD", password)
            .env("PGCONNECT_TIMEOUT", "10")
            .env_remove("PGSERVICE")
            .env_remove("PGPASSFILE")
            .stdin(Stdio::null());
        c
    }

    /// Runs admin SQL as the superuser through `psql` (no async runtime) and
    /// returns its trimmed, unaligned, tuples-only output (one row per line,
    /// columns separated by `|`).
    pub fn sql(&self, query: &str) -> Result<String, Error> {
        let out = self
            .admin_psql()
            .arg("-c")
            .arg(query)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Error::io(format!("running {}", self.psql.display()), e))?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(Error::Sql {
                query: query.to_owned(),
                stderr: util::combined_output(&out),
            })
        }
    }

    /// Number of sessions in `pg_stat_activity` with this `application_name`.
    pub fn backend_count(&self, application_name: &str) -> Result<usize, Error> {
        let q = format!(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = {}",
            util::sql_literal(application_name)
        );
        self.sql_count(&q)
    }

    /// Polls [`backend_count`](Self::backend_count) until it equals
    /// `expected` or `timeout` passes; returns the last count.
    pub fn wait_for_backend_count(
        &self,
        application_name: &str,
        expected: usize,
        timeout: Duration,
    ) -> Result<usize, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            let n = self.backend_count(application_name)?;
            if n == expected || Instant::now() >= deadline {
                return Ok(n);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Terminates (`pg_terminate_backend`) every session with this
    /// `application_name`, waiting up to 5 s for each to exit; returns how
    /// many were terminated. Needs PostgreSQL 14 or newer.
    pub fn terminate_backends(&self, application_name: &str) -> Result<usize, Error> {
        let q = format!(
            "WITH t AS MATERIALIZED (SELECT pid FROM pg_stat_activity \
             WHERE application_name = {} AND pid <> pg_backend_pid()) \
             SELECT count(*) FROM t WHERE pg_terminate_backend(t.pid, 5000)",
            util::sql_literal(application_name)
        );
        self.sql_count(&q)
    }

    fn sql_count(&self, q: &str) -> Result<usize, Error> {
        let out = self.sql(q)?;
        out.parse().map_err(|_| Error::Sql {
            query: q.to_owned(),
            stderr: format!("expected a count, got {out:?}"),
        })
    }

    /// Admin (superuser) name and password of a throwaway cluster.
    pub(crate) fn admin_credentials(&self) -> Option<(&str, &str)> {
        self.local
            .as_ref()
            .map(|_| (self.admin_user.as_str(), self.admin_password.as_str()))
    }

    fn local(&self, operation: &'static str) -> Result<&LocalServer, Error> {
        self.local.as_ref().ok_or(Error::NotThrowaway { operation })
    }

    /// Stops the server (`pg_ctl stop -m fast -w`): sessions are closed
    /// cleanly, new connections are refused.
    pub fn stop(&self) -> Result<(), Error> {
        self.local("stop")?.pg_ctl(&["stop", "-m", "fast"])
    }

    /// Stops the server like a crash (`pg_ctl stop -m immediate -w`).
    pub fn stop_immediate(&self) -> Result<(), Error> {
        self.local("stop_immediate")?
            .pg_ctl(&["stop", "-m", "immediate"])
    }

    /// Starts the server again after [`stop`](Self::stop) (`pg_ctl start
    /// -w`), on the same port. (Named `start_server` because
    /// [`TestCluster::start`] creates a cluster.)
    pub fn start_server(&self) -> Result<(), Error> {
        let local = self.local("start_server")?;
        local.pg_ctl_logged(&["start"])
    }

    /// Restarts the server with a fast shutdown (`pg_ctl restart -m fast -w`).
    pub fn restart_fast(&self) -> Result<(), Error> {
        self.local("restart_fast")?
            .pg_ctl_logged(&["restart", "-m", "fast"])
    }

    /// Restarts the server with an immediate (crash-like) shutdown
    /// (`pg_ctl restart -m immediate -w`; the restart runs crash recovery).
    pub fn restart_immediate(&self) -> Result<(), Error> {
        self.local("restart_immediate")?
            .pg_ctl_logged(&["restart", "-m", "immediate"])
    }
}

impl PgBins {
    fn find() -> Result<PgBins, Error> {
        let initdb = find_pg_bin("initdb")?;
        let dir = initdb.parent().unwrap_or(Path::new("/"));
        let pg_ctl = match dir.join("pg_ctl") {
            p if util::is_executable(&p) => p,
            _ => find_pg_bin("pg_ctl")?,
        };
        Ok(PgBins { initdb, pg_ctl })
    }
}

/// Finds a PostgreSQL program: `pg_config --bindir`, then PATH, then the
/// newest `/usr/lib/postgresql/*/bin`.
pub(crate) fn find_pg_bin(name: &str) -> Result<PathBuf, Error> {
    let mut searched = Vec::new();
    let pg_config_bindir = Command::new("pg_config")
        .arg("--bindir")
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if let Some(dir) = pg_config_bindir {
        let p = dir.join(name);
        if util::is_executable(&p) {
            return Ok(p);
        }
        searched.push(format!("{} (pg_config --bindir)", dir.display()));
    }
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join(name);
            if util::is_executable(&p) {
                return Ok(p);
            }
        }
        searched.push("PATH".to_owned());
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| {
            let v = e.file_name().to_string_lossy().into_owned();
            let key: Vec<u32> = v.split('.').map(|p| p.parse().unwrap_or(0)).collect();
            (key, e.path().join("bin").join(name))
        })
        .collect();
    versions.sort();
    if let Some((_, p)) = versions
        .into_iter()
        .rev()
        .find(|(_, p)| util::is_executable(p))
    {
        return Ok(p);
    }
    searched.push("/usr/lib/postgresql/*/bin".to_owned());
    Err(Error::NotInstalled {
        program: format!("PostgreSQL program `{name}`"),
        searched: searched.join(", "),
    })
}

impl LocalServer {
    fn run_as(&self) -> Option<&RunAs> {
        self.run_as.as_ref()
    }

    fn command(&self, program: &Path) -> Command {
        util::command_as(self.run_as(), program, self.dir.path())
    }

    fn initdb(&self, initdb: &Path) -> Result<(), Error> {
        let pwfile = self.dir.path().join("admin-password");
        fs::write(&pwfile, ADMIN_PASSWORD)
            .map_err(|e| Error::io(format!("writing {}", pwfile.display()), e))?;
        util::chown(&pwfile, self.run_as())?;
        let mut cmd = self.command(initdb);
        cmd.arg("-D")
            .arg(&self.data)
            .args(INITDB_ARGS)
            .arg(format!("--pwfile={}", pwfile.display()))
            .env_remove("PGDATA");
        let out = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .output()
            .map_err(|e| Error::io(format!("running `{}`", util::describe(&cmd)), e))?;
        let _ = fs::remove_file(&pwfile);
        if !out.status.success() {
            return Err(Error::InitdbFailed {
                status: out.status.to_string(),
                stderr: util::combined_output(&out),
            });
        }
        Ok(())
    }

    /// Writes the configuration and starts the server on a free port
    /// (retrying with another port if the chosen one was taken meanwhile).
    fn configure_and_start(&self, tls: Option<&TlsFiles>) -> Result<u16, Error> {
        let conf = self.data.join("postgresql.conf");
        let socket_dir = self.dir.path().display().to_string().replace('\'', "''");
        let settings = format!(
            "\n# pg-pool-test-support\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = '{socket_dir}'\n\
             fsync = off\n\
             synchronous_commit = off\n\
             full_page_writes = off\n\
             max_connections = 300\n\
             log_connections = on\n\
             password_encryption = 'scram-sha-256'\n\
             logging_collector = off\n"
        );
        append(&conf, &settings)?;
        let mut hba_lines = String::from("# pg-pool-test-support\nlocal all all scram-sha-256\n");
        if let Some(tls) = tls {
            let quote = |p: &Path| p.display().to_string().replace('\'', "''");
            append(
                &conf,
                &format!(
                    "ssl = on\n\
                     ssl_cert_file = '{}'\n\
                     ssl_key_file = '{}'\n\
                     ssl_ca_file = '{}'\n",
                    quote(tls.server_cert()),
                    quote(tls.server_key()),
                    quote(tls.ca_cert()),
                ),
            )?;
            hba_lines.push_str(&format!(
                "hostssl all {cert} 127.0.0.1/32 cert\n\
                 hostssl all {tls_user} 127.0.0.1/32 scram-sha-256\n\
                 host all {cert},{tls_user} 127.0.0.1/32 reject\n",
                cert = certs::CERT_USER,
                tls_user = certs::TLS_USER,
            ));
        }
        hba_lines.push_str("host all all 127.0.0.1/32 scram-sha-256\n");
        let hba = self.data.join("pg_hba.conf");
        fs::write(&hba, hba_lines)
            .map_err(|e| Error::io(format!("writing {}", hba.display()), e))?;

        let mut last_err = None;
        for _attempt in 0..3 {
            let port = util::free_port().map_err(|e| Error::io("finding a free port", e))?;
            append(&conf, &format!("port = {port}\n"))?;
            match self.pg_ctl_logged(&["start"]) {
                Ok(()) => return Ok(port),
                Err(e) => {
                    let log = util::tail_file(&self.log, 4000);
                    let port_taken =
                        log.contains("could not bind") || log.contains("Address already in use");
                    let err = Error::StartFailed {
                        message: e.to_string(),
                        log,
                    };
                    if !port_taken {
                        return Err(err);
                    }
                    last_err = Some(err);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| Error::StartFailed {
            message: "no free port".to_owned(),
            log: String::new(),
        }))
    }

    /// `pg_ctl ARGS -D data -w -t 60`.
    fn pg_ctl(&self, args: &[&str]) -> Result<(), Error> {
        let _guard = self.ctl.lock().unwrap_or_else(PoisonError::into_inner);
        let mut cmd = self.command(&self.pg_ctl);
        cmd.args(args)
            .arg("-D")
            .arg(&self.data)
            .args(["-w", "-t", PG_CTL_TIMEOUT_SECS])
            .env_remove("PGDATA");
        util::run(&mut cmd).map(drop)
    }

    /// Like `pg_ctl`, with `-l LOG` (for start/restart).
    fn pg_ctl_logged(&self, args: &[&str]) -> Result<(), Error> {
        let log = self.log.display().to_string();
        let mut all: Vec<&str> = args.to_vec();
        all.extend(["-l", &log]);
        self.pg_ctl(&all).map_err(|e| match e {
            Error::CommandFailed { .. } => Error::StartFailed {
                message: e.to_string(),
                log: util::tail_file(&self.log, 4000),
            },
            other => other,
        })
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(mut w) = self
            .watchdog
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            util::stop_watchdog(&mut w);
        }
        if self.data.join("postmaster.pid").exists() {
            let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
        }
        // `dir` (a TempDir) is removed when the fields are dropped.
    }
}

fn append(path: &Path, text: &str) -> Result<(), Error> {
    OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| Error::io(format!("writing {}", path.display()), e))
}

pub(crate) fn make_url(user: &str, password: &str, host: &str, port: u16, db: &str) -> String {
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    };
    format!(
        "postgres://{}:{}@{host}:{port}/{}",
        util::percent_encode(user),
        util::percent_encode(password),
        util::percent_encode(db)
    )
}

fn resolve(host: &str, port: u16) -> Result<SocketAddr, Error> {
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::io(format!("resolving {host}:{port}"), e))?
        .collect();
    addrs
        .iter()
        .find(|a| a.is_ipv4())
        .or(addrs.first())
        .copied()
        .ok_or_else(|| {
            Error::io(
                format!("resolving {host}:{port}"),
                std::io::Error::other("no addresses"),
            )
        })
}

/// The parts of a `postgres://user:password@host:port/database` URL.
#[derive(Debug, PartialEq, Eq)]
struct ParsedUrl {
    user: String,
    password: String,
    host: String,
    port: u16,
    database: String,
}

impl ParsedUrl {
    fn parse(url: &str) -> Result<ParsedUrl, Error> {
        let bad = |reason: &str| Error::BadUrl {
            url: mask_password(url),
            reason: reason.to_owned(),
        };
        let rest = url
            .strip_prefix("postgres://")
            .or_else(|| url.strip_prefix("postgresql://"))
            .ok_or_else(|| bad("expected postgres://user:password@host:port/database"))?;
        let rest = rest.split(['?', '#']).next().unwrap_or_default();
        let (userinfo, hostpath) = rest.rsplit_once('@').ok_or_else(|| {
            bad("missing user@ (expected postgres://user:password@host:port/database)")
        })?;
        let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
        let user = util::percent_decode(user).ok_or_else(|| bad("bad %-escape in user"))?;
        let password =
            util::percent_decode(password).ok_or_else(|| bad("bad %-escape in password"))?;
        if user.is_empty() {
            return Err(bad("empty user"));
        }
        let (hostport, db) = hostpath.split_once('/').unwrap_or((hostpath, ""));
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("unclosed [ in host"))?;
            (h, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        if host.is_empty() {
            return Err(bad("empty host"));
        }
        let port = match port {
            Some(p) => p.parse().map_err(|_| bad("bad port"))?,
            None => 5432,
        };
        let db = util::percent_decode(db).ok_or_else(|| bad("bad %-escape in database"))?;
        let database = if db.is_empty() { user.clone() } else { db };
        Ok(ParsedUrl {
            user,
            password,
            host: host.to_owned(),
            port,
            database,
        })
    }
}

fn mask_password(url: &str) -> String {
    let masked = url.split_once("://").and_then(|(scheme, rest)| {
        let (userinfo, after) = rest.rsplit_once('@')?;
        let (user, _) = userinfo.split_once(':')?;
        Some(format!("{scheme}://{user}:***@{after}"))
    });
    masked.unwrap_or_else(|| url.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_urls() {
        let p = ParsedUrl::parse("postgres://u%40x:p%3Aw@db.example:6543/mydb?sslmode=disable")
            .unwrap();
        assert_eq!(
            p,
            ParsedUrl {
                user: "u@x".into(),
                password: "p:w".into(),
                host: "db.example".into(),
                port: 6543,
                database: "mydb".into(),
            }
        );
        let p = ParsedUrl::parse("postgresql://bob@[::1]/").unwrap();
        assert_eq!((p.host.as_str(), p.port), ("::1", 5432));
        assert_eq!(p.database, "bob");
        let err = ParsedUrl::parse("mysql://a:secret@h/db")
            .unwrap_err()
            .to_string();
        assert!(err.contains("***") && !err.contains("secret"), "{err}");
        assert!(ParsedUrl::parse("postgres://h:5432/db").is_err());
    }

    #[test]
    fn builds_urls() {
        assert_eq!(
            make_url("pgpool", "pgpool-test-pw", "127.0.0.1", 5, "pgpool"),
            "postgres://pgpool:pgpool-test-pw@127.0.0.1:5/pgpool"
        );
        assert_eq!(
            make_url("a b", "p@ss", "::1", 5, "d"),
            "postgres://a%20b:p%40ss@[::1]:5/d"
        );
    }
}
