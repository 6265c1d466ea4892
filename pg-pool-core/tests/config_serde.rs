//! `serde` support of `ConnPoolConfig`: TOML documents in and out.
#![cfg(feature = "serde")]

use std::time::Duration;

use pg_pool_core::{ConnPoolConfig, Fairness, IdleOrder};

const FULL: &str = r#"
addr = "db.internal:6432"
user = "app"
password = "hunter2-very-secret"
database = "shop"
name = "orders"
min_idle = 2
max_size = 16
checkout_timeout = "5s"
connect_timeout = "2s500ms"
idle_timeout = "off"
max_lifetime = "1h30m"
max_lifetime_jitter = "2m"
reaper_interval = "750ms"
health_check_interval = "15s"
probe_timeout = "1s"
test_on_checkout = false
test_on_checkout_after = "250ms"
idle_order = "fifo"
max_connecting = 4
connect_backoff = "100ms"
connect_backoff_max = "10s"
leak_detection_threshold = "1m"
slow_checkout_threshold = "200ms"
checkin_timeout = "3s"
fairness = "bounded:2ms"
"#;

fn full_expected() -> ConnPoolConfig {
    let mut c = ConnPoolConfig::default();
    c.addr = "db.internal:6432".into();
    c.user = "app".into();
    c.password = "hunter2-very-secret".into();
    c.database = "shop".into();
    c.name = "orders".into();
    c.min_idle = 2;
    c.max_size = 16;
    c.checkout_timeout = Duration::from_secs(5);
    c.connect_timeout = Duration::from_millis(2500);
    c.idle_timeout = None;
    c.max_lifetime = Some(Duration::from_secs(5400));
    c.max_lifetime_jitter = Duration::from_secs(120);
    c.reaper_interval = Duration::from_millis(750);
    c.health_check_interval = Some(Duration::from_secs(15));
    c.probe_timeout = Duration::from_secs(1);
    c.test_on_checkout = false;
    c.test_on_checkout_after = Duration::from_millis(250);
    c.idle_order = IdleOrder::Fifo;
    c.max_connecting = 4;
    c.connect_backoff = Duration::from_millis(100);
    c.connect_backoff_max = Duration::from_secs(10);
    c.leak_detection_threshold = Some(Duration::from_secs(60));
    c.slow_checkout_threshold = Duration::from_millis(200);
    c.checkin_timeout = Duration::from_secs(3);
    c.fairness = Fairness::Bounded(Duration::from_millis(2));
    c
}

fn error(doc: &str) -> String {
    toml::from_str::<ConnPoolConfig>(doc)
        .expect_err("document should be rejected")
        .to_string()
}

#[test]
fn every_field_reads_and_round_trips_without_the_password() {
    let config: ConnPoolConfig = toml::from_str(FULL).unwrap();
    assert_eq!(config, full_expected());

    let written = toml::to_string(&config).unwrap();
    println!("{written}");
    assert!(
        !written.contains("hunter2"),
        "password serialized: {written}"
    );
    assert!(
        !written.contains("password"),
        "password key serialized: {written}"
    );
    assert!(written.contains("idle_timeout = \"off\""), "{written}");
    assert!(written.contains("max_lifetime = \"1h30m\""), "{written}");

    let back: ConnPoolConfig = toml::from_str(&written).unwrap();
    let mut expected = full_expected();
    expected.password.clear();
    assert_eq!(back, expected);
}

#[test]
fn defaults_round_trip() {
    let written = toml::to_string(&ConnPoolConfig::default()).unwrap();
    let back: ConnPoolConfig = toml::from_str(&written).unwrap();
    assert_eq!(back, ConnPoolConfig::default());
}

#[test]
fn absent_fields_take_their_defaults() {
    assert_eq!(
        toml::from_str::<ConnPoolConfig>("").unwrap(),
        ConnPoolConfig::default()
    );
    let config: ConnPoolConfig = toml::from_str("max_size = 3").unwrap();
    let mut expected = ConnPoolConfig::default();
    expected.max_size = 3;
    assert_eq!(config, expected);
    // The optional durations keep their documented defaults when absent.
    assert_eq!(config.idle_timeout, Some(Duration::from_secs(600)));
    assert_eq!(config.health_check_interval, None);
}

#[test]
fn off_disables_every_optional_duration() {
    let config: ConnPoolConfig = toml::from_str(
        "idle_timeout = \"off\"\nmax_lifetime = \"off\"\nhealth_check_interval = \"off\"\n\
         leak_detection_threshold = \"off\"",
    )
    .unwrap();
    assert_eq!(config.idle_timeout, None);
    assert_eq!(config.max_lifetime, None);
    assert_eq!(config.health_check_interval, None);
    assert_eq!(config.leak_detection_threshold, None);
    // `off` is not a duration for settings that cannot be switched off.
    let e = error("checkout_timeout = \"off\"");
    assert!(e.contains("`checkout_timeout`"), "{e}");
}

