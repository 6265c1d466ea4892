//! Helpers shared by the core's own tests: a runtime that needs no executor.

#![allow(dead_code, unreachable_pub)]

use std::future::{Future, Pending};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pg_pool_core::{Poolable, Runtime, runtime::NoRuntime};

/// Counts spawns and runs each spawned future on a thread of its own; timers never fire.
/// Enough for the synchronous fast path, where nothing may be spawned and no timer is created.
#[derive(Debug, Clone, Copy, Default)]
pub struct Inline;

pub static SPAWNS: AtomicUsize = AtomicUsize::new(0);

/// Spawned tasks that have been polled once.
pub static FIRST_POLLS: AtomicUsize = AtomicUsize::new(0);

/// Waits until every task spawned so far has been polled once, however loaded the machine.
pub fn settle_spawned() {
    while FIRST_POLLS.load(Ordering::SeqCst) < SPAWNS.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(1));
    }
}

impl Runtime for Inline {
    type Sleep = Pending<()>;

    fn current() -> Result<Self, NoRuntime> {
        Ok(Inline)
    }

    fn sleep(&self, _: Duration) -> Self::Sleep {
        std::future::pending()
    }

    fn spawn<F: Future<Output = ()> + Send + 'static>(&self, future: F) {
        SPAWNS.fetch_add(1, Ordering::SeqCst);
        std::thread::spawn(move || {
            let mut future = std::pin::pin!(future);
            // The first poll is where a background task makes its one-time allocations
            // (listeners, thread-locals); count it, so a measurement can start after it.
            let first =
                futures_lite::future::block_on(futures_lite::future::poll_once(future.as_mut()));
            FIRST_POLLS.fetch_add(1, Ordering::SeqCst);
            if first.is_none() {
                futures_lite::future::block_on(future);
            }
        });
    }
}

/// A connection that costs nothing.
#[derive(Debug)]
pub struct Noop;

impl Poolable for Noop {
    type Error = std::io::Error;
}
