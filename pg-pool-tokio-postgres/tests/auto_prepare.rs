//! Plain SQL through the statement cache (`PgConfig::auto_prepare`, on by default), against
//! a real PostgreSQL: a text is prepared once per connection and bound afterwards; stale
//! statements (a schema change, a user's `DEALLOCATE`) are evicted and retried once outside
//! a transaction, returned inside one; errors are the server's as before; SQL distinct on
//! every call grows nothing; the session is judged and reset as without the cache.

mod common;

use std::time::Instant;

use common::{first_row, pg_config, pool, pool_config};
use pg_pool_test_support::TestCluster;
use pg_pool_tokio::Tokio;
use pg_pool_tokio_postgres::{PgConfig, PgConnection, PgPool, ResetWhen};

/// A pool of one, no test on checkout, with `pg`.
async fn single(pg: PgConfig) -> PgPool<Tokio> {
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    pool::<Tokio>(pg, config).await
}

/// How many statements the session has prepared through the protocol (not SQL `PREPARE`),
/// and how many times the one for `sql` ran, if it exists.
async fn server_statements(conn: &PgConnection, sql: &str) -> (i64, Option<i64>) {
    let quoted = sql.replace('\'', "''");
    let rows = conn
        .simple_query(&format!(
            "SELECT (SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql), \
             (SELECT generic_plans + custom_plans FROM pg_prepared_statements \
              WHERE NOT from_sql AND statement = '{quoted}')"
        ))
        .await
        .unwrap();
    let row = first_row(&rows);
    (row[0].parse().unwrap(), row[1].parse().ok())
}

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

/// A cached statement that changes the session (`set_config`) is judged by its text on
/// every call: the session is reset after each use, run from the cache or not, and the
/// reset keeps the cache (the pool's statements are not the user's SQL-level ones).
#[tokio::test]
async fn cached_statements_are_judged_and_reset_as_before() {
    let cluster = TestCluster::shared();
    const SET: &str = "SELECT set_config('work_mem', '1234kB', false)";
    const SHOW: &str = "SELECT current_setting('work_mem')";
    for when in [ResetWhen::Changed, ResetWhen::Used] {
        let pool = single(pg_config(cluster, None, "tp-auto-judge").with_reset_when(when)).await;
        let pid = pool.get().await.unwrap().backend_pid().await.unwrap();
        for round in 0..3 {
            {
                let conn = pool.get().await.unwrap();
                conn.query_one(SET, &[]).await.unwrap();
                let shown = conn.query_one(SHOW, &[]).await.unwrap();
                assert_eq!(shown.get::<_, String>(0), "1234kB");
            }
            let conn = pool.get().await.unwrap();
            assert_eq!(conn.backend_pid().await.unwrap(), pid, "{when:?} reused");
            let shown = conn.simple_query(SHOW).await.unwrap();
            assert_eq!(
                first_row(&shown)[0],
                "4MB",
                "{when:?} round {round}: the cached set_config leaked"
            );
            assert_eq!(
                conn.auto_cached_statements(),
                2,
                "{when:?}: the reset kept the cache"
            );
            let (count, runs) = server_statements(&conn, SET).await;
            assert_eq!(count, 2, "{when:?}");
            assert_eq!(runs, Some(round + 1), "{when:?}: ran from the cache");
        }
        pool.drain().await;
    }
}

/// SQL with inline literals, distinct on every call, through a full cache: nothing grows
/// (the cache and the server's statements stay at the capacity), the application's hot
/// statements stay cached, and a new text is admitted when it comes again.
#[tokio::test]
async fn distinct_sql_on_every_call_grows_nothing() {
    let cluster = TestCluster::shared();
    const CAPACITY: usize = 8;
    let mut pg = pg_config(cluster, None, "tp-auto-hostile");
    pg.statement_cache_capacity = CAPACITY;
    let pool = single(pg).await;
    let conn = pool.get().await.unwrap();
    let hot: Vec<String> = (0..CAPACITY)
        .map(|i| format!("SELECT {i} AS hot"))
        .collect();
    for sql in &hot {
        conn.query_one(sql, &[]).await.unwrap();
    }
    assert_eq!(conn.auto_cached_statements(), CAPACITY);
    let started = Instant::now();
    for i in 0..300 {
        let sql = format!("SELECT {} AS once", 1000 + i);
        let row = conn.query_one(&sql, &[]).await.unwrap();
        assert_eq!(row.get::<_, i32>(0), 1000 + i);
        if i % 50 == 0 {
            for sql in &hot {
                conn.query_one(sql, &[]).await.unwrap();
            }
        }
    }
    println!(
        "300 distinct texts through a full cache: {:?} per call",
        started.elapsed() / 300
    );
    assert_eq!(
        conn.auto_cached_statements(),
        CAPACITY,
        "the cache did not grow"
    );
    let rows = conn
        .simple_query(
            "SELECT count(*), count(*) FILTER (WHERE statement LIKE '% AS hot') \
             FROM pg_prepared_statements WHERE NOT from_sql",
        )
        .await
        .unwrap();
    assert_eq!(
        first_row(&rows),
        [CAPACITY.to_string(), CAPACITY.to_string()],
        "the server holds the hot statements and nothing else"
    );
    // A new text that comes again is admitted, evicting the least recently used.
    const NEW: &str = "SELECT 'new' AS fresh";
    conn.query_one(NEW, &[]).await.unwrap();
    assert_eq!(
        server_statements(&conn, NEW).await.1,
        None,
        "once: not cached"
    );
    conn.query_one(NEW, &[]).await.unwrap();
    let (count, runs) = server_statements(&conn, NEW).await;
    assert_eq!((count, runs), (CAPACITY as i64, Some(1)), "twice: cached");
    assert_eq!(conn.auto_cached_statements(), CAPACITY);
    conn.query_one(NEW, &[]).await.unwrap();
    assert_eq!(server_statements(&conn, NEW).await.1, Some(2), "then bound");
    drop(conn);
    pool.drain().await;
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

/// Many distinct texts that change the session (here `set_config` with a different name
/// each): at most 128 of them are cached, so the protocol tap, which remembers up to 256
/// such statements by name, keeps telling them apart, and a session that later runs only
/// clean statements still goes back without a reset.
#[tokio::test]
async fn statements_that_change_the_session_are_cached_within_the_taps_reach() {
    let cluster = TestCluster::shared();
    let pool = single(pg_config(cluster, None, "tp-auto-stateful")).await;
    let pid = {
        let conn = pool.get().await.unwrap();
        for i in 0..300 {
            let sql = format!("SELECT set_config('pgpool.auto_{i}', 'x', false)");
            conn.query_one(&sql, &[]).await.unwrap();
        }
        let cached = conn.auto_cached_statements();
        println!("{cached} of 300 texts that change the session cached");
        assert_eq!(cached, 128, "capped below the tap's reach");
        conn.backend_pid().await.unwrap()
    };
    const CLEAN: &str = "SELECT 'auto-clean' AS last";
    for round in 0..2 {
        {
            let conn = pool.get().await.unwrap();
            assert_eq!(conn.backend_pid().await.unwrap(), pid, "reused");
            let row = conn.query_one(CLEAN, &[]).await.unwrap();
            assert_eq!(row.get::<_, &str>(0), "auto-clean");
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let q = format!("SELECT query FROM pg_stat_activity WHERE pid = {pid}");
        let last = common::blocking(move || cluster.sql(&q).unwrap()).await;
        println!("round {round}: the backend's last statement is {last:?}");
        assert_eq!(last, CLEAN, "round {round}: a clean use was reset");
    }
    pool.drain().await;
}
