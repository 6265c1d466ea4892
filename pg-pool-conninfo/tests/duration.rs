//! Property tests of the one duration grammar (`pg_pool_core::parse_duration`, used by
//! connection strings, `PG_POOL_*` variables and configuration files): every duration it
//! can write parses back to itself, and no input makes it panic.

use std::time::Duration;

use pg_pool_core::{MAX_HUMAN_DURATION, format_duration, parse_duration};
use proptest::prelude::*;

proptest! {
    #[test]
    fn written_durations_parse_back(ms in 0..=MAX_HUMAN_DURATION.as_millis() as u64) {
        let d = Duration::from_millis(ms);
        let text = format_duration(d).expect("every whole-millisecond duration up to a year");
        prop_assert_eq!(parse_duration(&text), Ok(d), "{}", text);
    }

    #[test]
    fn any_input_parses_or_errors(text in "[0-9hmsx ]{0,24}") {
        if let Ok(d) = parse_duration(&text) {
            prop_assert!(d <= MAX_HUMAN_DURATION, "{text:?} gave {d:?}");
        }
    }

    #[test]
    fn a_written_duration_reads_back_from_a_connection_string(
        ms in 1..=MAX_HUMAN_DURATION.as_millis() as u64,
    ) {
        let text = format_duration(Duration::from_millis(ms)).unwrap();
        let from_string = pg_pool_conninfo::ConnInfo::parse(&format!("host=h pool_probe_timeout={text}"))
            .unwrap()
            .pool
            .probe_timeout;
        prop_assert_eq!(from_string, Some(Duration::from_millis(ms)));
    }
}
