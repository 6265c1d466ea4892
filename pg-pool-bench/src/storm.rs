//! The reconnect storm: many connections reaching their lifetime together, against
//! pg-pool-wire (with and without jitter and a connect cap) and bb8.

use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use pg_pool_core::{Connector, LifecycleHooks};
use pg_pool_wire::{WireConnector, WirePoolable};
use serde::Serialize;

use crate::postgres::{
    Bb8, ConnectLog, PgRun, TokioPostgresManager, Wire, drive, pg_pool_config, runtime,
};

/// A reconnect storm measurement.
#[derive(Debug, Clone, Serialize)]
pub struct StormResult {
    /// Which pool and settings.
    pub label: String,
    /// Connections in the pool.
    pub size: usize,
    /// Max lifetime, seconds.
    pub lifetime_s: f64,
    /// How long filling the pool took, seconds.
    pub fill_s: f64,
    /// Connects completed in the observation window (lifetime plus 3 s after the pool was full).
    pub reconnects: usize,
    /// Most connects completed in any 100 ms, as a rate per second.
    pub peak_connects_per_s: f64,
    /// Time from the first to the last reconnect of the first wave (the first `size`), seconds.
    pub wave_s: f64,
    /// Checkout wait p99 of a 64-task `SELECT 1` load during the window, nanoseconds.
    pub wait_p99_ns: u64,
    /// Checkout wait maximum during the window, nanoseconds.
    pub wait_max_ns: u64,
    /// Queries per second of that load during the window.
    pub qps: f64,
}

fn storm_stats(
    label: String,
    size: usize,
    lifetime: Duration,
    fill: Duration,
    log: &ConnectLog,
    from: Duration,
    run: Option<PgRun>,
) -> StormResult {
    let times: Vec<Duration> = log.snapshot().into_iter().filter(|t| *t >= from).collect();
    let mut peak = 0;
    for (i, t) in times.iter().enumerate() {
        let within = times[i..]
            .iter()
            .take_while(|u| **u < *t + Duration::from_millis(100))
            .count();
        peak = peak.max(within);
    }
    let wave: Vec<&Duration> = times.iter().take(size).collect();
    let wave_s = match (wave.first(), wave.last()) {
        (Some(a), Some(b)) => (**b - **a).as_secs_f64(),
        _ => 0.0,
    };
    StormResult {
        label,
        size,
        lifetime_s: lifetime.as_secs_f64(),
        fill_s: fill.as_secs_f64(),
        reconnects: times.len(),
        peak_connects_per_s: peak as f64 * 10.0,
        wave_s,
        wait_p99_ns: run.map_or(0, |r| r.wait_p99_ns),
        wait_max_ns: run.map_or(0, |r| r.wait_max_ns),
        qps: run.map_or(0.0, |r| r.qps),
    }
}

/// pg-pool's storm settings: lifetime, jitter, `max_connecting`.
#[derive(Debug, Clone, Copy)]
pub struct PgPoolStorm {
    /// `max_lifetime_jitter`.
    pub jitter: Duration,
    /// `max_connecting`.
    pub max_connecting: usize,
}

/// A storm against pg-pool-wire: `size` connections kept by `min_idle = size`, all opened at
/// start, with `lifetime`; a 64-task `SELECT 1` load runs through the lifetime and 3 s more.
pub fn storm_pg_pool(
    url: &str,
    size: usize,
    lifetime: Duration,
    settings: PgPoolStorm,
) -> StormResult {
    let rt = runtime();
    let log = ConnectLog::default();
    let mut config = pg_pool_config(url, size);
    config.min_idle = size;
    config.max_lifetime = Some(lifetime);
    config.max_lifetime_jitter = settings.jitter;
    config.max_connecting = settings.max_connecting;
    config.reaper_interval = Duration::from_millis(250);
    let connector = WireConnector::from_url(url).expect("cluster URL parses");
    let counted = {
        let log = log.clone();
        move || {
            let (connector, log) = (connector.clone(), log.clone());
            async move {
                let conn = Connector::<WirePoolable>::connect(&connector).await?;
                log.record();
                Ok(conn)
            }
        }
    };
    let fill_started = log.start.elapsed();
    let pool = rt
        .block_on(
            pg_pool_tokio::ConnPool::<WirePoolable>::builder(counted)
                .config(config)
                .hooks(LifecycleHooks::default())
                .runtime(pg_pool_tokio::Tokio::from_handle(rt.handle().clone()))
                .build(),
        )
        .expect("pg-pool builds");
    let full = log.start.elapsed();
    let run = drive(
        &rt,
        Arc::new(Wire(pool)),
        64,
        Duration::ZERO,
        lifetime + Duration::from_secs(3),
    );
    let label = format!(
        "pg-pool-wire, jitter {} ms, max_connecting {}",
        settings.jitter.as_millis(),
        settings.max_connecting
    );
    let result = storm_stats(label, size, lifetime, full - fill_started, &log, full, run);
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}

/// The same storm against bb8 (tokio-postgres): `min_idle = size`, `max_lifetime`, reaper
/// every 250 ms.
pub fn storm_bb8(url: &str, size: usize, lifetime: Duration) -> StormResult {
    let rt = runtime();
    let log = ConnectLog::default();
    let manager = TokioPostgresManager {
        config: url.parse().expect("cluster URL parses"),
        connects: Some(log.clone()),
    };
    let pool = rt
        .block_on(
            bb8::Pool::builder()
                .max_size(u32::try_from(size).unwrap_or(u32::MAX))
                .min_idle(u32::try_from(size).unwrap_or(u32::MAX))
                .test_on_check_out(false)
                .max_lifetime(lifetime)
                .idle_timeout(None)
                .reaper_rate(Duration::from_millis(250))
                .connection_timeout(Duration::from_secs(60))
                .build(manager),
        )
        .expect("bb8 builds");
    // bb8's build returns before `min_idle` is reached: wait for it.
    let fill_deadline = Instant::now() + Duration::from_secs(30);
    while (pool.state().connections as usize) < size && Instant::now() < fill_deadline {
        thread::sleep(Duration::from_millis(5));
    }
    let full = log.start.elapsed();
    let first = log.snapshot().first().copied().unwrap_or_default();
    let run = drive(
        &rt,
        Arc::new(Bb8(pool)),
        64,
        Duration::ZERO,
        lifetime + Duration::from_secs(3),
    );
    let result = storm_stats(
        "bb8 + tokio-postgres (no jitter, no connect cap)".into(),
        size,
        lifetime,
        full.saturating_sub(first),
        &log,
        full,
        run,
    );
    rt.block_on(async { tokio::time::sleep(Duration::from_millis(200)).await });
    rt.shutdown_timeout(Duration::from_secs(2));
    result
}
