//! pg-pool-bench (work in progress; not yet part of the product).
