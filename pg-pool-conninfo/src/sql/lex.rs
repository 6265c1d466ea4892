//! A small SQL lexer, enough to see what a statement may run: words, quoted identifiers,
//! parentheses and separators, with comments, string constants (`'...'`, `E'...'`,
//! dollar-quoted bodies) and numbers skipped.

/// One significant token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    /// An unquoted identifier or keyword, as written (compare with
    /// [`eq_ignore_ascii_case`](str::eq_ignore_ascii_case)).
    Word(&'a str),
    /// A quoted identifier's content (doubled quotes left as they are).
    Quoted(&'a str),
    /// `(`.
    Open,
    /// `)`.
    Close,
    /// `;`.
    Semicolon,
    /// `.`.
    Dot,
    /// `,`.
    Comma,
    /// A string constant (of any kind).
    Literal,
    /// Anything else: an operator, a number, a parameter (`$1`), `[`, `]`, `::`...
    Other,
}

/// The tokens of `sql`, comments and whitespace dropped. Text the lexer cannot close (an
/// unterminated string, comment or quoted identifier) ends with [`Token::Other`]: the
/// server would refuse it anyway.
pub(crate) fn tokens(sql: &str) -> Vec<Token<'_>> {
    let bytes = sql.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 4 + 1);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&c| c == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = block_comment(bytes, i),
            b'\'' => {
                i = quoted(bytes, i + 1, b'\'', false);
                out.push(Token::Literal);
            }
            b'"' => {
                let end = quoted(bytes, i + 1, b'"', false);
                let content = sql
                    .get(i + 1..end.saturating_sub(1).max(i + 1))
                    .unwrap_or("");
                out.push(Token::Quoted(content));
                i = end;
            }
            b'$' => match dollar_tag(bytes, i) {
                Some(tag_end) => {
                    let tag = &bytes[i..tag_end];
                    i = find(bytes, tag_end, tag).map_or(bytes.len(), |p| p + tag.len());
                    out.push(Token::Literal);
                }
                None => {
                    // A parameter (`$1`) or a stray dollar.
                    i += 1;
                    while i < bytes.len() && bytes[i].is_ascii_digit() {
                        i += 1;
                    }
                    out.push(Token::Other);
                }
            },
            b'(' => {
                out.push(Token::Open);
                i += 1;
            }
            b')' => {
                out.push(Token::Close);
                i += 1;
            }
            b';' => {
                out.push(Token::Semicolon);
                i += 1;
            }
            b',' => {
                out.push(Token::Comma);
                i += 1;
            }
            b'.' if !bytes.get(i + 1).is_some_and(u8::is_ascii_digit) => {
                out.push(Token::Dot);
                i += 1;
            }
            b'0'..=b'9' | b'.' => {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.') {
                    i += 1;
                }
                out.push(Token::Other);
            }
            _ if is_word_start(b) => {
                let start = i;
                i += 1;
                while i < bytes.len() && is_word_char(bytes[i]) {
                    i += 1;
                }
                let word = &sql[start..i];
                // `E'...'`: a string constant with backslash escapes. Other prefixes
                // (`B'`, `X'`, `N'`, `U&'`) are plain strings once the word is past.
                if bytes.get(i) == Some(&b'\'') && word.eq_ignore_ascii_case("e") {
                    i = quoted(bytes, i + 1, b'\'', true);
                    out.push(Token::Literal);
                } else {
                    out.push(Token::Word(word));
                }
            }
            _ => {
                out.push(Token::Other);
                i += 1;
            }
        }
    }
    out
}

fn is_word_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

fn is_word_char(b: u8) -> bool {
    is_word_start(b) || b.is_ascii_digit() || b == b'$'
}

/// The first word of `sql` after whitespace, comments and opening parentheses, without
/// lexing the rest (no allocation). `None` when the text does not start with a word.
///
/// # Examples
///
/// ```
/// use pg_pool_conninfo::sql::first_word;
///
/// assert_eq!(first_word("/* note */ (SELECT 1)"), Some("SELECT"));
/// assert_eq!(first_word("-- only a comment"), None);
/// ```
pub fn first_word(sql: &str) -> Option<&str> {
    let bytes = sql.as_bytes();
    let mut i = 0;
    loop {
        match bytes.get(i..)? {
            [b, ..] if b.is_ascii_whitespace() || *b == b'(' => i += 1,
            [b'-', b'-', ..] => i += bytes[i..].iter().position(|&c| c == b'\n')? + 1,
            [b'/', b'*', ..] => i = block_comment(bytes, i),
            _ => break,
        }
    }
    let len = bytes[i..]
        .iter()
        .position(|b| !(b.is_ascii_alphabetic() || *b == b'_'))
        .unwrap_or(bytes.len() - i);
    (len > 0).then(|| &sql[i..i + len])
}

/// The index after a `/* ... */` comment starting at `start` (they nest).
fn block_comment(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0_usize;
    let mut i = start;
    while i + 1 < bytes.len() {
        match (bytes[i], bytes[i + 1]) {
            (b'/', b'*') => {
                depth += 1;
                i += 2;
            }
            (b'*', b'/') => {
                depth -= 1;
                i += 2;
                if depth == 0 {
                    return i;
                }
            }
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index after the closing `quote` of a quoted text whose content starts at `from`
/// (a doubled quote is one quote character; with `backslash`, `\` escapes the next byte).
fn quoted(bytes: &[u8], from: usize, quote: u8, backslash: bool) -> usize {
    let mut i = from;
    while i < bytes.len() {
        let b = bytes[i];
        if backslash && b == b'\\' {
            i += 2;
        } else if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// The end of a dollar-quote tag (`$$`, `$body$`) starting at `start`, if one starts there.
fn dollar_tag(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    if bytes.get(i).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    while i < bytes.len() {
        match bytes[i] {
            b'$' => return Some(i + 1),
            b if is_word_start(b) || b.is_ascii_digit() => i += 1,
            _ => return None,
        }
    }
    None
}

/// The first index at or after `from` where `needle` starts.
fn find(bytes: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    bytes
        .get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| from + p)
}

#[cfg(test)]
mod tests {
    use super::Token::{self, *};
    use super::tokens;

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
        assert_eq!(tokens("select 'abc"), [Word("select"), Literal]);
        assert_eq!(tokens("do $$ begin"), [Word("do"), Literal]);
        assert_eq!(tokens("select /* x"), [Word("select")]);
        assert_eq!(tokens("select \"x"), [Word("select"), Quoted("")]);
    }
}
