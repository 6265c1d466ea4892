//! `PgConfig` from connection strings and the environment: the mapping from
//! `pg_pool_conninfo` onto `tokio_postgres::Config`, the driver's own `pool_*` keys, what
//! tokio-postgres cannot honour, NUL bytes, redacted `Debug`, and startup settings reaching
//! a real server.

use std::time::Duration;

use pg_pool_conninfo::{ConnInfo, RootCerts, SslMode};
use pg_pool_test_support::TestCluster;
use pg_pool_tokio::Tokio;
use pg_pool_tokio_postgres::tokio_postgres::config::{
    Host as PgHost, SslMode as PgSslMode, TargetSessionAttrs as PgTsa,
};
use pg_pool_tokio_postgres::{PgConfig, PgConnector, PgError, PgPool, Profile, ResetStrategy};

fn msg(s: &str) -> String {
    PgConfig::from_url(s).unwrap_err().to_string()
}

#[test]
fn pool_params_are_taken_out() {
    let c = PgConfig::from_url(
        "postgres://u:pw@h1:1,h2:2/db?pool_profile=pooler_safe&application_name=x&pool_statement_cache=7",
    )
    .unwrap();
    assert_eq!(c.profile, Profile::PoolerSafe);
    assert_eq!(c.statement_cache_capacity, 7);
    assert_eq!(c.pg.get_application_name(), Some("x"));
    assert_eq!(c.pg.get_ports(), &[1, 2]);
    assert_eq!(c.effective_reset(), &ResetStrategy::None);
    let c = PgConfig::from_url("host=h user=u pool_reset=none").unwrap();
    assert_eq!(c.reset, ResetStrategy::None);
    assert_eq!(c.pg.get_user(), Some("u"));
    // Pool settings flow into pool_config(), over the profile's and libpq's values.
    let c = PgConfig::from_url(
        "postgres://h1,h2/db?connect_timeout=2&pool_profile=pooler_safe&pool_max_size=7\
         &pool_health_check_interval=off&application_name=app",
    )
    .unwrap();
    let pool = c.pool_config();
    assert_eq!(pool.max_size, 7);
    assert_eq!(pool.health_check_interval, None);
    assert_eq!(pool.probe_timeout, Duration::from_secs(2));
    assert_eq!(pool.connect_timeout, Duration::from_secs(4));
    assert_eq!(pool.name, "app");
    let c = PgConfig::from_url("postgres://h/db?pool_name=p&pool_connect_timeout=1m").unwrap();
    assert_eq!(c.pool_config().name, "p");
    assert_eq!(c.pool_config().connect_timeout, Duration::from_secs(60));
}

#[test]
fn libpq_strings_users_paste_are_accepted() {
    let c = PgConfig::from_url(
        "postgresql://app@%2Fvar%2Frun%2Fpostgresql,db:6000/shop?sslmode=verify-full\
         &sslrootcert=%2Fetc%2Fca.pem&sslcert=c.pem&sslkey=k.pem&channel_binding=require",
    )
    .unwrap();
    assert!(
        matches!(&c.pg.get_hosts()[0], PgHost::Unix(p) if p.to_str() == Some("/var/run/postgresql"))
    );
    assert_eq!(c.pg.get_ports(), &[5432, 6000]);
    assert_eq!(c.tls.mode, SslMode::VerifyFull);
    assert_eq!(
        c.tls.root_certs,
        Some(RootCerts::File("/etc/ca.pem".into()))
    );
    assert_eq!(c.pg.get_ssl_mode(), PgSslMode::Require);
    let c = PgConfig::from_url("host=h sslmode=allow target_session_attrs=read-only").unwrap();
    assert_eq!(c.tls.mode, SslMode::Allow);
    assert_eq!(c.pg.get_ssl_mode(), PgSslMode::Prefer);
    assert_eq!(c.pg.get_target_session_attrs(), PgTsa::ReadOnly);
    let c = PgConfig::from_url("sslrootcert=system").unwrap();
    assert_eq!(c.tls.root_certs, Some(RootCerts::System));
    assert_eq!(c.pg.get_ssl_mode(), PgSslMode::Require);
    let c = PgConfig::from_url("sslmode=disable").unwrap();
    assert_eq!(c.pg.get_ssl_mode(), PgSslMode::Disable);
    // No host: the adapter's default.
    let c = PgConfig::from_url("postgres:///db").unwrap();
    assert!(matches!(c.pg.get_hosts(), [PgHost::Tcp(h)] if h == "127.0.0.1"));
    assert_eq!(c.pg.get_user(), Some("postgres"));
}

#[test]
fn server_settings_become_escaped_options() {
    let c = PgConfig::from_url(
        "host=h options='-c geqo=off' search_path='a b,\\\\c' statement_timeout=5s client_encoding=utf8",
    )
    .unwrap();
    assert_eq!(
        c.pg.get_options(),
        Some("-c geqo=off -c search_path=a\\ b,\\\\c -c statement_timeout=5s")
    );
    let m = msg("host=h client_encoding=LATIN1");
    assert!(m.contains("`client_encoding`") && m.contains("UTF8"), "{m}");
}

#[test]
fn what_tokio_postgres_cannot_honour_is_refused_by_name() {
    for (input, key) in [
        ("postgres://h/d?pool_bogus=1", "`pool_bogus`"),
        ("postgres://h/d?pool_reset=sometimes", "`pool_reset`"),
        ("postgres://h/d?pool_profile=x", "`pool_profile`"),
        (
            "postgres://h/d?pool_statement_cache=x",
            "`pool_statement_cache`",
        ),
    ] {
        let e = PgConfig::from_url(input).unwrap_err();
        assert!(matches!(e, PgError::Config { .. }), "{input}: {e:?}");
        assert!(e.to_string().contains(key), "{input}: {e}");
        assert!(!e.is_fatal());
    }
}

