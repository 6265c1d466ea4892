//! The engine's clock.
//!
//! Every checkout and return reads the clock (lifetime, idle time, usage and wait
//! histograms), so its cost is on the hot path: `quanta` reads the CPU's invariant TSC,
//! about 10 ns here against about 23 ns for `std::time::Instant::now`, and falls back to the
//! OS clock where the TSC cannot be trusted.

pub(crate) use quanta::Instant;
