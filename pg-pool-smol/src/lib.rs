//! pg-pool-smol (work in progress; not yet part of the product).
