//! Single-task, uncontended cycle: nanoseconds and heap allocations per checkout and return.

use std::time::Instant;

use futures_lite::future;
use serde::Serialize;

use crate::contestant::{Contestant, PoolKind};
use crate::noop::{Bb8, Bb8Defaults, BenchPool, Deadpool, Mobc, PgPool, PgPoolDefaults, Qp};

/// Reads a process-wide allocation counter (allocations plus reallocations so far).
pub type AllocCounter = fn() -> u64;

/// Cycle cost of one pool with one task and no contention.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct SingleStats {
    /// Median over repetitions of the mean time per checkout-touch-return cycle.
    pub ns_per_cycle: f64,
    /// Heap allocations (and reallocations) per cycle, when counted.
    pub allocs_per_cycle: Option<f64>,
}

const WARM: u64 = 20_000;
const CYCLES: u64 = 200_000;
const REPS: usize = 7;
const ALLOC_CYCLES: u64 = 10_000;

async fn cycles<P: BenchPool>(pool: &P, n: u64) {
    for _ in 0..n {
        let guard = pool.checkout().await.expect("a no-op checkout succeeds");
        std::hint::black_box(guard.touched);
        drop(guard);
    }
}

/// The same cycle timed the way an application's harness would: `std::time::Instant` around
/// each checkout, the wait recorded in an HdrHistogram (2 significant figures).
async fn cycles_timed<P: BenchPool>(pool: &P, n: u64, wait: &mut hdrhistogram::Histogram<u64>) {
    for _ in 0..n {
        let t0 = Instant::now();
        let guard = pool.checkout().await.expect("a no-op checkout succeeds");
        wait.saturating_record(u64::try_from(t0.elapsed().as_nanos()).unwrap_or(u64::MAX));
        std::hint::black_box(guard.touched);
        drop(guard);
    }
}

async fn run_cycles<P: BenchPool>(
    pool: &P,
    n: u64,
    wait: Option<&mut hdrhistogram::Histogram<u64>>,
) {
    match wait {
        Some(wait) => cycles_timed(pool, n, wait).await,
        None => cycles(pool, n).await,
    }
}

async fn measure<P: Contestant>(
    max_size: usize,
    counter: Option<AllocCounter>,
    quick: bool,
) -> SingleStats {
    measure_loop::<P>(max_size, counter, quick, false).await
}

async fn measure_loop<P: Contestant>(
    max_size: usize,
    counter: Option<AllocCounter>,
    quick: bool,
    timed: bool,
) -> SingleStats {
    let pool = P::build(max_size).await;
    let scale = if quick { 10 } else { 1 };
    let mut hist = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 60_000_000_000, 2)
        .expect("valid histogram bounds");
    let mut wait = timed.then_some(&mut hist);
    run_cycles(&pool, WARM / scale, wait.as_deref_mut()).await;
    let mut samples: Vec<f64> = Vec::with_capacity(REPS);
    for _ in 0..if quick { 3 } else { REPS } {
        let started = Instant::now();
        run_cycles(&pool, CYCLES / scale, wait.as_deref_mut()).await;
        samples.push(started.elapsed().as_nanos() as f64 / (CYCLES / scale) as f64);
    }
    let allocs_per_cycle = match counter {
        Some(read) => {
            // The loop itself allocates nothing: every allocation counted is the pool's
            // (or its runtime's, on its behalf).
            let before = read();
            cycles(&pool, ALLOC_CYCLES).await;
            let after = read();
            Some((after - before) as f64 / ALLOC_CYCLES as f64)
        }
        None => None,
    };
    SingleStats {
        ns_per_cycle: crate::stats::median(&mut samples),
        allocs_per_cycle,
    }
}

fn on_tokio<P: Contestant>(
    max_size: usize,
    counter: Option<AllocCounter>,
    quick: bool,
) -> SingleStats {
    current_thread().block_on(measure::<P>(max_size, counter, quick))
}

