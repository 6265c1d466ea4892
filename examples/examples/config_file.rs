//! Settings from a TOML file plus the environment: print them (secrets redacted), build a
//! pool, run one query.
//!
//! ```text
//! cargo run --example config_file                        # examples/pool.toml
//! cargo run --example config_file -- my-settings.toml
//! PG_POOL_MAX_SIZE=20 PG_POOL_IDLE_TIMEOUT=off cargo run --example config_file
//! DATABASE_URL=postgres://u:p@127.0.0.1/db cargo run --example config_file
//! ```
//!
//! Precedence, later wins: the pool's defaults, the connection string's `pool_*` keys, the
//! file's `[pool]` table, the `PG_POOL_*` variables. The connection is the file's `url`,
//! else `DATABASE_URL`, else a throwaway PostgreSQL; `PG*` variables fill what the string
//! leaves unset.

use pg_pool::ConnPool;
use pg_pool::wire::pg_pool_conninfo::process_env;
use pg_pool::wire::{WireConnector, WirePoolable};
use pg_pool_examples::Database;
use pg_pool_examples::config_file::{load, resolve, sample_path};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
    let path = std::env::args_os()
        .nth(1)
        .map_or_else(sample_path, Into::into);
    let mut settings = load(&path)?;
    println!("read {}:\n{settings:#?}", path.display());

    // No `url` in the file: DATABASE_URL, or a throwaway server kept until the end.
    let mut db = None;
    if settings.url.is_none() {
        let started = tokio::task::spawn_blocking(Database::from_env_or_throwaway).await??;
        settings.url = Some(started.url().to_owned());
        db = Some(started);
    }

    let (wire, config) = resolve(&settings, process_env, "config-file-example")?;
    println!("\ndriver config: {wire:#?}");
    println!("\npool config: {config:#?}");
    println!(
        "\npool config as TOML (the password is never written):\n{}",
        toml::to_string(&config)?
    );

    let pool = ConnPool::<WirePoolable>::builder(WireConnector::new(wire))
        .config(config)
        .build()
        .await?;
    let mut conn = pool.get().await?;
    let row = conn
        .conn_mut()
        .query_value("SELECT current_setting('application_name')")
        .await?;
    println!("connected; application_name = {}", row.unwrap_or_default());
    drop(conn);
    let m = pool.metrics();
    println!(
        "pool: size {} idle {} max {}",
        m.size,
        m.idle,
        pool.config().max_size
    );
    pool.drain().await;
    drop(db);
    Ok(())
}
