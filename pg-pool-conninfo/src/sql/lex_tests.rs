use super::Token::{self, *};
use super::{Strings, first_word};

fn tokens(sql: &str) -> Vec<Token<'_>> {
    super::tokens(sql, Strings::Standard)
}

#[test]
fn skips_comments_strings_and_bodies() {
    let sql = "SELECT f(1) -- g(2)\n /* h( /* nested */ ) */ 'i(' || E'\\'j(' || $b$ k( $b$, \"Q\"\"x\"(2);";
    assert_eq!(
        tokens(sql),
        [
            Word("SELECT"),
            Word("f"),
            Open,
            Other,
            Close,
            Literal,
            Other,
            Other,
            Literal,
            Other,
            Other,
            Literal,
            Comma,
            Quoted("Q\"\"x"),
            Open,
            Other,
            Close,
            Semicolon
        ]
    );
}

#[test]
fn parameters_numbers_and_qualified_names() {
    let got: Vec<Token<'_>> = tokens("select $1, 1.5e3, .5, s.f($2)");
    assert_eq!(
        got,
        [
            Word("select"),
            Other,
            Comma,
            Other,
            Comma,
            Other,
            Comma,
            Word("s"),
            Dot,
            Word("f"),
            Open,
            Other,
            Close
        ]
    );
}

#[test]
fn unterminated_text_ends_the_tokens() {
    assert_eq!(tokens("select 'abc"), [Word("select"), Opaque]);
    assert_eq!(tokens("select E'abc\\'"), [Word("select"), Opaque]);
    assert_eq!(tokens("do $$ begin"), [Word("do"), Opaque]);
    assert_eq!(tokens("select /* x /* */"), [Word("select"), Opaque]);
    assert_eq!(tokens("select \"x"), [Word("select"), Opaque]);
}

#[test]
fn a_line_comment_ends_at_a_carriage_return() {
    // PostgreSQL's scanner ends `--` comments at `\r` as well as `\n`.
    assert_eq!(
        tokens("SELECT 1 -- c\r; SET x = 1"),
        [
            Word("SELECT"),
            Other,
            Semicolon,
            Word("SET"),
            Word("x"),
            Other,
            Other
        ]
    );
    assert_eq!(first_word("-- c\rBEGIN /*\nSELECT */"), Some("BEGIN"));
    assert_eq!(first_word("-- c\r\nSELECT"), Some("SELECT"));
}

#[test]
fn plain_strings_under_both_settings() {
    let sql = "SELECT 'x\\''; SET x = 1; -- '";
    assert_eq!(tokens(sql), [Word("SELECT"), Literal]);
    assert_eq!(
        super::tokens(sql, Strings::Backslash)[..4],
        [Word("SELECT"), Literal, Semicolon, Word("SET")]
    );
}

#[test]
fn unicode_identifiers_are_opaque() {
    assert_eq!(
        tokens("CREATE TABLE U&\"pg\\005ftemp\".t"),
        [
            Word("CREATE"),
            Word("TABLE"),
            Word("U"),
            Other,
            Opaque,
            Dot,
            Word("t")
        ]
    );
    assert_eq!(
        tokens("SELECT \"a\"\"b\""),
        [Word("SELECT"), Quoted("a\"\"b")]
    );
}
