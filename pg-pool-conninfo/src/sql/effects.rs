//! Whether SQL may leave session state behind, judged from its text before it runs.
//!
//! Conservative: a statement counts as a change unless it is known harmless. Harmless are
//! the statements whose first keyword is one of [`NEUTRAL_LEADING`] (plus `SET LOCAL`,
//! `SET TRANSACTION` and `SET CONSTRAINTS`, which end with the transaction) and that name
//! neither a temporary object nor an advisory lock nor `set_config`, and call no function
//! but the built-ins of `builtins.rs`. So `DO`, `CALL`, `EXECUTE`, `LOAD`, `LISTEN`,
//! `DECLARE`, `PREPARE`, `DISCARD` and any statement calling a user-defined or unknown
//! function (`SELECT my_function()`, `VALUES (f(1))`) count, whatever they do; a plain
//! `SELECT`, `INSERT`, `UPDATE` or `DELETE` does not. A false positive costs one
//! `DISCARD ALL` when the connection comes back.
//!
//! Not visible in the text, hence not counted: code the server runs without the statement
//! naming it (triggers, column defaults, views, rules, row security policies, user-defined
//! operators and casts). A caller relying on such code to change the session marks the
//! connection itself.

use super::builtins::is_harmless;
use super::lex::{Token, tokens};

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

/// Words before a name and its `(` that make the parentheses a column or parameter list,
/// not a call: `INSERT INTO t (a)`, `CREATE TABLE t (a int)`, `AS t(a)`,
/// `WITH t(n) AS (...)`, `CREATE FUNCTION f(int)`, `REFERENCES t (a)`.
const NOT_A_CALL_AFTER: &[&str] = &[
    "aggregate",
    "analyse",
    "analyze",
    "as",
    "copy",
    "exists",
    "function",
    "into",
    "procedure",
    "recursive",
    "references",
    "routine",
    "table",
    "view",
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
    tokens(sql)
        .split(|t| *t == Token::Semicolon)
        .any(statement_changes_session)
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
    stmt.iter().enumerate().any(|(i, token)| match token {
        Token::Word(name) | Token::Quoted(name) => names_session_state(name),
        Token::Open => i > 0 && is_call(stmt, i),
        _ => false,
    })
}

/// Temporary objects (`TEMP`, `TEMPORARY`, the `pg_temp` schema), advisory locks and
/// `set_config`, however they are reached. Compared without allocating: this runs for
/// every word of every statement.
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
        || contains(b"advisory")
        || contains(b"set_config")
}

/// Whether the `(` at `open` calls a function that may change the session.
fn is_call(stmt: &[Token<'_>], open: usize) -> bool {
    let (name, quoted) = match stmt[open - 1] {
        Token::Word(name) => (name, false),
        Token::Quoted(name) => (name, true),
        // A parenthesised expression, a subquery, an array subscript's neighbour...
        _ => return false,
    };
    // The qualified name `a.b.name`: where it starts, and its schema.
    let mut start = open - 1;
    let mut schema = None;
    while start >= 2 && stmt[start - 1] == Token::Dot {
        match stmt[start - 2] {
            Token::Word(part) | Token::Quoted(part) => {
                if schema.is_none() {
                    schema = Some(part);
                } else {
                    // Three parts (`db.schema.name`): not pg_catalog's own spelling.
                    schema = Some("");
                }
                start -= 2;
            }
            _ => break,
        }
    }
    if let Some(Token::Word(before)) = start.checked_sub(1).map(|i| stmt[i])
        && (contains(NOT_A_CALL_AFTER, before)
            // `AS NOT MATERIALIZED (`: a common table expression.
            || (before.eq_ignore_ascii_case("not") && name.eq_ignore_ascii_case("materialized")))
    {
        return false;
    }
    if is_cte_columns(stmt, open) {
        return false;
    }
    let builtin_schema = schema.is_none_or(|s| s.eq_ignore_ascii_case("pg_catalog"));
    let harmless = !quoted && builtin_schema && lowercase(name, is_harmless);
    !harmless
}

/// `name(a, b) AS (` or `AS [NOT] MATERIALIZED (`: the column list of a common table
/// expression after a comma (`WITH a AS (...), b(x) AS (...)`).
fn is_cte_columns(stmt: &[Token<'_>], open: usize) -> bool {
    let mut depth = 0_usize;
    let mut close = None;
    for (i, token) in stmt.iter().enumerate().skip(open) {
        match token {
            Token::Open => depth += 1,
            Token::Close => {
                depth -= 1;
                if depth == 0 {
                    close = Some(i);
                    break;
                }
            }
            _ => {}
        }
    }
    let Some(close) = close else {
        return false;
    };
    let word = |i: usize, expected: &str| matches!(stmt.get(i), Some(Token::Word(w)) if w.eq_ignore_ascii_case(expected));
    let open_at = |i: usize| stmt.get(i) == Some(&Token::Open);
    // `AS MATERIALIZED` alone may be a column alias (`SELECT f() AS materialized`): only
    // the `(` that follows makes it a common table expression.
    word(close + 1, "as")
        && (open_at(close + 2)
            || (word(close + 2, "materialized") && open_at(close + 3))
            || (word(close + 2, "not") && word(close + 3, "materialized") && open_at(close + 4)))
}

/// `f` of `name` in lowercase, without allocating; `false` for a name longer than any
/// built-in's (or not ASCII).
fn lowercase(name: &str, f: impl FnOnce(&str) -> bool) -> bool {
    let mut buf = [0_u8; 32];
    let Some(out) = buf.get_mut(..name.len()) else {
        return false;
    };
    for (o, b) in out.iter_mut().zip(name.bytes()) {
        *o = b.to_ascii_lowercase();
    }
    std::str::from_utf8(out).is_ok_and(f)
}

/// Whether `list` (lowercase) holds `word`, whatever its case.
fn contains(list: &[&str], word: &str) -> bool {
    list.iter().any(|k| k.eq_ignore_ascii_case(word))
}

#[cfg(test)]
#[path = "effects_tests.rs"]
mod tests;
