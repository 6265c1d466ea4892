//! `postgres://` URLs, as libpq reads them.

use crate::error::{ConnInfoError, ConnInfoErrorKind, shown};
use crate::keys::unknown_key;
use crate::raw::{Entry, Origin, Raw, Value};

/// The URL schemes libpq accepts.
pub(crate) const SCHEMES: [&str; 2] = ["postgresql://", "postgres://"];

/// Splits `url` (which starts with one of [`SCHEMES`]) into keys.
///
/// Grammar: `scheme://[user[:password]@][host[:port][,host[:port]...]][/dbname][?key=value&...]`.
/// The authority ends at the first `/` or `?`; the user-info ends at its last `@`, so an
/// unencoded `@` in the password is tolerated. Every part is percent-decoded.
pub(crate) fn parse(url: &str) -> Result<Raw, ConnInfoError> {
    let rest = SCHEMES
        .iter()
        .find_map(|scheme| url.strip_prefix(scheme))
        .expect("the caller checked the scheme");
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, after) = rest.split_at(authority_end);
    let (path, query) = match after.find('?') {
        Some(q) => (&after[..q], Some(&after[q + 1..])),
        None => (after, None),
    };
    let path = path.strip_prefix('/').unwrap_or(path);
    let (userinfo, hostlist) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    // A password with an unencoded `/` or `?` ends the authority early; the rest of the
    // password then sits in the host, port, path or query. The telltale is an `@` after
    // the authority. Then no value of the URL is shown in errors.
    let garbled = userinfo.is_none() && after.contains('@');
    // A raw `@` in the path is always refused: it is where the rest of a password with an
    // unencoded `/` lands (even after an `@` of its own); a database name writes it %40.
    if path.contains('@') {
        return Err(ConnInfoError::new(
            ConnInfoErrorKind::Syntax,
            "URL",
            "an unencoded `@` follows the host part (is there a `/` or `?` in the password?); \
             percent-encode `/`, `?`, `@` in the user name and password as %2F, %3F, %40",
        ));
    }
    let mut raw = Raw::default();
    let entry = |key: &str, value: Value, origin: Origin| Entry {
        key: key.to_owned(),
        value,
        origin,
        after_password: false,
    };
    if let Some(userinfo) = userinfo {
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        let user = decode(user, "user name", None)?;
        if !user.is_empty() {
            raw.set(entry("user", Value::Text(user), Origin::UrlHidden));
        }
        if let Some(password) = password {
            let password = decode(password, "password", None)?;
            raw.set(entry("password", Value::Text(password), Origin::UrlHidden));
        }
    }
    if !hostlist.is_empty() {
        let (hosts, ports) = parse_hosts(hostlist)?;
        if hosts.iter().any(|h| !h.is_empty()) {
            raw.set(entry("host", Value::List(hosts), Origin::UrlHidden));
        }
        if ports.iter().any(|p| !p.is_empty()) {
            raw.set(entry("port", Value::List(ports), Origin::UrlHidden));
        }
    }
    if !path.is_empty() {
        let origin = if garbled {
            Origin::UrlHidden
        } else {
            Origin::UrlQuery
        };
        let dbname = decode(path, "database name", None)?;
        raw.set(entry("dbname", Value::Text(dbname), origin));
    }
    if let Some(query) = query.filter(|q| !q.is_empty()) {
        let origin = if garbled {
            Origin::UrlHidden
        } else {
            Origin::UrlQuery
        };
        let mut previous_was_password = false;
        for (i, pair) in query.split('&').enumerate() {
            let number = i + 1;
            if pair.is_empty() {
                return Err(ConnInfoError::new(
                    ConnInfoErrorKind::Syntax,
                    format!("URL query parameter {number}"),
                    "is empty (a doubled, leading or trailing `&`)",
                ));
            }
            let Some((key, value)) = pair.split_once('=') else {
                return Err(ConnInfoError::new(
                    ConnInfoErrorKind::Syntax,
                    format!("URL query parameter {number}"),
                    "has no `=value`",
                ));
            };
            if value.contains('=') {
                return Err(ConnInfoError::new(
                    ConnInfoErrorKind::Syntax,
                    format!("URL query parameter {number}"),
                    "has a second `=`; percent-encode `=` in values as %3D",
                ));
            }
            let key = decode(key, "query parameter name", Some(number))?;
            let value_what = if key == "password" || key == "user" {
                key.clone()
            } else {
                format!("value of query parameter {number}")
            };
            let value = decode(value, &value_what, None)?;
            if !is_key_name(&key) {
                return Err(unknown_key(&key, origin, previous_was_password));
            }
            let after_password = previous_was_password;
            previous_was_password = key == "password";
            raw.set(Entry {
                key,
                value: Value::Text(value),
                origin,
                after_password,
            });
        }
    }
    Ok(raw)
}

