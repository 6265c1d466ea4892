//! Plain SQL through the statement cache (`PgConfig::auto_prepare`, on by default), against
//! a real PostgreSQL: a text is prepared once per connection and bound afterwards, by every
//! kind of caller; the switch, a zero capacity and the pooler-safe profile name nothing;
//! errors are the server's as before; utility statements are not cached.

mod auto_prepare_support;
mod common;

use std::time::Instant;

use auto_prepare_support::{server_statements, single};
use common::{first_row, pg_config};
use pg_pool_test_support::TestCluster;

#[tokio::test]
async fn repeated_sql_is_prepared_once_and_bound_after() {
    let cluster = TestCluster::shared();
    let pool = single(pg_config(cluster, None, "tp-auto-once")).await;
    const SQL: &str = "SELECT $1::int4 + 1";
    let conn = pool.get().await.unwrap();
    assert_eq!(conn.auto_cached_statements(), 0);
    assert_eq!(conn.cached_statements(), 0);
    for i in 0..5i32 {
        let row = conn.query_one(SQL, &[&i]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), i + 1);
    }
    assert!(conn.query_opt(SQL, &[&1i32]).await.unwrap().is_some());
    assert_eq!(conn.query(SQL, &[&1i32]).await.unwrap().len(), 1);
    assert_eq!(conn.execute(SQL, &[&1i32]).await.unwrap(), 1);
    assert_eq!(conn.auto_cached_statements(), 1, "one text, one statement");
    assert_eq!(
        conn.cached_statements(),
        0,
        "none handed out by prepare_cached"
    );
    let (count, runs) = server_statements(&conn, SQL).await;
    println!("server: {count} statements, the cached one ran {runs:?} times");
    assert_eq!(count, 1, "one named statement on the server");
    assert_eq!(runs, Some(8), "every call ran the one cached statement");
    // `prepare_cached` of the same text is a hit, and the other way round.
    let statement = conn.prepare_cached(SQL).await.unwrap();
    assert_eq!(conn.cached_statements(), 1, "now handed out");
    assert_eq!(conn.auto_cached_statements(), 0, "the same entry");
    let row = conn
        .query_one_prepared(&statement, &[&41i32])
        .await
        .unwrap();
    assert_eq!(row.get::<_, i32>(0), 42);
    assert_eq!(server_statements(&conn, SQL).await, (1, Some(9)));
    drop(conn);

    // A transaction and a shared lease use the same cache, and it survives the return.
    let mut conn = pool.get().await.unwrap();
    assert_eq!(conn.cached_statements(), 1, "kept across the return");
    let txn = conn.transaction().await.unwrap();
    assert_eq!(txn.query(SQL, &[&1i32]).await.unwrap().len(), 1);
    assert_eq!(txn.execute(SQL, &[&1i32]).await.unwrap(), 1);
    txn.commit().await.unwrap();
    assert_eq!(server_statements(&conn, SQL).await, (1, Some(11)));
    drop(conn);
    {
        let shared = pool.get_shared().await.unwrap();
        let client = shared.handle();
        let row = client.query_one(SQL, &[&1i32]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 2);
        assert_eq!(client.cached_statements(), 1);
        assert_eq!(client.auto_cached_statements(), 0);
    }
    let conn = pool.get().await.unwrap();
    assert_eq!(server_statements(&conn, SQL).await, (1, Some(12)));
    drop(conn);
    pool.drain().await;
}

#[tokio::test]
async fn off_switch_zero_capacity_and_pooler_safe_name_nothing() {
    let cluster = TestCluster::shared();
    const SQL: &str = "SELECT 7";
    for (what, pg) in [
        (
            "auto_prepare off",
            pg_config(cluster, None, "tp-auto-off").with_auto_prepare(false),
        ),
        ("capacity 0", {
            let mut pg = pg_config(cluster, None, "tp-auto-cap0");
            pg.statement_cache_capacity = 0;
            pg
        }),
        (
            "pooler-safe",
            pg_config(cluster, None, "tp-auto-pooler")
                .with_profile(pg_pool_tokio_postgres::Profile::PoolerSafe),
        ),
    ] {
        let pool = single(pg).await;
        let conn = pool.get().await.unwrap();
        for _ in 0..3 {
            assert_eq!(conn.query_one(SQL, &[]).await.unwrap().get::<_, i32>(0), 7);
            assert_eq!(conn.execute(SQL, &[]).await.unwrap(), 1);
        }
        assert_eq!(conn.auto_cached_statements(), 0, "{what}");
        assert_eq!(conn.cached_statements(), 0, "{what}");
        let (count, _) = server_statements(&conn, SQL).await;
        assert_eq!(count, 0, "{what}: no statement left on the server");
        drop(conn);
        pool.drain().await;
    }
}

