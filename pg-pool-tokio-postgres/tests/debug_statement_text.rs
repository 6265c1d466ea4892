//! Statement text can carry secrets (`ALTER ROLE app PASSWORD '...'`): the `Debug` of a
//! connection, a shared lease and its client must not show the SQL that ran on it, cached
//! statements included.

mod common;

use common::{pg_config, pool, pool_config};
use pg_pool_test_support::TestCluster;

const SECRET: &str = "Zq7SECRETxv";

fn assert_hidden(what: &str, debug: &str) {
    assert!(!debug.contains(SECRET), "{what} shows the SQL: {debug}");
}

#[tokio::test]
async fn debug_output_never_shows_statement_text() {
    let cluster = TestCluster::shared();
    let pool = pool::<pg_pool_tokio::Tokio>(
        pg_config(cluster, None, "tp-debug-statement-text"),
        pool_config(1),
    )
    .await;
    let sql = format!("SELECT '{SECRET}'::text AS password");
    {
        let conn = pool.get().await.expect("a connection");
        conn.query(&sql, &[]).await.expect("runs");
        let cached = conn.prepare_cached(&sql).await.expect("prepares");
        assert_hidden("a cached statement", &format!("{cached:?}"));
        assert_hidden("an exclusive checkout", &format!("{conn:?}"));
    }
    {
        let shared = pool.get_shared().await.expect("a shared lease");
        let client = shared.handle();
        client.query(&sql, &[]).await.expect("runs");
        assert_hidden("a shared client", &format!("{client:?}"));
        assert_hidden("a shared lease", &format!("{shared:?}"));
    }
    assert_hidden("the pool", &format!("{pool:?}"));
    pool.drain().await;
}
