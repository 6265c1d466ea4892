//! Pools with an in-memory connection, driven so that every kind of series has data.

#![allow(dead_code, unreachable_pub)]

use std::time::Duration;

use pg_pool_core::{ConnPoolConfig, LifecycleHooks, PoolGuard, Poolable};
use pg_pool_tokio::{ConnPool, Tokio};

/// A connection that exists only in memory.
#[derive(Debug)]
pub struct Conn;

impl Poolable for Conn {
    type Error = std::io::Error;
}

/// A pool named `name` of at most two connections, one kept idle, checkouts timing out
/// after 50 ms.
pub async fn pool(name: &str) -> ConnPool<Conn> {
    let mut config = ConnPoolConfig::default();
    config.name = name.into();
    config.max_size = 2;
    config.min_idle = 1;
    config.checkout_timeout = Duration::from_millis(50);
    ConnPool::builder(|| async { Ok(Conn) })
        .config(config)
        .hooks(LifecycleHooks::default())
        .build()
        .await
        .expect("in-memory pool")
}

/// Some traffic: `checkouts` quick checkouts, two that wait ~20 ms behind a held
/// connection, one timeout, one connection marked broken.
pub async fn exercise(pool: &ConnPool<Conn>, checkouts: usize) {
    for _ in 0..checkouts {
        drop(pool.get().await.expect("checkout"));
    }
    // Fill the pool, then wait behind the held connections.
    let a = pool.get().await.expect("a");
    let b = pool.get().await.expect("b");
    let waiter = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.get().await.map(drop) })
    };
    tokio::time::sleep(Duration::from_millis(20)).await;
    drop(a);
    waiter.await.expect("join").expect("waited checkout");
    // Nothing comes back within 50 ms: a timeout.
    let c = pool.get().await.expect("c");
    assert!(
        pool.get().await.is_err(),
        "pool of two, both held: times out"
    );
    drop(c);
    let mut broken: PoolGuard<Conn, Tokio> = b;
    PoolGuard::mark_broken(&mut broken);
    drop(broken);
}