#[test]
fn errors_match_conninfo_and_never_show_secrets() {
    for input in [
        "http://h/d",
        "postgres://h:99999/d",
        "postgres://u:SeCrEt%zz@h/d",
        "postgres://uSeR:SeC/rEt@h/d",
        "postgres://uSeR:SeC?rEt@h/d",
        "postgres://u:SeCrEt@h/d?bogus=1",
        "user=uSeR password=SeC rEt",
        "postgres://h/d?sslmode=verify",
        "postgres://h/d%00x",
    ] {
        let e = PgConfig::from_url(input).unwrap_err();
        assert!(matches!(e, PgError::ConnInfo(_)), "{input}: {e:?}");
        // The same message as pg-pool-wire gives: both are pg_pool_conninfo's.
        assert_eq!(
            e.to_string(),
            ConnInfo::parse(input).unwrap_err().to_string()
        );
        for secret in ["SeC", "rEt", "uSeR"] {
            assert!(!e.to_string().contains(secret), "{input}: {e}");
        }
    }
}

#[test]
fn nul_bytes_are_refused_by_name() {
    assert!(msg("postgres://h/d%00user%00evil").contains("`dbname`"));
    let mut c = PgConfig::default();
    assert!(c.validate().is_ok());
    c.pg.password("pw\0x");
    let e = c.validate().unwrap_err();
    assert!(
        e.to_string().contains("`password`") && !e.to_string().contains("pw"),
        "{e}"
    );
    let mut c = PgConfig::default();
    c.pg.options("-c x=1\0");
    assert!(c.validate().unwrap_err().to_string().contains("`options`"));
}

#[test]
fn quoted_whitespace_is_kept() {
    let c =
        PgConfig::from_url("host=h password='two  spaces\tand a tab\t' pool_reset=clean").unwrap();
    assert_eq!(c.pg.get_password(), Some(&b"two  spaces\tand a tab\t"[..]));
    assert_eq!(c.reset, ResetStrategy::Clean);
}

#[tokio::test]
async fn debug_redacts_the_password() {
    let c = PgConfig::from_url("postgres://app:Hunter2Secret@h/d?sslmode=require&pool_reset=clean")
        .unwrap();
    let connector = PgConnector::<Tokio>::current(c.clone()).unwrap();
    for text in [
        format!("{c:?}"),
        format!("{c:#?}"),
        format!("{connector:?}"),
        format!("{connector:#?}"),
    ] {
        assert!(!text.contains("Hunter2Secret"), "{text}");
        assert!(text.contains("password"), "{text}");
    }
}

#[test]
fn from_env_layers_under_database_url() {
    let env = |name: &str| match name {
        "DATABASE_URL" => Some("host=db port=6000 pool_reset=clean".to_owned()),
        "PGUSER" => Some("app".to_owned()),
        "PGPORT" => Some("1".to_owned()),
        _ => None,
    };
    let c = PgConfig::from_env_with(env).unwrap();
    assert_eq!(c.pg.get_ports(), &[6000]);
    assert_eq!(c.pg.get_user(), Some("app"));
    assert_eq!(c.reset, ResetStrategy::Clean);
}

/// Server settings from the string reach a real server through `options`, survive
/// `RESET ALL`, and the credentials work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_settings_reach_the_server() {
    let cluster = TestCluster::shared();
    let url = format!(
        "{}?application_name=tp-conninfo&statement_timeout=4321&search_path=%22a%20b%22%2Cpublic\
         &options=-c%20work_mem%3D1234kB&pool_max_size=1",
        cluster.url()
    );
    let config = PgConfig::from_url(&url).unwrap();
    let pool = PgPool::<Tokio>::builder(PgConnector::<Tokio>::current(config).unwrap())
        .build()
        .await
        .unwrap();
    assert_eq!(pool.metrics().max_size, 1);
    let conn = pool.get().await.unwrap();
    conn.batch_execute("RESET ALL").await.unwrap();
    let row = conn
        .query_one(
            "SELECT current_setting('work_mem'), current_setting('statement_timeout'), \
             current_setting('search_path'), current_setting('application_name')",
            &[],
        )
        .await
        .unwrap();
    let got: Vec<String> = (0..4).map(|i| row.get(i)).collect();
    assert_eq!(got, ["1234kB", "4321ms", "\"a b\",public", "tp-conninfo"]);
}

#[test]
fn keepalives_and_tcp_user_timeout_reach_the_driver_config() {
    let c = PgConfig::from_url(
        "host=h keepalives_idle=30 keepalives_interval=5 keepalives_count=3 tcp_user_timeout=1500",
    )
    .unwrap();
    let pg = &c.pg;
    assert!(pg.get_keepalives());
    assert_eq!(pg.get_keepalives_idle(), Duration::from_secs(30));
    assert_eq!(pg.get_keepalives_interval(), Some(Duration::from_secs(5)));
    assert_eq!(pg.get_keepalives_retries(), Some(3));
    assert_eq!(
        pg.get_tcp_user_timeout(),
        Some(&Duration::from_millis(1500))
    );
    let off = PgConfig::from_url("host=h keepalives=0").unwrap();
    assert!(!off.pg.get_keepalives());
}
