//! Runtime-free engine of pg-pool: a strictly fair, leak-proof async connection pool generic
//! over any connection type.
//!
//! Users normally depend on the `pg-pool` facade crate, or on a runtime crate
//! (`pg-pool-tokio`, `pg-pool-async-std`, `pg-pool-smol`) that supplies the [`Runtime`] this
//! crate is written against. This crate depends on no async runtime.
//!
//! See `ARCHITECTURE.md` at the repository root for the data layout, the acquire and return
//! paths, the hand-off and cancellation story, the hook order and the drain protocol.
//!
#![doc = include_str!("../README.md")]

mod acquire;
mod builder;
mod checkout;
mod checkout_future;
mod clock;
mod cluster;
mod config;
#[cfg(feature = "serde")]
mod config_serde;
mod conn;
mod connect;
mod duration;
mod error;
mod fairness;
mod fast;
mod guard;
mod hooks;
mod leak;
mod lease;
mod lease_acquire;
mod lease_guard;
mod lease_hub;
mod lease_wait;
mod ledger;
mod maintenance;
pub mod metrics;
mod owned;
mod pool;
mod poolable;
pub mod runtime;
mod shareable;
mod shared;
mod sweeper;
mod sync;
mod tasks;
mod waiters;
mod weak;

pub use builder::Builder;
pub use checkout_future::Checkout;
pub use cluster::{ClusterPool, ReadPolicy, ReplicaLag, Role};
pub use config::{ConfigError, ConnPoolConfig, IdleOrder};
pub use duration::{MAX_HUMAN_DURATION, format_duration, parse_duration};
pub use error::{BuildError, ConnectError, HeldCheckout, Phase, PoolError, TimeoutDetails};
pub use fairness::Fairness;
pub use guard::PoolGuard;
pub use hooks::{DestroyReason, HookError, HookResult, LifecycleHooks};
pub use lease::{DEFAULT_SHARED_MAX_IN_FLIGHT, SHARED_MAX_IN_FLIGHT_LIMIT};
pub use lease_acquire::SharedStats;
pub use lease_guard::SharedGuard;
pub use owned::OwnedCheckout;
pub use pool::{ConnPool, DrainReport};
pub use poolable::{BoxFuture, Connect, ConnectTarget, Connector, Poolable};
pub use runtime::Runtime;
pub use shareable::Shareable;
pub use weak::WeakPool;
