//! Opening a session over any runtime's streams with `Config::connect_raw`.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use pg_pool_core::{Runtime, runtime::timeout};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::config::{Host, TargetSessionAttrs};
use tokio_postgres::{Client, Config, NoTls, SimpleQueryMessage};

use crate::error::PgError;
use crate::opened::{PgSession, SessionOptions, notification_channel};
use crate::runtime::drive;
use crate::sslmode::{Attempt, PgTls, refused_by_server};
use crate::tap::TapShared;
#[cfg(feature = "tls")]
use crate::tap_stream::TapConnect;
use crate::tap_stream::TapStream;

/// Where [`connect_raw`] asks its `dial` function to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum DialTarget {
    /// A TCP host (a name or an IP address) and port.
    Tcp {
        /// The host, or the `hostaddr` when one is set.
        host: String,
        /// The port.
        port: u16,
    },
    /// A unix socket: the `.s.PGSQL.<port>` file in a host given as a directory.
    Unix {
        /// The socket file.
        path: PathBuf,
    },
}

/// Opens a session with `config` over streams made by `dial`, secured as `tls` says,
/// driving it on `runtime`: the connect path of every runtime adapter (tokio, smol and
/// async-std), with default [`SessionOptions`]; see [`connect_raw_with`].
///
/// # Errors
///
/// As [`connect_raw_with`].
///
/// # Cancel safety
///
/// Cancel safe: dropping the future drops the half-open stream and session.
pub async fn connect_raw<R, D, F, S>(
    runtime: &R,
    config: &Config,
    tls: &PgTls,
    dial: D,
) -> Result<PgSession, PgError>
where
    R: Runtime,
    D: Fn(DialTarget) -> F + Send + Sync,
    F: Future<Output = io::Result<S>> + Send,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    connect_raw_with(runtime, config, tls, &SessionOptions::default(), dial).await
}

