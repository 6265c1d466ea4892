//! `ConnSettings`: connection and pool settings from a configuration document.
#![cfg(feature = "serde")]

use std::collections::HashMap;
use std::time::Duration;

use pg_pool_conninfo::{ConnSettings, PoolSettings};
use pg_pool_core::{ConnPoolConfig, IdleOrder};

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

fn no_env(_: &str) -> Option<String> {
    None
}

const FULL: &str = r#"
url = "postgres://app:url-pw-42@db.internal:6432/shop?pool_max_size=4&pool_min_idle=1"
password = "file-pw-hunter2"

[pool]
name = "orders"
max_size = 16
max_connecting = 3
checkout_timeout = "5s"
connect_timeout = "2s"
idle_timeout = "off"
max_lifetime = "1h30m"
max_lifetime_jitter = "1m"
reaper_interval = "750ms"
health_check_interval = "15s"
probe_timeout = "1s"
test_on_checkout = false
test_on_checkout_after = "250ms"
idle_order = "fifo"
connect_backoff = "100ms"
connect_backoff_max = "10s"
leak_detection_threshold = "1m"
slow_checkout_threshold = "200ms"
checkin_timeout = "3s"
statement_cache = 64
"#;

#[test]
fn a_full_document_resolves_with_the_table_over_the_string() {
    let settings: ConnSettings = toml::from_str(FULL).unwrap();
    let info = settings.conninfo_with_env(no_env).unwrap();
    assert_eq!(info.user.as_deref(), Some("app"));
    assert_eq!(info.dbname.as_deref(), Some("shop"));
    assert_eq!(
        info.password.as_ref().map(|p| p.expose()),
        Some("file-pw-hunter2")
    );
    let p = &info.pool;
    assert_eq!(p.max_size, Some(16), "the table overrides the string");
    assert_eq!(
        p.min_idle,
        Some(1),
        "the string's key the table leaves stays"
    );
    assert_eq!(p.name.as_deref(), Some("orders"));
    assert_eq!(p.max_connecting, Some(3));
    assert_eq!(p.idle_timeout, Some(None));
    assert_eq!(p.max_lifetime, Some(Some(Duration::from_secs(5400))));
    assert_eq!(p.reaper_interval, Some(Duration::from_millis(750)));
    assert_eq!(p.test_on_checkout, Some(false));
    assert_eq!(p.idle_order, Some(IdleOrder::Fifo));
    assert_eq!(
        p.leak_detection_threshold,
        Some(Some(Duration::from_secs(60)))
    );
    assert_eq!(
        p.driver,
        vec![("pool_statement_cache".to_owned(), "64".to_owned())]
    );

    let mut config = ConnPoolConfig::default();
    p.apply(&mut config);
    config.validate().unwrap();
    assert_eq!(config.checkin_timeout, Duration::from_secs(3));
    assert_eq!(config.connect_backoff_max, Duration::from_secs(10));
}

#[test]
fn debug_shows_neither_password_nor_url() {
    let settings: ConnSettings = toml::from_str(FULL).unwrap();
    let shown = format!("{settings:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("url-pw-42"),
        "{shown}"
    );
    let info = settings.conninfo_with_env(no_env).unwrap();
    let shown = format!("{info:?}");
    assert!(
        !shown.contains("hunter2") && !shown.contains("url-pw-42"),
        "{shown}"
    );
}

#[test]
fn unknown_keys_are_rejected_by_name() {
    let e = toml::from_str::<ConnSettings>("uri = \"postgres://h\"")
        .unwrap_err()
        .to_string();
    assert!(e.contains("uri"), "{e}");
    let e = toml::from_str::<ConnSettings>("[pool]\npool_max_size = 3")
        .unwrap_err()
        .to_string();
    assert!(e.contains("pool_max_size") && e.contains("prefix"), "{e}");
}

