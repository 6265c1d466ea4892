//! `pg-pool-bench [--quick]`: runs every workload and writes `bench-results/` at the
//! repository root.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use pg_pool_bench::contestant::PoolKind;
use pg_pool_bench::postgres::{self, PgCellResult, PgKind};
use pg_pool_bench::report::Report;
use pg_pool_bench::single::single_task;
use pg_pool_bench::stats::median;
use pg_pool_bench::storm::{self, PgPoolStorm};
use pg_pool_bench::suite::{self, Settings};

fn bar(len: u64) -> ProgressBar {
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template("{elapsed_precise} [{bar:40}] {pos}/{len} eta {eta} {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar
}

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn lock_version(lock: &str, name: &str) -> String {
    let needle = format!("name = \"{name}\"\nversion = \"");
    lock.find(&needle)
        .and_then(|at| {
            lock[at + needle.len()..]
                .split('"')
                .next()
                .map(str::to_owned)
        })
        .unwrap_or_else(|| "?".into())
}

fn tokio_features() -> String {
    let out = Command::new(cargo())
        .current_dir(repo_root())
        .args([
            "tree",
            "-p",
            "pg-pool-bench",
            "-e",
            "features",
            "-i",
            "tokio",
            "--prefix",
            "none",
            "--offline",
        ])
        .output();
    let Ok(out) = out else {
        return "unknown (cargo tree failed)".into();
    };
    let mut features: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            l.strip_prefix("tokio feature \"")
                .and_then(|r| r.split('"').next())
                .map(str::to_owned)
        })
        .collect();
    features.sort();
    features.dedup();
    features.join(", ")
}

fn meta(quick: bool) -> BTreeMap<String, String> {
    let lock = std::fs::read_to_string(repo_root().join("Cargo.lock")).unwrap_or_default();
    let mut m = BTreeMap::new();
    let cmd = if quick {
        "cargo run --release -p pg-pool-bench -- --quick"
    } else {
        "cargo run --release -p pg-pool-bench"
    };
    m.insert("command".into(), format!("`{cmd}`"));
    let date = Command::new("date")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    m.insert("date".into(), date);
    let cpus = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .map(|l| l.split(':').nth(1).unwrap_or("").trim().to_owned())
        })
        .unwrap_or_default();
    m.insert("machine".into(), format!("{cpus} CPUs ({model}), shared and noisy; async-std's and smol's executors get 2 threads, tokio's multi-thread runtime 2 workers"));
    m.insert("load average at start".into(), load_average());
    m.insert(
        "rustc".into(),
        Command::new("rustc")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .unwrap_or_default(),
    );
    m.insert(
        "tokio".into(),
        format!(
            "{} with features [{}]. tokio ≥ 1.54 spends the coop budget in `Semaphore::acquire` differently; bb8 is built with `default-features = false`, so its `parking_lot` feature (which switches tokio's own locks to parking_lot for the whole build) is off and every pool runs on tokio's std-lock build. bb8-postgres would force bb8's defaults back on, so Workload B uses a tokio-postgres manager for bb8 written like bb8-postgres'.",
            lock_version(&lock, "tokio"),
            tokio_features()
        ),
    );
    m.insert(
        "peers".into(),
        format!(
            "deadpool {} (managed), bb8 {}, mobc {}, qp {}, deadpool-postgres {}, tokio-postgres {}, pg-wired {}",
            lock_version(&lock, "deadpool"),
            lock_version(&lock, "bb8"),
            lock_version(&lock, "mobc"),
            lock_version(&lock, "qp"),
            lock_version(&lock, "deadpool-postgres"),
            lock_version(&lock, "tokio-postgres"),
            lock_version(&lock, "pg-wired"),
        ),
    );
    m.insert(
        "Workload A configs".into(),
        "every manager creates a no-op connection at once and does nothing on recycle/validate. pg-pool: `test_on_checkout = false`, `idle_timeout = None`, `max_lifetime = None`, no hooks, `checkout_timeout` 600 s. deadpool: `Pool::builder(m).max_size(n)`, no timeouts, `recycle` returns `Ok(())`. bb8: `test_on_check_out(false)`, no lifetime/idle timeout, `connection_timeout` 600 s, default queue strategy (FIFO). mobc: `max_open = max_idle = n`, `test_on_check_out(false)`, no lifetimes, no get timeout, no health-check interval. qp: `acquire_unchecked` (no validation). Each task measures its checkout wait with `quanta` (same cost for every pool).".into(),
    );
    m.insert(
        "Workload B configs".into(),
        "pool size 16, `SELECT 1` per checkout, 2-worker tokio runtime, PostgreSQL on the same 2 CPUs (throwaway cluster, scram-sha-256 over 127.0.0.1). Rows at defaults: only the size is set (deadpool-postgres: `ManagerConfig::default()`, i.e. `RecyclingMethod::Fast`; bb8: its builder's defaults, so `test_on_check_out` runs an empty query per checkout; pg-pool-wire: `WireConfig::pool_config()`; pg-pool-tokio-postgres: `PgConfig::from_url` and `PgConfig::pool_config()`, built with `ConnPool::builder`; its default resets a returned session only when the protocol showed it changed, which `SELECT 1` does not). Tuned rows: pg-pool-wire with `test_on_checkout = false`, no idle timeout or lifetime; bb8 with `test_on_check_out(false)`; pg-pool-tokio-postgres with `ResetStrategy::None` (no round trip on return, like deadpool's Fast) and the same trimmed pool config. Each checkout is timed with `std::time::Instant`.".into(),
    );
    m
}

