//! [`Smol`]: async-io timers, tasks on smol's global executor or on one of your own.

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use async_executor::Executor;
use async_io::Timer;
use pg_pool_core::{
    Runtime,
    runtime::{DiscardOutput, NoRuntime},
};

/// The smol runtime.
///
/// [`Runtime::current`] uses smol's global executor (`smol::spawn`), which always exists;
/// [`Smol::with_executor`] spawns on an executor of your own, which must be driven for the
/// pool's background work to make progress.
#[derive(Clone, Default)]
pub struct Smol {
    executor: Option<Arc<Executor<'static>>>,
}

impl fmt::Debug for Smol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Smol")
            .field("own_executor", &self.executor.is_some())
            .finish()
    }
}

impl Smol {
    /// Spawns the pool's tasks on `executor`.
    pub fn with_executor(executor: Arc<Executor<'static>>) -> Self {
        Self {
            executor: Some(executor),
        }
    }
}

/// The future returned by [`Smol`]'s `sleep`: an `async-io` timer.
pub type Sleep = DiscardOutput<Timer>;

impl Runtime for Smol {
    type Sleep = Sleep;

    fn current() -> Result<Self, NoRuntime> {
        Ok(Self::default())
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        DiscardOutput::new(Timer::after(duration))
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // smol tasks cancel on drop: detach so the work always completes.
        match &self.executor {
            Some(executor) => executor.spawn(future).detach(),
            None => smol::spawn(future).detach(),
        }
    }

    fn poll_cooperate(&self, cx: &mut Context<'_>) -> Poll<()> {
        // No task budget of its own: yield every THREAD_BUDGET checkouts.
        pg_pool_core::runtime::poll_thread_budget(cx)
    }
}
