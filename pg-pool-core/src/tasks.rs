//! The pool's background tasks: spawned with panics contained, and watched for a runtime
//! that refuses to run them.
//!
//! A runtime that has shut down (tokio after `Runtime` is dropped, an executor that is
//! dropped) drops the futures handed to it without polling them. Every guard a task needs
//! (capacity reservations, connections counted as active, closes counted as closing) is
//! therefore created *before* the task is spawned and moved into it, so dropping the
//! unpolled future releases what it held. A task dropped before its first poll also tells
//! the pool that its runtime is gone: the pool closes, and checkouts fail with
//! [`PoolError::RuntimeGone`](crate::PoolError::RuntimeGone) instead of waiting for work
//! that will never run.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::{Arc, Weak};
use std::task::{Context, Poll};

use futures_lite::FutureExt;

use crate::hooks::panic_message;
use crate::poolable::Poolable;
use crate::runtime::Runtime;
use crate::shared::Shared;

pin_project_lite::pin_project! {
    /// A spawned future that reports being dropped before its first poll.
    struct Watched<F, T: Poolable, R: Runtime> {
        #[pin]
        inner: F,
        started: bool,
        pool: Weak<Shared<T, R>>,
    }

    impl<F, T: Poolable, R: Runtime> PinnedDrop for Watched<F, T, R> {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            if !*this.started && let Some(shared) = this.pool.upgrade() {
                shared.runtime_gone();
            }
        }
    }
}

impl<F: Future<Output = ()>, T: Poolable, R: Runtime> Future for Watched<F, T, R> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.project();
        *this.started = true;
        this.inner.poll(cx)
    }
}

impl<T: Poolable, R: Runtime> Shared<T, R> {
    /// Spawns `future` on the pool's runtime, catching a panic so that a panicking driver
    /// or hook never takes a runtime worker down (the drop guards inside the future have
    /// restored the pool's accounting by the time the panic is caught), and noticing a
    /// runtime that drops it unpolled.
    pub(crate) fn spawn<F>(self: &Arc<Self>, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let caught = async move {
            if let Err(payload) = AssertUnwindSafe(future).catch_unwind().await {
                tracing::error!(
                    panic = %panic_message(&*payload),
                    "a pool task panicked; its connection was destroyed"
                );
            }
        };
        self.runtime.spawn(Watched {
            inner: caught,
            started: false,
            pool: Arc::downgrade(self),
        });
    }
}
