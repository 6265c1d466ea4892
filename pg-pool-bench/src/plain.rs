//! The plain harness: Workload A measured the way an application's own harness would, so
//! that its figures hold outside this crate.
//!
//! Each task loops { `t0 = Instant::now()`; `get().await`; record `t0.elapsed()` into its
//! own HdrHistogram (2 significant figures); touch the connection; hold; drop }, checking a
//! stop flag once per loop. Every run builds a fresh pool on a fresh 2-worker tokio runtime,
//! warms up, then measures. The hold is one `tokio::task::yield_now()`, which puts the task
//! at the back of the run queue like a real await on I/O would; [`YieldKind::FuturesLite`]
//! and [`ClockKind::Quanta`] exist only to show how much the original grid's choices (a
//! self-waking yield that tokio re-polls at once from its LIFO slot, a TSC clock) change
//! the picture.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::contestant::{Contestant, PoolKind};
use crate::noop::{Bb8, Bb8Defaults, BenchPool, Deadpool, Mobc, PgPool, PgPoolDefaults, Qp};

/// How a task yields while holding its connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum YieldKind {
    /// `tokio::task::yield_now()`: the task goes to the back of the run queue.
    Tokio,
    /// `futures_lite::future::yield_now()`: the task wakes itself inside its own poll, and
    /// tokio runs it again at once from the worker's LIFO slot, so the hold barely leaves the
    /// CPU.
    FuturesLite,
}

/// Which clock times each checkout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum ClockKind {
    /// `std::time::Instant`.
    Std,
    /// `quanta::Instant` (the CPU's TSC; cheaper).
    Quanta,
}

/// One measurement's parameters.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PlainSpec {
    /// The pool (tokio-based pools only).
    pub pool: PoolKind,
    /// Its maximum size.
    pub max_size: usize,
    /// Concurrent tasks.
    pub tasks: usize,
    /// The hold.
    pub yield_kind: YieldKind,
    /// The clock.
    pub clock: ClockKind,
    /// Warm-up before measuring.
    pub warm: Duration,
    /// Measurement window.
    pub measure: Duration,
}

/// The result of one measurement.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PlainStats {
    /// Completed cycles per second.
    pub cycles_per_sec: f64,
    /// Checkout wait, median, nanoseconds.
    pub wait_p50_ns: u64,
    /// 99th percentile.
    pub wait_p99_ns: u64,
    /// Maximum.
    pub wait_max_ns: u64,
    /// Most cycles completed by one task in the window.
    pub most: u64,
    /// Least cycles completed by one task in the window.
    pub least: u64,
    /// Tasks that completed no cycle in the window.
    pub starved: usize,
    /// Share of checkouts that waited 1 µs or more (had to queue, or found the pool's
    /// lock taken).
    pub queued: f64,
}

impl PlainStats {
    /// Most over least cycles per task (infinite when a task completed none).
    pub fn fairness(&self) -> f64 {
        if self.least == 0 {
            f64::INFINITY
        } else {
            self.most as f64 / self.least as f64
        }
    }
}

/// A measurement's outcome.
#[derive(Debug, Clone, Copy, Serialize)]
pub enum PlainOutcome {
    /// The run finished.
    Done(PlainStats),
    /// Tasks did not finish within the bound after being told to stop (deadlock or
    /// starvation); the run's thread and runtime are abandoned.
    Stalled,
}

impl PlainOutcome {
    /// The statistics of a finished run.
    pub fn done(&self) -> Option<PlainStats> {
        match self {
            Self::Done(stats) => Some(*stats),
            Self::Stalled => None,
        }
    }
}

const IDLE: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

struct TaskStats {
    cycles: u64,
    wait: Histogram<u64>,
}

enum Msg {
    Ready,
    Done(Vec<TaskStats>),
}

fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 2).expect("valid histogram bounds")
}

enum Started {
    Std(Instant),
    Quanta(quanta::Instant),
}

impl Started {
    fn now(clock: ClockKind) -> Self {
        match clock {
            ClockKind::Std => Self::Std(Instant::now()),
            ClockKind::Quanta => Self::Quanta(quanta::Instant::now()),
        }
    }

    fn elapsed(&self) -> Duration {
        match self {
            Self::Std(t) => t.elapsed(),
            Self::Quanta(t) => t.elapsed(),
        }
    }
}

