//! A real scrape: the metrics server of `examples/metrics_server` (two pools under load
//! against a real PostgreSQL), scraped every second by a real Prometheus, checked through
//! Prometheus' query API and by `promtool check metrics`.
//!
//! Needs `prometheus` and `promtool` (Debian's `prometheus` package;
//! `scripts/install-test-deps.sh` installs it).

mod support;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use pg_pool::wire::WireConfig;
use pg_pool_examples::metrics_server::{Load, serve};
use pg_pool_test_support::TestCluster;
use serde_json::Value;

/// Longest any one wait (Prometheus ready, a series present) may take.
const DEADLINE: Duration = Duration::from_secs(90);

/// The one `promtool` lint the semantic-convention names trip: OpenTelemetry's
/// `db.client.connection.count` maps to `db_client_connection_count`, a gauge whose name ends
/// in `_count`, which the linter reserves for histograms and summaries. The exposition still
/// parses (a parse error is exit code 1; lint findings are exit code 3).
const KNOWN_LINT: &str = "db_client_connection_count non-histogram and non-summary metrics should not have \"_count\" suffix";

fn find_tool(name: &str) -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|path| std::env::split_paths(&path).collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .chain([PathBuf::from("/usr/bin"), PathBuf::from("/usr/local/bin")]);
    for dir in candidates {
        let path = dir.join(name);
        if path.is_file() {
            return path;
        }
    }
    panic!(
        "{name} not found: install Debian's prometheus package (bash scripts/install-test-deps.sh)"
    );
}