#[test]
fn unknown_field_is_rejected_by_name() {
    let e = error("max_sise = 4");
    assert!(e.contains("max_sise"), "{e}");
}

#[test]
fn bad_durations_name_the_field() {
    for (doc, field, why) in [
        (
            "connect_timeout = \"30\"",
            "`connect_timeout`",
            "needs a unit",
        ),
        ("idle_timeout = \"5min\"", "`idle_timeout`", "unknown unit"),
        (
            "reaper_interval = \"9000h\"",
            "`reaper_interval`",
            "too large",
        ),
        ("probe_timeout = \"\"", "`probe_timeout`", "not a duration"),
    ] {
        let e = error(doc);
        assert!(e.contains(field) && e.contains(why), "{doc}: {e}");
    }
    // A number where a duration string belongs is a type error at that key.
    let e = error("checkout_timeout = 30");
    assert!(
        e.contains("checkout_timeout") && e.contains("string"),
        "{e}"
    );
}

#[test]
fn validate_errors_surface_naming_the_field() {
    for (doc, field) in [
        ("max_size = 0", "`max_size`"),
        ("max_size = 2\nmin_idle = 3", "`min_idle`"),
        ("max_connecting = 0", "`max_connecting`"),
        ("checkout_timeout = \"0s\"", "`checkout_timeout`"),
        (
            "connect_backoff = \"2s\"\nconnect_backoff_max = \"1s\"",
            "`connect_backoff_max`",
        ),
        (
            "max_lifetime = \"1m\"\nmax_lifetime_jitter = \"1m\"",
            "`max_lifetime_jitter`",
        ),
    ] {
        let e = error(doc);
        assert!(
            e.contains("invalid pool config") && e.contains(field),
            "{doc}: {e}"
        );
    }
}

#[test]
fn idle_order_spellings() {
    let c: ConnPoolConfig = toml::from_str("idle_order = \"lifo\"").unwrap();
    assert_eq!(c.idle_order, IdleOrder::Lifo);
    let e = error("idle_order = \"random\"");
    assert!(e.contains("random") && e.contains("fifo"), "{e}");
}

#[test]
fn fairness_spellings() {
    let c: ConnPoolConfig = toml::from_str("fairness = \"strict\"").unwrap();
    assert_eq!(c.fairness, Fairness::Strict);
    let c: ConnPoolConfig = toml::from_str("fairness = \"bounded:1s500ms\"").unwrap();
    assert_eq!(c.fairness, Fairness::Bounded(Duration::from_millis(1500)));
    assert!(
        toml::to_string(&c)
            .unwrap()
            .contains("fairness = \"bounded:1s500ms\""),
    );
    for (doc, why) in [
        (
            "fairness = \"fair\"",
            "must be `strict` or `bounded:<duration>`",
        ),
        (
            "fairness = \"bounded\"",
            "must be `strict` or `bounded:<duration>`",
        ),
        ("fairness = \"bounded:\"", "not a duration"),
        ("fairness = \"bounded:5\"", "needs a unit"),
        ("fairness = \"bounded:0ms\"", "zero bound"),
        ("fairness = \"Strict\"", "must be `strict`"),
    ] {
        let e = error(doc);
        println!("{doc}: {e}");
        assert!(e.contains("`fairness`") && e.contains(why), "{doc}: {e}");
    }
    // A bound below a millisecond can be set in code but not written as a duration.
    let mut config = ConnPoolConfig::default();
    config.fairness = Fairness::Bounded(Duration::from_micros(100));
    let e = toml::to_string(&config).unwrap_err().to_string();
    assert!(e.contains("`fairness`"), "{e}");
}

#[test]
fn debug_and_errors_never_show_the_password() {
    let config: ConnPoolConfig = toml::from_str(FULL).unwrap();
    let shown = format!("{config:?}");
    assert!(!shown.contains("hunter2"), "{shown}");
    assert!(shown.contains("<redacted>"), "{shown}");
    let e = error("password = \"hunter2-very-secret\"\nmax_size = 0");
    println!("{e}");
    assert!(e.contains("`max_size`") && !e.contains("hunter2"), "{e}");
}

#[test]
fn durations_the_grammar_cannot_write_are_serialization_errors() {
    let mut config = ConnPoolConfig::default();
    config.checkout_timeout = Duration::MAX;
    let e = toml::to_string(&config).unwrap_err().to_string();
    assert!(e.contains("`checkout_timeout`"), "{e}");
    config.checkout_timeout = Duration::from_nanos(10);
    let e = toml::to_string(&config).unwrap_err().to_string();
    assert!(e.contains("`checkout_timeout`"), "{e}");
}

#[test]
fn a_password_of_the_wrong_type_is_not_repeated() {
    for doc in [
        "password = 73519246",
        "password = 7351.9246",
        "password = true",
    ] {
        let e = toml::de::from_str::<ConnPoolConfig>(doc).unwrap_err();
        let message = e.message();
        assert!(message.contains("`password` must be a string"), "{message}");
        assert!(
            !message.contains("7351") && !message.contains("true"),
            "{message}"
        );
    }
}
