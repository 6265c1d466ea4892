use super::{messages_change_session, sql_changes_session};

#[test]
fn ordinary_statements_keep_the_fast_path() {
    for sql in [
        "",
        " ; ",
        "SELECT 1",
        "select id, name from users where id = $1",
        "SELECT count(*), max(x), coalesce(a, b) FROM t WHERE x IN (1, 2) AND y = ANY($1)",
        "SELECT now(), pg_catalog.now(), current_setting('work_mem'), pg_backend_pid()",
        "INSERT INTO t (a, b) VALUES ($1, $2) RETURNING id",
        "INSERT INTO s.t (a) VALUES (1) ON CONFLICT (a) DO UPDATE SET a = EXCLUDED.a",
        "UPDATE t SET (a, b) = (1, 2) WHERE id = $1",
        "DELETE FROM t WHERE EXISTS (SELECT 1 FROM u WHERE u.id = t.id)",
        "WITH a AS (SELECT 1), b(x) AS (SELECT 2), c AS MATERIALIZED (SELECT 3) SELECT * FROM a, b, c",
        "WITH a(x) AS NOT MATERIALIZED (SELECT 1), b(y) AS MATERIALIZED (SELECT 2) SELECT 1",
        "WITH RECURSIVE r(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM r WHERE n < 3) SELECT * FROM r",
        "SELECT x::varchar(10), CAST(y AS numeric(10, 2)), row_number() OVER (PARTITION BY z ORDER BY w) FROM t",
        "SELECT * FROM generate_series(1, 3) AS g(i) JOIN t USING (i)",
        "SELECT 'f(' || \"quoted col\" FROM t -- g()\n",
        "CREATE TABLE IF NOT EXISTS t (x int PRIMARY KEY, y text CHECK (y <> ''))",
        "CREATE TABLE t (x int)",
        "CREATE FUNCTION f(int) RETURNS int AS $$ SELECT set_config('a.b', '1', false)::int $$ LANGUAGE sql",
        "BEGIN; SET LOCAL work_mem = '2MB'; SET TRANSACTION READ ONLY; COMMIT",
        "COPY t (a, b) FROM STDIN",
        "NOTIFY c, 'x'",
        "SHOW search_path",
        "EXPLAIN (ANALYZE) SELECT 1",
        "INSERT INTO \"users\" (\"a\", \"b\") VALUES ($1, $2) RETURNING \"users\".\"id\"",
        "WITH ins AS (INSERT INTO t (a) VALUES (1) RETURNING *) SELECT * FROM ins",
        "SELECT EXISTS(SELECT 1 FROM t WHERE data->>'k' = lower($1)) LIMIT $2",
        "UPDATE t SET updated_at = now(), n = n + 1 WHERE id = $1",
        "SELECT template, temperature FROM t",
        "SELECT * FROM t WHERE a NOT LIKE ('x' || $1) AND b NOT ILIKE (lower($2))",
        "SELECT \"a\" NOT LIKE ($1), (a) NOT ILIKE ($2), 'x' NOT LIKE ($3) FROM t",
        "ANALYZE (VERBOSE) t (a)",
        "ANALYSE VERBOSE t (a, b)",
        "VACUUM (VERBOSE, ANALYZE, PARALLEL 2) t (a), u",
        "SELECT ts_rank(tsv, q) FROM t, websearch_to_tsquery('english', $1) q WHERE tsv @@ q",
        "SELECT to_tsvector('english', b) @@ plainto_tsquery('english', $1) FROM t",
        "SELECT * FROM t TABLESAMPLE SYSTEM (10) REPEATABLE (1), u TABLESAMPLE BERNOULLI (5)",
        "SELECT pg_try_advisory_xact_lock(1), PG_ADVISORY_XACT_LOCK_SHARED(2)",
        "SELECT currval('s'), lastval(), inet_server_addr(), inet_client_port()",
        "SELECT set_config('request.jwt.claims', $1, true)",
        "select pg_catalog.SET_CONFIG('search_path', lower($1), TRUE), 1",
        "BEGIN; SELECT set_config('app.user', $1, true); SELECT * FROM t; COMMIT",
    ] {
        assert!(!sql_changes_session(sql), "{sql}");
    }
}

