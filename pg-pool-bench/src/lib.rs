//! Benchmarks of pg-pool against deadpool, bb8, mobc and qp.
//!
//! Run `cargo run --release -p pg-pool-bench -- [--quick]`; results go to `bench-results/`
//! at the repository root (`RESULTS.md`, `results.json` and SVG charts). See `RESULTS.md` for
//! what each workload measures and how every pool is configured.
//!
//! - Workload A ([`overhead`]): pure pool overhead with a no-op connection ([`noop`]), every
//!   run under a watchdog that reports a stuck pool as stalled instead of waiting on it.
//! - Single-task cycle cost and allocations per cycle ([`single`]).
//! - Workload B ([`postgres`]): `SELECT 1` per checkout against a throwaway PostgreSQL
//!   cluster, and a reconnect storm when 100 connections reach their lifetime together.

pub mod charts;
pub mod contestant;
pub mod noop;
pub mod overhead;
pub mod postgres;
pub mod report;
pub mod single;
pub mod stats;
pub mod suite;
