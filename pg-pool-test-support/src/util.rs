//! Process, user and file helpers shared by the cluster and PgBouncer code.

use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4, TcpListener};
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::Error;

/// The OS user that servers run as when the test process is root.
#[derive(Debug, Clone)]
pub(crate) struct RunAs {
    pub(crate) name: String,
    pub(crate) uid: u32,
    pub(crate) gid: u32,
}

/// Effective uid of this process, from /proc (falls back to `id -u`).
pub(crate) fn euid() -> Option<u32> {
    if let Ok(status) = fs::read_to_string("/proc/self/status") {
        for line in status.lines() {
            if let Some(rest) = line.strip_prefix("Uid:") {
                // real, effective, saved, filesystem
                if let Some(e) = rest.split_whitespace().nth(1) {
                    return e.parse().ok();
                }
            }
        }
    }
    let out = Command::new("id").arg("-u").output().ok()?;
    String::from_utf8_lossy(&out.stdout).trim().parse().ok()
}

/// `Some(postgres user)` when running as root, `None` otherwise.
pub(crate) fn server_run_as() -> Result<Option<RunAs>, Error> {
    if euid() != Some(0) {
        return Ok(None);
    }
    lookup_user("postgres")
        .map(Some)
        .ok_or(Error::NoPostgresUser)
}

fn lookup_user(name: &str) -> Option<RunAs> {
    if let Ok(passwd) = fs::read_to_string("/etc/passwd") {
        for line in passwd.lines() {
            let mut f = line.split(':');
            if f.next() == Some(name) {
                let _pw = f.next();
                let uid = f.next()?.parse().ok()?;
                let gid = f.next()?.parse().ok()?;
                return Some(RunAs {
                    name: name.to_owned(),
                    uid,
                    gid,
                });
            }
        }
    }
    // Users from NSS (LDAP, ...): ask `id`.
    let id = |flag: &str| -> Option<u32> {
        let out = Command::new("id").args([flag, name]).output().ok()?;
        if !out.status.success() {
            return None;
        }
        String::from_utf8_lossy(&out.stdout).trim().parse().ok()
    };
    Some(RunAs {
        name: name.to_owned(),
        uid: id("-u")?,
        gid: id("-g")?,
    })
}

/// A command for `program`, run as `run_as` (through `runuser`) when given.
/// The working directory is set to `cwd` so that the target user can access it.
pub(crate) fn command_as(run_as: Option<&RunAs>, program: &Path, cwd: &Path) -> Command {
    let mut cmd = match run_as {
        Some(user) => {
            let mut c = Command::new(find_tool("runuser").unwrap_or_else(|| "runuser".into()));
            c.args(["-u", &user.name, "--"]).arg(program);
            c
        }
        None => Command::new(program),
    };
    cmd.current_dir(cwd).stdin(Stdio::null());
    cmd
}

/// Looks `name` up in PATH and the usual sbin directories.
pub(crate) fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    for extra in ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"] {
        dirs.push(PathBuf::from(extra));
    }
    dirs.into_iter()
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
}

pub(crate) fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    fs::metadata(p)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Renders a command line for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion, capturing output; a non-zero exit is an error.
pub(crate) fn run(cmd: &mut Command) -> Result<Output, Error> {
    let out = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| Error::io(format!("running `{}`", describe(cmd)), e))?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(Error::CommandFailed {
            command: describe(cmd),
            status: out.status.to_string(),
            output: combined_output(&out),
        })
    }
}

pub(crate) fn combined_output(out: &Output) -> String {
    let mut s = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !stdout.trim().is_empty() {
        if !s.is_empty() {
            s.push('\n');
        }
        s.push_str(stdout.trim());
    }
    s
}

/// A port that was free on 127.0.0.1 a moment ago.
pub(crate) fn free_port() -> io::Result<u16> {
    let l = TcpListener::bind(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0))?;
    Ok(l.local_addr()?.port())
}

/// Gives `path` to `run_as` (no-op when `None`).
pub(crate) fn chown(path: &Path, run_as: Option<&RunAs>) -> Result<(), Error> {
    if let Some(u) = run_as {
        std::os::unix::fs::chown(path, Some(u.uid), Some(u.gid))
            .map_err(|e| Error::io(format!("chown {} to {}", path.display(), u.name), e))?;
    }
    Ok(())
}

/// The last `max` bytes of a text file (for error messages).
pub(crate) fn tail_file(path: &Path, max: usize) -> String {
    match fs::read(path) {
        Ok(bytes) => {
            let start = bytes.len().saturating_sub(max);
            String::from_utf8_lossy(&bytes[start..]).into_owned()
        }
        Err(e) => format!("(could not read {}: {e})", path.display()),
    }
}

/// Starts a detached watchdog that waits for this test process to die and
/// then runs `cleanup` (a program and its arguments) and removes `dir`.
///
/// The watchdog runs in its own session (`setsid`) and ignores SIGHUP/SIGINT/
/// SIGTERM, so it outlives a test process that is killed or exits without
/// running destructors (e.g. a cluster kept in a `static`). Kill it (SIGKILL)
/// once the normal cleanup has been done.
pub(crate) fn spawn_watchdog(dir: &Path, cleanup: &[OsString]) -> io::Result<Child> {
    const SCRIPT: &str = r#"trap '' HUP INT TERM PIPE
pid="$1"; dir="$2"; shift 2
while kill -0 "$pid" 2>/dev/null; do sleep 1; done
"$@" >/dev/null 2>&1
rm -rf "$dir"
"#;
    let mut cmd = match find_tool("setsid") {
        Some(setsid) => {
            let mut c = Command::new(setsid);
            c.arg("sh");
            c
        }
        None => {
            let mut c = Command::new("sh");
            c.process_group(0);
            c
        }
    };
    cmd.arg("-c")
        .arg(SCRIPT)
        .arg("pg-pool-test-watchdog")
        .arg(std::process::id().to_string())
        .arg(dir)
        .args(cleanup)
        .current_dir("/")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    cmd.spawn()
}

/// Stops a watchdog started by [`spawn_watchdog`] without letting it clean up.
pub(crate) fn stop_watchdog(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub(crate) fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// Decodes `%XX` escapes.
pub(crate) fn percent_decode(s: &str) -> Option<String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = s.get(i + 1..i + 3)?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// An SQL string literal (standard_conforming_strings = on).
pub(crate) fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
