//! Whether SQL may leave session state behind, judged from its text before it runs.
//!
//! Conservative: a statement counts as a change unless it is known harmless. Harmless are
//! the statements whose first keyword is one of [`NEUTRAL_LEADING`] (plus `SET LOCAL`,
//! `SET TRANSACTION` and `SET CONSTRAINTS`, which end with the transaction) and that name
//! neither a temporary object nor a session-level advisory lock nor `set_config` (but its
//! transaction-local form, `set_config(…, true)`), and call no function
//! but the built-ins of `builtins.rs`. So `DO`, `CALL`, `EXECUTE`, `LOAD`, `LISTEN`,
//! `DECLARE`, `PREPARE`, `DISCARD` and any statement calling a user-defined or unknown
//! function (`SELECT my_function()`, `VALUES (f(1))`) count, whatever they do; a plain
//! `SELECT`, `INSERT`, `UPDATE` or `DELETE` does not. A false positive costs one
//! `DISCARD ALL` when the connection comes back.
//!
//! Also counted, because the server reads them so: `EXECUTE` inside a neutral statement
//! (`EXPLAIN ANALYZE EXECUTE p`), field notation that calls without parentheses
//! (`(expr).f`, `a.b.f`), a function with a column definition list (`f() AS (a int)`),
//! an unreserved keyword used as a function's name (`SELECT filter(x)`), a schema spelled
//! `"PG_CATALOG"`, and any text the lexer does not read to its end or cannot decode (see
//! `lex.rs`: unterminated text, `U&"..."` names, a backslash that a multi-byte client
//! encoding may swallow). Plain strings are read both with and without
//! `standard_conforming_strings`; the text must be harmless either way.
//!
//! Not visible in the text, hence not counted: code the server runs without the statement
//! naming it (triggers, column defaults, views, rules, row security policies, user-defined
//! operators and casts), and a user-defined overload of a built-in's name taking other
//! argument types (`CREATE FUNCTION public.lower(int)`). A caller relying on such code to
//! change the session marks the connection itself.

use super::calls::{Layout, is_call};
use super::lex::{Strings, Token, tokens};

/// First keywords of statements that leave no session state behind by themselves (their
/// function calls and words are still checked).
const NEUTRAL_LEADING: &[&str] = &[
    "abort",
    "alter",
    "analyse",
    "analyze",
    "begin",
    "checkpoint",
    "close",
    "cluster",
    "comment",
    "commit",
    "copy",
    "create",
    "delete",
    "drop",
    "end",
    "explain",
    "fetch",
    "grant",
    "import",
    "insert",
    "lock",
    "merge",
    "move",
    "notify",
    "reassign",
    "refresh",
    "reindex",
    "release",
    "reset",
    "revoke",
    "rollback",
    "savepoint",
    "security",
    "select",
    "show",
    "start",
    "table",
    "truncate",
    "update",
    "vacuum",
    "values",
    "with",
];

/// Whether running `sql` (one or more `;`-separated statements) may change the session.
///
/// # Examples
///
/// ```
/// use pg_pool_conninfo::sql::sql_changes_session;
///
/// assert!(!sql_changes_session("SELECT id FROM users WHERE id = $1"));
/// assert!(sql_changes_session("SET search_path TO app"));
/// assert!(sql_changes_session("SELECT my_function()"));
/// assert!(sql_changes_session("DO $$ BEGIN PERFORM 1; END $$"));
/// ```
pub fn sql_changes_session(sql: &str) -> bool {
    let judge = |strings| {
        tokens(sql, strings)
            .split(|t| *t == Token::Semicolon)
            .any(statement_changes_session)
    };
    // Whether a backslash escapes a quote in a plain string depends on the server's
    // `standard_conforming_strings`: the text must be harmless read either way.
    judge(Strings::Standard) || (sql.contains('\\') && judge(Strings::Backslash))
}