/// A syntax error is the server's error, as without the cache; nothing is cached and the
/// session stays usable and clean (reused, not reset).
#[tokio::test]
async fn sql_errors_are_the_same_and_leave_the_session_usable() {
    let cluster = TestCluster::shared();
    let mut errors = Vec::new();
    for auto in [true, false] {
        let pool = single(
            pg_config(cluster, None, &format!("tp-auto-error-{auto}")).with_auto_prepare(auto),
        )
        .await;
        let conn = pool.get().await.unwrap();
        let pid = conn.backend_pid().await.unwrap();
        let err = conn.query_one("SELEC 1", &[]).await.unwrap_err();
        assert_eq!(err.code(), Some("42601"), "{err}");
        let exec = conn
            .execute("SELECT nope FROM nowhere", &[])
            .await
            .unwrap_err();
        assert_eq!(exec.code(), Some("42P01"), "{exec}");
        // A run-time error of a cached statement is not a stale statement.
        let div = conn
            .query_one("SELECT 1 / $1::int", &[&0i32])
            .await
            .unwrap_err();
        assert_eq!(div.code(), Some("22012"), "{div}");
        let row = conn
            .query_one("SELECT 1 / $1::int", &[&1i32])
            .await
            .unwrap();
        assert_eq!(row.get::<_, i32>(0), 1);
        assert_eq!(
            conn.auto_cached_statements(),
            usize::from(auto),
            "only the valid text is cached"
        );
        errors.push((err.to_string(), exec.to_string(), div.to_string()));
        drop(conn);
        let conn = pool.get().await.unwrap();
        assert_eq!(conn.backend_pid().await.unwrap(), pid, "reused");
        assert_eq!(
            conn.query_one("SELECT 2", &[])
                .await
                .unwrap()
                .get::<_, i32>(0),
            2
        );
        drop(conn);
        pool.drain().await;
    }
    assert_eq!(
        errors[0], errors[1],
        "the same errors with and without the cache"
    );
}

/// Utility statements (`SET`, DDL, `ALTER ROLE ... PASSWORD`) are never cached, so their
/// text is not left on the session for the next user to list.
#[tokio::test]
async fn utility_statements_are_not_cached() {
    let cluster = TestCluster::shared();
    let pool = single(pg_config(cluster, None, "tp-auto-utility")).await;
    let conn = pool.get().await.unwrap();
    for _ in 0..2 {
        conn.execute("SET work_mem = '2MB'", &[]).await.unwrap();
        conn.execute("CREATE TEMP TABLE IF NOT EXISTS auto_tmp (x int)", &[])
            .await
            .unwrap();
    }
    assert_eq!(conn.auto_cached_statements(), 0);
    assert_eq!(server_statements(&conn, "").await.0, 0);
    drop(conn);
    let conn = pool.get().await.unwrap();
    let shown = conn.simple_query("SHOW work_mem").await.unwrap();
    assert_eq!(first_row(&shown)[0], "4MB", "reset as before");
    drop(conn);
    pool.drain().await;
}

/// What a call costs with and without the cache, printed (never asserted).
#[tokio::test]
async fn cost_with_and_without_the_cache_is_printed() {
    let cluster = TestCluster::shared();
    for auto in [true, false] {
        let pool = single(
            pg_config(cluster, None, &format!("tp-auto-cost-{auto}")).with_auto_prepare(auto),
        )
        .await;
        let conn = pool.get().await.unwrap();
        conn.query_one("SELECT 1", &[]).await.unwrap();
        let calls = 500u32;
        let started = Instant::now();
        for _ in 0..calls {
            let row = conn.query_one("SELECT 1", &[]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), 1);
        }
        let same = started.elapsed() / calls;
        let started = Instant::now();
        for i in 0..calls {
            let row = conn.query_one(&format!("SELECT {i}"), &[]).await.unwrap();
            assert_eq!(row.get::<_, i32>(0), i as i32);
        }
        let distinct = started.elapsed() / calls;
        println!("auto_prepare {auto}: same text {same:?}/call, distinct texts {distinct:?}/call");
        let cached = conn.auto_cached_statements();
        assert!(cached <= 256, "bounded by the default capacity: {cached}");
        drop(conn);
        pool.drain().await;
    }
}
