//! Channel names: checked once, then always sent quoted as identifiers.

use super::event::{ChannelProblem, ListenerError};

/// The longest channel name PostgreSQL keeps whole: identifiers are cut to
/// `NAMEDATALEN - 1` bytes, so a longer name would be listened to under a shorter one
/// that `pg_notify` with the full name never reaches.
pub(crate) const MAX_CHANNEL_BYTES: usize = 63;

/// Checks that `name` is a channel PostgreSQL keeps as given: not empty, no NUL byte, at
/// most [`MAX_CHANNEL_BYTES`] bytes.
pub(crate) fn check(name: &str) -> Result<(), ListenerError> {
    let problem = if name.is_empty() {
        Some(ChannelProblem::Empty)
    } else if let Some(at) = name.bytes().position(|b| b == 0) {
        Some(ChannelProblem::Nul { at })
    } else if name.len() > MAX_CHANNEL_BYTES {
        Some(ChannelProblem::TooLong { bytes: name.len() })
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(ListenerError::InvalidChannel {
            name: shorten(name),
            problem,
        }),
    }
}

/// `name` as a quoted identifier: in double quotes, each double quote doubled. Inside
/// such an identifier every other character stands for itself, so the result names
/// exactly `name` (case, spaces and all) and cannot end the statement. `name` must have
/// passed [`check`].
pub(crate) fn quote(name: &str) -> String {
    let mut quoted = String::with_capacity(name.len() + 2);
    quoted.push('"');
    for c in name.chars() {
        if c == '"' {
            quoted.push('"');
        }
        quoted.push(c);
    }
    quoted.push('"');
    quoted
}

/// The statement that listens to `name`.
pub(crate) fn listen_sql(name: &str) -> String {
    format!("LISTEN {}", quote(name))
}

/// The statement that stops listening to `name`.
pub(crate) fn unlisten_sql(name: &str) -> String {
    format!("UNLISTEN {}", quote(name))
}

/// At most the first 80 characters of `name`, for error messages (a rejected name may be
/// arbitrarily long), with NUL bytes kept visible by the error's `Debug` quoting.
fn shorten(name: &str) -> String {
    const SHOWN: usize = 80;
    match name.char_indices().nth(SHOWN) {
        Some((end, _)) => format!("{}...", &name[..end]),
        None => name.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_as_identifiers() {
        assert_eq!(quote("plain"), r#""plain""#);
        assert_eq!(quote(r#"Foo"bar"#), r#""Foo""bar""#);
        assert_eq!(
            quote(r#"x"; DROP TABLE t; --"#),
            r#""x""; DROP TABLE t; --""#
        );
        assert_eq!(quote(r#""""#), r#""""""""#);
        assert_eq!(quote("Ünï cødé"), "\"Ünï cødé\"");
        assert_eq!(listen_sql("a b"), r#"LISTEN "a b""#);
        assert_eq!(unlisten_sql(r#"q""#), r#"UNLISTEN "q""""#);
    }

    /// Whatever the name, the quoted form is one identifier: unquoting it (dropping the
    /// outer quotes, halving inner pairs) gives the name back, and no lone quote remains
    /// that could end it early.
    #[test]
    fn quoting_round_trips() {
        for name in [
            "a",
            r#"""#,
            r#"a""b"#,
            r#"x"; DROP TABLE t; --"#,
            "tab\there",
            "new\nline",
            "'single'",
            "back\\slash",
            "$$dollar$$",
        ] {
            let quoted = quote(name);
            let inner = &quoted[1..quoted.len() - 1];
            assert!(
                !inner.replace(r#""""#, "").contains('"'),
                "{name:?} -> {quoted}"
            );
            assert_eq!(inner.replace(r#""""#, r#"""#), name);
        }
    }

    #[test]
    fn refuses_what_postgres_would_change() {
        let err = check("").unwrap_err();
        assert!(err.to_string().contains("empty"), "{err}");

        let err = check("a\0b").unwrap_err();
        assert!(err.to_string().contains("NUL byte at 1"), "{err}");
        assert!(err.to_string().contains(r#""a\0b""#), "{err}");

        let long = "x".repeat(64);
        let err = check(&long).unwrap_err();
        assert!(err.to_string().contains("64 bytes"), "{err}");
        assert!(err.to_string().contains("63"), "{err}");
        check(&"x".repeat(63)).expect("63 bytes is the limit");

        // Bytes, not characters: 32 two-byte characters are 64 bytes.
        let wide = "é".repeat(32);
        assert!(check(&wide).is_err());
        check(&"é".repeat(31)).expect("62 bytes");

        let huge = "y".repeat(10_000);
        let shown = check(&huge).unwrap_err().to_string();
        assert!(shown.len() < 300, "the message stays short: {shown}");
    }

    #[test]
    fn accepts_any_other_name() {
        for name in [
            "a",
            "Foo\"bar",
            "with space",
            "UPPER",
            "Ünïcødé",
            "x\"; DROP TABLE t; --",
        ] {
            check(name).unwrap_or_else(|e| panic!("{name:?}: {e}"));
        }
    }
}
