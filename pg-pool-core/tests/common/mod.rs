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
        std::thread::spawn(move || futures_lite::future::block_on(future));
    }
}

/// A connection that costs nothing.
#[derive(Debug)]
pub struct Noop;

impl Poolable for Noop {
    type Error = std::io::Error;
}
