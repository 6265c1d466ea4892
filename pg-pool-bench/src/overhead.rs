//! Workload A: pure pool overhead with a no-op connection.
//!
//! Each measurement runs in a thread of its own that hosts the runtime; the calling thread
//! times the warm-up and measurement phases and acts as the watchdog. A run whose tasks have
//! not all finished within a bound after being told to stop is reported as stalled, and its
//! thread (with its runtime) is abandoned, never waited on.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use futures_lite::future;
use hdrhistogram::Histogram;
use serde::Serialize;

use crate::contestant::{Contestant, PoolKind};
use crate::noop::{Bb8, Bb8Defaults, BenchPool, Deadpool, Mobc, PgPool, PgPoolDefaults, Qp};

/// How tasks are scheduled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Sched {
    /// tokio multi-thread runtime with two workers (smol: two executor threads; async-std:
    /// its global executor with two threads).
    MultiThread,
    /// tokio current-thread runtime (smol and async-std: `block_on` on one thread).
    CurrentThread,
    /// Two OS threads, each with its own current-thread tokio runtime, sharing one pool.
    TwoThreads,
}

/// What a task does while holding the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Hold {
    /// Nothing: checkout, touch, return.
    None,
    /// Yield to the scheduler once.
    Yield,
    /// Sleep on the runtime's timer.
    Sleep(Duration),
}

impl Hold {
    /// Short label for tables.
    pub fn label(self) -> String {
        match self {
            Self::None => "none".into(),
            Self::Yield => "yield".into(),
            Self::Sleep(d) => format!("sleep {} ms", d.as_millis()),
        }
    }
}

/// One measurement's parameters.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct CellSpec {
    /// The pool.
    pub pool: PoolKind,
    /// Its maximum size.
    pub max_size: usize,
    /// Concurrent tasks.
    pub tasks: usize,
    /// Scheduling.
    pub sched: Sched,
    /// What a task does while holding a connection.
    pub hold: Hold,
    /// Whether every tenth checkout is cancelled if not granted within one scheduler turn.
    pub cancel: bool,
    /// Warm-up before measuring.
    #[serde(skip)]
    pub warm: Duration,
    /// Measurement window.
    #[serde(skip)]
    pub measure: Duration,
}

/// The result of one measurement.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct RunStats {
    /// Completed cycles per second.
    pub cycles_per_sec: f64,
    /// Checkout wait percentiles and maximum, in nanoseconds.
    pub wait_p50_ns: u64,
    /// 99th percentile.
    pub wait_p99_ns: u64,
    /// 99.9th percentile.
    pub wait_p999_ns: u64,
    /// Maximum.
    pub wait_max_ns: u64,
    /// Most cycles by any task over least cycles by any task (infinite when some task
    /// completed none).
    pub fairness: f64,
    /// Share of all checkouts that were cancelled (cancel variant only).
    pub cancelled: f64,
}

/// A measurement's outcome.
#[derive(Debug, Clone, Copy, Serialize)]
pub enum Outcome {
    /// The run finished.
    Done(RunStats),
    /// Tasks did not finish within the bound: the pool deadlocked or starved them.
    Stalled,
}

const IDLE: u8 = 0;
const MEASURE: u8 = 1;
const STOP: u8 = 2;

struct TaskStats {
    cycles: u64,
    cancelled: u64,
    wait: Histogram<u32>,
}

enum Msg {
    Ready,
    Done(Vec<TaskStats>),
}

#[derive(Clone, Copy)]
enum Timer {
    Tokio,
    AsyncIo,
}

fn new_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, 60_000_000_000, 2).expect("valid histogram bounds")
}

async fn task_loop<P: BenchPool>(
    pool: &P,
    phase: &AtomicU8,
    hold: Hold,
    cancel: bool,
    timer: Timer,
) -> TaskStats {
    let mut stats = TaskStats {
        cycles: 0,
        cancelled: 0,
        wait: new_histogram(),
    };
    let mut n: u64 = 0;
    loop {
        let now_phase = phase.load(Ordering::Relaxed);
        if now_phase == STOP {
            break;
        }
        n += 1;
        let started = quanta::Instant::now();
        let guard = if cancel && n.is_multiple_of(10) {
            let got = future::or(async { Some(pool.checkout().await) }, async {
                future::yield_now().await;
                None
            })
            .await;
            match got {
                Some(guard) => guard,
                None => {
                    if now_phase == MEASURE {
                        stats.cancelled += 1;
                    }
                    continue;
                }
            }
        } else {
            pool.checkout().await
        };
        let Some(guard) = guard else {
            continue;
        };
        let waited = started.elapsed();
        std::hint::black_box(guard.touched);
        match hold {
            Hold::None => {}
            Hold::Yield => future::yield_now().await,
            Hold::Sleep(d) => match timer {
                Timer::Tokio => tokio::time::sleep(d).await,
                Timer::AsyncIo => {
                    async_io::Timer::after(d).await;
                }
            },
        }
        drop(guard);
        if now_phase == MEASURE {
            stats.cycles += 1;
        }
        // A wait is recorded when the checkout ended after the measurement began, also if it
        // began before it (warm-up): a pool that lets a task starve from the start must not hide
        // that task's wait (barging pools do exactly that).
        if now_phase == MEASURE || phase.load(Ordering::Relaxed) != IDLE {
            stats
                .wait
                .saturating_record(u64::try_from(waited.as_nanos()).unwrap_or(u64::MAX).max(1));
        }
    }
    stats
}