/// Whether `key` can be a libpq key at all (letters, digits, `_`); anything else is
/// reported as an unknown key without showing it.
fn is_key_name(key: &str) -> bool {
    !key.is_empty() && key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// `host[:port],...` (IPv6 in brackets) into decoded hosts and raw ports. Nothing here is
/// ever shown in an error: a garbled password may be sitting in it.
fn parse_hosts(list: &str) -> Result<(Vec<String>, Vec<String>), ConnInfoError> {
    let mut hosts = Vec::new();
    let mut ports = Vec::new();
    let count = list.split(',').count();
    for (i, item) in list.split(',').enumerate() {
        let number = i + 1;
        let part = if count == 1 {
            "URL host".to_owned()
        } else {
            format!("URL host {number} of {count}")
        };
        let bad = |problem: &str| ConnInfoError::new(ConnInfoErrorKind::Syntax, &part, problem);
        let (host, port) = if let Some(v6) = item.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| bad("an IPv6 address is missing its closing `]`"))?;
            let port = match after {
                "" => "",
                _ => after
                    .strip_prefix(':')
                    .ok_or_else(|| bad("unexpected characters after the `]` of an IPv6 address"))?,
            };
            if host.is_empty() {
                return Err(bad("the brackets `[]` hold no IPv6 address"));
            }
            (host, port)
        } else {
            match item.split_once(':') {
                Some((host, port)) => (host, port),
                None => (item, ""),
            }
        };
        if host.contains(['[', ']']) {
            return Err(bad("`[` and `]` are only allowed around an IPv6 address"));
        }
        hosts.push(decode(host, &part, None)?);
        if !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(ConnInfoError::for_key(
                ConnInfoErrorKind::InvalidValue,
                "port",
                "",
                format!("the port of the {part} is not a number from 1 to 65535"),
            ));
        }
        ports.push(port.to_owned());
    }
    Ok((hosts, ports))
}

/// Percent-decodes `input`; `what` names the part in errors, which never show the input.
/// `number` is the query parameter's position, for a name that fails to decode.
pub(crate) fn decode(
    input: &str,
    what: &str,
    number: Option<usize>,
) -> Result<String, ConnInfoError> {
    let what = match number {
        Some(n) => format!("{what} {n}"),
        None => what.to_owned(),
    };
    if !input.contains('%') {
        return Ok(input.to_owned());
    }
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = |b: Option<&u8>| b.and_then(|&b| (b as char).to_digit(16));
            match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(hi), Some(lo)) => out.push((hi * 16 + lo) as u8),
                _ => {
                    return Err(ConnInfoError::new(
                        ConnInfoErrorKind::PercentEncoding,
                        what,
                        "has a `%` not followed by two hex digits (write a literal `%` as %25)",
                    ));
                }
            }
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| {
        ConnInfoError::new(
            ConnInfoErrorKind::PercentEncoding,
            what,
            "is not valid UTF-8 once percent-decoded",
        )
    })
}

/// The error for a string that is neither a `postgres://` URL nor `key=value` pairs but
/// has a `scheme://`.
pub(crate) fn wrong_scheme(scheme: &str) -> ConnInfoError {
    let found = if !scheme.is_empty()
        && scheme.len() <= 16
        && scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'-' || b == b'.')
    {
        shown(scheme)
    } else {
        "something else".to_owned()
    };
    ConnInfoError::new(
        ConnInfoErrorKind::Syntax,
        "URL",
        format!("scheme must be postgres:// or postgresql://, found {found}"),
    )
}
