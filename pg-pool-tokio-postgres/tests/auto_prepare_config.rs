//! `pool_auto_prepare` and `PgConfig::auto_prepare`: every spelling of a boolean is read,
//! anything else is refused by name, and whether plain SQL is cached follows the profile
//! and the cache capacity, whatever order the keys come in.

use pg_pool_tokio_postgres::{PgConfig, PgError, Profile};
use proptest::prelude::*;

const TRUE: [&str; 4] = ["true", "on", "yes", "1"];
const FALSE: [&str; 4] = ["false", "off", "no", "0"];

#[test]
fn on_by_default_off_under_pooler_safe_or_without_a_cache() {
    let c = PgConfig::default();
    assert!(c.auto_prepare && c.auto_prepares());
    let c = PgConfig::from_url("postgres://h/db").unwrap();
    assert!(c.auto_prepare && c.auto_prepares());
    let c = PgConfig::from_url("postgres://h/db?pool_auto_prepare=false").unwrap();
    assert!(!c.auto_prepare && !c.auto_prepares());
    let c = PgConfig::from_url("postgres://h/db?pool_statement_cache=0").unwrap();
    assert!(c.auto_prepare && !c.auto_prepares(), "capacity 0 is off");
    let c = PgConfig::from_url("postgres://h/db?pool_profile=pooler_safe").unwrap();
    assert!(
        !c.auto_prepares(),
        "the pooler-safe profile names no statement"
    );
    let c = PgConfig::pooler_safe(pg_pool_tokio_postgres::tokio_postgres::Config::new());
    assert!(!c.auto_prepares());
    let c = PgConfig::default().with_profile(Profile::PoolerSafe);
    assert!(
        !c.auto_prepares(),
        "the profile alone turns it off, cache capacity or not"
    );
    let c = PgConfig::default().with_auto_prepare(false);
    assert!(!c.auto_prepares());
    let c = PgConfig::from_url("host=h pool_auto_prepare=off").unwrap();
    assert!(!c.auto_prepare, "key=value strings too");
}

#[test]
fn a_bad_value_is_refused_by_name() {
    for value in ["", "maybe", "TRUE", "2", "-1", "on%20"] {
        let url = format!("postgres://h/db?pool_auto_prepare={value}");
        let e = PgConfig::from_url(&url).unwrap_err();
        assert!(matches!(e, PgError::Config { .. }), "{url}: {e:?}");
        let shown = e.to_string();
        assert!(shown.contains("`pool_auto_prepare`"), "{url}: {shown}");
        assert!(shown.contains("true or false"), "{url}: {shown}");
    }
}

proptest! {
    /// Any spelling of either value, with the profile and cache keys around it in any order,
    /// reads back as that value; `auto_prepares` is exactly "on, session profile, capacity
    /// above 0"; rendering the parsed settings again gives the same settings.
    #[test]
    fn spellings_and_key_order(
        on in any::<bool>(),
        spelling in 0usize..4,
        capacity in proptest::option::of(0usize..1000),
        pooler_safe in any::<bool>(),
        order in 0u8..6,
    ) {
        let value = if on { TRUE[spelling] } else { FALSE[spelling] };
        let mut keys = vec![format!("pool_auto_prepare={value}")];
        if let Some(capacity) = capacity {
            keys.push(format!("pool_statement_cache={capacity}"));
        }
        if pooler_safe {
            keys.push("pool_profile=pooler_safe".to_owned());
        }
        let turn = usize::from(order) % keys.len();
        keys.rotate_left(turn);
        let url = format!("postgres://h/db?{}", keys.join("&"));
        let c = PgConfig::from_url(&url).unwrap();
        prop_assert_eq!(c.auto_prepare, on, "{}", url);
        // The pooler-safe profile sets capacity 0 where it appears; a later
        // `pool_statement_cache` sets it again, but the profile still names no statement.
        let expected = on && !pooler_safe && c.statement_cache_capacity > 0;
        prop_assert_eq!(c.auto_prepares(), expected, "{}", url);
        prop_assert_eq!(c.profile == Profile::PoolerSafe, pooler_safe);

        let profile = match c.profile {
            Profile::PoolerSafe => "pooler_safe",
            _ => "session",
        };
        let again = format!(
            "postgres://h/db?pool_profile={profile}&pool_statement_cache={}&pool_auto_prepare={}",
            c.statement_cache_capacity, c.auto_prepare
        );
        let back = PgConfig::from_url(&again).unwrap();
        prop_assert_eq!(back.auto_prepare, c.auto_prepare);
        prop_assert_eq!(back.statement_cache_capacity, c.statement_cache_capacity);
        prop_assert_eq!(back.profile, c.profile);
        prop_assert_eq!(back.auto_prepares(), c.auto_prepares());
    }

    /// Any other value is an error naming the key, never a panic and never a silent default.
    #[test]
    fn anything_else_is_an_error(value in "[a-zA-Z0-9_.-]{0,12}") {
        prop_assume!(!TRUE.contains(&value.as_str()) && !FALSE.contains(&value.as_str()));
        let url = format!("postgres://h/db?pool_auto_prepare={value}");
        let e = PgConfig::from_url(&url).unwrap_err();
        prop_assert!(e.to_string().contains("`pool_auto_prepare`"), "{}", e);
    }
}
