//! Uncontended checkout + return cycle time of a no-op connection, without any runtime.
//!
//! `cargo run --release -p pg-pool-core --example cycle`; `N=100000` runs one round of that
//! many cycles (for callgrind, with `--toggle-collect='*measured_cycles*'`);
//! `FAIRNESS=bounded:1ms` sets the pool's fairness.

use std::time::{Duration, Instant};

use futures_lite::future::block_on;
use pg_pool_core::{
    ConnPool, ConnPoolConfig, LifecycleHooks, Poolable, Runtime, runtime::NoRuntime,
};

#[derive(Debug, Clone, Copy)]
struct Threads;

impl Runtime for Threads {
    type Sleep = std::future::Pending<()>;
    fn current() -> Result<Self, NoRuntime> {
        Ok(Threads)
    }
    fn sleep(&self, _: Duration) -> Self::Sleep {
        std::future::pending()
    }
    fn spawn<F: std::future::Future<Output = ()> + Send + 'static>(&self, future: F) {
        std::thread::spawn(move || block_on(future));
    }
}

#[derive(Debug)]
struct Noop;
impl Poolable for Noop {
    type Error = std::io::Error;
}

fn main() {
    let mut config = ConnPoolConfig::default();
    config.max_size = 16;
    if let Ok(fairness) = std::env::var("FAIRNESS") {
        config.fairness = fairness
            .parse()
            .expect("FAIRNESS: strict or bounded:<duration>");
    }
    let pool = ConnPool::builder(|| async { Ok(Noop) })
        .config(config)
        .hooks(LifecycleHooks::default())
        .runtime(Threads)
        .build_lazy()
        .expect("valid config");
    println!(
        "size of the checkout future: {} bytes",
        std::mem::size_of_val(&pool.get())
    );
    drop(block_on(pool.get()).unwrap());
    let rounds = if std::env::var("N").is_ok() { 1 } else { 5 };
    for round in 0..rounds {
        let n: u32 = std::env::var("N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(2_000_000);
        let started = Instant::now();
        measured_cycles(&pool, n);
        let per = started.elapsed().as_nanos() as f64 / n as f64;
        println!("round {round}: {per:.1} ns per checkout + return");
    }
}

/// The measured loop, apart so that callgrind can count inside it alone
/// (`--toggle-collect='*measured_cycles*'`).
#[inline(never)]
fn measured_cycles(pool: &ConnPool<Noop, Threads>, n: u32) {
    for _ in 0..n {
        let guard = block_on(pool.get()).unwrap();
        drop(guard);
    }
}
