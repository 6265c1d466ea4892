//! A driver error whose `Display` panics, formatted by the pool's own log line about a
//! failed connect: with a subscriber recording the event, the panic must not cost the
//! attempt's capacity (with `max_size` 1, a leak would time out every later checkout).

use std::fmt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use pg_pool_core::{ConnPoolConfig, Poolable};
use pg_pool_tokio::ConnPool;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

/// Formats every field of every event, as a log formatter does.
struct FormatAll;

struct Formatter;

impl Visit for Formatter {
    fn record_debug(&mut self, _: &Field, value: &dyn fmt::Debug) {
        let _ = format!("{value:?}");
    }
}

impl<S: Subscriber> Layer<S> for FormatAll {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        event.record(&mut Formatter);
    }
}

/// An error whose `Display` panics.
#[derive(Debug)]
struct Hostile;

impl fmt::Display for Hostile {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        panic!("the error's Display panics")
    }
}

impl std::error::Error for Hostile {}

#[derive(Debug)]
struct Conn;

impl Poolable for Conn {
    type Error = Hostile;
}

static FAIL: AtomicBool = AtomicBool::new(true);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_error_display_does_not_leak_capacity() {
    tracing_subscriber::registry()
        .with(FormatAll)
        .try_init()
        .expect("the only subscriber of this test binary");
    let mut config = ConnPoolConfig::default();
    config.max_size = 1;
    config.checkout_timeout = Duration::from_millis(300);
    config.connect_backoff = Duration::from_millis(10);
    config.connect_backoff_max = Duration::from_millis(20);
    let pool = ConnPool::builder(|| async {
        if FAIL.load(Ordering::SeqCst) {
            Err(Hostile)
        } else {
            Ok(Conn)
        }
    })
    .config(config)
    .build()
    .await
    .expect("builds");
    // The error reaches the caller (its own formatting is the caller's business).
    assert!(pool.get().await.is_err());
    FAIL.store(false, Ordering::SeqCst);
    let started = Instant::now();
    loop {
        let m = pool.metrics();
        if m.connecting == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "the failed attempt is still counted: {m:?}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    drop(pool.get().await.expect("the next caller is served"));
    let m = pool.metrics();
    assert_eq!((m.size, m.connecting, m.active), (1, 0, 0), "{m:?}");
}
