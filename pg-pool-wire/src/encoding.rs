//! pg-wired reads and writes text as UTF-8, so a session whose client encoding is anything
//! else would hand back garbled text, and could make the session judge read a statement
//! differently from the server (a multi-byte encoding such as SJIS can swallow a quote's
//! backslash). The config refuses such a setting before anything is sent.

use crate::WireError;

/// Whether `value` names UTF-8 as PostgreSQL spells it: the server ignores case and every
/// character that is not a letter or digit, and knows `unicode` as an alias.
fn is_utf8(value: &str) -> bool {
    let plain: String = value
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect();
    plain == "utf8" || plain == "unicode"
}

/// The value `options` sets for `client_encoding`, if any: each word of the form
/// `client_encoding=value` (after `-c`, or as `-cclient_encoding=...` / `--client_encoding=...`),
/// with the server's backslash escapes removed and the name compared without regard to case.
fn encoding_in_options(options: &str) -> Option<String> {
    let mut found = None;
    let mut word = String::new();
    let mut chars = options.chars();
    let mut words = Vec::new();
    while let Some(c) = chars.next() {
        match c {
            '\\' => word.extend(chars.next()),
            c if c.is_ascii_whitespace() => words.push(std::mem::take(&mut word)),
            c => word.push(c),
        }
    }
    words.push(word);
    for word in words {
        let setting = word.trim_start_matches('-');
        let setting = setting
            .strip_prefix('c')
            .filter(|_| word.starts_with("-c"))
            .unwrap_or(setting);
        if let Some((name, value)) = setting.split_once('=')
            && name.eq_ignore_ascii_case("client_encoding")
        {
            found = Some(value.to_owned());
        }
    }
    found
}

/// Refuses a `client_encoding` other than UTF-8, set as a startup parameter or inside
/// `options`.
///
/// # Errors
///
/// [`WireError::Config`] naming `client_encoding`.
pub(crate) fn check(params: &[(String, String)]) -> Result<(), WireError> {
    for (name, value) in params {
        let value = if name.eq_ignore_ascii_case("client_encoding") {
            Some(value.clone())
        } else if name == "options" {
            encoding_in_options(value)
        } else {
            None
        };
        if value.is_some_and(|v| !is_utf8(&v)) {
            return Err(WireError::config(
                "client_encoding",
                "pg-pool-wire always reads and writes UTF-8; no other client encoding is supported",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{encoding_in_options, is_utf8};

    #[test]
    fn utf8_spellings() {
        for ok in ["UTF8", "utf-8", "Utf_8", "UNICODE", " utf8 "] {
            assert!(is_utf8(ok), "{ok}");
        }
        for bad in ["SJIS", "LATIN1", "", "utf16", "utf88"] {
            assert!(!is_utf8(bad), "{bad}");
        }
    }

    #[test]
    fn options_forms() {
        let cases = [
            ("-c client_encoding=SJIS", Some("SJIS")),
            ("-cclient_encoding=BIG5", Some("BIG5")),
            ("--client_encoding=GBK", Some("GBK")),
            ("-c x=1 -c CLIENT_ENCODING=latin1", Some("latin1")),
            ("-c client_encoding=S\\ JIS", Some("S JIS")),
            ("-c x=1", None),
            ("-c client_encoding_x=SJIS", None),
            ("", None),
        ];
        for (options, want) in cases {
            assert_eq!(encoding_in_options(options).as_deref(), want, "{options}");
        }
    }
}