/// `GET path` on `addr` with HTTP/1.0; returns the status code and the body.
fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    stream.set_write_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: */*\r\n\r\n"
    )?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let response = String::from_utf8_lossy(&response);
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A Prometheus server on loopback, killed and reaped on drop.
struct Prometheus {
    child: Child,
    addr: SocketAddr,
    log: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second, with its storage in `dir`, on a
    /// free loopback port (a new one if another process took the port first).
    fn start(dir: &Path, target: SocketAddr) -> Prometheus {
        let binary = find_tool("prometheus");
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: pg-pool\n    static_configs:\n      - targets: [\"{target}\"]\n"
            ),
        )
        .unwrap();
        for attempt in 1..=3 {
            let port = StdListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .unwrap()
                .port();
            let addr = SocketAddr::from(([127, 0, 0, 1], port));
            let log = dir.join(format!("prometheus-{attempt}.log"));
            let child = Command::new(&binary)
                .arg(format!("--config.file={}", config.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.join(format!("data-{attempt}")).display()
                ))
                .arg(format!("--web.listen-address={addr}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .expect("start prometheus");
            let mut prometheus = Prometheus { child, addr, log };
            let started = Instant::now();
            loop {
                if let Ok(Some(status)) = prometheus.child.try_wait() {
                    eprintln!(
                        "prometheus exited ({status}) on attempt {attempt}:\n{}",
                        prometheus.log_text()
                    );
                    break;
                }
                if matches!(http_get(addr, "/-/ready"), Ok((200, _))) {
                    println!("prometheus ready on {addr} after {:?}", started.elapsed());
                    return prometheus;
                }
                assert!(
                    started.elapsed() < DEADLINE,
                    "prometheus not ready after {:?}:\n{}",
                    started.elapsed(),
                    prometheus.log_text()
                );
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        panic!("prometheus did not start in three attempts");
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Runs an instant query; returns `data.result`.
    fn query(&self, promql: &str) -> Vec<Value> {
        let path = format!("/api/v1/query?query={}", percent_encode(promql));
        let (status, body) = http_get(self.addr, &path).expect("query prometheus");
        let json: Value = serde_json::from_str(&body)
            .unwrap_or_else(|e| panic!("{promql}: not JSON ({e}): {body}"));
        assert_eq!(status, 200, "{promql}: {body}");
        assert_eq!(json["status"], "success", "{promql}: {body}");
        json["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }

    /// Queries until `accept` takes the result, or fails the test after [`DEADLINE`].
    fn query_until(&self, promql: &str, accept: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let started = Instant::now();
        loop {
            let result = self.query(promql);
            if accept(&result) {
                println!(
                    "{promql} after {:?}: {}",
                    started.elapsed(),
                    Value::from(result.clone())
                );
                return result;
            }
            assert!(
                started.elapsed() < DEADLINE,
                "{promql}: not there after {:?}: {result:?}\n{}",
                started.elapsed(),
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

fn pools_in(result: &[Value]) -> Vec<String> {
    let mut pools: Vec<String> = result
        .iter()
        .filter_map(|r| r["metric"]["db_client_connection_pool_name"].as_str())
        .map(str::to_owned)
        .collect();
    pools.sort();
    pools.dedup();
    pools
}

fn value(sample: &Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

/// `promtool check metrics` on one exposition: parses, and no lint finding but the known one.
fn promtool_check(exposition: &str) {
    let mut child = Command::new(find_tool("promtool"))
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(exposition.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    println!("promtool check metrics: {} {text}", output.status);
    let findings: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    match output.status.code() {
        Some(0) => {}
        Some(3) => assert_eq!(findings, [KNOWN_LINT], "only the known lint finding"),
        _ => panic!("promtool rejected the exposition: {text}"),
    }
}

fn check_with_prometheus(metrics: SocketAddr) {
    // The exposition as served, checked by promtool.
    let (status, exposition) = http_get(metrics, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200);
    assert!(exposition.contains("db_client_connection_pool_name=\"replica\""));
    promtool_check(&exposition);

    let dir = tempfile::tempdir().unwrap();
    let prometheus = Prometheus::start(dir.path(), metrics);

    // The target is up and its scrapes are accepted.
    prometheus.query_until("up{job=\"pg-pool\"}", |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });

    // Connection counts for both pools, both states.
    let counts = prometheus.query_until("db_client_connection_count", |r| {
        r.len() == 4 && pools_in(r) == ["primary", "replica"]
    });
    for sample in &counts {
        let state = sample["metric"]["db_client_connection_state"]
            .as_str()
            .unwrap();
        assert!(["idle", "used"].contains(&state), "{sample}");
        assert!(value(sample) >= 0.0);
    }

    // The wait-time histogram, as Prometheus computes quantiles over it.
    let p99 = "histogram_quantile(0.99, sum by (le, db_client_connection_pool_name) \
               (rate(db_client_connection_wait_time_seconds_bucket[15s])))";
    let result = prometheus.query_until(p99, |r| {
        pools_in(r) == ["primary", "replica"] && r.iter().all(|s| value(s).is_finite())
    });
    for sample in &result {
        let pool = sample["metric"]["db_client_connection_pool_name"]
            .as_str()
            .unwrap();
        let seconds = value(sample);
        println!("wait p99 {pool}: {seconds} s");
        assert!((0.0..=67.2).contains(&seconds), "{pool}: {seconds}");
        if pool == "replica" {
            // Five workers share two connections holding them ~20 ms each: callers queue.
            assert!(seconds > 0.0, "replica callers wait: {seconds}");
        }
    }

    // Every dashboard query is valid PromQL over the scraped series and returns data.
    let dashboard = support::dashboard();
    for (place, expr) in support::dashboard_queries(&dashboard) {
        if expr.starts_with("label_values(") {
            continue; // a Grafana function, not PromQL
        }
        let promql = support::instantiate(&expr);
        let result = prometheus.query_until(&promql, |r| !r.is_empty());
        let values: Vec<f64> = result.iter().map(value).collect();
        println!("  {place}: {values:?}");
    }

    // Prometheus' own view of the scrapes: healthy, no error.
    let (_, targets) = http_get(prometheus.addr, "/api/v1/targets").unwrap();
    let targets: Value = serde_json::from_str(&targets).unwrap();
    let active = &targets["data"]["activeTargets"][0];
    assert_eq!(active["health"], "up", "{active}");
    assert_eq!(active["lastError"], "", "{active}");
    drop(prometheus);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_two_pools() {
    let started = Instant::now();
    let cluster = TestCluster::shared();
    let config = WireConfig::from_url(cluster.url())
        .unwrap()
        .with_application_name("metrics-scrape");
    let load = Load::start(&config).await.expect("pools under load");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let metrics = listener.local_addr().unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(serve(listener, Arc::clone(&load.exporter), async move {
        let _ = stop_rx.await;
    }));

    let checked = tokio::task::spawn_blocking(move || check_with_prometheus(metrics)).await;

    let _ = stop_tx.send(());
    server.await.unwrap().unwrap();
    let (queries, failures) = (
        load.queries.load(std::sync::atomic::Ordering::Relaxed),
        load.failures.load(std::sync::atomic::Ordering::Relaxed),
    );
    let drained = tokio::time::timeout(Duration::from_secs(60), load.stop()).await;
    println!(
        "{queries} queries, {failures} failures, whole test {:?}",
        started.elapsed()
    );
    if let Err(panic) = checked {
        std::panic::resume_unwind(panic.into_panic());
    }
    assert!(drained.is_ok(), "pools drained");
    assert!(queries > 0, "the load ran");
}
