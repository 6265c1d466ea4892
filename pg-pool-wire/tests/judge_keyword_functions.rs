//! The session judge against the server's grammar: every keyword PostgreSQL lets a user
//! function be named after (`pg_get_keywords()`, categories unreserved and
//! type-or-function-name: `like`, `join`, `set`, `filter`, `zone`…) gets a function that
//! calls `set_config`, in a schema on this session's search path. Those names are then put
//! in the places where SQL reads an expression, or a keyword, or a list, and each text is
//! sent as one simple query. Whenever the server called the function, the judge must have
//! said the text changes the session.
//!
//! Keywords that are also the names of built-in functions (`left`, `version`…) are left
//! out: a user overload of a built-in's name is the judge's documented blind spot. `like`
//! and `overlaps` stay (where the grammar reads them as operators, the judge must tell
//! their calls apart), and `system` (a sampling method after `TABLESAMPLE`).

mod common;

use common::{Rng, url};
use pg_pool_conninfo::sql::sql_changes_session;
use pg_pool_test_support::TestCluster;
use pg_pool_wire::{WireConfig, WirePoolable};

/// Statements with `{f}` where a call goes: after keywords that start an expression, after
/// keywords that are operators, after an operand, and inside lists.
const CONTEXTS: &[&str] = &[
    "SELECT {f}",
    "SELECT 1, {f}",
    "SELECT ({f})",
    "SELECT -{f}",
    "SELECT NOT {f}",
    "SELECT 'a' || {f}",
    "SELECT {f}::text",
    "SELECT ARRAY[{f}]",
    "SELECT ROW({f})",
    "SELECT now() AT TIME ZONE {f}",
    "SELECT 'a' LIKE {f}",
    "SELECT 'a' NOT LIKE {f}",
    "SELECT 'a' ILIKE 'b' ESCAPE {f}",
    "SELECT 'a' SIMILAR TO {f}",
    "SELECT 'a' NOT SIMILAR TO {f}",
    "SELECT 1 BETWEEN SYMMETRIC {f} AND 2",
    "SELECT 1 NOT BETWEEN ASYMMETRIC 0 AND {f}",
    "SELECT 1 IS DISTINCT FROM {f}",
    "SELECT 1 = ANY(ARRAY[{f}])",
    "SELECT 1 OPERATOR(pg_catalog.=) {f}",
    "SELECT CASE WHEN true THEN {f} ELSE {f} END",
    "SELECT CASE {f} WHEN 1 THEN 1 END",
    "SELECT substring('abc' FROM 1 FOR {f})",
    "SELECT substring('abc' FROM {f})",
    "SELECT overlay('abc' PLACING {f} FROM 1)",
    "SELECT trim(BOTH {f} FROM 'x')",
    "SELECT trim(LEADING FROM {f})",
    "SELECT position({f} IN 'abc')",
    "SELECT xmlserialize(CONTENT xmlparse(CONTENT {f}) AS text)",
    "SELECT concat(VARIADIC ARRAY[{f}])",
    "SELECT greatest(1, {f})",
    "SELECT coalesce({f}, 1)",
    "SELECT a FROM judge_t WHERE a IN ({f})",
    "SELECT a FROM judge_t WHERE a = 1 AND NOT {f} = 1",
    "SELECT a FROM judge_t WHERE a = 1 OR {f} = 1",
    "SELECT a FROM judge_t GROUP BY a HAVING count(*) > {f}",
    "SELECT a FROM judge_t ORDER BY {f}",
    "SELECT a FROM judge_t LIMIT {f}",
    "SELECT a FROM judge_t OFFSET {f}",
    "SELECT a FROM judge_t FETCH FIRST {f} ROWS ONLY",
    "SELECT a FROM judge_t OFFSET 0 ROWS FETCH NEXT {f} ROWS ONLY",
    "SELECT sum(a) OVER (ORDER BY a ROWS {f} PRECEDING) FROM judge_t",
    "SELECT sum(a) OVER (ORDER BY a RANGE BETWEEN {f} PRECEDING AND CURRENT ROW) FROM judge_t",
    "SELECT sum(a) OVER (PARTITION BY {f}) FROM judge_t",
    "SELECT count(*) FILTER (WHERE {f} = 1) FROM judge_t",
    "SELECT 1 FROM judge_t x JOIN judge_t y ON {f} = 1",
    "SELECT 1 FROM judge_t TABLESAMPLE BERNOULLI (100) REPEATABLE ({f})",
    "SELECT 1 FROM judge_t TABLESAMPLE SYSTEM ({f})",
    "SELECT 1 FROM judge_t TABLESAMPLE {f}",
    "SELECT 1 FROM judge_t TABLESAMPLE SYSTEM (1) REPEATABLE {f}",
    "SELECT * FROM judge_t WHERE EXISTS (SELECT {f})",
    "WITH w AS (SELECT {f}) SELECT * FROM w",
    "VALUES ({f})",
    "INSERT INTO judge_t SELECT 1 WHERE {f} IS NULL",
    "UPDATE judge_t SET a = {f} WHERE false",
    "DELETE FROM judge_t WHERE a = {f}",
    "ALTER TABLE judge_t ALTER COLUMN a SET DEFAULT {f}",
    "EXPLAIN ANALYZE SELECT {f}",
    "EXPLAIN (ANALYZE) SELECT {f}",
];

