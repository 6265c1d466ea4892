//! The session judge against a real server: text the server runs, hidden from a naive
//! lexer (after a `--` comment ended by a carriage return, or after a string that a
//! backslash keeps open only under `standard_conforming_strings = on` or in a UTF-8
//! reading of text the server reads as SJIS), is seen; a
//! shared connection refuses `BEGIN` dressed as `SELECT`.

mod common;

use common::{async_wire_pool, wire_config};
use pg_pool_test_support::TestCluster;
use pg_pool_wire::{WireConfig, WireError, WirePoolable};

#[tokio::test]
async fn a_carriage_return_ends_a_comment_and_the_judge_knows_it() {
    let cluster = TestCluster::shared();
    let mut conn = WirePoolable::open(&wire_config(cluster, None, "wire-judge-cr"))
        .await
        .expect("connects");
    conn.simple_query("SELECT 1 -- note\r; SELECT set_config('search_path', 'smuggled', false)")
        .await
        .expect("runs");
    // The server ran the second statement...
    let path = conn.query_value("SHOW search_path").await.expect("runs");
    assert_eq!(path.as_deref(), Some("smuggled"));
    // ...and the connection knows its session changed, so the pool resets it.
    assert!(conn.session_changed());
}

#[tokio::test]
async fn a_backslash_quote_under_nonstandard_strings_is_judged() {
    let cluster = TestCluster::shared();
    let url = format!(
        "{}&options=-c%20standard_conforming_strings%3Doff",
        common::url(cluster, None, "wire-judge-scs")
    );
    let config = WireConfig::from_url(&url).expect("the URL parses");
    let mut conn = WirePoolable::open(&config).await.expect("connects");
    let scs = conn
        .query_value("SHOW standard_conforming_strings")
        .await
        .expect("runs");
    assert_eq!(scs.as_deref(), Some("off"), "the option reached the server");
    conn.simple_query("SELECT 'x\\''; SELECT set_config('search_path', 'smuggled', false); -- '")
        .await
        .expect("runs");
    let path = conn.query_value("SHOW search_path").await.expect("runs");
    assert_eq!(path.as_deref(), Some("smuggled"));
    assert!(conn.session_changed());
}

#[tokio::test]
async fn a_backslash_swallowed_by_a_multibyte_encoding_is_judged() {
    let cluster = TestCluster::shared();
    let url = common::url(cluster, None, "wire-judge-sjis");
    let config = WireConfig::from_url(&url).expect("the URL parses");
    let mut conn = WirePoolable::open(&config).await.expect("connects");
    // pg-pool-wire refuses a non-UTF-8 encoding at startup; a user can still switch to one.
    conn.simple_query("SET client_encoding = 'SJIS'")
        .await
        .expect("runs");
    let encoding = conn
        .query_value("SHOW client_encoding")
        .await
        .expect("runs");
    assert_eq!(
        encoding.as_deref(),
        Some("SJIS"),
        "the setting reached the server"
    );
    // `ā` is C4 81 in UTF-8; in SJIS, 81 5C is one character: the backslash is gone.
    let sql = "SELECT E'ā\\'; SELECT set_config('search_path', 'smuggled', false); -- '";
    conn.simple_query(sql).await.expect("runs");
    let path = conn.query_value("SHOW search_path").await.expect("runs");
    assert_eq!(path.as_deref(), Some("smuggled"));
    // The `SET` above already marked the session; the judge must see this text on its own.
    assert!(pg_pool_conninfo::sql::sql_changes_session(sql));
}

#[tokio::test]
async fn a_shared_connection_refuses_begin_dressed_as_select() {
    let cluster = TestCluster::shared();
    let pool = async_wire_pool(wire_config(cluster, None, "wire-judge-shared"), 1);
    let db = pool.get_shared().await.expect("a shared lease");
    // The server reads `BEGIN` and a block comment; a scanner that ends `--` comments at
    // line feeds only reads `SELECT`.
    let refused = db
        .handle()
        .exec_query("-- x\rBEGIN /*\nSELECT */", &[], &[])
        .await;
    assert!(
        matches!(refused, Err(WireError::NotShareable { .. })),
        "{refused:?}"
    );
    drop(db);
    pool.drain().await;
}

/// `set_config(…, true)` sets a value for the transaction only: what the judge lets pass as
/// harmless leaves nothing behind, in an implicit transaction and in a committed block.
#[tokio::test]
async fn a_transaction_local_setting_is_gone_when_the_judge_lets_it_pass() {
    let cluster = TestCluster::shared();
    let mut conn = WirePoolable::open(&wire_config(cluster, None, "wire-judge-local"))
        .await
        .expect("connects");
    let before = conn.query_value("SHOW search_path").await.expect("runs");
    for sql in [
        "SELECT set_config('search_path', 'local_only', true)",
        "SELECT pg_catalog.set_config('search_path', 'local_only', TRUE), 1",
        "BEGIN; SELECT set_config('search_path', 'local_only', true); COMMIT",
        "SELECT set_config('search_path', 'local_only', true); SELECT 1",
    ] {
        assert!(!pg_pool_conninfo::sql::sql_changes_session(sql), "{sql}");
        conn.simple_query(sql).await.expect("runs");
        assert!(!conn.session_changed(), "{sql}");
        let path = conn.query_value("SHOW search_path").await.expect("runs");
        assert_eq!(path, before, "{sql} left a setting behind");
    }
    // The session-level form does not pass.
    let sql = "SELECT set_config('search_path', 'kept', false)";
    assert!(pg_pool_conninfo::sql::sql_changes_session(sql));
}
