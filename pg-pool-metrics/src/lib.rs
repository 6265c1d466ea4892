//! pg-pool's metrics in the shapes operators already run: OpenTelemetry's semantic
//! conventions for database client connection pools, a Prometheus exposition, the `metrics`
//! crate facade and OpenTelemetry instruments.
//!
//! Every pool keeps its gauges, counters and histograms under its own lock and hands out a
//! consistent [`Metrics`](pg_pool_core::metrics::Metrics) snapshot. This crate reads those snapshots
//! and publishes them under one set of names, listed with their types, units and labels in
//! [`series`]:
//!
//! - `db.client.connection.count{db.client.connection.state=idle|used}`,
//!   `.idle.max`, `.idle.min`, `.max`, `.pending_requests`, `.timeouts`, and the duration
//!   histograms `.create_time`, `.wait_time`, `.use_time` (seconds), each with the attribute
//!   `db.client.connection.pool.name`;
//! - in Prometheus, the same names as the OpenTelemetry Prometheus exporter writes them:
//!   `db_client_connection_count`, `db_client_connection_timeouts_total`,
//!   `db_client_connection_wait_time_seconds_bucket{le=...}`, ...;
//! - pg-pool's own series under the same prefix: destroys by reason, connect failures,
//!   leaks, checkouts, detaches, connecting, closing, draining.
//!
//! # Registering pools
//!
//! Exporters read a [`Pools`] set. Add a pool's weak handle, `pool.downgrade()`
//! ([`WeakPool`](pg_pool_core::WeakPool): exported while the application keeps the pool,
//! forgotten once it drops it), a [`ConnPool<T, R>`](pg_pool_core::ConnPool) itself (which
//! keeps the pool open until removed), or a closure returning `(name, Metrics)` through
//! [`from_fn`]. Each implements [`MetricsSource`] whatever `T` and `R`. The pool's name is its
//! config's `name`.
//!
//! # Backends (features, all optional)
//!
//! | feature | module | model |
//! |---|---|---|
//! | `prometheus` | `prometheus` | a `prometheus-client` collector: snapshots taken on each scrape; one `# HELP`/`# TYPE` per family whatever the number of pools |
//! | `metrics` | `facade` | push: `facade::Publisher::publish` copies a snapshot into the installed recorder; call it periodically |
//! | `opentelemetry` | `otel` | observable instruments read at each collection; histograms replayed from the bucket deltas |
//!
//! # Examples
//!
//! ```
//! use pg_pool_metrics::Pools;
//!
//! let pools = Pools::new();
//! // pools.add(primary.downgrade()).add(replica.downgrade());
//! assert!(pools.snapshots().is_empty());
//! ```

pub mod series;
mod source;

#[cfg(feature = "metrics")]
pub mod facade;
#[cfg(feature = "opentelemetry")]
pub mod otel;
#[cfg(feature = "prometheus")]
pub mod prometheus;

#[cfg(any(feature = "metrics", feature = "opentelemetry"))]
mod replay;

pub use series::{Kind, SERIES, Series};
pub use source::{FnSource, MetricsSource, PoolSnapshot, Pools, from_fn};