/// Opens a session with `config` over streams made by `dial`, secured as `tls` says,
/// driving it on `runtime` as `options` asks.
///
/// `config.connect_raw` alone uses only the user, password, database, options and
/// application name; this adds what `Config::connect` does on tokio:
///
/// - the hosts (or `hostaddr`s) are tried **in order** with their ports, and the last
///   host's error is returned if none works (`load_balance_hosts` is not applied); a host
///   that is a directory (`host_path`) is dialed as the unix socket `.s.PGSQL.<port>` in it;
/// - TLS per [`PgTls`] (libpq's `sslmode`), verified against the host name as given
///   (not the `hostaddr`); unix sockets never use TLS, as in libpq;
/// - `connect_timeout`, per host as in libpq, bounds each host's connect, TLS handshake
///   *and* startup, on `runtime`'s timer;
/// - `target_session_attrs` is checked with `SHOW transaction_read_only`.
///
/// # Errors
///
/// The last host's error: [`PgError::Connect`] for dialing (or a timeout),
/// [`PgError::Driver`] for the TLS handshake or the startup (for example `28P01`),
/// [`PgError::Config`] for a config without hosts.
///
/// # Cancel safety
///
/// Cancel safe: dropping the future drops the half-open stream and session.
pub async fn connect_raw_with<R, D, F, S>(
    runtime: &R,
    config: &Config,
    tls: &PgTls,
    options: &SessionOptions,
    dial: D,
) -> Result<PgSession, PgError>
where
    R: Runtime,
    D: Fn(DialTarget) -> F + Send + Sync,
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
        let port = ports
            .get(i)
            .or_else(|| ports.first())
            .copied()
            .unwrap_or(5432);
        let (target, tls_name) = match (hostaddrs.get(i), hosts.get(i)) {
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
        };
        let label = match &target {
            DialTarget::Tcp { host, .. } => host.clone(),
            DialTarget::Unix { path } => path.display().to_string(),
        };
        let attempt = connect_host(runtime, config, tls, options, &dial, target, tls_name);
        let result = match config.get_connect_timeout() {
            Some(&limit) => timeout(runtime, limit, attempt).await.unwrap_or_else(|| {
                Err(PgError::Connect {
                    host: label.clone(),
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
            Ok(session) => return Ok(session),
            Err(e) => {
                tracing::debug!(host = %label, port, error = %e, "could not connect to a host; trying the next");
                last_error = Some(e);
            }
        }
    }
    Err(last_error.expect("at least one host was tried"))
}

/// One host: dial, TLS as `tls` says (none for a unix socket, `tls_name == None`),
/// startup, session attributes; under `allow`, a refused plain session is retried once
/// over TLS on a new stream.
async fn connect_host<R, D, F, S>(
    runtime: &R,
    config: &Config,
    tls: &PgTls,
    options: &SessionOptions,
    dial: &D,
    target: DialTarget,
    tls_name: Option<String>,
) -> Result<PgSession, PgError>
where
    R: Runtime,
    D: Fn(DialTarget) -> F + Send + Sync,
    F: Future<Output = io::Result<S>> + Send,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let attempt = match &tls_name {
        Some(_) => tls.attempt(),
        None => Attempt::Plain { then_tls: false },
    };
    let first = start(
        runtime,
        config,
        tls,
        options,
        dial,
        &target,
        tls_name.as_deref(),
        attempt,
    )
    .await;
    let session = match (first, attempt) {
        (Err(e), Attempt::Plain { then_tls: true }) if refused_by_server(&e) => {
            tracing::debug!(error = %e, "plain session refused under sslmode=allow; trying TLS");
            let retry = Attempt::Tls { required: true };
            start(
                runtime,
                config,
                tls,
                options,
                dial,
                &target,
                tls_name.as_deref(),
                retry,
            )
            .await?
        }
        (result, _) => result?,
    };
    check_session_attrs(&session.client, config.get_target_session_attrs()).await?;
    Ok(session)
}

/// Dials `target` and runs the startup for one [`Attempt`].
#[allow(clippy::too_many_arguments)]
async fn start<R, D, F, S>(
    runtime: &R,
    config: &Config,
    tls: &PgTls,
    options: &SessionOptions,
    dial: &D,
    target: &DialTarget,
    tls_name: Option<&str>,
    attempt: Attempt,
) -> Result<PgSession, PgError>
where
    R: Runtime,
    D: Fn(DialTarget) -> F + Send + Sync,
    F: Future<Output = io::Result<S>> + Send,
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let stream = dial(target.clone()).await.map_err(|source| match target {
        DialTarget::Tcp { host, port } => PgError::Connect {
            host: host.clone(),
            port: *port,
            source,
        },
        // `<dir>/.s.PGSQL.<port>`: reported as the directory and the port, as given.
        DialTarget::Unix { path } => PgError::Connect {
            host: path.parent().unwrap_or(path).display().to_string(),
            port: path
                .extension()
                .and_then(|e| e.to_str()?.parse().ok())
                .unwrap_or(0),
            source,
        },
    })?;
    let config = tls.driver_config(config, attempt);
    let (sink, notifications) = notification_channel(options);
    // The protocol tap reads the session in plaintext: on the dialled stream (which goes
    // quiet if the server switches to TLS) and, for TLS, on the TLS stream. It is armed
    // once the startup is over, before the connection is driven: both directions are then
    // at a message boundary.
    let tap = Arc::new(TapShared::default());
    let client = match attempt {
        Attempt::Plain { .. } => {
            let stream = TapStream::plain(stream, Arc::clone(&tap));
            // Boxed: the startup future is large (the stream, the codec, the tap), and a
            // caller's future may hold several connects (or run on a small thread stack).
            let (client, connection) = Box::pin(config.connect_raw(stream, NoTls)).await?;
            tap.arm();
            drive(runtime, connection, sink);
            client
        }
        Attempt::Tls { .. } => {
            #[cfg(feature = "tls")]
            {
                let stream = TapStream::before_tls(stream, Arc::clone(&tap));
                let connector = TapConnect::new(
                    crate::tls::RustlsConnect::new(tls.rustls()?.clone(), tls_name.unwrap_or("")),
                    Arc::clone(&tap),
                );
                let (client, connection) = Box::pin(config.connect_raw(stream, connector)).await?;
                tap.arm();
                drive(runtime, connection, sink);
                client
            }
            #[cfg(not(feature = "tls"))]
            {
                let _ = (stream, tls_name, sink);
                return Err(PgError::config(
                    "sslmode",
                    "TLS needs the `tls` feature of pg-pool-tokio-postgres",
                ));
            }
        }
    };
    Ok(PgSession {
        client,
        notifications,
        tap: Some(tap),
    })
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