/// Whether a buffer of frontend messages may change the session: the SQL of every
/// `Query` and `Parse` is judged by [`sql_changes_session`]; a `FunctionCall` counts;
/// `Bind`, `Execute`, `Describe`, `Close`, `Sync`, `Flush` and `COPY` data do not. A
/// buffer that does not parse, or a message of another kind, counts.
pub fn messages_change_session(mut buf: &[u8]) -> bool {
    while !buf.is_empty() {
        let Some(&[kind, a, b, c, d]) = buf.get(..5) else {
            return true;
        };
        let len = i32::from_be_bytes([a, b, c, d]);
        let Some(end) = usize::try_from(len)
            .ok()
            .filter(|&l| l >= 4)
            .map(|l| l + 1)
            .filter(|&end| end <= buf.len())
        else {
            return true;
        };
        let body = &buf[5..end];
        let changes = match kind {
            b'Q' => sql_changes_session(&String::from_utf8_lossy(cstr(body))),
            b'P' => {
                let name_len = cstr(body).len();
                let sql = body.get(name_len + 1..).map_or(&[][..], cstr);
                sql_changes_session(&String::from_utf8_lossy(sql))
            }
            b'B' | b'E' | b'D' | b'C' | b'S' | b'H' | b'd' | b'c' | b'f' => false,
            _ => true,
        };
        if changes {
            return true;
        }
        buf = &buf[end..];
    }
    false
}

/// The bytes before the first NUL (all of them without one).
fn cstr(bytes: &[u8]) -> &[u8] {
    bytes
        .iter()
        .position(|&b| b == 0)
        .map_or(bytes, |end| &bytes[..end])
}

fn statement_changes_session(stmt: &[Token<'_>]) -> bool {
    let mut significant = stmt.iter().filter(|t| **t != Token::Open);
    let leading = match significant.next() {
        None => return false,
        Some(Token::Word(word)) => *word,
        Some(_) => return true,
    };
    let neutral = if leading.eq_ignore_ascii_case("set") {
        // Undone at the end of the transaction (and without effect outside one).
        matches!(significant.next(), Some(Token::Word(w))
            if ["local", "transaction", "constraints"].iter().any(|k| w.eq_ignore_ascii_case(k)))
    } else {
        contains(NEUTRAL_LEADING, leading)
    };
    if !neutral {
        return true;
    }
    if stmt.contains(&Token::Opaque) {
        return true;
    }
    // `VACUUM` and `ANALYZE` take option and column lists, never an expression: no `(` in
    // them calls anything (`ANALYZE (VERBOSE) t (a)`).
    let calls_possible = !contains(NO_EXPRESSIONS, leading);
    let layout = Layout::new(stmt);
    stmt.iter().enumerate().any(|(i, token)| match token {
        Token::Word(name) | Token::Quoted(name) => {
            (names_session_state(name) && !local_set_config(stmt, i, &layout))
                || runs_prepared(stmt, i)
                || field_call(stmt, i)
        }
        Token::Open => {
            calls_possible
                && i > 0
                && is_call(stmt, i, &layout)
                && !local_set_config(stmt, i - 1, &layout)
        }
        _ => false,
    })
}

/// First keywords of statements whose grammar has no expressions, so no function calls.
const NO_EXPRESSIONS: &[&str] = &["analyse", "analyze", "vacuum"];

/// The advisory lock functions whose locks end with the transaction (a statement outside
/// a transaction block is its own), exactly so named.
fn ends_with_transaction(name: &str) -> bool {
    [
        "pg_advisory_xact_lock",
        "pg_advisory_xact_lock_shared",
        "pg_try_advisory_xact_lock",
        "pg_try_advisory_xact_lock_shared",
    ]
    .iter()
    .any(|f| name.eq_ignore_ascii_case(f))
}

/// Temporary objects (`TEMP`, `TEMPORARY`, the `pg_temp` schema), advisory locks,
/// `set_config`, sequences advanced or set (`nextval`, `setval`), the random seed
/// (`setseed`) and `dblink` sessions, however they are reached (a call, a quoted or
/// qualified name, or field notation such as `('s'::regclass).nextval`, which calls
/// without a `(`). Compared without allocating: this runs for every word of every
/// statement.
fn names_session_state(name: &str) -> bool {
    let bytes = name.as_bytes();
    let contains = |word: &[u8]| {
        bytes
            .windows(word.len())
            .any(|w| w.eq_ignore_ascii_case(word))
    };
    name.eq_ignore_ascii_case("temp")
        || name.eq_ignore_ascii_case("temporary")
        || bytes
            .get(..7)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"pg_temp"))
        || (contains(b"advisory") && !ends_with_transaction(name))
        || contains(b"set_config")
        || contains(b"nextval")
        || contains(b"setval")
        || contains(b"setseed")
        || contains(b"dblink")
}

