//! LISTEN/NOTIFY beside a pool, on tokio: a `PgListener` made from the pool's connector
//! (its own session, outside the pool) receives what pooled sessions send, survives its
//! session being killed, and says that notifications may have been missed.
//!
//! Uses `DATABASE_URL` if set, otherwise starts a throwaway PostgreSQL from the test kit:
//!
//! ```text
//! cargo run -p pg-pool-tokio-postgres --example listen
//! ```

use std::time::Duration;

use pg_pool_core::ConnPool;
use pg_pool_test_support::TestCluster;
use pg_pool_tokio::Tokio;
use pg_pool_tokio_postgres::{ListenerEvent, PgConfig, PgConnector, PgListener, PgRuntime};

const CHANNEL: &str = "Order Events";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, _cluster) = match std::env::var("DATABASE_URL") {
        Ok(url) => (url, None),
        Err(_) => {
            let cluster = tokio::task::spawn_blocking(TestCluster::start).await??;
            (cluster.url().to_owned(), Some(cluster))
        }
    };
    let mut config = PgConfig::from_url(&url)?;
    config.pg.application_name("listen-example");
    let connector = PgConnector::<Tokio>::current(config)?;
    let pool = ConnPool::<_, Tokio>::builder(connector.clone())
        .build()
        .await?;

    // The listener's session is its own: the pool's max_size does not count it.
    let mut listener = PgListener::connect_with(&connector, &pool.config()).await?;
    listener.listen(CHANNEL).await?;
    println!("listening to {:?}", listener.listening());

    for n in 1..=3 {
        let conn = pool.get().await?;
        let payload = format!("order {n}");
        conn.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload.as_str()])
            .await?;
    }
    for _ in 0..3 {
        report(next(&mut listener).await?);
    }

    // Kill the listener's session, as a failover or an administrator would.
    let conn = pool.get().await?;
    let killed = conn
        .query_one(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE application_name = 'listen-example' AND query LIKE 'LISTEN %' \
             AND pid <> pg_backend_pid() AND pg_terminate_backend(pid)",
            &[],
        )
        .await?
        .get::<_, i64>(0);
    println!("terminated {killed} listening session(s)");
    report(next(&mut listener).await?); // the gap: re-read what the notifications describe

    conn.execute("SELECT pg_notify($1, 'order 4')", &[&CHANNEL])
        .await?;
    report(next(&mut listener).await?);
    drop(conn);
    pool.drain().await;
    Ok(())
}

/// The next event, or an error after 30 s.
async fn next<R: PgRuntime>(
    listener: &mut PgListener<R>,
) -> Result<ListenerEvent, Box<dyn std::error::Error>> {
    match tokio::time::timeout(Duration::from_secs(30), listener.recv()).await {
        Ok(event) => Ok(event?),
        Err(_) => Err("no event within 30 s".into()),
    }
}

fn report(event: ListenerEvent) {
    match event {
        ListenerEvent::Notification(n) => println!(
            "notification on {:?} from backend {}: {:?}",
            n.channel(),
            n.process_id(),
            n.payload()
        ),
        ListenerEvent::Reconnected(gap) => println!(
            "reconnected after {:?} ({} attempt(s)); notifications may have been missed",
            gap.down_for, gap.attempts
        ),
    }
}
