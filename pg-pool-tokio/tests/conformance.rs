//! The conformance suite on tokio's multi-thread scheduler (2 workers) and, in
//! `conformance_current_thread.rs`, on the current-thread scheduler.

use std::future::Future;

use pg_pool_tokio::Tokio;

struct MultiThread;

impl pg_pool_conformance::Harness for MultiThread {
    type Rt = Tokio;

    fn block_on<F>(future: F) -> F::Output
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(future)
    }
}

pg_pool_conformance::conformance_suite!(MultiThread);