/// `/proc/loadavg`'s 1, 5 and 15 minute averages (the machine is shared).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

fn alloc_counts() -> BTreeMap<String, f64> {
    let exe = std::env::current_exe().expect("current exe");
    let probe = exe.with_file_name("pg-pool-bench-alloc");
    if !probe.exists() {
        let _ = Command::new(cargo())
            .current_dir(repo_root())
            .args([
                "build",
                "--release",
                "-p",
                "pg-pool-bench",
                "--bin",
                "pg-pool-bench-alloc",
            ])
            .status();
    }
    match Command::new(&probe).output() {
        Ok(out) if out.status.success() => serde_json::from_slice(&out.stdout).unwrap_or_default(),
        _ => {
            eprintln!(
                "allocation probe {} failed; allocations not reported",
                probe.display()
            );
            BTreeMap::new()
        }
    }
}

fn workload_b(quick: bool, report: &mut Report) {
    eprintln!("Workload B: starting a throwaway PostgreSQL cluster");
    let cluster = match pg_pool_test_support::TestCluster::start() {
        Ok(cluster) => cluster,
        Err(error) => {
            eprintln!("Workload B skipped: {error}");
            report.meta.insert(
                "Workload B".into(),
                format!("skipped: PostgreSQL could not be started: {error}"),
            );
            return;
        }
    };
    let url = cluster.url().to_owned();
    let tasks: &[usize] = if quick {
        &[16, 256]
    } else {
        &[16, 64, 256, 1024]
    };
    let reps = if quick { 1 } else { 3 };
    let (warm, measure) = if quick {
        (Duration::from_millis(200), Duration::from_millis(500))
    } else {
        (Duration::from_millis(300), Duration::from_millis(1500))
    };
    let kinds = PgKind::ALL;
    let progress = bar((tasks.len() * reps * kinds.len()) as u64);
    for &n in tasks {
        // runs[kind][rep]; the order is rotated by one place per repetition.
        let mut runs: Vec<Vec<Option<postgres::PgRun>>> = vec![vec![None; reps]; kinds.len()];
        for rep in 0..reps {
            for offset in 0..kinds.len() {
                let i = (rep * 5 + offset) % kinds.len();
                let kind = kinds[i];
                progress.set_message(format!("B: {n} tasks {}", kind.name()));
                let run = postgres::run_once(kind, &url, 16, n, warm, measure);
                if let Some(slot) = runs[i].get_mut(rep) {
                    *slot = run;
                }
                progress.inc(1);
            }
        }
        let index = |k: PgKind| kinds.iter().position(|&o| o == k).expect("listed");
        let ratio = |i: usize, reference: PgKind| {
            let r = index(reference);
            let mut ratios: Vec<f64> = (0..reps)
                .filter_map(|rep| Some(runs[i][rep]?.qps / runs[r][rep]?.qps))
                .collect();
            (!ratios.is_empty()).then(|| median(&mut ratios))
        };
        for (i, kind) in kinds.into_iter().enumerate() {
            let done: Vec<postgres::PgRun> = runs[i].iter().flatten().copied().collect();
            let med = |f: fn(&postgres::PgRun) -> f64| {
                median(&mut done.iter().map(f).collect::<Vec<_>>())
            };
            let median_run = (!done.is_empty()).then(|| postgres::PgRun {
                qps: med(|r| r.qps),
                wait_p50_ns: med(|r| r.wait_p50_ns as f64) as u64,
                wait_p99_ns: med(|r| r.wait_p99_ns as f64) as u64,
                wait_p999_ns: med(|r| r.wait_p999_ns as f64) as u64,
                wait_max_ns: med(|r| r.wait_max_ns as f64) as u64,
                errors: done.iter().map(|r| r.errors).sum(),
            });
            report.postgres.push(PgCellResult {
                pool: kind,
                max_size: 16,
                tasks: n,
                runs: runs[i].clone(),
                median: median_run,
                ratio_to_reference: ratio(i, PgKind::DeadpoolPostgresPrepared),
                ratio_same_query: ratio(i, kind.same_query_reference()),
            });
        }
    }
    progress.finish_and_clear();
    if quick {
        return;
    }
    eprintln!("Connection storm (100 connections, 4 s lifetime)");
    let lifetime = Duration::from_secs(4);
    report.storms.push(storm::storm_pg_pool(
        &url,
        100,
        lifetime,
        PgPoolStorm {
            jitter: Duration::from_secs(1),
            max_connecting: 2,
        },
    ));
    report.storms.push(storm::storm_pg_pool(
        &url,
        100,
        lifetime,
        PgPoolStorm {
            jitter: Duration::ZERO,
            max_connecting: 100,
        },
    ));
    report.storms.push(storm::storm_bb8(&url, 100, lifetime));
}

