//! The conformance suite on smol (global executor, `async-io` timers).

use std::future::Future;

use pg_pool_smol::Smol;

struct SmolHarness;

impl pg_pool_conformance::Harness for SmolHarness {
    type Rt = Smol;

    fn block_on<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        smol::block_on(future)
    }
}

pg_pool_conformance::conformance_suite!(SmolHarness);