#[test]
fn code_that_may_change_the_session_counts() {
    for sql in [
        "SET search_path = x",
        "SET SESSION search_path = x",
        "set_config_x",
        "DO $$ BEGIN EXECUTE 'SET search_path TO x'; END $$",
        "do $$ begin perform 1; end $$",
        "CALL p()",
        "call s.p(1)",
        "SELECT my_function()",
        "SELECT public.now()",
        "SELECT \"count\"(1)",
        "SELECT a.b.count(1)",
        "VALUES (f(1))",
        "SELECT 1 FROM t WHERE g(x) > 0",
        "INSERT INTO t VALUES (f())",
        "INSERT INTO t SELECT f() FROM u",
        "UPDATE t SET a = f(a)",
        "WITH a AS (SELECT f()) SELECT * FROM a",
        "SELECT pg_advisory_lock(1)",
        "SELECT pg_catalog.pg_try_advisory_lock(1)",
        "SELECT set_config('search_path', 'x', false)",
        "SELECT nextval('s')",
        "SELECT query_to_xml('select 1', true, true, '')",
        "CREATE TEMP TABLE t (x int)",
        "CREATE TEMPORARY TABLE t (x int)",
        "CREATE TABLE pg_temp.t (x int)",
        "SELECT 1 INTO TEMP t",
        "PREPARE p AS SELECT 1",
        "EXECUTE p",
        "DEALLOCATE p",
        "DISCARD ALL",
        "LISTEN c",
        "UNLISTEN c",
        "LOAD 'x'",
        "DECLARE c CURSOR WITH HOLD FOR SELECT 1",
        "RESET ALL; LISTEN c",
        "SELECT 1; SELECT f()",
        "(SELECT f())",
        "SELECT f(1) AS materialized",
        "SELECT f(1) AS materialized, 2 AS not_materialized",
        "SELECT f(1) AS not",
        "E'x'",
        "$$ x $$",
        "SELECT NOT like(1)",
        "SELECT * FROM t WHERE a AND NOT ilike(b)",
        "SELECT * FROM t WHERE (NOT similar(b))",
        "SELECT a NOT LIKE f(b) FROM t",
        "SELECT a NOT LIKE (f(b)) FROM t",
        "ANALYZE pg_temp.t",
        "VACUUM t; SELECT f()",
        "SELECT system(1)",
        "SELECT set_config('a.b', $1, false)",
        "SELECT set_config('a.b', $1, $2)",
        "SELECT set_config('a.b', $1, 'true')",
        "SELECT set_config('a.b', $1, true OR false)",
        "SELECT set_config('a.b', f(true), true)",
        "SELECT public.set_config('a.b', $1, true)",
        "SELECT db.pg_catalog.set_config('a.b', $1, true)",
        "SELECT \"set_config\"('a.b', $1, true)",
        "SELECT my_set_config('a.b', $1, true)",
        "SELECT set_config('a.b', $1, true), set_config('c.d', $2, false)",
        "SELECT set_config('a.b', $1, true",
        "SELECT * FROM t TABLESAMPLE my_method (1)",
        "SELECT \"pg_try_advisory_xact_lock\"(1)",
        "SELECT s.pg_advisory_xact_lock(1)",
        "SELECT pg_advisory_xact_lock_evil(1)",
        "SELECT pg_advisory_lock_shared(1)",
        "SELECT ts_rewrite('a'::tsquery, 'SELECT 1')",
    ] {
        assert!(sql_changes_session(sql), "{sql}");
    }
}

fn message(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&i32::try_from(body.len() + 4).unwrap().to_be_bytes());
    out.extend_from_slice(body);
    out
}

#[test]
fn frontend_messages() {
    let query = |sql: &str| message(b'Q', format!("{sql}\0").as_bytes());
    let parse = |name: &str, sql: &str| message(b'P', format!("{name}\0{sql}\0\0\0").as_bytes());
    let tail = [
        message(b'B', b"\0s1\0\0\0\0\0\0\0"),
        message(b'E', b"\0\0\0\0\0"),
        message(b'S', b""),
    ]
    .concat();
    assert!(!messages_change_session(&query("SELECT 1")));
    assert!(messages_change_session(&query("SET a.b = 1")));
    assert!(!messages_change_session(
        &[parse("s1", "SELECT $1::int"), tail.clone()].concat()
    ));
    assert!(messages_change_session(
        &[parse("s1", "SELECT f($1)"), tail.clone()].concat()
    ));
    assert!(messages_change_session(
        &[query("SELECT 1"), query("CALL p()")].concat()
    ));
    assert!(messages_change_session(&message(b'F', &[0; 10])));
    assert!(!messages_change_session(&[]));
    // Truncated or nonsense lengths.
    assert!(messages_change_session(&query("SELECT 1")[..7]));
    assert!(messages_change_session(&[b'S', 0, 0, 0, 2]));
    assert!(messages_change_session(&[b'S', 0xff, 0xff, 0xff, 0xff]));
}

#[test]
fn the_replica_lag_check_is_harmless() {
    // Both drivers run it in the background on pooled sessions: it must not cost a reset.
    assert!(!sql_changes_session(crate::REPLICA_LAG_SQL));
}
