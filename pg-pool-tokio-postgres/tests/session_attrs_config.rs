//! `target_session_attrs` in connection strings: every libpq value is accepted and carried
//! to the host loop; what tokio-postgres's own enum gets; the connect timeout it implies.

use std::path::PathBuf;
use std::time::Duration;

use pg_pool_tokio_postgres::pg_pool_conninfo::TargetSessionAttrs;
use pg_pool_tokio_postgres::tokio_postgres::config::TargetSessionAttrs as Driver;
use pg_pool_tokio_postgres::{DialTarget, PgConfig, SessionOptions};

#[test]
fn every_libpq_value_is_accepted_and_carried_to_the_session_options() {
    for (value, attrs, driver) in [
        ("any", TargetSessionAttrs::Any, Driver::Any),
        (
            "read-write",
            TargetSessionAttrs::ReadWrite,
            Driver::ReadWrite,
        ),
        ("read-only", TargetSessionAttrs::ReadOnly, Driver::ReadOnly),
        ("primary", TargetSessionAttrs::Primary, Driver::Any),
        ("standby", TargetSessionAttrs::Standby, Driver::Any),
        (
            "prefer-standby",
            TargetSessionAttrs::PreferStandby,
            Driver::Any,
        ),
    ] {
        for input in [
            format!("postgres://u@a,b/d?target_session_attrs={value}"),
            format!("host=a,b target_session_attrs={value}"),
        ] {
            let config = PgConfig::from_url(&input).unwrap_or_else(|e| panic!("{input}: {e}"));
            assert_eq!(config.target_session_attrs, Some(attrs), "{input}");
            assert_eq!(config.session_attrs(), attrs, "{input}");
            assert_eq!(config.pg.get_target_session_attrs(), driver, "{input}");
            assert_eq!(
                config.session_options().target_session_attrs(),
                Some(attrs),
                "{input}"
            );
        }
        let config = PgConfig::from_env_with(|name| match name {
            "PGHOST" => Some("a,b".into()),
            "PGTARGETSESSIONATTRS" => Some(value.into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(
            config.session_attrs(),
            attrs,
            "PGTARGETSESSIONATTRS={value}"
        );
    }
    // Unknown values stay errors, naming the key.
    let e = PgConfig::from_url("host=a target_session_attrs=leader").unwrap_err();
    assert!(e.to_string().contains("target_session_attrs"), "{e}");
}

#[test]
fn without_a_value_the_drivers_own_applies() {
    let config = PgConfig::default();
    assert_eq!(config.target_session_attrs, None);
    assert_eq!(config.session_attrs(), TargetSessionAttrs::Any);
    let mut pg = pg_pool_tokio_postgres::tokio_postgres::Config::new();
    pg.host("a").target_session_attrs(Driver::ReadOnly);
    let mut config = PgConfig::new(pg);
    assert_eq!(config.session_attrs(), TargetSessionAttrs::ReadOnly);
    // The full value wins over the driver's.
    config.target_session_attrs = Some(TargetSessionAttrs::Standby);
    assert_eq!(config.session_attrs(), TargetSessionAttrs::Standby);
    assert_eq!(SessionOptions::default().target_session_attrs(), None);
    let options = SessionOptions::default()
        .with_notifications()
        .with_target_session_attrs(TargetSessionAttrs::Primary);
    assert!(options.notifications());
    assert_eq!(
        options.target_session_attrs(),
        Some(TargetSessionAttrs::Primary)
    );
}

#[test]
fn prefer_standby_may_go_over_the_hosts_twice_within_the_pools_connect_timeout() {
    let base = "postgres://u@a,b,c/d?connect_timeout=2&target_session_attrs=";
    for (value, expected) in [
        ("any", 6),
        ("standby", 6),
        ("read-write", 6),
        ("prefer-standby", 12),
    ] {
        let config = PgConfig::from_url(&format!("{base}{value}")).unwrap();
        assert_eq!(
            config.pool_config().connect_timeout,
            Duration::from_secs(expected),
            "{value}"
        );
    }
}

#[test]
fn dial_targets_display_as_errors_name_them() {
    let tcp = DialTarget::Tcp {
        host: "db1".into(),
        port: 5433,
    };
    assert_eq!(tcp.to_string(), "db1:5433");
    let v6 = DialTarget::Tcp {
        host: "::1".into(),
        port: 5432,
    };
    assert_eq!(v6.to_string(), "[::1]:5432");
    let unix = DialTarget::Unix {
        path: PathBuf::from("/run/postgresql/.s.PGSQL.5432"),
    };
    assert_eq!(unix.to_string(), "/run/postgresql/.s.PGSQL.5432");
}