/// `--cell POOL MAX TASKS HOLD MS`: runs one Workload A cell once (for profiling) and prints
/// its statistics. `POOL` as in the tables (`pg-pool`, `deadpool`, ...), `HOLD` is `none` or
/// `yield`. `PG_POOL_BENCH_SCHED=two-threads` or `current-thread` picks the layout
/// (default: the 2-worker multi-thread runtime).
fn single_cell(args: &[String]) {
    let usage = "usage: pg-pool-bench --cell POOL MAX TASKS none|yield MS";
    let pool = args
        .first()
        .and_then(|p| PoolKind::from_name(p))
        .expect(usage);
    let number = |i: usize| {
        args.get(i)
            .and_then(|v| v.parse::<usize>().ok())
            .expect(usage)
    };
    let hold = match args.get(3).map(String::as_str) {
        Some("yield") => pg_pool_bench::overhead::Hold::Yield,
        _ => pg_pool_bench::overhead::Hold::None,
    };
    let spec = pg_pool_bench::overhead::CellSpec {
        pool,
        max_size: number(1),
        tasks: number(2),
        sched: match std::env::var("PG_POOL_BENCH_SCHED").as_deref() {
            Ok("two-threads") => pg_pool_bench::overhead::Sched::TwoThreads,
            Ok("current-thread") => pg_pool_bench::overhead::Sched::CurrentThread,
            _ => pg_pool_bench::overhead::Sched::MultiThread,
        },
        hold,
        cancel: false,
        warm: Duration::from_millis(50),
        measure: Duration::from_millis(number(4) as u64),
    };
    println!(
        "{:?}",
        pg_pool_bench::overhead::run(spec, Duration::from_secs(30))
    );
}

