//! The same application on two PostgreSQL drivers: only the connection type and its
//! connector change; config, hooks, metrics and drain are shared code.
//!
//! ```text
//! cargo run --example driver_swap
//! ```

use pg_pool::wire::{WireConnector, WirePoolable};
use pg_pool::{ConnPool, Tokio};
use pg_pool_examples::Database;
use pg_pool_examples::swap::{BoxError, app_config, app_hooks, run_app};
use pg_pool_tokio_postgres::{PgConfig, PgConnection, PgConnector};

#[tokio::main]
async fn main() -> Result<(), BoxError> {
    let db = tokio::task::spawn_blocking(Database::from_env_or_throwaway).await??;

    // Driver 1: pg-wired.
    let connector = WireConnector::from_url(db.url())?;
    let pool = ConnPool::<WirePoolable>::builder(connector)
        .config(app_config())
        .hooks(app_hooks())
        .build()
        .await?;
    println!("pg-pool-wire: {:?}", run_app(pool).await?);

    // Driver 2: tokio-postgres. Same config, same hooks, same application.
    let connector = PgConnector::<Tokio>::current(PgConfig::from_url(db.url())?)?;
    let pool = ConnPool::<PgConnection>::builder(connector)
        .config(app_config())
        .hooks(app_hooks())
        .build()
        .await?;
    println!("pg-pool-tokio-postgres: {:?}", run_app(pool).await?);
    Ok(())
}
