//! The `host` and `port` lists, paired as libpq pairs them.

use std::path::PathBuf;

use crate::error::{ConnInfoError, ConnInfoErrorKind, shown};
use crate::info::{Host, HostPort};
use crate::raw::Origin;

/// The host used when a port is given without a host (libpq would use its default unix
/// socket directory on Unix).
pub(crate) const DEFAULT_HOST: &str = "localhost";

/// The port used when none is given.
pub(crate) const DEFAULT_PORT: u16 = 5432;

/// Pairs the host list with the port list: one port for all hosts, or one per host.
pub(crate) fn pair_hosts(
    hosts: Option<(Vec<String>, Origin)>,
    ports: Option<(Vec<String>, Origin)>,
) -> Result<Vec<HostPort>, ConnInfoError> {
    let ports = match ports {
        Some((list, origin)) => Some(
            list.iter()
                .map(|p| parse_port(p, origin))
                .collect::<Result<Vec<u16>, _>>()?,
        ),
        None => None,
    };
    let hosts: Vec<Host> = match hosts {
        Some((list, _)) => list.iter().map(|h| parse_host(h)).collect(),
        None if ports.is_some() => vec![Host::Tcp(DEFAULT_HOST.to_owned())],
        None => return Ok(Vec::new()),
    };
    let ports = ports.unwrap_or_else(|| vec![DEFAULT_PORT]);
    if ports.len() != 1 && ports.len() != hosts.len() {
        return Err(ConnInfoError::for_key(
            ConnInfoErrorKind::InvalidValue,
            "port",
            "",
            format!(
                "lists {} ports for {} hosts; give one port for all hosts or one per host",
                ports.len(),
                hosts.len()
            ),
        ));
    }
    Ok(hosts
        .into_iter()
        .enumerate()
        .map(|(i, host)| HostPort {
            host,
            port: ports.get(i).copied().unwrap_or(ports[0]),
        })
        .collect())
}

/// A host entry: empty is the default host, an absolute path a unix socket directory.
fn parse_host(host: &str) -> Host {
    if host.is_empty() {
        Host::Tcp(DEFAULT_HOST.to_owned())
    } else if host.starts_with('/') {
        Host::Unix(PathBuf::from(host))
    } else {
        Host::Tcp(host.to_owned())
    }
}

/// A port entry: empty is the default port.
fn parse_port(port: &str, origin: Origin) -> Result<u16, ConnInfoError> {
    if port.is_empty() {
        return Ok(DEFAULT_PORT);
    }
    port.parse::<u16>()
        .ok()
        .filter(|&p| p != 0 && port.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| {
            let what = if origin.may_show() {
                shown(port)
            } else {
                "the port".to_owned()
            };
            ConnInfoError::for_key(
                ConnInfoErrorKind::InvalidValue,
                "port",
                &origin.label(),
                format!("{what} is not a number from 1 to 65535"),
            )
        })
}
