//! pg-pool-tokio-postgres (work in progress; not yet part of the product).
