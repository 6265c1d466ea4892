//! The conformance suite on async-std.

use std::future::Future;

use pg_pool_async_std::AsyncStd;

struct AsyncStdHarness;

impl pg_pool_conformance::Harness for AsyncStdHarness {
    type Rt = AsyncStd;

    fn block_on<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        async_std::task::block_on(future)
    }
}

pg_pool_conformance::conformance_suite!(AsyncStdHarness);
