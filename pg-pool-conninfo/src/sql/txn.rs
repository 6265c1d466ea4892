//! Whether SQL may open a transaction block, judged from its text with the lexer (so that
//! comments between words, `START /* x */ TRANSACTION`, do not hide it).

use super::lex::{Strings, Token, tokens};

/// Whether running `sql` (one or more `;`-separated statements) may leave a transaction
/// block open: a statement that begins with `BEGIN` or `START TRANSACTION`, or ends one
/// `AND CHAIN` (which opens the next at once). Comments between the words do not hide
/// them; text the lexer cannot read to its end counts.
///
/// Only statement-level words count: `BEGIN` inside a `DO` body or a string does not
/// (neither opens a block that outlives the statement).
///
/// # Examples
///
/// ```
/// use pg_pool_conninfo::sql::opens_transaction;
///
/// assert!(opens_transaction("START /* read only */ TRANSACTION READ ONLY"));
/// assert!(opens_transaction("SELECT 1; begin"));
/// assert!(!opens_transaction("SELECT 'begin', start FROM t"));
/// ```
pub fn opens_transaction(sql: &str) -> bool {
    let judge = |strings| {
        tokens(sql, strings)
            .split(|t| *t == Token::Semicolon)
            .any(statement_opens_transaction)
    };
    judge(Strings::Standard) || (sql.contains('\\') && judge(Strings::Backslash))
}

fn statement_opens_transaction(stmt: &[Token<'_>]) -> bool {
    if stmt.contains(&Token::Opaque) {
        return true;
    }
    let is = |t: Option<&Token<'_>>, word: &str| matches!(t, Some(Token::Word(w)) if w.eq_ignore_ascii_case(word));
    let mut significant = stmt.iter().filter(|t| **t != Token::Open);
    let first = significant.next();
    if is(first, "begin") || (is(first, "start") && is(significant.next(), "transaction")) {
        return true;
    }
    // `COMMIT AND CHAIN`, `ROLLBACK AND CHAIN` (also `END`, `ABORT`, with `WORK` or
    // `TRANSACTION` between).
    ["commit", "rollback", "end", "abort"]
        .iter()
        .any(|k| is(first, k))
        && stmt
            .windows(2)
            .any(|w| is(w.first(), "and") && is(w.get(1), "chain"))
}

#[cfg(test)]
mod tests {
    use super::opens_transaction;

    #[test]
    fn transaction_starts_through_comments() {
        for sql in [
            "BEGIN",
            "begin isolation level serializable",
            "START TRANSACTION",
            "START /* x */ TRANSACTION",
            "START -- x\nTRANSACTION",
            "START -- x\rTRANSACTION",
            "/* a */ START /* b /* nested */ */ TRANSACTION READ ONLY",
            "SELECT 1; BEGIN",
            "COMMIT AND CHAIN",
            "ROLLBACK WORK AND CHAIN",
            "SELECT 1 /* unterminated",
            "SELECT 'x\\'; BEGIN; -- '",
        ] {
            assert!(opens_transaction(sql), "{sql:?}");
        }
        for sql in [
            "SELECT 1",
            "SELECT start, transaction FROM t",
            "SELECT 'BEGIN'",
            "DO $$ BEGIN PERFORM 1; END $$",
            "COMMIT",
            "COMMIT AND NO CHAIN",
            "INSERT INTO t (start) VALUES (1)",
        ] {
            assert!(!opens_transaction(sql), "{sql:?}");
        }
    }
}
