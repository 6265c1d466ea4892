//! pg-pool-wire (work in progress; not yet part of the product).