/// `--postgres [tokio-postgres] [--reps N]`: Workload B alone for a set of rows (default:
/// the tokio-postgres rows and their deadpool-postgres references), printed as markdown.
fn postgres_mode(args: &[String]) {
    use pg_pool_bench::postgres_only::{self, RowSet};
    let rows = if args.iter().any(|a| a == "all") {
        RowSet::All
    } else {
        RowSet::TokioPostgres
    };
    let reps = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(5);
    let cluster = pg_pool_test_support::TestCluster::start().expect("a throwaway cluster");
    let results = postgres_only::compare(
        cluster.url(),
        rows,
        &[16, 64, 256],
        reps,
        Duration::from_millis(300),
        Duration::from_millis(1500),
    );
    println!("{}", postgres_only::markdown(&results));
    println!("load average: {}", load_average());
}

/// `--cycles POOL N`: `N` single-task cycles of a tokio pool and nothing else (run under
/// callgrind to count instructions per cycle).
fn cycles_mode(args: &[String]) {
    let usage = "usage: pg-pool-bench --cycles POOL N";
    let pool = args
        .first()
        .and_then(|p| PoolKind::from_name(p))
        .expect(usage);
    let n = args.get(1).and_then(|v| v.parse().ok()).expect(usage);
    pg_pool_bench::single::cycles_only(pool, n);
}

/// `--handoffs POOL N`: about `N` queued hand-offs between two tasks on a pool of one (run
/// under callgrind to count instructions per hand-off; see `single::handoffs_only`).
fn handoffs_mode(args: &[String]) {
    let usage = "usage: pg-pool-bench --handoffs POOL N";
    // The reference rows (`floor`, `deadpool-timeout`) are no pools of the comparison.
    if let (Some(name), Some(n)) = (args.first(), args.get(1).and_then(|v| v.parse().ok()))
        && pg_pool_bench::single::handoffs_reference(name, n)
    {
        return;
    }
    let pool = args
        .first()
        .and_then(|p| PoolKind::from_name(p))
        .expect(usage);
    let n = args.get(1).and_then(|v| v.parse().ok()).expect(usage);
    pg_pool_bench::single::handoffs_only(pool, n);
}

/// `--plain [--quick]`: the plain-harness cells, the factor table and the single-task
/// comparison only, printed as markdown (nothing is written to `bench-results/`).
fn plain_mode(quick: bool) {
    let mut out = String::new();
    let single = plain_single(quick);
    pg_pool_bench::report_plain::single_table(&mut out, &single);
    let results = plain_cells(quick);
    pg_pool_bench::report_plain::plain_tables(&mut out, &results);
    pg_pool_bench::report_plain::factor_table(&mut out, &results);
    println!("{out}");
}

/// `--single [--quick] [--reps N]`: the single-task comparison alone, for pg-pool at its
/// defaults and trimmed against deadpool, printed as markdown (a quicker look at the
/// uncontended cycle than `--plain`).
fn single_mode(args: &[String]) {
    let quick = args.iter().any(|a| a == "--quick");
    let reps = args
        .iter()
        .position(|a| a == "--reps")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .filter(|&n| n > 0)
        .unwrap_or(5);
    let pools = [
        PoolKind::PgPoolDefaults,
        PoolKind::PgPool,
        PoolKind::Deadpool,
    ];
    let mut out = String::new();
    let single = single_table(&pools, reps, quick);
    pg_pool_bench::report_plain::single_table(&mut out, &single);
    println!("{out}");
    println!("load average: {}", load_average());
}

fn plain_single(quick: bool) -> Vec<pg_pool_bench::single::PlainSingle> {
    single_table(&PoolKind::PLAIN, 3, quick)
}