/// `EXECUTE` of a prepared statement inside a neutral one (`EXPLAIN ANALYZE EXECUTE p`,
/// `CREATE TABLE t AS EXECUTE p`): it runs whatever `p` was prepared from. Not the
/// privilege (`GRANT EXECUTE`) nor a trigger's `EXECUTE FUNCTION`.
fn runs_prepared(stmt: &[Token<'_>], i: usize) -> bool {
    let word = |i: usize, any: &[&str]| matches!(stmt.get(i), Some(Token::Word(w)) if any.iter().any(|k| w.eq_ignore_ascii_case(k)));
    word(i, &["execute"])
        && !(i > 0 && word(i - 1, &["grant", "revoke"]))
        && !word(i + 1, &["function", "procedure"])
}

/// A name after `.` that may call a function with field notation: `(expr).f` calls
/// `f(expr)`, and so may the third part of `a.b.f`. A plain `table.column` is not one.
fn field_call(stmt: &[Token<'_>], i: usize) -> bool {
    if i < 2 || stmt[i - 1] != Token::Dot || stmt.get(i + 1) == Some(&Token::Open) {
        // Not after a dot, or a call `is_call` judges.
        return false;
    }
    let is_name = |t: &Token<'_>| matches!(t, Token::Word(_) | Token::Quoted(_));
    match stmt[i - 2] {
        Token::Close | Token::Other | Token::Literal => true,
        ref t if is_name(t) => i >= 4 && stmt[i - 3] == Token::Dot && is_name(&stmt[i - 4]),
        _ => false,
    }
}

/// `set_config(…, true)` (or `pg_catalog.set_config(…, true)`) at `i`: a setting local to
/// the transaction, gone when it ends (a statement outside a transaction block is one; a
/// block still open when the connection comes back is rolled back). Only the literal
/// `true` as the last argument counts; any other spelling of it is a change.
fn local_set_config(stmt: &[Token<'_>], i: usize, layout: &Layout) -> bool {
    let word = |i: usize, expected: &str| matches!(stmt.get(i), Some(Token::Word(w)) if w.eq_ignore_ascii_case(expected));
    let qualified_well = match i.checked_sub(1).map(|d| stmt[d]) {
        Some(Token::Dot) => {
            let catalog = match i.checked_sub(2).map(|s| stmt[s]) {
                Some(Token::Word(schema)) => schema.eq_ignore_ascii_case("pg_catalog"),
                Some(Token::Quoted(schema)) => schema == "pg_catalog",
                _ => false,
            };
            // `db.pg_catalog.set_config` or field notation is not the built-in's spelling.
            catalog && !(i >= 3 && stmt[i - 3] == Token::Dot)
        }
        _ => true,
    };
    if !(qualified_well && word(i, "set_config") && stmt.get(i + 1) == Some(&Token::Open)) {
        return false;
    }
    layout.close(i + 1).is_some_and(|close| {
        close >= 2 && word(close - 1, "true") && stmt[close - 2] == Token::Comma
    })
}

/// Whether `list` (lowercase) holds `word`, whatever its case.
pub(crate) fn contains(list: &[&str], word: &str) -> bool {
    list.iter().any(|k| k.eq_ignore_ascii_case(word))
}

#[cfg(test)]
#[path = "effects_tests.rs"]
mod tests;
