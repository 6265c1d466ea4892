//! The hosts of a `tokio_postgres::Config`, as the host loop dials them.

use tokio_postgres::Config;
use tokio_postgres::config::Host;

use crate::error::PgError;
use crate::raw_connect::DialTarget;

/// The hosts of `config` in order, each with the name its TLS certificate is checked
/// against (`None` for a unix socket).
pub(crate) fn targets(config: &Config) -> Result<Vec<(DialTarget, Option<String>)>, PgError> {
    let hosts = config.get_hosts();
    let hostaddrs = config.get_hostaddrs();
    let count = hosts.len().max(hostaddrs.len());
    if count == 0 {
        return Err(PgError::config("host", "no host or hostaddr is set"));
    }
    let ports = config.get_ports();
    let mut targets = Vec::with_capacity(count);
    for i in 0..count {
        let port = ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(5432);
        targets.push(match (hostaddrs.get(i), hosts.get(i)) {
            (Some(addr), host) => {
                let name = match host {
                    Some(Host::Tcp(name)) => name.clone(),
                    _ => addr.to_string(),
                };
                let host = addr.to_string();
                (DialTarget::Tcp { host, port }, Some(name))
            }
            (None, Some(Host::Tcp(host))) => {
                let target = DialTarget::Tcp {
                    host: host.clone(),
                    port,
                };
                (target, Some(host.clone()))
            }
            #[cfg(unix)]
            (None, Some(Host::Unix(dir))) => {
                let path = dir.join(format!(".s.PGSQL.{port}"));
                (DialTarget::Unix { path }, None)
            }
            (None, None) => unreachable!("i < count"),
        });
    }
    Ok(targets)
}

/// The host and port [`PgError::Connect`] reports for `target`: a unix socket
/// `<dir>/.s.PGSQL.<port>` as the directory and the port, as given.
pub(crate) fn host_port(target: &DialTarget) -> (String, u16) {
    match target {
        DialTarget::Tcp { host, port } => (host.clone(), *port),
        DialTarget::Unix { path } => (
            path.parent().unwrap_or(path).display().to_string(),
            path.extension()
                .and_then(|e| e.to_str()?.parse().ok())
                .unwrap_or(0),
        ),
    }
}
