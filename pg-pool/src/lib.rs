#![doc = include_str!("../README.md")]

pub use pg_pool_core;
pub use pg_pool_core::{
    BoxFuture, BuildError, Builder, Checkout, ClusterPool, ConfigError, ConnPoolConfig, Connect,
    ConnectError, ConnectTarget, Connector, DestroyReason, DrainReport, Fairness, HeldCheckout,
    HookError, HookResult, IdleOrder, LifecycleHooks, Phase, PoolError, Poolable, ReadPolicy,
    ReplicaLag, Role, Runtime, TimeoutDetails, metrics::Metrics,
};
pub use pg_pool_core::{
    DEFAULT_SHARED_MAX_IN_FLIGHT, SHARED_MAX_IN_FLIGHT_LIMIT, Shareable, SharedStats,
};

#[cfg(feature = "tokio")]
pub use pg_pool_tokio::{self, ConnPool, OwnedCheckout, PoolGuard, SharedGuard, Tokio, WeakPool};

/// pg-wired connections: [`wire::WirePoolable`], [`wire::AsyncWirePoolable`], their config,
/// connector and error (the `pg-pool-wire` crate).
#[cfg(feature = "wire")]
pub mod wire {
    pub use pg_pool_wire::*;
}

/// tokio-postgres connections: [`postgres::PgConnection`], its config, connector, reset
/// strategies and pooler-safe profile, and [`postgres::PgListener`] for `LISTEN`/`NOTIFY`
/// on a session of its own (the `pg-pool-tokio-postgres` crate).
#[cfg(feature = "tokio-postgres")]
pub mod postgres {
    pub use pg_pool_tokio_postgres::*;
}

/// Metrics under OpenTelemetry's database connection pool names, for Prometheus, the
/// `metrics` facade and OpenTelemetry (the `pg-pool-metrics` crate; features `metrics`,
/// `prometheus`, `metrics-facade`, `opentelemetry`).
#[cfg(feature = "metrics")]
pub mod metrics {
    pub use pg_pool_metrics::*;
}