#[test]
fn bad_pool_values_name_the_key_and_the_table() {
    for (doc, key) in [
        ("[pool]\ncheckout_timeout = \"30\"", "pool_checkout_timeout"),
        ("[pool]\ncheckout_timeout = 30", "pool_checkout_timeout"),
        ("[pool]\nmax_size = -1", "pool_max_size"),
        ("[pool]\nmax_size = \"lots\"", "pool_max_size"),
        ("[pool]\nidle_order = \"random\"", "pool_idle_order"),
        (
            "[pool]\ntest_on_checkout = \"maybe\"",
            "pool_test_on_checkout",
        ),
    ] {
        let e = toml::from_str::<ConnSettings>(doc).unwrap_err().to_string();
        assert!(e.contains(key) && e.contains("`pool` table"), "{doc}: {e}");
    }
    let e = toml::from_str::<ConnSettings>("[pool]\nmax_size = 1.5")
        .unwrap_err()
        .to_string();
    assert!(e.contains("max_size"), "{e}");
}

#[test]
fn without_url_the_environment_is_used() {
    let settings: ConnSettings = toml::from_str("[pool]\nmax_size = 2").unwrap();
    let info = settings
        .conninfo_with_env(env(&[("DATABASE_URL", "postgres://envuser@envhost/envdb")]))
        .unwrap();
    assert_eq!(info.user.as_deref(), Some("envuser"));
    assert_eq!(info.pool.max_size, Some(2));
    let info = settings
        .conninfo_with_env(env(&[("PGHOST", "pghost"), ("PGUSER", "pguser")]))
        .unwrap();
    assert_eq!(info.user.as_deref(), Some("pguser"));
}

#[test]
fn pool_environment_variables_win_and_name_themselves() {
    let settings: ConnSettings = toml::from_str(FULL).unwrap();
    let info = settings
        .conninfo_with_env(env(&[
            ("PG_POOL_MAX_SIZE", "20"),
            ("PG_POOL_MAX_LIFETIME", "off"),
            ("PG_POOL_MIN_IDLE", ""),
        ]))
        .unwrap();
    assert_eq!(info.pool.max_size, Some(20));
    assert_eq!(info.pool.max_lifetime, Some(None));
    assert_eq!(info.pool.min_idle, Some(1), "an empty variable is unset");

    let e = settings
        .conninfo_with_env(env(&[("PG_POOL_CHECKOUT_TIMEOUT", "5")]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("PG_POOL_CHECKOUT_TIMEOUT") && e.contains("pool_checkout_timeout"),
        "{e}"
    );
}

#[test]
fn the_settings_password_replaces_the_environment_one() {
    let settings: ConnSettings =
        toml::from_str("url = \"host=h user=u\"\npassword = \"from-file\"").unwrap();
    let info = settings
        .conninfo_with_env(env(&[("PGPASSWORD", "from-env")]))
        .unwrap();
    assert_eq!(
        info.password.as_ref().map(|p| p.expose()),
        Some("from-file")
    );
    let settings: ConnSettings = toml::from_str("url = \"host=h user=u\"").unwrap();
    let info = settings
        .conninfo_with_env(env(&[("PGPASSWORD", "from-env")]))
        .unwrap();
    assert_eq!(info.password.as_ref().map(|p| p.expose()), Some("from-env"));
}

#[test]
fn a_bad_url_is_an_error_without_its_password() {
    let settings: ConnSettings =
        toml::from_str("url = \"postgres://u:topsecret@h/db?sslmode=sometimes\"").unwrap();
    let e = settings.conninfo_with_env(no_env).unwrap_err().to_string();
    assert!(e.contains("sslmode") && !e.contains("topsecret"), "{e}");
}

#[test]
fn overlay_replaces_driver_keys() {
    let mut base = PoolSettings::default();
    base.driver.push(("pool_reset".into(), "none".into()));
    let mut over = PoolSettings::default();
    over.driver.push(("pool_reset".into(), "discard".into()));
    over.max_size = Some(5);
    base.overlay(&over);
    assert_eq!(base.driver, vec![("pool_reset".into(), "discard".into())]);
    assert_eq!(base.max_size, Some(5));
}

#[test]
fn a_password_of_the_wrong_type_is_not_repeated() {
    let e = toml::from_str::<ConnSettings>("password = 73519246").unwrap_err();
    let message = e.message();
    assert!(message.contains("must be a string"), "{message}");
    assert!(!message.contains("7351"), "{message}");
}