/// Names tried in every context; the rest of the keywords are sampled.
const ALWAYS: &[&str] = &[
    "like",
    "ilike",
    "similar",
    "join",
    "is",
    "overlaps",
    "set",
    "filter",
    "over",
    "by",
    "range",
    "rows",
    "zone",
    "key",
    "value",
    "cube",
    "within",
    "include",
    "system",
    "repeatable",
];

#[tokio::test]
async fn a_function_named_after_a_keyword_is_counted_wherever_the_server_calls_it() {
    let cluster = TestCluster::shared();
    let config = WireConfig::from_url(&url(cluster, None, "wire-judge-keyword-functions"))
        .expect("the URL parses");
    let mut conn = WirePoolable::open(&config).await.expect("connects");
    conn.simple_query(
        "CREATE SCHEMA IF NOT EXISTS judge_keywords; \
         CREATE TABLE IF NOT EXISTS judge_keywords.judge_t (a int); \
         SET search_path = judge_keywords, public",
    )
    .await
    .expect("runs");
    let rows = conn
        .simple_query(
            "SELECT word FROM pg_get_keywords() WHERE catcode IN ('U', 'T') \
             AND (word IN ('like', 'overlaps', 'system') OR word NOT IN (SELECT proname FROM pg_proc \
                  WHERE pronamespace = 'pg_catalog'::regnamespace)) ORDER BY 1",
        )
        .await
        .expect("runs");
    let keywords: Vec<String> = rows
        .iter()
        .filter_map(|row| row.first().cloned().flatten())
        .collect();
    assert!(keywords.len() > 300, "{} keywords", keywords.len());
    for word in &keywords {
        // Quoted: the names are keywords. Each overload marks the session when it runs.
        conn.simple_query(&format!(
            "CREATE OR REPLACE FUNCTION judge_keywords.\"{word}\"(int) RETURNS int \
             LANGUAGE sql AS $$ SELECT length(left(set_config('judge.hit', 'y', false), 0)) + 1 $$; \
             CREATE OR REPLACE FUNCTION judge_keywords.\"{word}\"(text) RETURNS text \
             LANGUAGE sql AS $$ SELECT left(set_config('judge.hit', 'y', false), 0) || 'UTC' $$"
        ))
        .await
        .expect("a keyword of these categories can name a function");
    }
    let mut rng = Rng(0x5eed_0007);
    let mut names: Vec<&str> = ALWAYS.to_vec();
    assert!(names.iter().all(|name| keywords.iter().any(|k| k == name)));
    names.extend((0..40).map(|_| keywords[rng.below(keywords.len())].as_str()));
    let (mut ran, mut errors, mut total) = (0, 0, 0);
    for name in &names {
        for context in CONTEXTS {
            for arg in ["1", "''"] {
                let sql = context.replace("{f}", &format!("{name}({arg})"));
                total += 1;
                if conn.simple_query(&sql).await.is_err() {
                    errors += 1;
                }
                let hit = conn
                    .query_value("SELECT current_setting('judge.hit', true)")
                    .await
                    .expect("runs");
                if hit.as_deref() == Some("y") {
                    ran += 1;
                    assert!(
                        sql_changes_session(&sql),
                        "the server called {name}() in {sql:?}, the judge missed it"
                    );
                    conn.simple_query("RESET judge.hit").await.expect("runs");
                }
            }
        }
    }
    println!("{total} texts: the function ran in {ran}, {errors} refused");
    // Both outcomes are exercised: the check is not vacuous.
    assert!(ran > 500 && errors > 100, "{ran} ran, {errors} refused");
}
