//! Whether a `(` in a statement calls a function that may change the session: the name
//! before it, its schema, and the keywords around it that make the parentheses a list
//! rather than a call.

use super::builtins::is_harmless;
use super::effects::contains;
use super::lex::Token;

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

/// What the checks of a statement look up, found in one pass before them (so that each
/// look-up costs nothing, however deep the nesting or long the statement): the matching
/// `)` of every `(`, and where the first `GROUP` is.
pub(crate) struct Layout {
    close_of: Vec<Option<usize>>,
    first_group: Option<usize>,
}

impl Layout {
    pub(crate) fn new(stmt: &[Token<'_>]) -> Self {
        let mut close_of = vec![None; stmt.len()];
        let mut open = Vec::new();
        let mut first_group = None;
        for (i, token) in stmt.iter().enumerate() {
            match token {
                Token::Word(w) if first_group.is_none() && w.eq_ignore_ascii_case("group") => {
                    first_group = Some(i);
                }
                Token::Open => open.push(i),
                Token::Close => {
                    if let Some(o) = open.pop() {
                        close_of[o] = Some(i);
                    }
                }
                _ => {}
            }
        }
        Layout {
            close_of,
            first_group,
        }
    }

    /// The index of the `)` matching the `(` at `open`, if any.
    pub(crate) fn close(&self, open: usize) -> Option<usize> {
        self.close_of.get(open).copied().flatten()
    }
}

/// Whether the `(` at `open` (not the first token) calls a function that may change the
/// session.
pub(crate) fn is_call(stmt: &[Token<'_>], open: usize, layout: &Layout) -> bool {
    let (name, quoted) = match stmt[open - 1] {
        Token::Word(name) => (name, false),
        Token::Quoted(name) => (name, true),
        // A parenthesised expression, a subquery, an array subscript's neighbour...
        _ => return false,
    };
    // The qualified name `a.b.name`: where it starts, and whether its schema is
    // `pg_catalog` (`None`: not qualified). Unquoted, any case names it; quoted, only the
    // exact lowercase spelling does (`"PG_CATALOG"` is another schema, anyone's to create).
    let mut start = open - 1;
    let mut schema: Option<bool> = None;
    while start >= 2 && stmt[start - 1] == Token::Dot {
        let catalog = match stmt[start - 2] {
            Token::Word(part) => part.eq_ignore_ascii_case("pg_catalog"),
            Token::Quoted(part) => part == "pg_catalog",
            _ => break,
        };
        // Three parts (`db.schema.name`): not pg_catalog's own spelling.
        schema = Some(schema.is_none() && catalog);
        start -= 2;
    }
    let before = start.checked_sub(1).map(|i| stmt[i]);
    if let Some(Token::Word(before)) = before
        && (contains(NOT_A_CALL_AFTER, before)
            // `AS NOT MATERIALIZED (`: a common table expression.
            || (before.eq_ignore_ascii_case("not") && name.eq_ignore_ascii_case("materialized")))
    {
        return false;
    }
    if before == Some(Token::Comma) && is_cte_columns(stmt, open, layout) {
        return false;
    }
    if quoted || schema == Some(false) {
        return true;
    }
    let harmless = lowercase(name, |lower| {
        is_harmless(lower) && (schema.is_some() || keyword_in_place(lower, stmt, start, layout))
    });
    !harmless
}

/// Whether `lower`, a harmless name before a `(` at `start + 1`, is used as what the list
/// of harmless names takes it for. Unreserved keywords (`SET`, `BY`, `FILTER`, `RANGE`...)
/// and the keywords that may name a function (`LIKE`, `JOIN`...) can also be the names of
/// user functions (`SELECT filter(x)` calls one): they count as keywords only in the
/// places where the grammar uses them so.
fn keyword_in_place(lower: &str, stmt: &[Token<'_>], start: usize, layout: &Layout) -> bool {
    let prev = start.checked_sub(1).map(|i| stmt[i]);
    let after = |words: &[&str]| matches!(prev, Some(Token::Word(w)) if contains(words, w));
    // A token that ends an operand: the `(` after it cannot open a call's arguments.
    let ends_operand = |token: Option<Token<'_>>| match token {
        Some(Token::Word(w)) => !contains(EXPRESSION_START, w),
        Some(Token::Quoted(_) | Token::Close | Token::Literal) => true,
        _ => false,
    };
    let after_operand = ends_operand(prev);
    // `x NOT LIKE (`: the operator spelled with `NOT` after an operand (a `NOT` that starts
    // an expression, as in `SELECT NOT like(x)`, is followed by a call).
    let after_operand_not = after(&["not"]) && ends_operand(start.checked_sub(2).map(|i| stmt[i]));
    match lower {
        // `ORDER BY (`, `GROUP BY (`, `PARTITION BY (`.
        "by" => after(&["order", "group", "partition"]),
        // `ON CONFLICT (`.
        "conflict" => after(&["on"]),
        // `PRIMARY KEY (`, `FOREIGN KEY (`.
        "key" => after(&["primary", "foreign"]),
        // `GROUP BY CUBE (`, `GROUPING SETS (ROLLUP (...))`.
        "cube" | "rollup" => {
            after(&["by", "sets"])
                || (matches!(prev, Some(Token::Comma | Token::Open))
                    && layout.first_group.is_some_and(|g| g < start))
        }
        // `GROUPING SETS (`.
        "sets" => after(&["grouping"]),
        // `PARTITION BY RANGE (`.
        "range" => after(&["by"]),
        // `count(*) FILTER (`, `OVER (`, `INCLUDE (`, `WITHIN GROUP (`.
        "filter" | "over" | "include" | "within" => prev == Some(Token::Close),
        // `TABLESAMPLE SYSTEM (10) REPEATABLE (1)`: the built-in sampling methods.
        "bernoulli" | "system" => after(&["tablesample"]),
        "repeatable" => prev == Some(Token::Close),
        // Statements of their own: `COPY (`, `EXPLAIN (`, `VACUUM (`.
        "copy" | "explain" | "vacuum" => prev.is_none(),
        // `x LIKE (`, `x NOT ILIKE (`, `x NOT SIMILAR TO (` (after `TO`, a call).
        "like" | "ilike" | "similar" => after_operand || after_operand_not,
        // `UPDATE t SET (`, `ALTER TABLE t SET (`; `t JOIN (`.
        "set" | "is" | "join" | "partition" => after_operand,
        _ => true,
    }
}

/// Keywords after which an expression (so a function call) may start: a keyword of
/// [`keyword_in_place`] after them is a function's name.
const EXPRESSION_START: &[&str] = &[
    "all",
    "and",
    "any",
    "as",
    "asymmetric",
    "between",
    "both",
    "by",
    "case",
    "content",
    "default",
    "distinct",
    "document",
    "else",
    "escape",
    "first",
    "for",
    "from",
    "groups",
    "having",
    "ilike",
    "in",
    "is",
    "join",
    "lateral",
    "leading",
    "like",
    "limit",
    "next",
    "not",
    "offset",
    "on",
    "or",
    "passing",
    "placing",
    "range",
    "return",
    "returning",
    "rows",
    "select",
    "set",
    "similar",
    "some",
    "symmetric",
    "then",
    "to",
    "trailing",
    "using",
    "value",
    "values",
    "variadic",
    "version",
    "when",
    "where",
    "zone",
];

/// `name(a, b) AS (` or `AS [NOT] MATERIALIZED (` after a comma, with a statement in the
/// parentheses: the column list of a common table expression
/// (`WITH a AS (...), b(x) AS (SELECT ...)`). A function with a column definition list
/// (`FROM t, f() AS (a int)`, `AS materialized (a int)`) is a call.
fn is_cte_columns(stmt: &[Token<'_>], open: usize, layout: &Layout) -> bool {
    let Some(close) = layout.close(open) else {
        return false;
    };
    let word = |i: usize, expected: &str| matches!(stmt.get(i), Some(Token::Word(w)) if w.eq_ignore_ascii_case(expected));
    if !word(close + 1, "as") {
        return false;
    }
    let mut body = close + 2;
    if word(body, "not") {
        body += 1;
    }
    if word(body, "materialized") {
        body += 1;
    }
    if stmt.get(body) != Some(&Token::Open) {
        return false;
    }
    while stmt.get(body) == Some(&Token::Open) {
        body += 1;
    }
    // What a common table expression's statement starts with; none of these words
    // followed by what comes next can start a column definition (`update t SET`).
    match stmt.get(body) {
        Some(Token::Word(w)) => {
            ["select", "with", "table"]
                .iter()
                .any(|k| w.eq_ignore_ascii_case(k))
                || (w.eq_ignore_ascii_case("values") && stmt.get(body + 1) == Some(&Token::Open))
                || ((w.eq_ignore_ascii_case("insert") || w.eq_ignore_ascii_case("merge"))
                    && word(body + 1, "into"))
                || (w.eq_ignore_ascii_case("delete") && word(body + 1, "from"))
                || (w.eq_ignore_ascii_case("update") && update_target_then_set(stmt, body + 1))
        }
        _ => false,
    }
}

/// `[ONLY] name [*] [[AS] alias] SET` from `at`: the rest of an `UPDATE` (a column
/// definition `update int, ...` has a comma or `)` where `SET` would be).
fn update_target_then_set(stmt: &[Token<'_>], at: usize) -> bool {
    for token in stmt.iter().skip(at).take(8) {
        match token {
            Token::Word(w) if w.eq_ignore_ascii_case("set") => return true,
            Token::Word(_) | Token::Quoted(_) | Token::Dot | Token::Other => {}
            _ => return false,
        }
    }
    false
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
