//! A small SQL lexer, enough to see what a statement may run: words, quoted identifiers,
//! parentheses and separators, with comments, string constants (`'...'`, `E'...'`,
//! dollar-quoted bodies) and numbers skipped.
//!
//! It follows PostgreSQL's own scanner where the two could disagree on what is code and
//! what is not: a `--` comment ends at a carriage return as well as a line feed, block
//! comments nest, and plain strings are read both with and without backslash escapes
//! (the server's `standard_conforming_strings`, see [`Strings`]), and a backslash right
//! after a byte above `0x7f` in an escaped string is not read at all (in SJIS, BIG5, GBK
//! and the like it may be the second byte of a character). Text it does not follow to the
//! end yields [`Token::Opaque`]. Every loop moves forward: time is linear in
//! the length of the text and nothing recurses.

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
    /// Text the lexer does not read to its end (an unterminated string, comment, quoted
    /// identifier or dollar-quoted body) or does not decode (a `U&"..."` identifier, whose
    /// escapes can spell any name): its statement is judged to change the session.
    Opaque,
}

/// How plain string constants (`'...'`, `N'...'`) treat a backslash, which depends on
/// the server's `standard_conforming_strings` (a session setting the text cannot show).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Strings {
    /// `standard_conforming_strings = on` (the default): a backslash is a character.
    Standard,
    /// `standard_conforming_strings = off`: a backslash escapes the next character.
    Backslash,
}

/// The tokens of `sql`, comments and whitespace dropped, plain strings read as `strings`
/// says. Text the lexer cannot close (an unterminated string, comment or quoted
/// identifier) ends with [`Token::Opaque`].
pub(crate) fn tokens(sql: &str, strings: Strings) -> Vec<Token<'_>> {
    let plain_backslash = strings == Strings::Backslash;
    let bytes = sql.as_bytes();
    let mut out = Vec::with_capacity(bytes.len() / 4 + 1);
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            b' ' | b'\t' | b'\n' | b'\r' | b'\x0c' => i += 1,
            b'-' if bytes.get(i + 1) == Some(&b'-') => i = line_comment(bytes, i),
            b'/' if bytes.get(i + 1) == Some(&b'*') => match block_comment(bytes, i) {
                Some(end) => i = end,
                None => return opaque(out),
            },
            b'\'' => match quoted(bytes, i + 1, b'\'', plain_backslash) {
                Some(end) => {
                    i = end;
                    out.push(Token::Literal);
                }
                None => return opaque(out),
            },
            b'"' => match quoted(bytes, i + 1, b'"', false) {
                Some(end) => {
                    // `U&"..."`: escapes (`\0041`, `UESCAPE`) can spell any name.
                    let unicode = matches!(out.as_slice(), [.., Token::Word(u), Token::Other]
                        if u.eq_ignore_ascii_case("u") && bytes.get(i - 1) == Some(&b'&'));
                    out.push(if unicode {
                        Token::Opaque
                    } else {
                        Token::Quoted(sql.get(i + 1..end - 1).unwrap_or(""))
                    });
                    i = end;
                }
                None => return opaque(out),
            },
            b'$' => match dollar_tag(bytes, i) {
                Some(tag_end) => {
                    let tag = &bytes[i..tag_end];
                    match find(bytes, tag_end, tag) {
                        Some(p) => i = p + tag.len(),
                        None => return opaque(out),
                    }
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
                    match quoted(bytes, i + 1, b'\'', true) {
                        Some(end) => i = end,
                        None => return opaque(out),
                    }
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

/// `out` ended by [`Token::Opaque`]: the rest of the text was not understood.
fn opaque(mut out: Vec<Token<'_>>) -> Vec<Token<'_>> {
    out.push(Token::Opaque);
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
            [b'-', b'-', ..] => i = line_comment(bytes, i),
            [b'/', b'*', ..] => i = block_comment(bytes, i)?,
            _ => break,
        }
    }
    let len = bytes[i..]
        .iter()
        .position(|b| !(b.is_ascii_alphabetic() || *b == b'_'))
        .unwrap_or(bytes.len() - i);
    (len > 0).then(|| &sql[i..i + len])
}

/// The index after a `--` comment starting at `start`: past the first line feed or
/// carriage return (PostgreSQL ends the comment at either), or the end of the text.
fn line_comment(bytes: &[u8], start: usize) -> usize {
    bytes[start..]
        .iter()
        .position(|&c| c == b'\n' || c == b'\r')
        .map_or(bytes.len(), |p| start + p + 1)
}

/// The index after a `/* ... */` comment starting at `start` (they nest); `None` when it
/// is not closed.
fn block_comment(bytes: &[u8], start: usize) -> Option<usize> {
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
                    return Some(i);
                }
            }
            _ => i += 1,
        }
    }
    None
}

/// The index after the closing `quote` of a quoted text whose content starts at `from`
/// (a doubled quote is one quote character; with `backslash`, `\` escapes the next byte);
/// `None` when it is not closed, or when a backslash follows a byte above `0x7f`: in a
/// client encoding such as SJIS, BIG5 or GBK that byte may begin a character whose second
/// byte is the backslash, which then escapes nothing.
fn quoted(bytes: &[u8], from: usize, quote: u8, backslash: bool) -> Option<usize> {
    let mut i = from;
    while i < bytes.len() {
        let b = bytes[i];
        if backslash && b == b'\\' {
            if bytes[i - 1] >= 0x80 {
                return None;
            }
            i += 2;
        } else if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return Some(i + 1);
            }
        } else {
            i += 1;
        }
    }
    None
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
#[path = "lex_tests.rs"]
mod tests;
