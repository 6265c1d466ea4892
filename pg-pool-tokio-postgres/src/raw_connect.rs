//! Opening a session over any runtime's streams with `Config::connect_raw`.

use std::fmt;
use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use pg_pool_conninfo::TargetSessionAttrs;
use pg_pool_core::{Runtime, runtime::timeout};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_postgres::{Config, NoTls};

use crate::error::PgError;
use crate::host_errors::{HostFailure, HostFailures};
use crate::hosts::{host_port, targets};
use crate::opened::{PgSession, SessionOptions, notification_channel};
use crate::runtime::drive;
use crate::session_attrs;
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

/// `host:port` (`[v6]:port` for an IPv6 address), or the socket file's path.
impl fmt::Display for DialTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DialTarget::Tcp { host, port } if host.contains(':') => write!(f, "[{host}]:{port}"),
            DialTarget::Tcp { host, port } => write!(f, "{host}:{port}"),
            DialTarget::Unix { path } => write!(f, "{}", path.display()),
        }
    }
}

/// Opens a session with `config` over streams made by `dial`, secured as `tls` says,
/// driving it on `runtime`: the connect path of every runtime adapter (tokio, smol and
/// async-std), with default [`SessionOptions`] (so `config`'s own `target_session_attrs`);
/// see [`connect_raw_with`].
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
/// application name; this adds what libpq (and `Config::connect` on tokio) does:
///
/// - the hosts (or `hostaddr`s) are tried **in order** with their ports
///   (`load_balance_hosts` is not applied); a host that is a directory (`host_path`) is
///   dialed as the unix socket `.s.PGSQL.<port>` in it;
/// - TLS per [`PgTls`] (libpq's `sslmode`), verified against the host name as given
///   (not the `hostaddr`); unix sockets never use TLS, as in libpq;
/// - `connect_timeout`, per host as in libpq, bounds each host's connect, TLS handshake,
///   startup *and* `target_session_attrs` check, on `runtime`'s timer;
/// - `target_session_attrs` ([`SessionOptions::target_session_attrs`], or `config`'s own
///   when the options give none), with libpq's meaning, after the startup, by one query
///   (`SELECT pg_is_in_recovery(), current_setting('transaction_read_only')`; none for
///   `any`; tokio-postgres does not hand the server's `in_hot_standby` report to the
///   client, so the query is always used): `read-write` wants `transaction_read_only`
///   off, `read-only` on, `primary` a server not in recovery, `standby` one in recovery;
///   `prefer-standby` first goes over the hosts accepting only a standby, then, if none
///   was found, over them again accepting any server (the second pass is skipped when no
///   host was reachable in the first, as it could find nothing new). A server that does
///   not match is closed (`Terminate`) and the next host tried.
///
/// As in libpq, a server that refuses the session with an error during the startup (a
/// wrong password, `28P01`; no `pg_hba.conf` entry; an unknown database; too many
/// connections) **ends the search**: the remaining hosts are not tried, because they
/// would most likely refuse the same credentials. The exception, also libpq's, is
/// `57P03` (`cannot_connect_now`: the server is starting up, shutting down or in recovery
/// without hot standby), after which the next host is tried. Failing to reach a host,
/// a TLS failure, a `connect_timeout`, a failed `target_session_attrs` query and a
/// server without the attributes asked for all move on to the next host.
///
/// # Errors
///
/// With one host tried, that host's error: [`PgError::Connect`] for dialing (or a
/// `connect_timeout`), [`PgError::Driver`] for the TLS handshake or the startup (for
/// example `28P01`), [`PgError::SessionAttrs`] for a server without the attributes asked
/// for. With several, [`PgError::AllHostsFailed`], naming each host and why
/// (`could not connect to any of 2 hosts: 127.0.0.1:5433: connection refused (os error
/// 111); 127.0.0.1:5434: server is not a standby (target_session_attrs=standby)`); under
/// `prefer-standby` the reasons are those of the last pass made. [`PgError::Config`] for a
/// config without hosts.
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
    let hosts = targets(config)?;
    let wanted = options
        .target_session_attrs()
        .unwrap_or_else(|| session_attrs::from_driver(config.get_target_session_attrs()));
    let passes = session_attrs::passes(wanted);
    let mut failures = Vec::new();
    for (pass, &accept) in passes.iter().enumerate() {
        failures.clear();
        // Whether any host got as far as the check (a later pass may accept it).
        let mut reached = false;
        for (target, tls_name) in &hosts {
            let attempt = connect_host(
                runtime,
                config,
                tls,
                options,
                &dial,
                target.clone(),
                tls_name.clone(),
                accept,
            );
            let result = match config.get_connect_timeout() {
                Some(&limit) => timeout(runtime, limit, attempt).await.unwrap_or_else(|| {
                    let (host, port) = host_port(target);
                    Err(Failed {
                        error: PgError::Connect {
                            host,
                            port,
                            source: io::Error::new(
                                io::ErrorKind::TimedOut,
                                format!("connect_timeout ({limit:?}) passed"),
                            ),
                        },
                        ends_search: false,
                        reached: false,
                    })
                }),
                None => attempt.await,
            };
            match result {
                Ok(session) => return Ok(session),
                Err(Failed {
                    error,
                    ends_search,
                    reached: got_there,
                }) => {
                    tracing::debug!(
                        host = %target,
                        target_session_attrs = session_attrs::spelling(accept),
                        error = %error,
                        "could not use a host"
                    );
                    reached |= got_there;
                    failures.push(HostFailure::new(target.clone(), error));
                    if ends_search {
                        return Err(gathered(failures, hosts.len()));
                    }
                }
            }
        }
        if !reached {
            // Nothing was reachable: a further pass could find nothing the first did not.
            break;
        }
        if pass + 1 < passes.len() {
            tracing::debug!("no host is a standby; trying them again accepting any server");
        }
    }
    Err(gathered(failures, hosts.len()))
}

