//! Shared leases (`get_shared`): least-loaded choice, the per-connection limit, limits
//! shared with exclusive checkouts, broken connections, timeouts, drain, cancellation.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pg_pool_core::{
    DEFAULT_SHARED_MAX_IN_FLIGHT, LifecycleHooks, PoolError, Runtime, SHARED_MAX_IN_FLIGHT_LIMIT,
    SharedGuard,
};

use crate::harness::{
    MockPool, cancel_after, mock_pool, poll_once_then_drop, settle, sleep, spawn, test_config,
};
use crate::mock::{Control, MockConn};

pub(crate) async fn shared_pool<R: Runtime>(
    max_size: usize,
    per_conn: usize,
) -> (MockPool<R>, Arc<Control>) {
    let mut config = test_config();
    config.max_size = max_size;
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    pool.set_shared_max_in_flight(per_conn).unwrap();
    (pool, control)
}

fn id<R: Runtime>(guard: &SharedGuard<MockConn, R>) -> u64 {
    guard.handle().id()
}

/// Waits (bounded) until `done` holds.
pub(crate) async fn until<R: Runtime>(what: &str, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "timed out waiting until {what}"
        );
        sleep::<R>(Duration::from_millis(1)).await;
    }
}

/// Users go to the least-loaded connection under the limit; a new connection is checked
/// out only when every shared one is full; each is one ordinary checkout in the metrics.
pub async fn shared_least_loaded_and_limit<R: Runtime>() {
    let (pool, control) = shared_pool::<R>(4, 3).await;
    assert_eq!(pool.shared_max_in_flight(), 3);
    let a1 = pool.get_shared().await.unwrap();
    let a2 = pool.get_shared().await.unwrap();
    let a3 = pool.get_shared().await.unwrap();
    assert_eq!((id(&a1), id(&a2), id(&a3)), (id(&a1), id(&a1), id(&a1)));
    assert_eq!(SharedGuard::in_flight(&a1), 3);
    let b1 = pool.get_shared().await.unwrap();
    assert_ne!(id(&b1), id(&a1), "a full connection takes nobody more");
    let b2 = pool.get_shared().await.unwrap();
    assert_eq!(id(&b2), id(&b1), "least loaded: b has 1, a has 3");
    drop(a1);
    drop(a2);
    // a: 1 user, b: 2 users.
    let next = pool.get_shared().await.unwrap();
    assert_eq!(id(&next), id(&a3), "least loaded is a now");
    let stats = pool.shared_stats();
    assert_eq!((stats.connections, stats.in_flight), (2, 4), "{stats:?}");
    let m = pool.metrics();
    assert_eq!(
        (m.active, m.checkouts),
        (2, 2),
        "one checkout per shared connection: {m:?}"
    );
    drop((a3, next));
    // a's last user let go: it went back to the pool at once.
    let m = pool.metrics();
    assert_eq!((m.active, m.idle), (1, 1), "{m:?}");
    assert_eq!(pool.shared_stats().connections, 1);
    drop((b1, b2));
    let m = settle(&pool, &control).await;
    assert_eq!(m.idle, 2, "{m:?}");
    assert_eq!(pool.shared_stats().handed_out, 6);
}

/// `max_size` counts exclusive and shared connections alike; a waiting shared caller takes
/// whichever frees first: room on a shared connection or a connection from the pool.
pub async fn shared_limits_shared_with_exclusive<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 2;
    config.checkout_timeout = Duration::from_millis(300);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    pool.set_shared_max_in_flight(2).unwrap();
    let exclusive = pool.get().await.unwrap();
    let s1 = pool.get_shared().await.unwrap();
    let s2 = pool.get_shared().await.unwrap();
    assert_eq!(id(&s1), id(&s2));
    assert_eq!(pool.metrics().size, 2);
    // Pool and shared connection full: an exclusive caller and a shared one both wait.
    let started = Instant::now();
    let refused = pool.get().await;
    println!("exclusive get with the pool full: {:?}", started.elapsed());
    assert!(
        matches!(refused, Err(PoolError::Timeout { .. })),
        "{refused:?}"
    );
    let waiting = spawn::<R, _>({
        let pool = pool.clone();
        async move { pool.get_shared().await.map(|g| (id(&g), g)) }
    });
    until::<R>("the shared caller waits", || {
        pool.shared_stats().waiting == 1
    })
    .await;
    // Room on the shared connection frees first.
    drop(s1);
    let (got, third) = waiting.join().await.unwrap();
    assert_eq!(got, id(&s2), "took the freed room");
    assert_eq!(pool.metrics().size, 2);
    // Now the pool frees first: the exclusive connection comes back.
    let waiting = spawn::<R, _>({
        let pool = pool.clone();
        async move { pool.get_shared().await.map(|g| (id(&g), g)) }
    });
    until::<R>("the shared caller waits", || {
        pool.shared_stats().waiting == 1
    })
    .await;
    let exclusive_id = exclusive.id;
    drop(exclusive);
    let (got, fourth) = waiting.join().await.unwrap();
    assert_eq!(got, exclusive_id, "took the connection the pool freed");
    let m = pool.metrics();
    assert!(m.size <= 2, "{m:?}");
    assert_eq!(pool.shared_stats().connections, 2);
    drop((s2, third, fourth));
    settle(&pool, &control).await;
}

