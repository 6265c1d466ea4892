//! The SQL judge on hostile text: it runs on every statement a user sends, so it must
//! never panic, never recurse deeply, take time linear in the text, and never let text it
//! cannot read hide a session change.

use std::time::{Duration, Instant};

use pg_pool_conninfo::sql::{first_word, messages_change_session, sql_changes_session};
use proptest::prelude::*;

/// Pieces that put PostgreSQL's scanner (and a naive one) into its every state.
const FRAGMENTS: &[&str] = &[
    "'",
    "''",
    "\"",
    "\"\"",
    "$$",
    "$a$",
    "$A$",
    "$_1$",
    "$1",
    "$",
    "$é$",
    "/*",
    "*/",
    "/**/",
    "--",
    "\n",
    "\r",
    "\t",
    " ",
    "E'",
    "e'",
    "N'",
    "B'",
    "X'",
    "U&'",
    "U&\"",
    "UESCAPE",
    "\\",
    "\\'",
    "(",
    ")",
    "[",
    "]",
    ";",
    ".",
    ",",
    "::",
    "é",
    "€",
    "😀",
    "\u{0}",
    "\u{b}",
    "\u{c}",
    "SELECT",
    "select",
    "SET",
    "set_config",
    "pg_temp",
    "TEMP",
    "f",
    "count",
    "lower",
    "AS",
    "WITH",
    "materialized",
    "EXECUTE",
    "1",
    "1.5e3",
    ".5",
    "x",
    "\"set_config\"",
];

fn adversarial() -> impl Strategy<Value = String> {
    prop::collection::vec(prop::sample::select(FRAGMENTS), 0..40).prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn arbitrary_text_never_panics(sql in any::<String>(), bytes in any::<Vec<u8>>()) {
        let _ = sql_changes_session(&sql);
        let _ = first_word(&sql);
        let _ = messages_change_session(&bytes);
        let _ = messages_change_session(sql.as_bytes());
    }

    /// Whatever comes before it (an open string, comment, quote, dollar body, escape...),
    /// a `SET` after a line break and a `;` is either seen or the text is not understood;
    /// either way the verdict is "changes".
    #[test]
    fn no_prefix_hides_a_later_set(prefix in adversarial()) {
        for tail in ["\n;SET search_path = x", "\n;SELECT my_function()", "\r;SET a.b = 1"] {
            let sql = format!("{prefix}{tail}");
            prop_assert!(sql_changes_session(&sql), "{:?}", sql);
        }
    }

    #[test]
    fn adversarial_text_never_panics(sql in adversarial()) {
        let _ = sql_changes_session(&sql);
        if let Some(word) = first_word(&sql) {
            // A word of the text itself, on a character boundary.
            prop_assert!(!word.is_empty() && word.bytes().all(|b| b.is_ascii_alphabetic() || b == b'_'));
            let start = word.as_ptr() as usize - sql.as_ptr() as usize;
            prop_assert_eq!(&sql[start..start + word.len()], word);
        }
    }

    /// A leading keyword that changes the session is never hidden by comments and
    /// parentheses before it, whatever their content.
    #[test]
    fn comments_before_set_do_not_hide_it(comment in "[^*/\r\n]{0,20}", parens in 0_usize..4) {
        let open = "(".repeat(parens);
        for sql in [
            format!("/* {comment} */{open}SET x = 1"),
            format!("-- {comment}\n{open}SET x = 1"),
            format!("-- {comment}\r{open}SET x = 1"),
        ] {
            prop_assert!(sql_changes_session(&sql), "{:?}", sql);
        }
    }
}

/// Runs `f` on a thread with a small stack: deep input must not recurse.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(128 * 1024)
        .spawn(f)
        .expect("a thread")
        .join()
        .expect("no stack overflow or panic")
}