/// One host's failure, and whether it ends the search (as in libpq).
struct Failed {
    error: PgError,
    ends_search: bool,
    /// The session was open when it failed (in the `target_session_attrs` check).
    reached: bool,
}

impl Failed {
    /// A failure of the dial, TLS or startup: it ends the search when the server refused
    /// the session with an error response, except `57P03` (cannot connect now).
    fn startup(error: PgError) -> Self {
        let ends_search = matches!(&error, PgError::Driver(e)
            if e.as_db_error().is_some_and(|db| db.code().code() != "57P03"));
        Self {
            error,
            ends_search,
            reached: false,
        }
    }
}

/// One host's error as it is, several gathered into [`PgError::AllHostsFailed`].
fn gathered(mut failures: Vec<HostFailure>, hosts: usize) -> PgError {
    match failures.len() {
        0 => PgError::config("host", "no host or hostaddr is set"),
        1 => failures.pop().expect("one failure").into_error(),
        _ => PgError::AllHostsFailed(HostFailures::new(failures, hosts)),
    }
}

/// One host: dial, TLS as `tls` says (none for a unix socket, `tls_name == None`),
/// startup, then the check that the server is what `accept` asks for; under `allow`, a
/// refused plain session is retried once over TLS on a new stream. A session that does
/// not match is dropped, which ends it with `Terminate`.
#[allow(clippy::too_many_arguments)]
async fn connect_host<R, D, F, S>(
    runtime: &R,
    config: &Config,
    tls: &PgTls,
    options: &SessionOptions,
    dial: &D,
    target: DialTarget,
    tls_name: Option<String>,
    accept: TargetSessionAttrs,
) -> Result<PgSession, Failed>
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
            .await
        }
        (result, _) => result,
    }
    .map_err(Failed::startup)?;
    match session_attrs::check(&session.client, accept).await {
        Ok(()) => Ok(session),
        Err(error) => Err(Failed {
            error,
            ends_search: false,
            reached: true,
        }),
    }
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
    let (client, stop) = match attempt {
        Attempt::Plain { .. } => {
            let stream = TapStream::plain(stream, Arc::clone(&tap));
            // Boxed: the startup future is large (the stream, the codec, the tap), and a
            // caller's future may hold several connects (or run on a small thread stack).
            let (client, connection) = Box::pin(config.connect_raw(stream, NoTls)).await?;
            tap.arm();
            let stop = drive(runtime, connection, sink);
            (client, stop)
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
                let stop = drive(runtime, connection, sink);
                (client, stop)
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
        stop: Some(stop),
    })
}
