//! pg-pool-async-std (work in progress; not yet part of the product).
