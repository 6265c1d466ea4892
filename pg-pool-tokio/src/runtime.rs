//! [`Tokio`]: timers and task spawning from tokio.

use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

use pg_pool_core::{Runtime, runtime::NoRuntime};
use tokio::runtime::Handle;

/// The tokio runtime, by handle.
///
/// Works with the multi-thread and the current-thread scheduler. Spawning goes through the
/// handle, so it works from any thread while the runtime is alive; after the runtime has shut
/// down, spawned work is dropped, which the pool treats as a cancelled task (capacity is
/// released, connections are dropped).
#[derive(Debug, Clone)]
pub struct Tokio {
    handle: Handle,
}

impl Tokio {
    /// Uses the runtime behind `handle`.
    pub fn from_handle(handle: Handle) -> Self {
        Self { handle }
    }

    /// The runtime handle.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }
}

impl Runtime for Tokio {
    type Sleep = tokio::time::Sleep;

    fn current() -> Result<Self, NoRuntime> {
        Handle::try_current()
            .map(Self::from_handle)
            .map_err(|_| NoRuntime::new("tokio"))
    }

    fn sleep(&self, duration: Duration) -> Self::Sleep {
        // `tokio::time::sleep` looks the timer up in the current context; enter ours so the
        // sleep works when created outside the runtime's threads (for example in `Drop`).
        let _entered = self.handle.enter();
        tokio::time::sleep(duration)
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        drop(self.handle.spawn(future));
    }

    #[inline]
    fn poll_cooperate(&self, cx: &mut Context<'_>) -> Poll<()> {
        // One unit of the task's budget, as tokio's own resources spend it: for each checkout
        // that finds the pool's fast slot closed (callers queued, FIFO idle order); the pool
        // spends the thread's budget on the others.
        tokio::task::coop::poll_proceed(cx).map(|budget| budget.made_progress())
    }
}