/// A connection found dead leaves the set at once; users on the other one are unaffected;
/// the dead one is destroyed when its last user lets go, and a replacement serves.
pub async fn shared_broken_connection_leaves<R: Runtime>() {
    let (pool, control) = shared_pool::<R>(4, 2).await;
    let a1 = pool.get_shared().await.unwrap();
    let a2 = pool.get_shared().await.unwrap();
    let b1 = pool.get_shared().await.unwrap();
    let (a, b) = (id(&a1), id(&b1));
    assert_ne!(a, b);
    // a2 has a statement in flight when a1 kills the session.
    let in_flight = spawn::<R, _>(async move {
        let result = a2.handle().statement(Duration::from_millis(50)).await;
        (result, a2)
    });
    sleep::<R>(Duration::from_millis(5)).await;
    a1.handle().kill();
    drop(a1);
    assert_eq!(pool.shared_stats().connections, 1, "a left the set at once");
    assert_eq!(pool.shared_stats().retired, 1);
    let (result, a2) = in_flight.join().await;
    assert!(
        result.is_err(),
        "the in-flight statement failed: {result:?}"
    );
    assert_eq!(b1.handle().statement(Duration::ZERO).await.unwrap(), b);
    // The next users never get a: they share b, then a replacement.
    let next = pool.get_shared().await.unwrap();
    assert_eq!(id(&next), b);
    let replacement = pool.get_shared().await.unwrap();
    assert!(id(&replacement) != a && id(&replacement) != b);
    assert_eq!(pool.metrics().destroys, 0, "a still has a user");
    drop(a2);
    until::<R>("a is destroyed", || pool.metrics().destroys == 1).await;
    // Marked broken by a user: the same.
    SharedGuard::mark_broken(&replacement);
    let other = pool.get_shared().await.unwrap();
    assert_ne!(id(&other), id(&replacement));
    drop((b1, next, replacement, other));
    let m = settle(&pool, &control).await;
    assert_eq!(m.destroys, 2, "{m:?}");
}