fn spawn_tasks_tokio<P: BenchPool>(
    pool: &Arc<P>,
    phase: &Arc<AtomicU8>,
    spec: &CellSpec,
    count: usize,
) -> Vec<tokio::task::JoinHandle<TaskStats>> {
    (0..count)
        .map(|_| {
            let pool = Arc::clone(pool);
            let phase = Arc::clone(phase);
            let (hold, cancel) = (spec.hold, spec.cancel);
            tokio::spawn(async move { task_loop(&*pool, &phase, hold, cancel, Timer::Tokio).await })
        })
        .collect()
}

async fn join_tokio(handles: Vec<tokio::task::JoinHandle<TaskStats>>) -> Vec<TaskStats> {
    let mut out = Vec::with_capacity(handles.len());
    for handle in handles {
        out.push(handle.await.expect("a benchmark task does not panic"));
    }
    out
}

/// The body of the thread hosting a tokio-based run.
fn host_tokio<P: Contestant>(spec: CellSpec, phase: Arc<AtomicU8>, tx: mpsc::Sender<Msg>) {
    match spec.sched {
        Sched::MultiThread | Sched::CurrentThread => {
            let rt = if spec.sched == Sched::MultiThread {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(2)
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            }
            .expect("tokio runtime builds");
            let stats = rt.block_on(async {
                let pool = Arc::new(P::build(spec.max_size).await);
                let handles = spawn_tasks_tokio(&pool, &phase, &spec, spec.tasks);
                let _ = tx.send(Msg::Ready);
                join_tokio(handles).await
            });
            rt.shutdown_background();
            let _ = tx.send(Msg::Done(stats));
        }
        Sched::TwoThreads => {
            let (pool_tx, pool_rx) = mpsc::channel::<Arc<P>>();
            let second_phase = Arc::clone(&phase);
            let second_tasks = spec.tasks / 2;
            let second = thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("tokio runtime builds");
                let Ok(pool) = pool_rx.recv() else {
                    return Vec::new();
                };
                let stats = rt.block_on(async {
                    let handles = spawn_tasks_tokio(&pool, &second_phase, &spec, second_tasks);
                    join_tokio(handles).await
                });
                drop(pool);
                rt.shutdown_background();
                stats
            });
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tokio runtime builds");
            let mut stats = rt.block_on(async {
                let pool = Arc::new(P::build(spec.max_size).await);
                let _ = pool_tx.send(Arc::clone(&pool));
                let handles = spawn_tasks_tokio(&pool, &phase, &spec, spec.tasks - second_tasks);
                let _ = tx.send(Msg::Ready);
                join_tokio(handles).await
            });
            stats.extend(second.join().expect("second runtime thread does not panic"));
            rt.shutdown_background();
            let _ = tx.send(Msg::Done(stats));
        }
    }
}

/// The body of the thread hosting a smol run: two executor threads, or `block_on` for the
/// current-thread variant.
fn host_smol(spec: CellSpec, phase: Arc<AtomicU8>, tx: mpsc::Sender<Msg>) {
    let pool = Arc::new(future::block_on(PgPool::<pg_pool_smol::Smol>::build(
        spec.max_size,
    )));
    if spec.sched == Sched::CurrentThread {
        let ex = async_executor::LocalExecutor::new();
        let stats = future::block_on(ex.run(async {
            let tasks: Vec<_> = (0..spec.tasks)
                .map(|_| {
                    let (pool, phase) = (Arc::clone(&pool), Arc::clone(&phase));
                    ex.spawn(async move {
                        task_loop(&*pool, &phase, spec.hold, spec.cancel, Timer::AsyncIo).await
                    })
                })
                .collect();
            let _ = tx.send(Msg::Ready);
            let mut out = Vec::new();
            for task in tasks {
                out.push(task.await);
            }
            out
        }));
        let _ = tx.send(Msg::Done(stats));
        return;
    }
    let ex = Arc::new(async_executor::Executor::new());
    let (stop_tx, stop_rx) = smol::channel::bounded::<()>(1);
    let workers: Vec<_> = (0..2)
        .map(|_| {
            let (ex, stop_rx) = (Arc::clone(&ex), stop_rx.clone());
            thread::spawn(move || future::block_on(ex.run(async { stop_rx.recv().await.ok() })))
        })
        .collect();
    let tasks: Vec<_> = (0..spec.tasks)
        .map(|_| {
            let (pool, phase) = (Arc::clone(&pool), Arc::clone(&phase));
            ex.spawn(async move {
                task_loop(&*pool, &phase, spec.hold, spec.cancel, Timer::AsyncIo).await
            })
        })
        .collect();
    let _ = tx.send(Msg::Ready);
    let stats = future::block_on(async {
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await);
        }
        out
    });
    drop(stop_tx);
    for worker in workers {
        let _ = worker.join();
    }
    let _ = tx.send(Msg::Done(stats));
}

