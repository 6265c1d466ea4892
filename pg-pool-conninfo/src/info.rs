//! What a connection string says.

use std::path::PathBuf;
use std::time::Duration;

use crate::secret::Secret;
use crate::tls::TlsSettings;

/// A server to connect to: a TCP host name or address, or a unix socket directory.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Host {
    /// A host name or an IP address.
    Tcp(String),
    /// A directory holding the server's unix socket (`.s.PGSQL.<port>`).
    Unix(PathBuf),
}

/// One host and its port, in the order the connection string lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    /// The host.
    pub host: Host,
    /// The port (also the socket file's suffix for a unix socket). Default: 5432.
    pub port: u16,
}

/// libpq's `target_session_attrs`: which server of several hosts is acceptable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum TargetSessionAttrs {
    /// Any server (the default).
    #[default]
    Any,
    /// A server that accepts writes by default.
    ReadWrite,
    /// A server that is read-only by default.
    ReadOnly,
    /// A server that is not in recovery.
    Primary,
    /// A server in recovery.
    Standby,
    /// A standby if any host is one, otherwise any server.
    PreferStandby,
}

/// A parsed connection string.
///
/// Fields left unset by the string are `None` (or empty) so that environment defaults and
/// the driver's own defaults can be layered under it. `Debug` never prints the password.
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ConnInfo {
    /// Hosts with their ports, tried in order. Empty: not given.
    pub hosts: Vec<HostPort>,
    /// `user`.
    pub user: Option<String>,
    /// `password`.
    pub password: Option<Secret>,
    /// `dbname`.
    pub dbname: Option<String>,
    /// `application_name`.
    pub application_name: Option<String>,
    /// `options` (command-line options sent to the server at startup).
    pub options: Option<String>,
    /// `connect_timeout`, per host as in libpq.
    pub connect_timeout: Option<Duration>,
    /// `sslmode`, `sslrootcert`, `sslcert`, `sslkey`, `channel_binding`.
    pub tls: TlsSettings,
    /// `target_session_attrs`.
    pub target_session_attrs: TargetSessionAttrs,
    /// Other startup parameters sent to the server as given (`client_encoding`, any server
    /// setting), in the order given.
    pub params: Vec<(String, String)>,
}
