//! PgBouncer in front of a [`TestCluster`].

use std::ffi::OsString;
use std::fs;
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tempfile::TempDir;

use crate::util::{self, RunAs};
use crate::{Error, TestCluster};

const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A PgBouncer (Debian's `pgbouncer` binary) in front of a [`TestCluster`],
/// listening on a free `127.0.0.1` port.
///
/// Configured with `auth_type = scram-sha-256` (plain-text passwords of the
/// cluster's test and admin roles in the auth_file), `server_login_retry = 1`,
/// `max_client_conn = 500`, `default_pool_size = 20`,
/// `ignore_startup_parameters = extra_float_digits` (application_name is
/// supported natively) and a wildcard database entry, so any database of the
/// cluster can be reached. Runs as the `postgres` OS user when the test
/// process is root. Dropping it kills pgbouncer and removes its files; a
/// watchdog does the same if the test process dies first.
#[derive(Debug)]
pub struct PgBouncer {
    port: u16,
    url: String,
    pool_mode: String,
    child: Child,
    watchdog: Option<Child>,
    log: PathBuf,
    pidfile: PathBuf,
    // Declared last: removed after pgbouncer has been killed.
    _dir: TempDir,
}

impl PgBouncer {
    /// Starts pgbouncer for `cluster` with `pool_mode` (`"session"`,
    /// `"transaction"` or `"statement"`), blocking until it accepts
    /// connections.
    pub fn start(cluster: &TestCluster, pool_mode: &str) -> Result<PgBouncer, Error> {
        if !matches!(pool_mode, "session" | "transaction" | "statement") {
            return Err(Error::PgBouncerFailed {
                message: format!(
                    "pool_mode must be session, transaction or statement, not {pool_mode:?}"
                ),
                log: String::new(),
            });
        }
        let binary = find_pgbouncer()?;
        let run_as = util::server_run_as()?;
        let dir = tempfile::Builder::new()
            .prefix("pg-pool-pgbouncer-")
            .tempdir()
            .map_err(|e| Error::io("creating pgbouncer's temporary directory", e))?;
        util::chown(dir.path(), run_as.as_ref())?;
        let log = dir.path().join("pgbouncer.log");
        let pidfile = dir.path().join("pgbouncer.pid");
        let userlist = dir.path().join("userlist.txt");
        let mut users = vec![(cluster.user(), cluster.password())];
        users.extend(admin_credentials(cluster).filter(|(u, _)| *u != cluster.user()));
        let userlist_text: String = users
            .iter()
            .map(|(u, p)| {
                format!(
                    "\"{}\" \"{}\"\n",
                    u.replace('"', "\"\""),
                    p.replace('"', "\"\"")
                )
            })
            .collect();
        write_owned(&userlist, &userlist_text, run_as.as_ref())?;

        let mut last_err = None;
        for _attempt in 0..3 {
            let port = util::free_port().map_err(|e| Error::io("finding a free port", e))?;
            let ini = dir.path().join("pgbouncer.ini");
            let admin = admin_credentials(cluster).map_or(cluster.user(), |(u, _)| u);
            let text = format!(
                "[databases]\n\
                 * = host={host} port={upstream_port}\n\
                 \n\
                 [pgbouncer]\n\
                 listen_addr = 127.0.0.1\n\
                 listen_port = {port}\n\
                 unix_socket_dir = {dir}\n\
                 auth_type = scram-sha-256\n\
                 auth_file = {userlist}\n\
                 pool_mode = {pool_mode}\n\
                 max_client_conn = 500\n\
                 default_pool_size = 20\n\
                 server_login_retry = 1\n\
                 ignore_startup_parameters = extra_float_digits\n\
                 logfile = {log}\n\
                 pidfile = {pidfile}\n\
                 admin_users = {admin}\n\
                 stats_users = {user}\n",
                host = cluster.host(),
                upstream_port = cluster.port(),
                dir = dir.path().display(),
                userlist = userlist.display(),
                log = log.display(),
                pidfile = pidfile.display(),
                user = cluster.user(),
            );
            write_owned(&ini, &text, run_as.as_ref())?;
            let _ = fs::remove_file(&pidfile);

            let mut cmd = command(&binary, run_as.as_ref(), dir.path());
            cmd.arg(&ini).stdout(Stdio::null()).stderr(Stdio::null());
            let child = cmd
                .spawn()
                .map_err(|e| Error::io(format!("running `{}`", util::describe(&cmd)), e))?;
            let cleanup: Vec<OsString> = vec![
                "sh".into(),
                "-c".into(),
                format!(
                    "kill -9 {} 2>/dev/null; kill -9 \"$(cat '{}' 2>/dev/null)\" 2>/dev/null",
                    child.id(),
                    pidfile.display()
                )
                .into(),
            ];
            let mut watchdog = util::spawn_watchdog(dir.path(), &cleanup).ok();
            let mut child = child;
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            match wait_ready(&mut child, addr, &log) {
                Ok(()) => {
                    return Ok(PgBouncer {
                        port,
                        url: cluster.url_for_addr(addr),
                        pool_mode: pool_mode.to_owned(),
                        child,
                        watchdog,
                        log,
                        pidfile,
                        _dir: dir,
                    });
                }
                Err(e) => {
                    let port_taken = util::tail_file(&log, 4000).contains("Address already in use");
                    kill(&mut child, &mut watchdog, &pidfile);
                    if !port_taken {
                        return Err(e);
                    }
                    last_err = Some(e);
                }
            }
        }
        Err(last_err.unwrap_or_else(|| Error::PgBouncerFailed {
            message: "no free port".to_owned(),
            log: String::new(),
        }))
    }

    /// The address clients connect to (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// The port pgbouncer listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `postgres://user:password@127.0.0.1:PORT/database` for the cluster's
    /// test role, through pgbouncer.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The pool mode pgbouncer runs with.
    pub fn pool_mode(&self) -> &str {
        &self.pool_mode
    }

    /// Path of pgbouncer's log file.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last `max_bytes` of pgbouncer's log.
    pub fn log_tail(&self, max_bytes: usize) -> String {
        util::tail_file(&self.log, max_bytes)
    }
}

impl Drop for PgBouncer {
    fn drop(&mut self) {
        kill(&mut self.child, &mut self.watchdog, &self.pidfile);
    }
}

fn wait_ready(child: &mut Child, addr: SocketAddr, log: &Path) -> Result<(), Error> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::PgBouncerFailed {
                message: format!("pgbouncer exited with {status}"),
                log: util::tail_file(log, 4000),
            });
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(Error::PgBouncerFailed {
                message: format!("not accepting connections on {addr} after {START_TIMEOUT:?}"),
                log: util::tail_file(log, 4000),
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn kill(child: &mut Child, watchdog: &mut Option<Child>, pidfile: &Path) {
    if let Some(mut w) = watchdog.take() {
        util::stop_watchdog(&mut w);
    }
    let _ = child.kill();
    let _ = child.wait();
    // In case pgbouncer was not the direct child (runuser fallback).
    if let Ok(pid) = fs::read_to_string(pidfile) {
        let pid = pid.trim();
        if !pid.is_empty() && pid != child.id().to_string() {
            let _ = Command::new("kill")
                .args(["-9", pid])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The cluster's admin credentials, when it is a throwaway one.
fn admin_credentials(cluster: &TestCluster) -> Option<(&str, &str)> {
    cluster.admin_credentials()
}

fn find_pgbouncer() -> Result<PathBuf, Error> {
    if let Some(path) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&path) {
            let p = dir.join("pgbouncer");
            if util::is_executable(&p) {
                return Ok(p);
            }
        }
    }
    let p = PathBuf::from("/usr/sbin/pgbouncer");
    if util::is_executable(&p) {
        return Ok(p);
    }
    Err(Error::NotInstalled {
        program: "pgbouncer".to_owned(),
        searched: "PATH, /usr/sbin".to_owned(),
    })
}

/// pgbouncer as `run_as`: through `setpriv` (which execs, so the child *is*
/// pgbouncer and killing it kills pgbouncer), else `runuser`.
fn command(binary: &Path, run_as: Option<&RunAs>, cwd: &Path) -> Command {
    match (run_as, util::find_tool("setpriv")) {
        (Some(user), Some(setpriv)) => {
            let mut c = Command::new(setpriv);
            c.arg(format!("--reuid={}", user.uid))
                .arg(format!("--regid={}", user.gid))
                .arg("--init-groups")
                .arg(binary)
                .env("HOME", cwd)
                .env("USER", &user.name)
                .current_dir(cwd)
                .stdin(Stdio::null());
            c
        }
        _ => util::command_as(run_as, binary, cwd),
    }
}

fn write_owned(path: &Path, text: &str, run_as: Option<&RunAs>) -> Result<(), Error> {
    fs::write(path, text).map_err(|e| Error::io(format!("writing {}", path.display()), e))?;
    util::chown(path, run_as)
}
