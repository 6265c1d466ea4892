//! Benchmarks of pg-pool against deadpool, bb8, mobc and qp.
//!
//! Run `cargo run --release -p pg-pool-bench -- [--quick]`; results go to `bench-results/`
//! at the repository root (`RESULTS.md`, `results.json` and SVG charts). See `RESULTS.md` for
//! what each workload measures and how every pool is configured.
//!
//! - Workload A ([`overhead`]): pure pool overhead with a no-op connection ([`noop`]), every
//!   run under a watchdog that reports a stuck pool as stalled instead of waiting on it.
//! - The plain harness ([`plain`], [`plain_suite`]): Workload A measured as an application's
//!   own harness would (tokio's `yield_now`, `std::time::Instant`, pg-pool at its defaults
//!   beside the trimmed config, rotated interleaving, medians of per-repetition ratios), and
//!   a factor table showing what each of the original grid's choices changes.
//! - Fairness ([`fairness`], `--fairness`): pg-pool under strict and bounded fairness against
//!   deadpool on the contended cells.
//! - Single-task cycle cost and allocations per cycle ([`single`]).
//! - Workload B ([`postgres`]): `SELECT 1` per checkout against a throwaway PostgreSQL
//!   cluster, and a reconnect storm when 100 connections reach their lifetime together.

pub mod callgrind;
pub mod charts;
pub mod contestant;
pub mod fairness;
pub mod noop;
pub mod overhead;
pub mod plain;
pub mod plain_suite;
pub mod postgres;
pub mod postgres_cycles;
pub mod postgres_only;
pub mod report;
pub mod report_plain;
pub mod single;
pub mod stats;
pub mod storm;
pub mod suite;
