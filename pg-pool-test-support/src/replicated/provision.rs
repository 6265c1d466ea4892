//! Building the data directories of a
//! [`ReplicatedCluster`](crate::ReplicatedCluster): initdb and configuration
//! of the first primary, base backups, `pg_rewind`, standby settings, and the
//! watchdog that stops every member if the test process dies.

use std::ffi::OsString;
use std::fs;
use std::path::Path;
use std::process::{Child, Stdio};

use super::member::{
    self, ADMIN_DATABASE, ADMIN_PASSWORD, ADMIN_USER, HOST, REPLICATION_PASSWORD, REPLICATION_USER,
    Tools,
};
use crate::Error;
use crate::util;

/// Settings every member shares (copied to standbys by the base backup).
///
/// `full_page_writes` and `wal_log_hints` stay on because `pg_rewind` needs
/// them; `wal_keep_size` keeps enough WAL for a rewound or briefly stopped
/// standby to catch up without replication slots (which PostgreSQL 15 does not
/// carry over a failover, and which would pin WAL for a stopped member).
const SETTINGS: &str = "\n# pg-pool-test-support (replicated cluster)\n\
    listen_addresses = '127.0.0.1'\n\
    fsync = off\n\
    synchronous_commit = off\n\
    full_page_writes = on\n\
    wal_level = replica\n\
    wal_log_hints = on\n\
    hot_standby = on\n\
    max_wal_senders = 10\n\
    max_replication_slots = 10\n\
    wal_keep_size = '256MB'\n\
    wal_receiver_status_interval = '1s'\n\
    wal_retrieve_retry_interval = '200ms'\n\
    max_connections = 300\n\
    shared_buffers = '32MB'\n\
    log_connections = on\n\
    password_encryption = 'scram-sha-256'\n\
    logging_collector = off\n";

const HBA: &str = "# pg-pool-test-support (replicated cluster)\n\
    local all all trust\n\
    local replication all trust\n\
    host all all 127.0.0.1/32 scram-sha-256\n\
    host replication pgpool_replicator 127.0.0.1/32 scram-sha-256\n";

/// Writes the libpq password file for the replication and admin roles.
pub(crate) fn write_pgpass(tools: &Tools) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    let text = format!(
        "{HOST}:*:*:{REPLICATION_USER}:{REPLICATION_PASSWORD}\n\
         {HOST}:*:*:{ADMIN_USER}:{ADMIN_PASSWORD}\n"
    );
    member::write_owned(tools, &tools.pgpass, &text)?;
    fs::set_permissions(&tools.pgpass, fs::Permissions::from_mode(0o600))
        .map_err(|e| Error::io(format!("chmod 600 {}", tools.pgpass.display()), e))
}

/// A watchdog that, once this process has died, stops every server on
/// `data_dirs` (immediate mode) and removes the cluster directory.
pub(crate) fn spawn_watchdog(tools: &Tools, data_dirs: &[&Path]) -> Result<Child, Error> {
    const STOP_ALL: &str =
        r#"ctl="$1"; shift; for d in "$@"; do "$ctl" stop -D "$d" -m immediate -w -t 30; done"#;
    let mut cleanup: Vec<OsString> = Vec::new();
    if let Some(user) = &tools.run_as {
        cleanup.push(
            util::find_tool("runuser")
                .unwrap_or_else(|| "runuser".into())
                .into(),
        );
        cleanup.extend(["-u".into(), user.name.clone().into(), "--".into()]);
    }
    cleanup.push(util::find_tool("sh").unwrap_or_else(|| "sh".into()).into());
    cleanup.extend(["-c", STOP_ALL, "pg-pool-replicated-cleanup"].map(OsString::from));
    cleanup.push(tools.pg_ctl.clone().into());
    cleanup.extend(data_dirs.iter().map(|d| d.as_os_str().to_owned()));
    util::spawn_watchdog(&tools.dir, &cleanup)
        .map_err(|e| Error::io("starting the cleanup watchdog (sh)", e))
}

/// initdb of the first primary, with the shared settings and pg_hba.conf.
pub(crate) fn init_primary(tools: &Tools, data: &Path) -> Result<(), Error> {
    let pwfile = tools.dir.join("admin-password");
    member::write_owned(tools, &pwfile, ADMIN_PASSWORD)?;
    let mut cmd = tools.command(&tools.initdb);
    cmd.arg("-D")
        .arg(data)
        .args(crate::cluster::INITDB_ARGS)
        .arg(format!("--pwfile={}", pwfile.display()));
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::io(format!("running `{}`", util::describe(&cmd)), e))?;
    let _ = fs::remove_file(&pwfile);
    if !out.status.success() {
        return Err(Error::InitdbFailed {
            status: out.status.to_string(),
            stderr: format!("member 0: {}", util::combined_output(&out)),
        });
    }
    let socket_dir = tools.dir.display().to_string().replace('\'', "''");
    member::append(
        &data.join("postgresql.conf"),
        &format!("{SETTINGS}unix_socket_directories = '{socket_dir}'\n"),
    )?;
    let hba = data.join("pg_hba.conf");
    fs::write(&hba, HBA).map_err(|e| Error::io(format!("writing {}", hba.display()), e))
}