/// Measures `pool` with one task on a current-thread runtime (smol and async-std: `block_on`)
/// and a pool of `max_size`. `counter` enables allocation counting.
pub fn single_task(
    pool: PoolKind,
    max_size: usize,
    counter: Option<AllocCounter>,
    quick: bool,
) -> SingleStats {
    match pool {
        PoolKind::PgPool => on_tokio::<PgPool<pg_pool_tokio::Tokio>>(max_size, counter, quick),
        PoolKind::PgPoolDefaults => on_tokio::<PgPoolDefaults>(max_size, counter, quick),
        PoolKind::Deadpool => on_tokio::<Deadpool>(max_size, counter, quick),
        PoolKind::Bb8 => on_tokio::<Bb8>(max_size, counter, quick),
        PoolKind::Bb8Defaults => on_tokio::<Bb8Defaults>(max_size, counter, quick),
        PoolKind::Mobc => on_tokio::<Mobc>(max_size, counter, quick),
        PoolKind::Qp => on_tokio::<Qp>(max_size, counter, quick),
        PoolKind::PgPoolSmol => future::block_on(measure::<PgPool<pg_pool_smol::Smol>>(
            max_size, counter, quick,
        )),
        PoolKind::PgPoolAsyncStd => async_std::task::block_on(measure::<
            PgPool<pg_pool_async_std::AsyncStd>,
        >(max_size, counter, quick)),
    }
}

/// One pool's single-task figures in the plain comparison.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct PlainSingle {
    /// The pool.
    pub pool: PoolKind,
    /// Median over repetitions of the nanoseconds per cycle.
    pub ns_per_cycle: f64,
    /// Median over repetitions of (this pool's ns per cycle / deadpool's) in the same
    /// repetition.
    pub ratio_to_deadpool: Option<f64>,
    /// Instructions per cycle under callgrind, when valgrind is installed.
    pub instructions_per_cycle: Option<f64>,
    /// Median nanoseconds per cycle with each checkout timed by `std::time::Instant` and
    /// recorded in an HdrHistogram.
    pub timed_ns_per_cycle: f64,
    /// The timed loop's median of per-repetition ratios to deadpool.
    pub timed_ratio_to_deadpool: Option<f64>,
}

/// One task, the timed loop (see [`PlainSingle::timed_ns_per_cycle`]), on a current-thread
/// tokio runtime, pool of 4.
///
/// # Panics
///
/// For a pool that does not run on tokio.
pub fn single_task_timed(pool: PoolKind, quick: bool) -> f64 {
    struct Timed(bool);
    impl TokioJob for Timed {
        type Output = f64;
        fn run<P: Contestant>(self) -> f64 {
            current_thread()
                .block_on(measure_loop::<P>(4, None, self.0, true))
                .ns_per_cycle
        }
    }
    on_tokio_pool(pool, "the timed single-task loop", Timed(quick))
}

/// Measures every pool of `pools` (which must include deadpool for the ratio) with one task,
/// `reps` times with the order rotated by one place per repetition; `instructions` gives
/// each pool's instructions per cycle (or `None`).
pub fn plain_single(
    pools: &[PoolKind],
    reps: usize,
    quick: bool,
    instructions: impl Fn(PoolKind) -> Option<f64>,
) -> Vec<PlainSingle> {
    let mut ns = vec![vec![f64::NAN; reps]; pools.len()];
    let mut timed = vec![vec![f64::NAN; reps]; pools.len()];
    for rep in 0..reps {
        for offset in 0..pools.len() {
            let index = (rep + offset) % pools.len();
            ns[index][rep] = single_task(pools[index], 4, None, quick).ns_per_cycle;
            timed[index][rep] = single_task_timed(pools[index], quick);
        }
    }
    let deadpool = pools.iter().position(|&p| p == PoolKind::Deadpool);
    let ratio = |values: &[Vec<f64>], index: usize| {
        deadpool.map(|d| {
            let mut ratios: Vec<f64> = (0..reps).map(|r| values[index][r] / values[d][r]).collect();
            crate::stats::median(&mut ratios)
        })
    };
    pools
        .iter()
        .enumerate()
        .map(|(index, &pool)| PlainSingle {
            pool,
            ns_per_cycle: crate::stats::median(&mut ns[index].clone()),
            ratio_to_deadpool: ratio(&ns, index),
            instructions_per_cycle: instructions(pool),
            timed_ns_per_cycle: crate::stats::median(&mut timed[index].clone()),
            timed_ratio_to_deadpool: ratio(&timed, index),
        })
        .collect()
}

