//! The metrics server of `cargo run --example metrics_server`: two pools, `primary` and
//! `replica`, under a small load, and a minimal HTTP endpoint serving their series at
//! `GET /metrics` in the Prometheus text format.
//!
//! The HTTP part is deliberately small (one request per connection, `Connection: close`,
//! bounded request size and time): it is an example, not a web server.

use std::error::Error;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use pg_pool::metrics::Pools;
use pg_pool::metrics::prometheus::{PrometheusExporter, TEXT_CONTENT_TYPE};
use pg_pool::wire::{WireConfig, WireConnector, WirePoolable};
use pg_pool::{ConnPool, LifecycleHooks};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// Any error of the example.
pub type BoxError = Box<dyn Error + Send + Sync>;

/// Command-line options: `--listen ADDR` (default `127.0.0.1:9187`) and `--seconds N`
/// (default 60; 0 runs until Ctrl-C).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Address to serve `/metrics` on.
    pub listen: SocketAddr,
    /// How long to run; `None` until Ctrl-C.
    pub duration: Option<Duration>,
}

impl Options {
    /// Parses the arguments after the program name.
    ///
    /// # Errors
    ///
    /// An unknown flag, a missing value, or a value that does not parse, named in the
    /// message.
    pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Self, String> {
        let mut options = Options {
            listen: SocketAddr::from(([127, 0, 0, 1], 9187)),
            duration: Some(Duration::from_secs(60)),
        };
        let mut args = args.into_iter();
        while let Some(flag) = args.next() {
            let value = |args: &mut dyn Iterator<Item = String>| {
                args.next().ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--listen" => {
                    let raw = value(&mut args)?;
                    options.listen = raw
                        .parse()
                        .map_err(|e| format!("--listen {raw:?}: not an address ({e})"))?;
                }
                "--seconds" => {
                    let raw = value(&mut args)?;
                    let seconds: u64 = raw
                        .parse()
                        .map_err(|e| format!("--seconds {raw:?}: not a number ({e})"))?;
                    options.duration = (seconds > 0).then(|| Duration::from_secs(seconds));
                }
                other => {
                    return Err(format!(
                        "unknown argument {other:?} (expected --listen ADDR, --seconds N)"
                    ));
                }
            }
        }
        Ok(options)
    }
}

/// Two pools under load and the exporter over them; [`Load::stop`] ends it.
#[derive(Debug)]
pub struct Load {
    /// The `primary` pool: 4 connections, 6 workers.
    pub primary: ConnPool<WirePoolable>,
    /// The `replica` pool: 2 connections, 5 workers with a 150 ms checkout timeout, so callers
    /// queue and some time out.
    pub replica: ConnPool<WirePoolable>,
    /// The Prometheus exporter over both pools.
    pub exporter: Arc<PrometheusExporter>,
    /// Queries that succeeded.
    pub queries: Arc<AtomicU64>,
    /// Checkouts or queries that failed.
    pub failures: Arc<AtomicU64>,
    stop: Arc<AtomicBool>,
    workers: Vec<JoinHandle<()>>,
}

async fn pool(
    config: &WireConfig,
    name: &str,
    max_size: usize,
    checkout_timeout: Duration,
) -> Result<ConnPool<WirePoolable>, BoxError> {
    let connector = WireConnector::new(config.clone().with_application_name(name));
    let mut pool_config = connector.config().pool_config();
    pool_config.name = name.into();
    pool_config.max_size = max_size;
    pool_config.min_idle = 1;
    pool_config.checkout_timeout = checkout_timeout;
    Ok(ConnPool::builder(connector)
        .config(pool_config)
        .hooks(LifecycleHooks::default())
        .build()
        .await?)
}

