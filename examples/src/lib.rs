//! Shared helpers for the pg-pool examples (`cargo run --example quickstart`, `hooks`,
//! `metrics`, `metrics_server`, `drain`, `driver_swap`, `config_file`).
//!
//! Every example connects to the server named by the `DATABASE_URL` environment variable
//! (`postgres://user:password@host:port/database`) or, when it is not set, starts a
//! throwaway local PostgreSQL with the test kit and removes it on exit.

pub mod config_file;
mod database;
pub mod metrics_server;
pub mod swap;

pub use database::Database;
