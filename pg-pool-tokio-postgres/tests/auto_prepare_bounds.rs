//! What the statement cache may not do to a session or to memory: SQL distinct on every
//! call grows nothing; statements that change the session are judged and reset as without
//! the cache, and stay few enough for the protocol tap to tell them apart.

mod auto_prepare_support;
mod common;

use std::time::Instant;

use auto_prepare_support::{last_query, server_statements, single};
use common::{first_row, pg_config};
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::ResetWhen;

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
        let last = last_query(cluster, pid).await;
        println!("round {round}: the backend's last statement is {last:?}");
        assert_eq!(last, CLEAN, "round {round}: a clean use was reset");
    }
    pool.drain().await;
}