impl Load {
    /// Opens both pools against `config`'s server and starts the workers: each checks out
    /// a connection, runs a short `pg_sleep`, returns it and pauses, until stopped.
    ///
    /// # Errors
    ///
    /// When a pool cannot open its first connection.
    pub async fn start(config: &WireConfig) -> Result<Self, BoxError> {
        let primary = pool(config, "primary", 4, Duration::from_secs(2)).await?;
        let replica = pool(config, "replica", 2, Duration::from_millis(150)).await?;
        let pools = Pools::new();
        pools.add(primary.downgrade()).add(replica.downgrade());
        let exporter = Arc::new(PrometheusExporter::new(pools));
        let stop = Arc::new(AtomicBool::new(false));
        let (queries, failures) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
        let mut workers = Vec::new();
        for (pool, count, query_ms, pause_ms) in [(&primary, 6, 5, 10), (&replica, 5, 20, 5)] {
            for i in 0..count {
                let (pool, stop) = (pool.clone(), Arc::clone(&stop));
                let (queries, failures) = (Arc::clone(&queries), Arc::clone(&failures));
                let sql = format!("SELECT pg_sleep({})", f64::from(query_ms + i) / 1000.0);
                workers.push(tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let result = async {
                            let mut conn = pool.get().await?;
                            conn.execute(&sql).await?;
                            Ok::<_, BoxError>(())
                        }
                        .await;
                        let counter = if result.is_ok() { &queries } else { &failures };
                        counter.fetch_add(1, Ordering::Relaxed);
                        tokio::time::sleep(Duration::from_millis(pause_ms)).await;
                    }
                }));
            }
        }
        Ok(Self {
            primary,
            replica,
            exporter,
            queries,
            failures,
            stop,
            workers,
        })
    }

    /// Stops the workers and drains both pools (every connection closed).
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        for worker in self.workers {
            let _ = worker.await;
        }
        self.primary.drain().await;
        self.replica.drain().await;
    }
}

/// Largest request head read; longer requests get `431`.
const MAX_REQUEST: usize = 8 * 1024;
/// Longest a client may take to send its request head.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `GET /metrics` from `exporter` on `listener` until `shutdown` completes.
///
/// # Errors
///
/// When accepting connections fails.
///
/// # Cancel safety
///
/// Dropping the future stops accepting; connections already accepted finish on their own
/// tasks (each bounded by a request timeout).
pub async fn serve(
    listener: TcpListener,
    exporter: Arc<PrometheusExporter>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return Ok(()),
            accepted = listener.accept() => {
                let (stream, _) = accepted?;
                let exporter = Arc::clone(&exporter);
                tokio::spawn(async move {
                    let _ = respond(stream, &exporter).await;
                });
            }
        }
    }
}

async fn respond(mut stream: TcpStream, exporter: &PrometheusExporter) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(1024);
    let read = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let mut buf = [0u8; 1024];
        while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() <= MAX_REQUEST {
            let n = stream.read(&mut buf).await?;
            if n == 0 {
                break;
            }
            head.extend_from_slice(&buf[..n]);
        }
        Ok::<_, std::io::Error>(())
    })
    .await;
    let (status, content_type, body) = if head.len() > MAX_REQUEST {
        (
            "431 Request Header Fields Too Large",
            "text/plain",
            String::new(),
        )
    } else if read.is_err() {
        ("408 Request Timeout", "text/plain", String::new())
    } else {
        read.unwrap_or(Ok(()))?;
        let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
        let line = String::from_utf8_lossy(line);
        let mut parts = line.split(' ');
        match (parts.next(), parts.next().map(|p| p.split('?').next())) {
            (Some("GET"), Some(Some("/metrics"))) => {
                ("200 OK", TEXT_CONTENT_TYPE, exporter.render())
            }
            (Some("GET"), Some(Some("/"))) => (
                "200 OK",
                "text/plain",
                "pg-pool metrics: GET /metrics\n".to_owned(),
            ),
            (Some("GET"), _) => ("404 Not Found", "text/plain", "not found\n".to_owned()),
            _ => ("405 Method Not Allowed", "text/plain", String::new()),
        }
    };
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Options, String> {
        Options::parse(args.iter().map(|s| (*s).to_owned()))
    }

    #[test]
    fn options() {
        let defaults = parse(&[]).unwrap();
        assert_eq!(defaults.listen, SocketAddr::from(([127, 0, 0, 1], 9187)));
        assert_eq!(defaults.duration, Some(Duration::from_secs(60)));
        let set = parse(&["--listen", "127.0.0.1:0", "--seconds", "0"]).unwrap();
        assert_eq!(set.listen.port(), 0);
        assert_eq!(set.duration, None);
        assert!(parse(&["--listen"]).unwrap_err().contains("needs a value"));
        assert!(
            parse(&["--listen", "nowhere"])
                .unwrap_err()
                .contains("not an address")
        );
        assert!(
            parse(&["--seconds", "-1"])
                .unwrap_err()
                .contains("not a number")
        );
        assert!(
            parse(&["--verbose"])
                .unwrap_err()
                .contains("unknown argument")
        );
    }
}
