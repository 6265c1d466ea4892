//! Which pool, on which runtime: the Workload A line-up and how each one is built.

use std::future::Future;

use pg_pool_async_std::AsyncStd;
use pg_pool_core::Runtime;
use pg_pool_smol::Smol;
use pg_pool_tokio::Tokio;
use serde::Serialize;

use crate::noop::{self, Bb8, Bb8Defaults, BenchPool, Deadpool, Mobc, PgPool, PgPoolDefaults, Qp};

/// A pool that can be built inside the runtime it is measured on.
pub trait Contestant: BenchPool + Sized {
    /// Builds a pool of at most `max_size` connections.
    fn build(max_size: usize) -> impl Future<Output = Self> + Send;
}

impl Contestant for PgPool<Tokio> {
    async fn build(max_size: usize) -> Self {
        let runtime = Tokio::current().expect("built inside a tokio runtime");
        PgPool(noop::build_pg_pool(max_size, runtime).await)
    }
}

impl Contestant for PgPoolDefaults {
    async fn build(max_size: usize) -> Self {
        let runtime = Tokio::current().expect("built inside a tokio runtime");
        PgPoolDefaults(
            noop::build_pg_pool_with(noop::pg_pool_default_config(max_size), runtime).await,
        )
    }
}

impl Contestant for PgPool<Smol> {
    async fn build(max_size: usize) -> Self {
        PgPool(noop::build_pg_pool(max_size, Smol::default()).await)
    }
}

impl Contestant for PgPool<AsyncStd> {
    async fn build(max_size: usize) -> Self {
        PgPool(noop::build_pg_pool(max_size, AsyncStd).await)
    }
}

impl Contestant for Deadpool {
    async fn build(max_size: usize) -> Self {
        Deadpool::new(max_size)
    }
}

impl Contestant for Bb8 {
    async fn build(max_size: usize) -> Self {
        Bb8::new(max_size)
    }
}

impl Contestant for Bb8Defaults {
    async fn build(max_size: usize) -> Self {
        Bb8Defaults::new(max_size)
    }
}

impl Contestant for Mobc {
    async fn build(max_size: usize) -> Self {
        Mobc::new(max_size)
    }
}

impl Contestant for Qp {
    async fn build(max_size: usize) -> Self {
        Qp::new(max_size)
    }
}

/// A pool in the Workload A line-up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, PartialOrd, Ord)]
pub enum PoolKind {
    /// pg-pool on tokio, trimmed configuration (no test-on-checkout, idle timeout or
    /// lifetime): the cheapest it can be.
    PgPool,
    /// pg-pool on tokio at its defaults except the size.
    PgPoolDefaults,
    /// deadpool 0.13 (managed).
    Deadpool,
    /// bb8 0.9, `test_on_check_out(false)`, no lifetime or idle timeout.
    Bb8,
    /// bb8 0.9 at its defaults except the size.
    Bb8Defaults,
    /// mobc 0.9.
    Mobc,
    /// qp 0.2.
    Qp,
    /// pg-pool on smol (two executor threads).
    PgPoolSmol,
    /// pg-pool on async-std (two executor threads).
    PgPoolAsyncStd,
}

impl PoolKind {
    /// The tokio-based line-up, in the order runs are interleaved.
    pub const TOKIO: [PoolKind; 5] = [
        Self::PgPool,
        Self::Deadpool,
        Self::Bb8,
        Self::Mobc,
        Self::Qp,
    ];

    /// The line-up of the plain-harness cells: pg-pool at its defaults and trimmed, and its
    /// tokio peers.
    pub const PLAIN: [PoolKind; 6] = [
        Self::PgPoolDefaults,
        Self::PgPool,
        Self::Deadpool,
        Self::Bb8Defaults,
        Self::Mobc,
        Self::Qp,
    ];

    /// The single-task table's line-up: pg-pool at its defaults (what a user who sets only
    /// `max_size` runs) first, then trimmed, then every pool of the original grid.
    pub const SINGLE: [PoolKind; 8] = [
        Self::PgPoolDefaults,
        Self::PgPool,
        Self::Deadpool,
        Self::Bb8,
        Self::Mobc,
        Self::Qp,
        Self::PgPoolSmol,
        Self::PgPoolAsyncStd,
    ];

    /// Every pool of the original grid, in table order (pg-pool trimmed).
    pub const ALL: [PoolKind; 7] = [
        Self::PgPool,
        Self::Deadpool,
        Self::Bb8,
        Self::Mobc,
        Self::Qp,
        Self::PgPoolSmol,
        Self::PgPoolAsyncStd,
    ];

    /// The name used in tables and charts.
    pub fn name(self) -> &'static str {
        match self {
            Self::PgPool => "pg-pool (trimmed)",
            Self::PgPoolDefaults => "pg-pool (defaults)",
            Self::Deadpool => "deadpool",
            Self::Bb8 => "bb8 (trimmed)",
            Self::Bb8Defaults => "bb8 (defaults)",
            Self::Mobc => "mobc",
            Self::Qp => "qp",
            Self::PgPoolSmol => "pg-pool (smol)",
            Self::PgPoolAsyncStd => "pg-pool (async-std)",
        }
    }

    /// Whether this pool runs on tokio.
    pub fn is_tokio(self) -> bool {
        !matches!(self, Self::PgPoolSmol | Self::PgPoolAsyncStd)
    }

    /// Parses [`PoolKind::name`] (`pg-pool` alone means the trimmed config).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "pg-pool" => return Some(Self::PgPool),
            "bb8" => return Some(Self::Bb8),
            _ => {}
        }
        Self::ALL
            .into_iter()
            .chain([Self::PgPoolDefaults, Self::Bb8Defaults])
            .find(|kind| kind.name() == name)
    }
}
