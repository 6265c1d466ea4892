//! Opening a session over any runtime's TCP stream with `Config::connect_raw`.

use std::future::Future;
use std::io;

use pg_pool_core::{Runtime, timeout};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::{Host, TargetSessionAttrs};
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

use crate::error::PgError;
use crate::runtime::drive;

/// Opens a session with `config` over streams made by `dial(host, port)`, driving it on
/// `runtime`: the runtime-neutral connect path of the smol and async-std adapters.
///
/// `config.connect_raw` alone uses only the user, password, database, options and
/// application name; this adds what `Config::connect` does on tokio:
///
/// - the hosts (or `hostaddr`s) are tried **in order** with their ports, and the last
///   host's error is returned if none works (`load_balance_hosts` is not applied);
/// - `connect_timeout`, per host as in libpq, bounds each host's TCP connect *and*
///   startup, on `runtime`'s timer;
/// - `target_session_attrs` is checked with `SHOW transaction_read_only`.
///
/// Unix-socket hosts are not supported here (`dial` speaks TCP). TLS is not built in.
///
/// # Errors
///
/// The last host's error: [`PgError::Connect`] for the TCP connect (or a timeout),
/// [`PgError::Driver`] for the startup (for example `28P01`), [`PgError::Config`] for
/// a config without hosts or with a unix-socket host.
///
/// # Cancel safety
///
/// Cancel safe: dropping the future drops the half-open stream and session.
pub async fn connect_raw<R, D, F, S>(
    runtime: &R,
    config: &Config,
    dial: D,
) -> Result<Client, PgError>
where
    R: Runtime,
    D: Fn(String, u16) -> F + Send + Sync,
    F: Future<Output = io::Result<S>> + Send,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let hosts = config.get_hosts();
    let hostaddrs = config.get_hostaddrs();
    let count = hosts.len().max(hostaddrs.len());
    if count == 0 {
        return Err(PgError::config("host", "no host or hostaddr is set"));
    }
    let ports = config.get_ports();
    let mut last_error = None;
    for i in 0..count {
        let host = match (hostaddrs.get(i), hosts.get(i)) {
            (Some(addr), _) => addr.to_string(),
            (None, Some(Host::Tcp(host))) => host.clone(),
            #[cfg(unix)]
            (None, Some(Host::Unix(path))) => {
                last_error = Some(PgError::config(
                    "host",
                    format!(
                        "unix socket {} needs the tokio runtime; use a TCP host",
                        path.display()
                    ),
                ));
                continue;
            }
            (None, None) => unreachable!("i < count"),
        };
        let port = ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(5432);
        let attempt = connect_host(runtime, config, &dial, host.clone(), port);
        let result = match config.get_connect_timeout() {
            Some(&limit) => timeout(runtime, limit, attempt).await.unwrap_or_else(|| {
                Err(PgError::Connect {
                    host: host.clone(),
                    port,
                    source: io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("connect_timeout ({limit:?}) passed"),
                    ),
                })
            }),
            None => attempt.await,
        };
        match result {
            Ok(client) => return Ok(client),
            Err(e) => {
                tracing::debug!(%host, port, error = %e, "could not connect to a host; trying the next");
                last_error = Some(e);
            }
        }
    }
    Err(last_error.expect("at least one host was tried"))
}

async fn connect_host<R, D, F, S>(
    runtime: &R,
    config: &Config,
    dial: &D,
    host: String,
    port: u16,
) -> Result<Client, PgError>
where
    R: Runtime,
    D: Fn(String, u16) -> F + Send + Sync,
    F: Future<Output = io::Result<S>> + Send,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stream = dial(host.clone(), port)
        .await
        .map_err(|source| PgError::Connect { host, port, source })?;
    let (client, connection) = config.connect_raw(stream, NoTls).await?;
    drive(runtime, connection);
    check_session_attrs(&client, config.get_target_session_attrs()).await?;
    Ok(client)
}

/// Refuses a session that does not match `target_session_attrs`, as `Config::connect` does.
async fn check_session_attrs(client: &Client, wanted: TargetSessionAttrs) -> Result<(), PgError> {
    let want_writes = match wanted {
        TargetSessionAttrs::ReadWrite => true,
        TargetSessionAttrs::ReadOnly => false,
        _ => return Ok(()),
    };
    let read_only = client
        .simple_query("SHOW transaction_read_only")
        .await?
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => row.get(0).map(|v| v == "on"),
            _ => None,
        })
        .unwrap_or(false);
    if read_only == want_writes {
        let reason = if want_writes {
            "database does not allow writes"
        } else {
            "database is not read only"
        };
        return Err(PgError::config("target_session_attrs", reason));
    }
    Ok(())
}

/// Dials `host:port` with `async-net` (any async-io based runtime: smol, async-std) and
/// adapts the stream to tokio's I/O traits with `tokio-util`'s compat layer.
#[cfg(feature = "raw-connect")]
pub(crate) async fn dial_async_net(
    host: String,
    port: u16,
) -> io::Result<tokio_util::compat::Compat<async_net::TcpStream>> {
    use tokio_util::compat::FuturesAsyncReadCompatExt as _;
    let stream = async_net::TcpStream::connect((host.as_str(), port)).await?;
    stream.set_nodelay(true)?;
    Ok(stream.compat())
}
