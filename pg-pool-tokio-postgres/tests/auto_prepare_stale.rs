//! Stale statements in the cache: a schema change (`0A000`, "cached plan must not change
//! result type") and a statement the server forgot (`26000`) are evicted and retried once
//! outside a transaction block, returned inside one.

mod auto_prepare_support;
mod common;

use auto_prepare_support::{server_statements, single};
use common::pg_config;
use pg_pool_test_support::TestCluster;

/// `SELECT * FROM t` cached, then `ALTER TABLE t ADD COLUMN`: the server refuses the cached
/// plan (`0A000`). Outside a transaction the call prepares again and succeeds; inside one
/// it fails (the transaction is aborted) and the next call prepares afresh.
#[tokio::test]
async fn a_schema_change_is_retried_outside_a_transaction_and_returned_inside() {
    let cluster = TestCluster::shared();
    let pool = single(pg_config(cluster, None, "tp-auto-schema")).await;
    let mut conn = pool.get().await.unwrap();
    conn.batch_execute(
        "DROP TABLE IF EXISTS auto_schema; CREATE TABLE auto_schema (a int); \
         INSERT INTO auto_schema VALUES (1)",
    )
    .await
    .unwrap();
    const SQL: &str = "SELECT * FROM auto_schema";
    assert_eq!(conn.query_one(SQL, &[]).await.unwrap().len(), 1);
    assert_eq!(conn.auto_cached_statements(), 1);

    conn.batch_execute("ALTER TABLE auto_schema ADD COLUMN b int DEFAULT 2")
        .await
        .unwrap();
    let row = conn
        .query_one(SQL, &[])
        .await
        .expect("outside a transaction the stale statement is prepared again");
    assert_eq!(row.len(), 2, "the new shape");
    assert_eq!(row.get::<_, i32>(1), 2);
    assert_eq!(conn.auto_cached_statements(), 1, "the stale one replaced");
    assert_eq!(conn.execute(SQL, &[]).await.unwrap(), 1, "execute too");

    // Inside a transaction: the error, the statement evicted.
    conn.batch_execute("ALTER TABLE auto_schema ADD COLUMN c int DEFAULT 3")
        .await
        .unwrap();
    {
        let txn = conn.transaction().await.unwrap();
        let err = txn.query(SQL, &[]).await.unwrap_err();
        println!("inside a transaction: {err}");
        assert_eq!(err.code(), Some("0A000"), "{err}");
        let again = txn.query(SQL, &[]).await.unwrap_err();
        assert_eq!(
            again.code(),
            Some("25P02"),
            "the transaction is aborted: {again}"
        );
        txn.rollback().await.unwrap();
    }
    assert_eq!(conn.auto_cached_statements(), 0, "evicted");
    let rows = conn.query(SQL, &[]).await.unwrap();
    assert_eq!(rows[0].len(), 3, "prepared afresh after the transaction");
    assert_eq!(conn.auto_cached_statements(), 1);

    // A block opened with SQL text (`BEGIN` through `batch_execute`): not retried either.
    conn.batch_execute("ALTER TABLE auto_schema ADD COLUMN d int DEFAULT 4")
        .await
        .unwrap();
    conn.batch_execute("BEGIN").await.unwrap();
    let err = conn.query(SQL, &[]).await.unwrap_err();
    assert_eq!(err.code(), Some("0A000"), "{err}");
    conn.batch_execute("ROLLBACK").await.unwrap();
    assert_eq!(conn.query(SQL, &[]).await.unwrap()[0].len(), 4);
    conn.batch_execute("DROP TABLE auto_schema").await.unwrap();
    drop(conn);
    pool.drain().await;
}

/// The user's `DEALLOCATE ALL` run where the protocol tap cannot see it (inside a
/// function): the cached statement is missing (`26000`); outside a transaction the call
/// prepares again, inside one the error comes back and the next call prepares afresh. A
/// plain `DEALLOCATE ALL` the tap sees empties the cache before the next call.
#[tokio::test]
async fn a_statement_the_server_forgot_is_prepared_again() {
    let cluster = TestCluster::shared();
    // Made on another session, so the one under test never sends a word that may open a
    // transaction block (the function's `BEGIN`).
    let setup = single(pg_config(cluster, None, "tp-auto-dealloc-setup")).await;
    setup
        .get()
        .await
        .unwrap()
        .batch_execute(
            "CREATE OR REPLACE FUNCTION auto_dealloc_all() RETURNS void LANGUAGE plpgsql \
             AS $f$BEGIN EXECUTE 'DEALLOCATE ALL'; END$f$",
        )
        .await
        .unwrap();
    setup.drain().await;
    let pool = single(pg_config(cluster, None, "tp-auto-dealloc")).await;
    const SQL: &str = "SELECT 42";
    const HIDDEN: &str = "SELECT auto_dealloc_all()";
    let mut conn = pool.get().await.unwrap();
    assert_eq!(conn.query_one(SQL, &[]).await.unwrap().get::<_, i32>(0), 42);
    conn.batch_execute(HIDDEN).await.unwrap();
    assert_eq!(
        server_statements(&conn, SQL).await.0,
        0,
        "gone on the server"
    );
    assert_eq!(conn.auto_cached_statements(), 1, "still cached");
    assert_eq!(conn.query_one(SQL, &[]).await.unwrap().get::<_, i32>(0), 42);
    assert_eq!(server_statements(&conn, SQL).await.0, 1, "prepared again");

    conn.batch_execute(HIDDEN).await.unwrap();
    {
        let txn = conn.transaction().await.unwrap();
        let err = txn.query(SQL, &[]).await.unwrap_err();
        assert_eq!(err.code(), Some("26000"), "{err}");
        drop(txn);
    }
    assert_eq!(conn.auto_cached_statements(), 0, "evicted");
    assert_eq!(conn.query_one(SQL, &[]).await.unwrap().get::<_, i32>(0), 42);

    conn.batch_execute("DEALLOCATE ALL").await.unwrap();
    {
        let txn = conn.transaction().await.unwrap();
        let row = txn
            .query(SQL, &[])
            .await
            .expect("the tap saw the DEALLOCATE");
        assert_eq!(row[0].get::<_, i32>(0), 42);
        txn.commit().await.unwrap();
    }
    drop(conn);
    pool.drain().await;
}
