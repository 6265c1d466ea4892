//! libpq's `key=value` connection strings.

use crate::error::{ConnInfoError, ConnInfoErrorKind};
use crate::keys::unknown_key;
use crate::raw::{Entry, Origin, Raw, Value};

/// Splits `input` into keys, as libpq: pairs separated by whitespace, optional whitespace
/// around `=`, values either bare (up to the next whitespace) or single-quoted; in both, a
/// backslash takes the next character literally (`\'`, `\\`, `\ `). An empty value is
/// written `key=''` (or `key=` at the end).
pub(crate) fn parse(input: &str) -> Result<Raw, ConnInfoError> {
    let mut raw = Raw::default();
    let mut chars = input.char_indices().peekable();
    let mut number = 0;
    let mut previous_was_password = false;
    loop {
        while chars.next_if(|&(_, c)| is_space(c)).is_some() {}
        let Some(&(start, _)) = chars.peek() else {
            break;
        };
        number += 1;
        let mut end = input.len();
        while let Some(&(i, c)) = chars.peek() {
            if c == '=' || is_space(c) {
                end = i;
                break;
            }
            chars.next();
        }
        let key = &input[start..end];
        while chars.next_if(|&(_, c)| is_space(c)).is_some() {}
        if chars.next_if(|&(_, c)| c == '=').is_none() {
            return Err(if previous_was_password {
                unknown_key(key, Origin::KeyValue, true)
            } else if is_plain(key) {
                ConnInfoError::new(
                    ConnInfoErrorKind::Syntax,
                    format!("`{key}`"),
                    "is missing `=` and a value",
                )
            } else {
                ConnInfoError::new(
                    ConnInfoErrorKind::Syntax,
                    format!("item {number}"),
                    "is not `key=value` (not shown: it may be part of a password)",
                )
            });
        }
        while chars.next_if(|&(_, c)| is_space(c)).is_some() {}
        let mut value = String::new();
        if chars.next_if(|&(_, c)| c == '\'').is_some() {
            let mut closed = false;
            while let Some((_, c)) = chars.next() {
                match c {
                    '\'' => {
                        closed = true;
                        break;
                    }
                    '\\' => {
                        if let Some((_, next)) = chars.next() {
                            value.push(next);
                        }
                    }
                    c => value.push(c),
                }
            }
            if !closed {
                let part = if is_plain(key) {
                    format!("the value of `{key}`")
                } else {
                    format!("the value of item {number}")
                };
                return Err(ConnInfoError::new(
                    ConnInfoErrorKind::Syntax,
                    part,
                    "has an unterminated quote",
                ));
            }
            if chars.peek().is_some_and(|&(_, c)| !is_space(c)) {
                let part = if is_plain(key) {
                    format!("the value of `{key}`")
                } else {
                    format!("the value of item {number}")
                };
                return Err(ConnInfoError::new(
                    ConnInfoErrorKind::Syntax,
                    part,
                    "continues after its closing quote; separate pairs with whitespace",
                ));
            }
        } else {
            while let Some(&(_, c)) = chars.peek() {
                if is_space(c) {
                    break;
                }
                chars.next();
                if c == '\\' {
                    if let Some((_, next)) = chars.next() {
                        value.push(next);
                    }
                } else {
                    value.push(c);
                }
            }
        }
        if !is_plain(key) {
            return Err(unknown_key(key, Origin::KeyValue, previous_was_password));
        }
        let after_password = previous_was_password;
        previous_was_password = key == "password";
        raw.set(Entry {
            key: key.to_owned(),
            value: Value::Text(value),
            origin: Origin::KeyValue,
            after_password,
        });
    }
    Ok(raw)
}

/// libpq's `isspace` in the C locale.
fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\r' | '\x0b' | '\x0c')
}

/// Whether `key` is made of letters, digits and `_` only, so it can be a key and may be
/// shown.
fn is_plain(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}