/// Hostile shapes of `n` units each, and the verdict expected for each.
fn shapes(n: usize) -> Vec<(&'static str, String, bool)> {
    vec![
        (
            "nested harmless calls",
            format!("SELECT {}'x'{}", "lower(".repeat(n), ")".repeat(n)),
            false,
        ),
        (
            "unclosed calls",
            format!("SELECT {}", "lower(".repeat(n)),
            false,
        ),
        (
            "nested parentheses",
            format!("SELECT {}1{}", "(".repeat(n), ")".repeat(n)),
            false,
        ),
        (
            "nested brackets",
            format!("SELECT a{}1{}", "[".repeat(n), "]".repeat(n)),
            false,
        ),
        (
            "nested comments",
            format!("SELECT 1 {}{}", "/*".repeat(n), "*/".repeat(n)),
            false,
        ),
        (
            "unclosed comments",
            format!("SELECT 1 {}", "/*".repeat(n)),
            true,
        ),
        (
            "long dollar tag, near misses",
            format!(
                "SELECT ${0}$ {1} ${0}$",
                "a".repeat(n),
                format!("${}b", "a".repeat(n / 2)).repeat(4)
            ),
            false,
        ),
        ("dollar signs", format!("SELECT {}", "$".repeat(n)), false),
        (
            "qualified name",
            format!("SELECT {}x", "a.".repeat(n)),
            true,
        ),
        ("many statements", "SELECT 1;".repeat(n), false),
        (
            "common table expressions",
            format!(
                "WITH a AS (SELECT 1){} SELECT 1",
                ", b(x) AS (SELECT 1)".repeat(n / 8)
            ),
            false,
        ),
        (
            "grouping after a long select list",
            format!(
                "SELECT {}1 FROM t GROUP BY a{}",
                "a, ".repeat(n),
                ", CUBE (a)".repeat(n)
            ),
            false,
        ),
        ("escapes", format!("SELECT E'{}'", "\\\\".repeat(n)), false),
        // An odd count: under `standard_conforming_strings = off` the string never ends.
        (
            "backslashes",
            format!("SELECT '{}'", "\\".repeat(n + 1)),
            true,
        ),
        ("multi-byte", format!("SELECT {}", "é€😀".repeat(n)), false),
    ]
}

fn time(sql: &str) -> (bool, Duration) {
    let start = Instant::now();
    let verdict = sql_changes_session(sql);
    (verdict, start.elapsed())
}

#[test]
fn time_grows_linearly_and_deep_nesting_does_not_recurse() {
    on_small_stack(|| {
        let (small, large) = (1_000, 100_000);
        for ((name, a, expected), (_, b, _)) in shapes(small).into_iter().zip(shapes(large)) {
            let (va, ta) = time(&a);
            let (vb, tb) = time(&b);
            // 100 times the text: linear is about 100 times the time, quadratic 10 000
            // times. The floor keeps timer noise on tiny inputs out of it.
            let bound = ta.max(Duration::from_millis(2)) * 1_000;
            println!(
                "{name}: {} bytes {ta:?}, {} bytes {tb:?} (bound {bound:?})",
                a.len(),
                b.len()
            );
            assert!(tb < bound, "{name}: {tb:?} for {} bytes", b.len());
            assert_eq!((va, vb), (expected, expected), "{name}");
        }
    });
}

#[test]
fn a_mebibyte_of_text_is_judged() {
    on_small_stack(|| {
        let row = "SELECT a, lower(b) FROM t WHERE c = 'x; SET y' -- SET\n/* SET */ AND d = $1;";
        let sql = row.repeat((1 << 20) / row.len() + 1);
        let (verdict, took) = time(&sql);
        println!("{} bytes in {took:?}", sql.len());
        assert!(!verdict);
        let sql = format!("{sql} SELECT set_config('a.b', 'c', false)");
        assert!(sql_changes_session(&sql));
        let comment = format!("{}SELECT", "/* x */ -- y\n".repeat(1 << 16));
        assert_eq!(first_word(&comment), Some("SELECT"));
    });
}

/// Every piece the judge reacts to, repeated: time stays linear whatever the verdict.
#[test]
fn repeated_pieces_take_linear_time() {
    const PIECES: &[&str] = &[
        "lower(",
        "lower(a), ",
        "a.",
        "(a).b ",
        "a.b.c ",
        "GROUP BY a, CUBE (a), ROLLUP (",
        "set(",
        "UPDATE t SET (",
        "f() AS (",
        ", b(x) AS (SELECT 1)",
        ", b(x) AS (UPDATE t SET a = 1)",
        ", f() AS materialized (a int",
        "EXECUTE ",
        "U&\"a\" ",
        "'\\' ",
        "E'\\\\' ",
        "$a$ $a$ ",
        "-- \r",
        "/* */ ",
        "START /* */ TRANSACTION ",
        "ā\\",
    ];
    on_small_stack(|| {
        for piece in PIECES {
            let text = |n: usize| format!("SELECT {}", piece.repeat(n));
            let (small, large) = (text(1_000), text(100_000));
            let start = Instant::now();
            let _ = sql_changes_session(&small);
            let _ = pg_pool_conninfo::sql::opens_transaction(&small);
            let ta = start.elapsed();
            let start = Instant::now();
            let _ = sql_changes_session(&large);
            let _ = pg_pool_conninfo::sql::opens_transaction(&large);
            let tb = start.elapsed();
            let bound = ta.max(Duration::from_millis(2)) * 1_000;
            println!("{piece:?}: {ta:?} then {tb:?} for 100 times the text (bound {bound:?})");
            assert!(tb < bound, "{piece:?}: {tb:?}");
        }
    });
}
