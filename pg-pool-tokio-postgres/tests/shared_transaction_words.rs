//! A shared connection refuses SQL that opens a transaction block however its words are
//! spaced: comments between `START` and `TRANSACTION` do not hide it (every user of the
//! connection would otherwise run inside the block).

mod common;

use common::{pg_config, pool, pool_config};
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::PgError;

#[tokio::test]
async fn comments_between_start_and_transaction_do_not_hide_it() {
    let cluster = TestCluster::shared();
    let pool = pool::<pg_pool_tokio::Tokio>(
        pg_config(cluster, None, "tp-shared-transaction-words"),
        pool_config(1),
    )
    .await;
    let shared = pool.get_shared().await.expect("a shared lease");
    let client = shared.handle();
    for sql in [
        "START /* x */ TRANSACTION",
        "START -- x\nTRANSACTION",
        "START -- x\rTRANSACTION",
    ] {
        let refused = client.query(sql, &[]).await;
        assert!(
            matches!(refused, Err(PgError::NotShareable { .. })),
            "{sql:?}: {refused:?}"
        );
    }
    // Still outside any transaction block: `now()` moves between statements.
    let a = client
        .query_one("SELECT now()::text", &[])
        .await
        .expect("runs");
    let b = client
        .query_one("SELECT now()::text", &[])
        .await
        .expect("runs");
    assert_ne!(
        a.get::<_, String>(0),
        b.get::<_, String>(0),
        "not inside a transaction"
    );
    drop(shared);
    pool.drain().await;
}
