//! The session judge against the server itself: random text built from the pieces that
//! move a scanner between states (quotes, comments, dollar bodies, escapes, carriage
//! returns, multi-byte characters) around a `set_config` call is sent as one simple query,
//! under the default settings, `standard_conforming_strings = off` and
//! `client_encoding = SJIS` (set in the session). Whenever the server ran the call, the judge must have said the
//! text changes the session.

mod common;

use common::{Rng, url};
use pg_pool_conninfo::sql::sql_changes_session;
use pg_pool_test_support::TestCluster;
use pg_pool_wire::{TransactionStatus, WireConfig, WirePoolable};

const PIECES: &[&str] = &[
    "'", "''", "\"", "$$", "$a$", "$1", "$", "/*", "*/", "--", "\n", "\r", " ", "E'", "N'", "U&\"",
    "\\", "\\'", "ā", "é", ";", "(", ")", "SELECT 1", "x", "::text",
];
const CALL: &str = "SELECT set_config('search_path', 'hit', false)";

/// Up to `most` random pieces.
fn pieces(rng: &mut Rng, most: usize) -> String {
    (0..rng.below(most + 1))
        .map(|_| PIECES[rng.below(PIECES.len())])
        .collect()
}

/// A session under `settings`: a URL suffix sent at startup, except a client encoding,
/// which pg-pool-wire refuses at startup (it reads and writes UTF-8 only) and a user can
/// still switch to with `SET` in the middle of a session: the judge must cope with both.
async fn open(cluster: &TestCluster, app: &str, settings: &str) -> WirePoolable {
    let (startup, encoding) = match settings.strip_prefix("&client_encoding=") {
        Some(encoding) => ("", Some(encoding)),
        None => (settings, None),
    };
    let config = WireConfig::from_url(&format!("{}{startup}", url(cluster, None, app)))
        .expect("the URL parses");
    let mut conn = WirePoolable::open(&config).await.expect("connects");
    if let Some(encoding) = encoding {
        conn.simple_query(&format!("SET client_encoding = '{encoding}'"))
            .await
            .expect("runs");
    }
    conn
}

async fn run(settings: &str, cases: usize, seed: u64) -> (usize, usize) {
    let cluster = TestCluster::shared();
    let app = "wire-judge-differential";
    let mut conn = open(cluster, app, settings).await;
    let mut rng = Rng(seed);
    let (mut ran, mut errors) = (0, 0);
    for _ in 0..cases {
        let sql = format!("{}; {CALL} {}", pieces(&mut rng, 6), pieces(&mut rng, 3));
        if conn.simple_query(&sql).await.is_err() {
            errors += 1;
        }
        let path = conn.query_value("SHOW search_path").await.expect("runs");
        if path.as_deref() == Some("hit") {
            ran += 1;
            assert!(
                sql_changes_session(&sql),
                "{settings:?}: the server ran the call in {sql:?}, the judge missed it"
            );
            conn.simple_query("RESET search_path").await.expect("runs");
        }
    }
    println!("{settings:?}: {cases} texts, the call ran in {ran}, {errors} refused");
    (ran, errors)
}

#[tokio::test]
async fn whenever_the_server_runs_the_call_the_judge_counts_it() {
    for (settings, seed) in [
        ("", 0x5eed_0001),
        (
            "&options=-c%20standard_conforming_strings%3Doff",
            0x5eed_0002,
        ),
        ("&client_encoding=SJIS", 0x5eed_0003),
    ] {
        let (ran, errors) = run(settings, 2500, seed).await;
        // Both outcomes are exercised: the check is not vacuous.
        assert!(
            ran > 50 && errors > 50,
            "{settings:?}: {ran} ran, {errors} refused"
        );
    }
}

/// What may come before a statement's first keyword (comments, white space, parentheses)
/// and a few pieces that make the text invalid.
const LEADING: &[&str] = &[
    "/*", "*/", "--", "\n", "\r", " ", "\t", "\u{c}", "\u{b}", "(", "/**/",
];
/// What may follow it: comments that may hide another keyword, or not.
const TRAILING: &[&str] = &["/*", "*/", "\n", "\r", " ", "--", "SELECT", "x"];

/// `first_word`, which admits statements on a shared connection, against the server's
/// own command tag: when it names a keyword, that is the statement the server ran.
#[tokio::test]
async fn first_word_is_the_statement_the_server_runs() {
    let cluster = TestCluster::shared();
    let config = WireConfig::from_url(&url(cluster, None, "wire-first-word-differential"))
        .expect("the URL parses");
    let mut conn = WirePoolable::open(&config).await.expect("connects");
    let mut rng = Rng(0x5eed_0004);
    let (mut ran, mut errors) = (0, 0);
    for _ in 0..4000 {
        let lead: String = (0..rng.below(5))
            .map(|_| LEADING[rng.below(LEADING.len())])
            .collect();
        let keyword = ["BEGIN", "SELECT 1"][rng.below(2)];
        // The tail may hide a keyword in a comment the server sees and a naive scan not.
        let tail: String = (0..rng.below(6))
            .map(|_| TRAILING[rng.below(TRAILING.len())])
            .collect();
        let sql = format!("{lead}{keyword}{tail}");
        let tag = match conn.execute(&sql).await {
            Ok(tag) => tag,
            Err(_) => {
                errors += 1;
                continue;
            }
        };
        ran += 1;
        let seen = pg_pool_conninfo::sql::first_word(&sql);
        if let Some(word) = seen {
            let ran_word = tag.split(' ').next().unwrap_or("");
            assert!(
                word.eq_ignore_ascii_case(ran_word),
                "{sql:?}: first_word says {word:?}, the server ran {tag:?}"
            );
        }
        if tag == "BEGIN" {
            conn.execute("ROLLBACK").await.expect("runs");
        }
    }
    println!("first_word: {ran} ran, {errors} refused");
    assert!(ran > 100 && errors > 100, "{ran} ran, {errors} refused");
}

/// `opens_transaction`, which keeps transaction blocks off shared connections, against the
/// server's transaction status after the text ran.
#[tokio::test]
async fn whenever_a_block_is_left_open_opens_transaction_says_so() {
    const STARTS: &[&str] = &[
        "BEGIN",
        "START TRANSACTION",
        "START /* x */ TRANSACTION",
        "START -- x\rTRANSACTION",
        "START\n--\nTRANSACTION",
        "SELECT 1",
    ];
    let cluster = TestCluster::shared();
    for (settings, seed) in [("", 0x5eed_0005), ("&client_encoding=SJIS", 0x5eed_0006)] {
        let mut conn = open(cluster, "wire-txn-differential", settings).await;
        let mut rng = Rng(seed);
        let mut opened = 0;
        for _ in 0..2500 {
            let start = STARTS[rng.below(STARTS.len())];
            let sql = format!("{}; {start} {}", pieces(&mut rng, 5), pieces(&mut rng, 3));
            let _ = conn.simple_query(&sql).await;
            if conn.transaction_status() != TransactionStatus::Idle {
                opened += 1;
                assert!(
                    pg_pool_conninfo::sql::opens_transaction(&sql),
                    "{settings:?}: {sql:?} left a block open, opens_transaction missed it"
                );
                conn.simple_query("ROLLBACK").await.expect("runs");
            }
        }
        println!("{settings:?}: a block was left open {opened} times");
        assert!(opened > 50, "{settings:?}: {opened}");
    }
}