/// SQL run once on the first primary (before any base backup, so standbys
/// inherit the roles and the database).
pub(crate) fn bootstrap_sql() -> Vec<String> {
    vec![
        format!(
            "CREATE ROLE {REPLICATION_USER} LOGIN REPLICATION PASSWORD {}",
            util::sql_literal(REPLICATION_PASSWORD)
        ),
        format!(
            "CREATE ROLE {} LOGIN PASSWORD {}",
            member::TEST_USER,
            util::sql_literal(member::TEST_PASSWORD)
        ),
        format!(
            "CREATE DATABASE {} OWNER {}",
            member::TEST_DATABASE,
            member::TEST_USER
        ),
    ]
}

/// `pg_basebackup -R -X stream -c fast` from the server on `source_port` into
/// `data` (which must not exist or be empty).
pub(crate) fn base_backup(
    tools: &Tools,
    who: &str,
    log: &Path,
    source_port: u16,
    data: &Path,
) -> Result<(), Error> {
    let mut cmd = tools.command(&tools.pg_basebackup);
    cmd.arg("-D")
        .arg(data)
        .args(["-R", "-X", "stream", "-c", "fast", "--no-sync", "-w"])
        .args(["-h", HOST, "-p"])
        .arg(source_port.to_string())
        .args(["-U", REPLICATION_USER]);
    member::run_for(who, log, &mut cmd).map(drop)
}

/// `pg_rewind` of the (stopped) server on `data` against the server on
/// `source_port`. A target that crashed is first recovered by pg_rewind
/// itself (single-user mode).
pub(crate) fn rewind(
    tools: &Tools,
    who: &str,
    log: &Path,
    source_port: u16,
    data: &Path,
) -> Result<(), Error> {
    let mut cmd = tools.command(&tools.pg_rewind);
    cmd.arg("--target-pgdata")
        .arg(data)
        .arg(format!(
            "--source-server=host={HOST} port={source_port} user={ADMIN_USER} \
             dbname={ADMIN_DATABASE}"
        ))
        .arg("--no-sync");
    member::run_for(who, log, &mut cmd).map(drop)
}

/// Makes `data` a standby of the server on `primary_port` listening on
/// `port`: `standby.signal`, `primary_conninfo` (appended to
/// `postgresql.auto.conf`, so it overrides whatever a base backup or rewind
/// copied there) and `port` (appended to `postgresql.conf`, which a rewind
/// copies from the source).
pub(crate) fn configure_standby(
    tools: &Tools,
    index: usize,
    data: &Path,
    port: Option<u16>,
    primary_port: u16,
) -> Result<(), Error> {
    member::write_owned(tools, &data.join("standby.signal"), "")?;
    let conninfo = format!(
        "host={HOST} port={primary_port} user={REPLICATION_USER} passfile={} \
         application_name=member{index}",
        conninfo_value(&tools.pgpass.display().to_string())
    );
    member::append(
        &data.join("postgresql.auto.conf"),
        &format!(
            "primary_conninfo = {}\nprimary_slot_name = ''\n",
            util::sql_literal(&conninfo)
        ),
    )?;
    if let Some(port) = port {
        member::append(&data.join("postgresql.conf"), &format!("port = {port}\n"))?;
    }
    Ok(())
}

/// A libpq connection-string value, quoted.
fn conninfo_value(v: &str) -> String {
    format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// The "Database cluster state" `pg_controldata` reports for `data` (e.g.
/// `shut down`, `in production`, `in archive recovery`), if it can be read.
pub(crate) fn cluster_state(tools: &Tools, data: &Path) -> Option<String> {
    let mut cmd = tools.command(&tools.pg_controldata);
    cmd.arg("-D").arg(data).env("LC_ALL", "C");
    let out = util::run(&mut cmd).ok()?;
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|line| {
            line.strip_prefix("Database cluster state:")
                .map(|v| v.trim().to_owned())
        })
}

/// Removes a data directory (to be replaced by a fresh base backup).
pub(crate) fn remove_data_dir(data: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(data) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(format!("removing {}", data.display()), e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_conninfo_values() {
        assert_eq!(conninfo_value("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(conninfo_value(r"it's\x"), r"'it\'s\\x'");
    }
}
