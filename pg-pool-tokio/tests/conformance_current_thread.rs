//! The conformance suite on tokio's current-thread scheduler.

use std::future::Future;

use pg_pool_tokio::Tokio;

struct CurrentThread;

impl pg_pool_conformance::Harness for CurrentThread {
    type Rt = Tokio;

    fn block_on<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(future)
    }
}

pg_pool_conformance::conformance_suite!(CurrentThread);