fn single_table(
    pools: &[PoolKind],
    reps: usize,
    quick: bool,
) -> Vec<pg_pool_bench::single::PlainSingle> {
    eprintln!("Single task, pg-pool at its defaults and trimmed (rotated repetitions, callgrind)");
    let exe = std::env::current_exe().expect("current exe");
    let has_valgrind = Command::new("valgrind").arg("--version").output().is_ok();
    pg_pool_bench::single::plain_single(pools, reps, quick, |pool| {
        has_valgrind
            .then(|| pg_pool_bench::callgrind::instructions_per_cycle(&exe, pool))
            .flatten()
    })
}

/// `PG_POOL_BENCH_PLAIN_REPS` (default 3, as an application's harness would) and
/// `PG_POOL_BENCH_FACTOR_REPS` (default 9): repetitions of the plain and the factor cells.
fn plain_cells(quick: bool) -> Vec<pg_pool_bench::plain_suite::PlainResult> {
    let reps = |name: &str, default: usize| {
        std::env::var(name)
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|&n| n > 0)
            .unwrap_or(default)
    };
    let cells = pg_pool_bench::plain_suite::plan(
        quick,
        reps("PG_POOL_BENCH_PLAIN_REPS", 3),
        reps("PG_POOL_BENCH_FACTOR_REPS", 9),
    );
    eprintln!("Plain harness: {} cells", cells.len());
    let progress = bar(pg_pool_bench::plain_suite::run_count(&cells));
    let results = pg_pool_bench::plain_suite::run_all(&cells, Duration::from_secs(4), &progress);
    progress.finish_and_clear();
    results
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--cell") {
        single_cell(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("--cycles") {
        cycles_mode(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("--fairness") {
        println!(
            "{}",
            pg_pool_bench::fairness::run(args.iter().any(|a| a == "--quick"))
        );
        return;
    }
    if args.first().map(String::as_str) == Some("--postgres") {
        postgres_mode(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("--handoffs") {
        handoffs_mode(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("--single") {
        single_mode(&args[1..]);
        return;
    }
    if args.first().map(String::as_str) == Some("--plain") {
        plain_mode(args.iter().any(|a| a == "--quick"));
        return;
    }
    let started = Instant::now();
    let quick = args.iter().any(|a| a == "--quick");
    let settings = Settings::new(quick);
    let mut report = Report {
        meta: meta(quick),
        settings,
        single: Vec::new(),
        plain_single: Vec::new(),
        plain: Vec::new(),
        overhead: Vec::new(),
        postgres: Vec::new(),
        storms: Vec::new(),
    };

    eprintln!("Single task: allocations per cycle (separate process), then ns per cycle");
    let allocs = alloc_counts();
    for pool in PoolKind::SINGLE {
        let mut stats = single_task(pool, 4, None, quick);
        stats.allocs_per_cycle = allocs.get(pool.name()).copied();
        report.single.push((pool, stats));
    }

    report.plain_single = plain_single(quick);
    report
        .meta
        .insert("load average before the plain cells".into(), load_average());
    report.plain = plain_cells(quick);
    report
        .meta
        .insert("load average after the plain cells".into(), load_average());

    let cells = suite::plan(&settings);
    eprintln!("Workload A: {} cells", cells.len());
    let progress = bar(suite::run_count(&cells, &settings));
    report.overhead = suite::run_all(&cells, &settings, &progress);
    progress.finish_and_clear();

    report
        .meta
        .insert("load average before Workload B".into(), load_average());
    workload_b(quick, &mut report);

    report
        .meta
        .insert("load average at end".into(), load_average());
    report.meta.insert(
        "total time".into(),
        format!("{:.0} s", started.elapsed().as_secs_f64()),
    );
    let dir = repo_root().join("bench-results");
    match report.write(&dir) {
        Ok(()) => eprintln!("wrote {}", dir.display()),
        Err(error) => eprintln!("writing {} failed: {error}", dir.display()),
    }
}