/// The body of the thread hosting an async-std run (its global executor; the thread count is
/// set to two by `ASYNC_STD_THREAD_COUNT` at start-up).
fn host_async_std(spec: CellSpec, phase: Arc<AtomicU8>, tx: mpsc::Sender<Msg>) {
    let stats = async_std::task::block_on(async {
        let pool = Arc::new(PgPool::<pg_pool_async_std::AsyncStd>::build(spec.max_size).await);
        if spec.sched == Sched::CurrentThread {
            let _ = tx.send(Msg::Ready);
            return vec![task_loop(&*pool, &phase, spec.hold, spec.cancel, Timer::AsyncIo).await];
        }
        let tasks: Vec<_> = (0..spec.tasks)
            .map(|_| {
                let (pool, phase) = (Arc::clone(&pool), Arc::clone(&phase));
                async_std::task::spawn(async move {
                    task_loop(&*pool, &phase, spec.hold, spec.cancel, Timer::AsyncIo).await
                })
            })
            .collect();
        let _ = tx.send(Msg::Ready);
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await);
        }
        out
    });
    let _ = tx.send(Msg::Done(stats));
}

/// Runs one measurement under a watchdog.
///
/// `stall_after` bounds how long the tasks may take to finish once told to stop (and how long
/// the pool may take to build); past it the run is [`Outcome::Stalled`] and its thread is
/// abandoned.
pub fn run(spec: CellSpec, stall_after: Duration) -> Outcome {
    let phase = Arc::new(AtomicU8::new(IDLE));
    let (tx, rx) = mpsc::channel();
    let host_phase = Arc::clone(&phase);
    let host = move || match spec.pool {
        PoolKind::PgPool => host_tokio::<PgPool<pg_pool_tokio::Tokio>>(spec, host_phase, tx),
        PoolKind::PgPoolDefaults => host_tokio::<PgPoolDefaults>(spec, host_phase, tx),
        PoolKind::Deadpool => host_tokio::<Deadpool>(spec, host_phase, tx),
        PoolKind::Bb8 => host_tokio::<Bb8>(spec, host_phase, tx),
        PoolKind::Bb8Defaults => host_tokio::<Bb8Defaults>(spec, host_phase, tx),
        PoolKind::Mobc => host_tokio::<Mobc>(spec, host_phase, tx),
        PoolKind::Qp => host_tokio::<Qp>(spec, host_phase, tx),
        PoolKind::PgPoolSmol => host_smol(spec, host_phase, tx),
        PoolKind::PgPoolAsyncStd => host_async_std(spec, host_phase, tx),
    };
    // Detached: on a stall the thread and its runtime are abandoned.
    drop(
        thread::Builder::new()
            .name(format!("bench-{}", spec.pool.name()))
            .spawn(host)
            .expect("spawning a benchmark thread"),
    );
    match rx.recv_timeout(stall_after) {
        Ok(Msg::Ready) => {}
        Ok(Msg::Done(_)) | Err(_) => return Outcome::Stalled,
    }
    thread::sleep(spec.warm);
    phase.store(MEASURE, Ordering::Relaxed);
    let started = Instant::now();
    thread::sleep(spec.measure);
    phase.store(STOP, Ordering::Relaxed);
    let elapsed = started.elapsed();
    let stats = match rx.recv_timeout(stall_after) {
        Ok(Msg::Done(stats)) => stats,
        Ok(Msg::Ready) | Err(_) => return Outcome::Stalled,
    };
    Outcome::Done(summarise(&stats, elapsed))
}

fn summarise(stats: &[TaskStats], elapsed: Duration) -> RunStats {
    let mut wait = new_histogram();
    let mut cycles = 0;
    let mut cancelled = 0;
    let (mut most, mut least) = (0, u64::MAX);
    for task in stats {
        wait.add(&task.wait).expect("histograms share bounds");
        cycles += task.cycles;
        cancelled += task.cancelled;
        most = most.max(task.cycles);
        least = least.min(task.cycles);
    }
    let fairness = if least == 0 {
        f64::INFINITY
    } else {
        most as f64 / least as f64
    };
    RunStats {
        cycles_per_sec: cycles as f64 / elapsed.as_secs_f64(),
        wait_p50_ns: wait.value_at_quantile(0.5),
        wait_p99_ns: wait.value_at_quantile(0.99),
        wait_p999_ns: wait.value_at_quantile(0.999),
        wait_max_ns: wait.max(),
        fairness,
        cancelled: if cycles + cancelled == 0 {
            0.0
        } else {
            cancelled as f64 / (cycles + cancelled) as f64
        },
    }
}
