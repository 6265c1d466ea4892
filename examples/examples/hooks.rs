//! Lifecycle hooks on a real server: `SET application_name` at checkout and `RESET ALL` at
//! checkin, visible in `pg_stat_activity`.
//!
//! ```text
//! cargo run --example hooks
//! ```

use pg_pool::wire::{WireConnector, WireError, WirePoolable};
use pg_pool::{ConnPool, HookError, LifecycleHooks, Poolable};
use pg_pool_examples::Database;

/// Prints the pool's sessions as the server sees them, from a separate connection.
async fn show_activity(db: &Database, when: &str) -> Result<(), WireError> {
    let mut observer = WirePoolable::open(&db.wire_config("hooks-observer")?).await?;
    let rows = observer
        .simple_query(
            "SELECT pid, application_name, state FROM pg_stat_activity \
             WHERE application_name LIKE 'hooks-example%' ORDER BY pid",
        )
        .await?;
    println!("pg_stat_activity {when}:");
    for row in rows {
        let cell = |i: usize| row.get(i).cloned().flatten().unwrap_or_default();
        println!(
            "  pid {:>6}  application_name {:<28} state {}",
            cell(0),
            cell(1),
            cell(2)
        );
    }
    observer.close().await; // sends Terminate
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let db = tokio::task::spawn_blocking(Database::from_env_or_throwaway).await??;
    // The startup name, sent in the startup message, is what RESET ALL returns to.
    let connector = WireConnector::new(db.wire_config("hooks-example-idle")?);

    let hooks = LifecycleHooks::<WirePoolable>::default()
        .on_checkout(|conn| {
            Box::pin(async move {
                conn.execute("SET application_name = 'hooks-example-checked-out'")
                    .await
                    .map(drop)
                    .map_err(HookError::from_error)
            })
        })
        .on_checkin(|conn| {
            Box::pin(async move {
                conn.execute("RESET ALL")
                    .await
                    .map(drop)
                    .map_err(HookError::from_error)
            })
        })
        .on_destroy(|conn, reason| {
            println!(
                "destroy hook: backend {} destroyed ({reason})",
                conn.backend_pid()
            );
        });

    let mut config = connector.config().pool_config();
    config.min_idle = 2;
    config.max_size = 4;
    let pool = ConnPool::<WirePoolable>::builder(connector)
        .config(config)
        .hooks(hooks)
        .build()
        .await?;
    show_activity(&db, "with 2 idle connections").await?;

    let mut guard = pool.get().await?;
    let name = guard.query_value("SHOW application_name").await?;
    println!(
        "checked out backend {}; it says application_name = {name:?}",
        guard.backend_pid()
    );
    show_activity(&db, "while one is checked out").await?;

    drop(guard);
    // The checkin runs on a background task (reset, then the checkin hook).
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    show_activity(&db, "after checkin (RESET ALL)").await?;

    pool.drain().await;
    show_activity(&db, "after drain").await?;
    Ok(())
}