async fn task_loop<P: BenchPool>(pool: &P, phase: &AtomicU8, spec: PlainSpec) -> TaskStats {
    let mut stats = TaskStats {
        cycles: 0,
        wait: new_histogram(),
    };
    loop {
        let now_phase = phase.load(Ordering::Relaxed);
        if now_phase == STOP {
            break;
        }
        let t0 = Started::now(spec.clock);
        let Some(guard) = pool.checkout().await else {
            continue;
        };
        let waited = t0.elapsed();
        std::hint::black_box(guard.touched);
        match spec.yield_kind {
            YieldKind::Tokio => tokio::task::yield_now().await,
            YieldKind::FuturesLite => futures_lite::future::yield_now().await,
        }
        drop(guard);
        if now_phase == MEASURE {
            stats.cycles += 1;
            stats
                .wait
                .saturating_record(u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX).max(1));
        }
    }
    stats
}

fn host<P: Contestant>(spec: PlainSpec, phase: Arc<AtomicU8>, tx: mpsc::Sender<Msg>) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime builds");
    let stats = rt.block_on(async {
        let pool = Arc::new(P::build(spec.max_size).await);
        let handles: Vec<_> = (0..spec.tasks)
            .map(|_| {
                let (pool, phase) = (Arc::clone(&pool), Arc::clone(&phase));
                tokio::spawn(async move { task_loop(&*pool, &phase, spec).await })
            })
            .collect();
        let _ = tx.send(Msg::Ready);
        let mut out = Vec::with_capacity(handles.len());
        for handle in handles {
            out.push(handle.await.expect("a benchmark task does not panic"));
        }
        out
    });
    rt.shutdown_background();
    let _ = tx.send(Msg::Done(stats));
}

/// Runs one measurement under a watchdog: `stall_after` bounds the pool's build and how long
/// the tasks may take to finish once told to stop.
///
/// # Panics
///
/// For a pool that does not run on tokio.
pub fn run(spec: PlainSpec, stall_after: Duration) -> PlainOutcome {
    let phase = Arc::new(AtomicU8::new(IDLE));
    let (tx, rx) = mpsc::channel();
    let host_phase = Arc::clone(&phase);
    let body = move || match spec.pool {
        PoolKind::PgPool => host::<PgPool<pg_pool_tokio::Tokio>>(spec, host_phase, tx),
        PoolKind::PgPoolDefaults => host::<PgPoolDefaults>(spec, host_phase, tx),
        PoolKind::Deadpool => host::<Deadpool>(spec, host_phase, tx),
        PoolKind::Bb8 => host::<Bb8>(spec, host_phase, tx),
        PoolKind::Bb8Defaults => host::<Bb8Defaults>(spec, host_phase, tx),
        PoolKind::Mobc => host::<Mobc>(spec, host_phase, tx),
        PoolKind::Qp => host::<Qp>(spec, host_phase, tx),
        PoolKind::PgPoolSmol | PoolKind::PgPoolAsyncStd => {
            panic!("the plain harness runs tokio pools only")
        }
    };
    // Detached: on a stall the thread and its runtime are abandoned.
    drop(
        thread::Builder::new()
            .name(format!("plain-{}", spec.pool.name()))
            .spawn(body)
            .expect("spawning a benchmark thread"),
    );
    match rx.recv_timeout(stall_after) {
        Ok(Msg::Ready) => {}
        Ok(Msg::Done(_)) | Err(_) => return PlainOutcome::Stalled,
    }
    thread::sleep(spec.warm);
    phase.store(MEASURE, Ordering::Relaxed);
    let started = Instant::now();
    thread::sleep(spec.measure);
    phase.store(STOP, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let stats = match rx.recv_timeout(stall_after) {
        Ok(Msg::Done(stats)) => stats,
        Ok(Msg::Ready) | Err(_) => return PlainOutcome::Stalled,
    };
    PlainOutcome::Done(summarise(&stats, elapsed))
}

fn summarise(stats: &[TaskStats], elapsed: Duration) -> PlainStats {
    let mut wait = new_histogram();
    let (mut cycles, mut most, mut least, mut starved) = (0, 0, u64::MAX, 0);
    for task in stats {
        wait.add(&task.wait).expect("histograms share bounds");
        cycles += task.cycles;
        most = most.max(task.cycles);
        least = least.min(task.cycles);
        starved += usize::from(task.cycles == 0);
    }
    PlainStats {
        cycles_per_sec: cycles as f64 / elapsed.as_secs_f64(),
        wait_p50_ns: wait.value_at_quantile(0.5),
        wait_p99_ns: wait.value_at_quantile(0.99),
        wait_max_ns: wait.max(),
        most,
        least: if stats.is_empty() { 0 } else { least },
        starved,
        queued: if wait.is_empty() {
            0.0
        } else {
            1.0 - wait.count_between(0, 999) as f64 / wait.len() as f64
        },
    }
}
