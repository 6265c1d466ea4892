//! The scenarios, one module per concern. Each is an `async fn` generic over the runtime.

pub mod bounded;
pub mod cancellation;
pub mod checkout;
pub mod cluster;
pub mod drain;
pub mod fairness;
pub mod hardening;
pub mod hook_panics;
pub mod hooks;
pub mod maintenance;
pub mod metrics;
pub mod shared;
pub mod shared_load;
pub mod sync_panics;
pub mod timeouts;
