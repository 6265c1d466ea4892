//! Every configuration `validate()` accepts works: random configurations, extremes
//! included, either fail validation with an error naming a real field, or build a pool
//! that checks out, queues, cancels, fails a connect, resizes and drains without a panic or
//! a hang.

use std::time::Duration;

use pg_pool_conformance::{Control, Gate, MockConn, Step};
use pg_pool_core::{ConnPoolConfig, IdleOrder, LifecycleHooks, Runtime};
use pg_pool_tokio::{ConnPool, Tokio};
use proptest::prelude::*;

const FIELDS: &[&str] = &[
    "max_size",
    "min_idle",
    "max_connecting",
    "checkout_timeout",
    "connect_timeout",
    "idle_timeout",
    "max_lifetime",
    "max_lifetime_jitter",
    "reaper_interval",
    "health_check_interval",
    "probe_timeout",
    "connect_backoff",
    "connect_backoff_max",
    "checkin_timeout",
    "leak_detection_threshold",
];

fn duration() -> impl Strategy<Value = Duration> {
    prop_oneof![
        1 => Just(Duration::ZERO),
        4 => Just(Duration::from_nanos(1)),
        8 => Just(Duration::MAX),
        4 => Just(Duration::from_secs(u64::MAX)),
        16 => (1u64..5_000).prop_map(Duration::from_millis),
        8 => any::<u64>().prop_map(Duration::from_nanos),
    ]
}

fn size() -> impl Strategy<Value = usize> {
    prop_oneof![
        1 => Just(0usize),
        8 => 1usize..6,
        2 => Just(ConnPoolConfig::MAX_SIZE_LIMIT),
        1 => Just(ConnPoolConfig::MAX_SIZE_LIMIT + 1),
        1 => Just(1 << 40),
        1 => Just(usize::MAX),
    ]
}

static BUILT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

prop_compose! {
    fn config()(
        max_size in size(),
        min_idle in prop_oneof![4 => Just(0usize), 4 => 0usize..4, 1 => Just(usize::MAX)],
        max_connecting in prop_oneof![1 => Just(0usize), 4 => 1usize..4, 2 => Just(usize::MAX)],
        times in proptest::collection::vec(duration(), 15),
        optional in proptest::collection::vec(any::<bool>(), 5),
        test_on_checkout in any::<bool>(),
        fifo in any::<bool>(),
    ) -> ConnPoolConfig {
        let mut c = ConnPoolConfig::default();
        c.max_size = max_size;
        c.min_idle = min_idle;
        c.max_connecting = max_connecting;
        c.checkout_timeout = times[0];
        c.connect_timeout = times[1];
        c.idle_timeout = optional[0].then_some(times[2]);
        c.max_lifetime = optional[1].then_some(times[3]);
        c.max_lifetime_jitter = times[4];
        c.reaper_interval = times[5];
        c.health_check_interval = optional[2].then_some(times[6]);
        c.probe_timeout = times[7];
        c.test_on_checkout = test_on_checkout;
        c.test_on_checkout_after = times[8];
        c.idle_order = if fifo { IdleOrder::Fifo } else { IdleOrder::Lifo };
        c.connect_backoff = times[9];
        c.connect_backoff_max = times[10];
        c.leak_detection_threshold = optional[3].then_some(times[11]);
        c.slow_checkout_threshold = times[12];
        c.checkin_timeout = times[13];
        c
    }
}

/// A short life of a pool: nothing in it may wait on a configured duration, so it ends
/// quickly whatever the config says.
async fn exercise(config: ConnPoolConfig) {
    let runtime = Tokio::current().unwrap();
    let sleeper = runtime.clone();
    let control = Control::new(move |d| sleeper.sleep(d));
    let max_size = config.max_size;
    let pool = ConnPool::<MockConn>::builder(control.connector())
        .config(config)
        .hooks(LifecycleHooks::default())
        .runtime(runtime)
        .build_lazy()
        .expect("a valid config builds");
    // A checkout and a dirty return (an asynchronous reset).
    if let Ok(Ok(mut guard)) = tokio::time::timeout(Duration::from_secs(2), pool.get()).await {
        guard.dirty = true;
    }
    // A queued checkout, cancelled at its first poll.
    let _ = futures_lite::future::poll_once(pool.get()).await;
    // A failed connect, which starts a backoff of whatever length.
    control.once(Step::Connect, Gate::Fail);
    let _ = tokio::time::timeout(Duration::from_millis(200), pool.get()).await;
    let _ = pool.resize(max_size);
    let _ = pool.resize(usize::MAX);
    pool.evict_all();
    let report = pool.drain_timeout(Duration::from_secs(3)).await;
    assert!(
        report.is_complete(),
        "drain: {report:?}, {:?}",
        pool.metrics()
    );
    let built = BUILT.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
    println!("valid configurations exercised so far: {built}");
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn every_valid_config_works(config in config()) {
        match config.validate() {
            Err(error) => {
                prop_assert!(FIELDS.contains(&error.field()), "{error}");
                prop_assert!(error.to_string().contains(error.field()), "{error}");
            }
            Ok(()) => {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async {
                    tokio::time::timeout(Duration::from_secs(20), exercise(config))
                        .await
                        .expect("a pool's short life never hangs");
                });
            }
        }
    }
}
