//! libpq's password file (`~/.pgpass`).

use std::fmt;
use std::io;
use std::path::Path;

use crate::error::{ConnInfoError, ConnInfoErrorKind};
use crate::hosts::{DEFAULT_HOST, DEFAULT_PORT};
use crate::info::{ConnInfo, Host};
use crate::secret::Secret;

/// Unix socket directories that libpq builds commonly default to; a passfile line for
/// `localhost` matches them, as in libpq.
const DEFAULT_SOCKET_DIRS: [&str; 3] = ["/tmp", "/var/run/postgresql", "/run/postgresql"];

/// The user matched when the connection string gives none: the drivers' default user.
const DEFAULT_USER: &str = "postgres";

/// A password file in libpq's format: one `host:port:database:user:password` per line,
/// `*` alone matching anything in the first four fields, `\:` and `\\` for a literal `:`
/// or `\`, `#` starting a comment line. The first matching line wins. `Debug` never shows
/// a password.
///
/// # Examples
///
/// ```
/// use pg_pool_conninfo::Passfile;
///
/// let file = Passfile::parse("# comment\ndb1:5432:*:app:s\\:cret\n*:*:*:*:fallback\n");
/// assert_eq!(file.find("db1", 5432, "shop", "app").unwrap().expose(), "s:cret");
/// assert_eq!(file.find("db2", 5433, "shop", "app").unwrap().expose(), "fallback");
/// ```
#[derive(Debug, Clone, Default)]
pub struct Passfile {
    lines: Vec<Line>,
}

#[derive(Debug, Clone)]
struct Line {
    /// Host, port, database, user; `None` is `*`.
    fields: [Option<String>; 4],
    password: Secret,
}

/// Why a password file is not used.
#[derive(Debug)]
#[non_exhaustive]
pub enum PassfileError {
    /// The file does not exist (libpq skips it silently).
    Missing,
    /// The path is not a plain file.
    NotAFile,
    /// Group or others have access to the file (`mode` shows the permission bits); like
    /// libpq, the file is ignored. `chmod 0600` it.
    Permissive {
        /// The file's permission bits.
        mode: u32,
    },
    /// The file could not be read.
    Io(io::Error),
}

impl fmt::Display for PassfileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PassfileError::Missing => f.write_str("password file does not exist"),
            PassfileError::NotAFile => f.write_str("password file is not a plain file"),
            PassfileError::Permissive { mode } => write!(
                f,
                "password file has group or world access (mode {mode:04o}); permissions should be u=rw (0600) or less"
            ),
            PassfileError::Io(e) => write!(f, "password file could not be read: {e}"),
        }
    }
}

impl std::error::Error for PassfileError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            PassfileError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl Passfile {
    /// Reads and parses the file at `path`, refusing it as libpq does.
    ///
    /// # Errors
    ///
    /// [`PassfileError::Missing`] if it does not exist, [`PassfileError::NotAFile`],
    /// [`PassfileError::Permissive`] if group or others may access it (Unix),
    /// [`PassfileError::Io`] if it cannot be read.
    pub fn load(path: &Path) -> Result<Self, PassfileError> {
        let meta = match std::fs::metadata(path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(PassfileError::Missing),
            Err(e) => return Err(PassfileError::Io(e)),
        };
        if !meta.is_file() {
            return Err(PassfileError::NotAFile);
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = meta.permissions().mode() & 0o7777;
            if mode & 0o077 != 0 {
                return Err(PassfileError::Permissive { mode });
            }
        }
        let bytes = std::fs::read(path).map_err(PassfileError::Io)?;
        Ok(Self::parse(&String::from_utf8_lossy(&bytes)))
    }

    /// Parses the text of a password file. Lines with fewer than five fields, or with an
    /// empty password, are skipped, as are comments and blank lines.
    pub fn parse(text: &str) -> Self {
        let lines = text
            .lines()
            .filter(|line| !line.trim().is_empty() && !line.starts_with('#'))
            .filter_map(parse_line)
            .collect();
        Self { lines }
    }

    /// The password of the first line matching `host`, `port`, `database` and `user`.
    pub fn find(&self, host: &str, port: u16, database: &str, user: &str) -> Option<Secret> {
        let port = port.to_string();
        let wanted = [host, port.as_str(), database, user];
        self.lines
            .iter()
            .find(|line| {
                line.fields
                    .iter()
                    .zip(wanted)
                    .all(|(field, value)| field.as_deref().is_none_or(|f| f == value))
            })
            .map(|line| line.password.clone())
    }

    /// The password for `info`'s hosts (all of them must agree).
    pub(crate) fn password_for(&self, info: &ConnInfo) -> Result<Option<Secret>, ConnInfoError> {
        let user = info.user.as_deref().unwrap_or(DEFAULT_USER);
        let database = info.dbname.as_deref().unwrap_or(user);
        let targets: Vec<(String, u16)> = if info.hosts.is_empty() {
            vec![(DEFAULT_HOST.to_owned(), DEFAULT_PORT)]
        } else {
            info.hosts
                .iter()
                .map(|hp| {
                    let host = match &hp.host {
                        Host::Tcp(name) => name.clone(),
                        Host::Unix(dir) => {
                            let dir = dir.to_string_lossy();
                            if DEFAULT_SOCKET_DIRS.contains(&dir.trim_end_matches('/')) {
                                DEFAULT_HOST.to_owned()
                            } else {
                                dir.into_owned()
                            }
                        }
                    };
                    (host, hp.port)
                })
                .collect()
        };
        let mut found: Option<Option<Secret>> = None;
        for (host, port) in &targets {
            let password = self.find(host, *port, database, user);
            match &found {
                None => found = Some(password),
                Some(first) if *first == password => {}
                Some(_) => {
                    return Err(ConnInfoError::new(
                        ConnInfoErrorKind::InvalidValue,
                        "passfile",
                        "gives the hosts different passwords (or some none), but one password is sent to \
                         whichever host answers; give the password in the connection string",
                    )
                    .outside_string());
                }
            }
        }
        Ok(found.flatten())
    }
}

/// One line into four match fields and the password; `None` if it has too few fields.
fn parse_line(line: &str) -> Option<Line> {
    let line = line.strip_suffix('\r').unwrap_or(line);
    let mut fields: [Option<String>; 4] = Default::default();
    let mut chars = line.chars();
    for field in &mut fields {
        let mut value = String::new();
        let mut escaped_any = false;
        let mut ended = false;
        while let Some(c) = chars.next() {
            match c {
                ':' => {
                    ended = true;
                    break;
                }
                '\\' => {
                    escaped_any = true;
                    // A backslash at the end of the line stays as it is.
                    value.push(chars.next().unwrap_or('\\'));
                }
                c => value.push(c),
            }
        }
        if !ended {
            return None;
        }
        *field = (escaped_any || value != "*").then_some(value);
    }
    let mut password = String::new();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => password.push(chars.next().unwrap_or('\\')),
            c => password.push(c),
        }
    }
    if password.is_empty() {
        return None;
    }
    Some(Line {
        fields,
        password: Secret::new(password),
    })
}