/// Runs `n` single-task cycles of `pool` (tokio pools: on a current-thread runtime) and
/// nothing else: the body of `pg-pool-bench --cycles`, run under callgrind to count
/// instructions per cycle. The pool is built first; the cycles then run inside
/// [`measured_cycles`], which callgrind's `--toggle-collect` can single out.
///
/// # Panics
///
/// For a pool that does not run on tokio.
pub fn cycles_only(pool: PoolKind, n: u64) {
    struct Cycles(u64);
    impl TokioJob for Cycles {
        type Output = ();
        fn run<P: Contestant>(self) {
            let rt = current_thread();
            let pool = rt.block_on(P::build(4));
            // One cycle outside the measurement, so that lazy set-up (clock calibration) is
            // not counted.
            rt.block_on(cycles(&pool, 1));
            measured_cycles(&rt, &pool, self.0);
        }
    }
    on_tokio_pool(pool, "--cycles", Cycles(n));
}

/// Work run on whichever tokio pool a [`PoolKind`] names.
trait TokioJob {
    /// What the work gives back.
    type Output;
    /// Runs the work on pool type `P`.
    fn run<P: Contestant>(self) -> Self::Output;
}

/// Runs `job` on the tokio pool `pool` names.
///
/// # Panics
///
/// For a pool that does not run on tokio (`flag` names the mode in the message).
fn on_tokio_pool<J: TokioJob>(pool: PoolKind, flag: &str, job: J) -> J::Output {
    match pool {
        PoolKind::PgPool => job.run::<PgPool<pg_pool_tokio::Tokio>>(),
        PoolKind::PgPoolDefaults => job.run::<PgPoolDefaults>(),
        PoolKind::Deadpool => job.run::<Deadpool>(),
        PoolKind::Bb8 => job.run::<Bb8>(),
        PoolKind::Bb8Defaults => job.run::<Bb8Defaults>(),
        PoolKind::Mobc => job.run::<Mobc>(),
        PoolKind::Qp => job.run::<Qp>(),
        PoolKind::PgPoolSmol | PoolKind::PgPoolAsyncStd => {
            panic!("{flag} runs tokio pools only")
        }
    }
}

/// A current-thread tokio runtime with timers and I/O.
fn current_thread() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime builds")
}

/// `n` cycles of `pool` on `rt`; never inlined, so that its name marks the measured part.
#[inline(never)]
pub fn measured_cycles<P: BenchPool>(rt: &tokio::runtime::Runtime, pool: &P, n: u64) {
    rt.block_on(cycles(pool, n));
}

/// Runs about `n` queued hand-offs of `pool` and nothing else: the body of
/// `pg-pool-bench --handoffs`, run under callgrind to count instructions per hand-off.
///
/// Two tasks share a pool of one connection on a current-thread tokio runtime; each loops
/// { check out; yield once while holding it; return }, so every checkout finds the
/// connection taken, queues, and is handed the connection by the other task's return: the
/// waiter path (queueing, wake-up, hand-off) with no timing in it. The loop runs inside
/// [`measured_handoffs`], which callgrind's `--toggle-collect` can single out.
///
/// # Panics
///
/// For a pool that does not run on tokio.
pub fn handoffs_only(pool: PoolKind, n: u64) {
    struct Handoffs(u64);
    impl TokioJob for Handoffs {
        type Output = ();
        fn run<P: Contestant>(self) {
            let rt = current_thread();
            let pool = std::sync::Arc::new(rt.block_on(P::build(1)));
            // A few hand-offs outside the measurement: lazy set-up is not counted.
            rt.block_on(handoffs(&pool, 10));
            measured_handoffs(&rt, &pool, self.0);
        }
    }
    on_tokio_pool(pool, "--handoffs", Handoffs(n));
}

/// Two tasks, `n / 2` cycles each, on a pool of one connection (see [`handoffs_only`]).
async fn handoffs<P: BenchPool>(pool: &std::sync::Arc<P>, n: u64) {
    let half = (n / 2).max(1);
    let task = |pool: std::sync::Arc<P>| async move {
        for _ in 0..half {
            let guard = pool.checkout().await.expect("a no-op checkout succeeds");
            std::hint::black_box(guard.touched);
            tokio::task::yield_now().await;
            drop(guard);
        }
    };
    let first = tokio::spawn(task(std::sync::Arc::clone(pool)));
    let second = tokio::spawn(task(std::sync::Arc::clone(pool)));
    first.await.expect("a benchmark task does not panic");
    second.await.expect("a benchmark task does not panic");
}