/// A shared caller that gets neither room nor a connection times out with the pool's
/// `checkout_timeout`, and loses nothing.
pub async fn shared_timeout<R: Runtime>() {
    let mut config = test_config();
    config.max_size = 1;
    config.checkout_timeout = Duration::from_millis(200);
    let (pool, control) = mock_pool::<R>(config, LifecycleHooks::default()).await;
    pool.set_shared_max_in_flight(1).unwrap();
    let held = pool.get_shared().await.unwrap();
    let started = Instant::now();
    let result = pool.get_shared().await;
    let waited = started.elapsed();
    println!("shared checkout timed out after {waited:?} (limit 200 ms)");
    assert!(
        matches!(result, Err(PoolError::Timeout { .. })),
        "{result:?}"
    );
    assert!(waited >= Duration::from_millis(190), "{waited:?}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    let stats = pool.shared_stats();
    assert_eq!((stats.waiting, stats.opening), (0, 0), "{stats:?}");
    // The caller's own timeout; the pool checkout it raced may time out in the same
    // instant and be counted too.
    let timeouts = pool.metrics().timeouts;
    assert!((1..=2).contains(&timeouts), "{timeouts}");
    drop(held);
    let again = pool.get_shared().await.unwrap();
    drop(again);
    settle(&pool, &control).await;
}

/// Drain: no new shared lease, waiting callers fail, users finish, then every connection
/// comes back and is closed.
pub async fn shared_drain<R: Runtime>() {
    let (pool, control) = shared_pool::<R>(1, 1).await;
    let held = pool.get_shared().await.unwrap();
    let waiting = spawn::<R, _>({
        let pool = pool.clone();
        async move { pool.get_shared().await.map(drop) }
    });
    until::<R>("the shared caller waits", || {
        pool.shared_stats().waiting == 1
    })
    .await;
    let draining = spawn::<R, _>({
        let pool = pool.clone();
        async move { pool.drain().await }
    });
    assert!(matches!(waiting.join().await, Err(PoolError::Closed)));
    assert!(matches!(pool.get_shared().await, Err(PoolError::Closed)));
    assert_eq!(
        held.handle().statement(Duration::ZERO).await,
        Ok(0),
        "users finish"
    );
    sleep::<R>(Duration::from_millis(10)).await;
    assert_eq!(
        pool.metrics().size,
        1,
        "drain waits for the shared connection"
    );
    drop(held);
    draining.join().await;
    let m = pool.metrics();
    assert_eq!(
        (m.size, m.closing, m.creates, m.destroys),
        (0, 0, 1, 1),
        "{m:?}"
    );
    assert_eq!(control.live(), 0);
}

/// Dropping `get_shared` while it waits (also as the caller checking out a connection for
/// the set) and dropping a guard mid-statement lose no room and no connection.
pub async fn shared_cancellation<R: Runtime>() {
    let (pool, control) = shared_pool::<R>(2, 2).await;
    let held: Vec<_> = {
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(pool.get_shared().await.unwrap());
        }
        held
    };
    // Everything full: the first poll queues the caller (as the opener), then it is dropped.
    assert!(poll_once_then_drop(pool.get_shared()).await.is_none());
    for limit in [1, 5, 20] {
        let result = cancel_after::<R, _>(Duration::from_millis(limit), pool.get_shared()).await;
        assert!(result.is_none(), "nothing was free");
    }
    let stats = pool.shared_stats();
    assert_eq!((stats.waiting, stats.opening), (0, 0), "{stats:?}");
    assert_eq!(
        pool.metrics().waiters,
        0,
        "the opener's checkout left the queue"
    );
    drop(held);
    // A guard dropped while its statement is in flight.
    let users = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..6 {
        let pool = pool.clone();
        let users = Arc::clone(&users);
        tasks.push(spawn::<R, _>(async move {
            cancel_after::<R, _>(Duration::from_millis(10), async {
                let guard = pool.get_shared().await.unwrap();
                users.fetch_add(1, Ordering::SeqCst);
                guard.handle().statement(Duration::from_secs(60)).await
            })
            .await
        }));
    }
    for task in tasks {
        assert!(task.join().await.is_none(), "cancelled mid-statement");
    }
    assert!(
        users.load(Ordering::SeqCst) >= 4,
        "at least the room there was got used"
    );
    let stats = pool.shared_stats();
    assert_eq!(
        (stats.connections, stats.in_flight, stats.waiting),
        (0, 0, 0),
        "{stats:?}"
    );
    let again = pool.get_shared().await.unwrap();
    assert_eq!(
        again.handle().statement(Duration::ZERO).await.map(|_| ()),
        Ok(())
    );
    drop(again);
    settle(&pool, &control).await;
}

/// `evict_all` retires shared connections: no new user gets one; each is destroyed when
/// its last user lets go.
pub async fn shared_evict_all_retires<R: Runtime>() {
    let (pool, control) = shared_pool::<R>(2, 4).await;
    let old = pool.get_shared().await.unwrap();
    pool.evict_all();
    let new = pool.get_shared().await.unwrap();
    assert_ne!(
        id(&new),
        id(&old),
        "an evicted connection takes no new user"
    );
    drop(old);
    until::<R>("the evicted one is destroyed", || {
        pool.metrics().destroys == 1
    })
    .await;
    drop(new);
    settle(&pool, &control).await;
}

/// The per-connection limit is validated; raising it lets waiting callers on.
pub async fn shared_limit_config<R: Runtime>() {
    let (pool, control) = mock_pool::<R>(test_config(), LifecycleHooks::default()).await;
    assert_eq!(pool.shared_max_in_flight(), DEFAULT_SHARED_MAX_IN_FLIGHT);
    for bad in [0, SHARED_MAX_IN_FLIGHT_LIMIT + 1, usize::MAX] {
        let error = pool.set_shared_max_in_flight(bad).unwrap_err();
        assert_eq!(error.field(), "shared_max_in_flight");
        assert!(error.to_string().contains(&bad.to_string()), "{error}");
    }
    assert_eq!(pool.shared_max_in_flight(), DEFAULT_SHARED_MAX_IN_FLIGHT);
    pool.set_shared_max_in_flight(SHARED_MAX_IN_FLIGHT_LIMIT)
        .unwrap();
    pool.resize(1).unwrap();
    pool.set_shared_max_in_flight(1).unwrap();
    let first = pool.get_shared().await.unwrap();
    let waiting = spawn::<R, _>({
        let pool = pool.clone();
        async move { pool.get_shared().await.map(|g| id(&g)) }
    });
    until::<R>("the shared caller waits", || {
        pool.shared_stats().waiting == 1
    })
    .await;
    pool.set_shared_max_in_flight(2).unwrap();
    assert_eq!(waiting.join().await.unwrap(), id(&first));
    drop(first);
    settle(&pool, &control).await;
}
