//! The README's minimal example, made runnable: a pool, one checkout, one query.
//!
//! ```text
//! cargo run --example quickstart                      # throwaway local PostgreSQL
//! DATABASE_URL=postgres://u:p@127.0.0.1/db cargo run --example quickstart
//! ```

use pg_pool::wire::WirePoolable;
use pg_pool::{ConnPool, ConnPoolConfig, LifecycleHooks};
use pg_pool_examples::Database;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let db = tokio::task::spawn_blocking(Database::from_env_or_throwaway).await??;
    let wire = db.wire_config("quickstart")?;

    // As in the README: the address, user, password and database go in the pool config.
    let mut config = ConnPoolConfig::default();
    config.addr = wire.addr.clone();
    config.user = wire.user.clone();
    config.password = wire.password.clone();
    config.database = wire.database.clone();
    let pool = ConnPool::<WirePoolable>::new(config, LifecycleHooks::default()).await?;

    let mut guard = pool.get().await?;
    let version = guard.conn_mut().query_value("SELECT version()").await?;
    println!(
        "connected to backend {}: {}",
        guard.backend_pid(),
        version.unwrap_or_default()
    );
    let rows = guard
        .simple_query("SELECT n, n * n FROM generate_series(1, 3) AS n")
        .await?;
    for row in rows {
        println!("  {:?}", row);
    }
    drop(guard); // returns to the pool

    let m = pool.metrics();
    println!(
        "pool: size {} idle {} creates {} checkouts {}",
        m.size, m.idle, m.creates, m.checkouts
    );
    pool.drain().await;
    println!("drained; bye");
    drop(db);
    Ok(())
}