/// `n` hand-offs of `pool` on `rt`; never inlined, so that its name marks the measured part.
#[inline(never)]
pub fn measured_handoffs<P: BenchPool>(
    rt: &tokio::runtime::Runtime,
    pool: &std::sync::Arc<P>,
    n: u64,
) {
    rt.block_on(handoffs(pool, n));
}

/// Reference rows for `--handoffs`, beside the pools: what the same two-task hand-off costs
/// with no pool work at all (`floor`), and deadpool with a wait timeout (`deadpool-timeout`),
/// the guarantee pg-pool's checkout always has.
///
/// `floor` is a one-connection "pool" reduced to a mutex, a flag and one stored waker: a
/// return hands the connection to the stored waker's task and wakes it, a checkout takes
/// what it was handed or stores its waker. What it costs per hand-off is tokio's wake, poll
/// and `yield_now` plus a few locked instructions, the floor under any pool's figure.
/// `deadpool-timeout` is deadpool with `timeouts.wait` set to the ten minutes pg-pool's
/// measured configuration uses: every queued checkout registers a tokio timer.
///
/// Returns `false` for an unknown name.
pub fn handoffs_reference(name: &str, n: u64) -> bool {
    match name {
        "floor" => run_handoffs(Floor::default, n),
        "deadpool-timeout" => run_handoffs(deadpool_with_wait_timeout, n),
        _ => return false,
    }
    true
}

/// Builds a pool inside a current-thread runtime and measures its hand-offs, as
/// [`handoffs_only`] does.
fn run_handoffs<P: BenchPool>(build: fn() -> P, n: u64) {
    let rt = current_thread();
    let pool = std::sync::Arc::new(rt.block_on(async { build() }));
    rt.block_on(handoffs(&pool, 10));
    measured_handoffs(&rt, &pool, n);
}

fn deadpool_with_wait_timeout() -> Deadpool {
    let timeouts = deadpool::managed::Timeouts {
        wait: Some(std::time::Duration::from_secs(600)),
        ..deadpool::managed::Timeouts::default()
    };
    Deadpool(
        deadpool::managed::Pool::builder(crate::noop::DeadpoolManager)
            .max_size(1)
            .timeouts(timeouts)
            .runtime(deadpool::Runtime::Tokio1)
            .build()
            .expect("deadpool builds"),
    )
}

/// The floor's state: see [`handoffs_reference`].
#[derive(Debug, Default)]
struct FloorState {
    taken: bool,
    handed: bool,
    waiter: Option<std::task::Waker>,
}

/// A one-connection pool with nothing but a hand-off to one stored waker (see
/// [`handoffs_reference`]); enough for the two tasks of [`handoffs`], not a real pool.
#[derive(Debug, Default)]
struct Floor {
    state: std::sync::Mutex<FloorState>,
    conn: crate::noop::Noop,
}

/// The floor's checked-out connection; hands it on when dropped.
struct FloorGuard<'a>(&'a Floor);

impl std::ops::Deref for FloorGuard<'_> {
    type Target = crate::noop::Noop;

    fn deref(&self) -> &crate::noop::Noop {
        &self.0.conn
    }
}

impl Drop for FloorGuard<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state.lock().unwrap_or_else(|p| p.into_inner());
        match state.waiter.take() {
            Some(waker) => {
                state.handed = true;
                drop(state);
                waker.wake();
            }
            None => state.taken = false,
        }
    }
}

impl BenchPool for Floor {
    type Guard<'a> = FloorGuard<'a>;

    async fn checkout(&self) -> Option<FloorGuard<'_>> {
        std::future::poll_fn(|cx| {
            let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
            if std::mem::take(&mut state.handed) || !std::mem::replace(&mut state.taken, true) {
                return std::task::Poll::Ready(Some(FloorGuard(self)));
            }
            state.waiter = Some(cx.waker().clone());
            std::task::Poll::Pending
        })
        .await
    }
}
