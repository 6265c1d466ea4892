//! Statement text can carry secrets (`ALTER ROLE app PASSWORD '...'`, a token compared in
//! a `WHERE`): the `Debug` of a connection, a checkout, a shared lease and its handle must
//! not show the SQL that ran on it.

mod common;

use common::{async_wire_pool, wire_config};
use pg_pool_test_support::TestCluster;
use pg_pool_wire::WirePoolable;

const SECRET: &str = "Zq7SECRETxv";

fn assert_hidden(what: &str, debug: &str) {
    assert!(!debug.contains(SECRET), "{what} shows the SQL: {debug}");
}

#[tokio::test]
async fn debug_output_never_shows_statement_text() {
    let cluster = TestCluster::shared();
    let pool = async_wire_pool(wire_config(cluster, None, "wire-debug-secrets"), 1);
    let sql = format!("SELECT '{SECRET}' AS password");
    {
        let conn = pool.get().await.expect("a connection");
        conn.exec_query(&sql, &[], &[]).await.expect("runs");
        assert_hidden("an exclusive checkout", &format!("{conn:?}"));
    }
    {
        let shared = pool.get_shared().await.expect("a shared lease");
        let handle = shared.handle();
        handle.exec_query(&sql, &[], &[]).await.expect("runs");
        assert_hidden("a shared handle", &format!("{handle:?}"));
        assert_hidden("a shared lease", &format!("{shared:?}"));
    }
    assert_hidden("the pool", &format!("{pool:?}"));
    pool.drain().await;

    let mut conn = WirePoolable::open(&wire_config(cluster, None, "wire-debug-secrets"))
        .await
        .expect("connects");
    conn.simple_query(&sql).await.expect("runs");
    assert_hidden("a blocking connection", &format!("{conn:?}"));
}
