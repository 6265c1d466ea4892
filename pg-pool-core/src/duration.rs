//! Human-readable durations (`500ms`, `30s`, `5m`, `1h30m`): the one grammar every pg-pool
//! configuration source (connection strings, configuration files) accepts.

use std::fmt::Write as _;
use std::time::Duration;

/// The longest duration [`parse_duration`] accepts: a year (8760 h). Longer is a typo, and
/// would overflow clock arithmetic.
pub const MAX_HUMAN_DURATION: Duration = Duration::from_secs(365 * 24 * 3600);

const NOT_A_DURATION: &str = "is not a duration (for example 500ms, 30s, 5m, 1h)";

/// Parses a human-readable duration: a number and a unit (`ms`, `s`, `m` or `h`), optionally
/// several in a row (`500ms`, `30s`, `5m`, `1h`, `1h30m`), at most
/// [`MAX_HUMAN_DURATION`].
///
/// A bare number is an error, not seconds: `500` could mean milliseconds as easily. No sign,
/// no spaces, no fractions.
///
/// # Errors
///
/// A phrase that completes a sentence about the value (`"needs a unit: ..."`,
/// `"is too large ..."`), so callers can prefix it with the field or key it came from.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pg_pool_core::parse_duration;
///
/// assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
/// assert!(parse_duration("30").is_err());
/// ```
pub fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    const NEEDS_UNIT: &str =
        "needs a unit: ms, s, m or h (for example 500ms, 30s, 5m, 1h); a bare number is ambiguous";
    if text.is_empty() {
        return Err(NOT_A_DURATION);
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(NOT_A_DURATION);
        }
        let number: u64 = rest[..digits].parse().map_err(|_| "is too large")?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let (unit, after) = rest.split_at(unit_len);
        let part = match unit {
            "ms" => Some(Duration::from_millis(number)),
            "s" => Some(Duration::from_secs(number)),
            "m" => number.checked_mul(60).map(Duration::from_secs),
            "h" => number.checked_mul(3600).map(Duration::from_secs),
            "" => return Err(NEEDS_UNIT),
            _ => return Err("has an unknown unit (use ms, s, m or h)"),
        };
        total = part
            .and_then(|part| total.checked_add(part))
            .ok_or("is too large")?;
        rest = after;
    }
    if total > MAX_HUMAN_DURATION {
        return Err("is too large (at most 8760h, a year)");
    }
    Ok(total)
}

/// Writes `duration` in the grammar [`parse_duration`] reads (`1h30m`, `500ms`, `0s`),
/// rounded down to whole milliseconds.
///
/// Returns `None` when the result would not parse back: above [`MAX_HUMAN_DURATION`], or a
/// non-zero duration shorter than a millisecond.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pg_pool_core::format_duration;
///
/// assert_eq!(format_duration(Duration::from_secs(5400)).as_deref(), Some("1h30m"));
/// assert_eq!(format_duration(Duration::from_millis(1500)).as_deref(), Some("1s500ms"));
/// assert_eq!(format_duration(Duration::MAX), None);
/// ```
pub fn format_duration(duration: Duration) -> Option<String> {
    if duration > MAX_HUMAN_DURATION || (!duration.is_zero() && duration.as_millis() == 0) {
        return None;
    }
    let millis = duration.as_millis();
    if millis == 0 {
        return Some("0s".to_owned());
    }
    let mut out = String::new();
    let parts = [
        (millis / 3_600_000, "h"),
        (millis / 60_000 % 60, "m"),
        (millis / 1000 % 60, "s"),
        (millis % 1000, "ms"),
    ];
    for (value, unit) in parts {
        if value != 0 {
            // Writing to a String cannot fail.
            let _ = write!(out, "{value}{unit}");
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_back() {
        for ms in [
            0u64,
            1,
            999,
            1000,
            1500,
            60_000,
            5_400_000,
            3_723_004,
            365 * 24 * 3_600_000,
        ] {
            let d = Duration::from_millis(ms);
            let text = format_duration(d).expect("in range");
            assert_eq!(parse_duration(&text), Ok(d), "{ms} ms written as {text}");
        }
        assert_eq!(format_duration(Duration::from_nanos(1)), None);
        assert_eq!(
            format_duration(MAX_HUMAN_DURATION + Duration::from_millis(1)),
            None
        );
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "",
            "30",
            "s",
            "1x",
            "-1s",
            "1.5s",
            " 1s",
            "8761h",
            "99999999999999999999s",
        ] {
            assert!(parse_duration(bad).is_err(), "{bad:?} accepted");
        }
    }
}
