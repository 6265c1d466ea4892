//! [`AsyncStd`]: async-io timers and async-std's global executor.

use std::future::Future;
use std::task::{Context, Poll};
use std::time::Duration;

use async_io::Timer;
use pg_pool_core::{
    Runtime,
    runtime::{DiscardOutput, NoRuntime},
};

/// The async-std runtime. Its executor is global, so [`Runtime::current`] always succeeds.
#[derive(Debug, Clone, Copy, Default)]
pub struct AsyncStd;

/// The future returned by [`AsyncStd`]'s `sleep`: an `async-io` timer.
pub type Sleep = DiscardOutput<Timer>;

impl Runtime for AsyncStd {
    type Sleep = Sleep;

    fn current() -> Result<Self, NoRuntime> {
        Ok(Self)
    }

    fn sleep(&self, duration: Duration) -> Sleep {
        DiscardOutput::new(Timer::after(duration))
    }

    fn spawn<F>(&self, future: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        // Dropping an async-std `JoinHandle` detaches the task; it runs to completion.
        drop(async_std::task::spawn(future));
    }

    fn poll_cooperate(&self, cx: &mut Context<'_>) -> Poll<()> {
        // No task budget of its own: yield every THREAD_BUDGET checkouts.
        pg_pool_core::runtime::poll_thread_budget(cx)
    }
}
