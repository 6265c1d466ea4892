//! `WireConfig` from connection strings and the environment: the mapping from
//! `pg_pool_conninfo`, what pg-pool-wire refuses and why, NUL bytes never reaching the
//! startup message, redacted `Debug`, and startup settings reaching a real server.

mod common;

use std::time::Duration;

use common::wire_config;
use pg_pool_conninfo::{ConnInfo, SslMode};
use pg_pool_test_support::TestCluster;
use pg_pool_wire::{WireConfig, WireError, WirePoolable};

fn msg(s: &str) -> String {
    WireConfig::from_url(s).unwrap_err().to_string()
}

#[test]
fn full_url() {
    let c = WireConfig::from_url(
        "postgresql://us%65r:p%3Ass%40w@db.example:6432/my%20db?application_name=a%20b\
         &options=-c%20x%3D1&connect_timeout=7&client_encoding=UTF8",
    )
    .unwrap();
    assert_eq!(c.addr, "db.example:6432");
    assert_eq!(c.user, "user");
    assert_eq!(c.password, "p:ss@w");
    assert_eq!(c.database, "my db");
    assert_eq!(c.application_name.as_deref(), Some("a b"));
    assert_eq!(
        c.params,
        vec![
            ("options".to_owned(), "-c x=1".to_owned()),
            ("client_encoding".to_owned(), "UTF8".to_owned())
        ]
    );
    assert_eq!(c.connect_timeout, Some(Duration::from_secs(7)));
    // The same settings as key=value.
    let kv: WireConfig = "host=db.example port=6432 user=user password='p:ss@w' dbname='my db' \
         application_name='a b' options='-c x=1' connect_timeout=7 client_encoding=UTF8"
        .parse()
        .unwrap();
    assert_eq!(kv, c);
}

#[test]
fn defaults_ipv6_and_fallbacks() {
    let c = WireConfig::from_url("postgres://").unwrap();
    assert_eq!(c, WireConfig::default());
    let c = WireConfig::from_url("postgres://bob@[::1]/").unwrap();
    assert_eq!(
        (c.addr.as_str(), c.database.as_str()),
        ("[::1]:5432", "bob")
    );
    let c = WireConfig::from_url("postgres://[::1]:7000").unwrap();
    assert_eq!(c.addr, "[::1]:7000");
    let c = WireConfig::from_url("postgres://u:a@b@h/d").unwrap();
    assert_eq!((c.password.as_str(), c.addr.as_str()), ("a@b", "h:5432"));
    let c = WireConfig::from_url("host=h fallback_application_name=fb").unwrap();
    assert_eq!(c.application_name.as_deref(), Some("fb"));
}

#[test]
fn tls_and_pool_settings_flow_through() {
    let c = WireConfig::from_url(
        "postgres://h/d?sslmode=verify-full&sslrootcert=system&pool_max_size=3\
         &pool_checkout_timeout=750ms&connect_timeout=4&pool_name=wire",
    )
    .unwrap();
    assert_eq!(c.tls.mode, SslMode::VerifyFull);
    let pool = c.pool_config();
    assert_eq!(pool.max_size, 3);
    assert_eq!(pool.checkout_timeout, Duration::from_millis(750));
    assert_eq!(pool.connect_timeout, Duration::from_secs(4));
    assert_eq!(pool.name, "wire");
    // The pool's own connect bound wins over libpq's per-host one.
    let c =
        WireConfig::from_url("postgres://h/d?connect_timeout=4&pool_connect_timeout=9s").unwrap();
    assert_eq!(c.pool_config().connect_timeout, Duration::from_secs(9));
}

#[test]
fn what_pg_wired_cannot_honour_is_refused_by_name() {
    let cases = [
        ("host=/var/run/postgresql", "`host`", "TCP only"),
        ("host=h,/var/run/postgresql", "`host`", "TCP only"),
        (
            "postgres://h/d?pool_reset=clean",
            "`pool_reset`",
            "pg-pool-wire",
        ),
        ("host=h client_encoding=SJIS", "`client_encoding`", "UTF-8"),
        (
            "postgres://h/d?client_encoding=latin1",
            "`client_encoding`",
            "UTF-8",
        ),
        (
            "host=h options='-c x=1 -c client_encoding=BIG5'",
            "`client_encoding`",
            "UTF-8",
        ),
    ];
    for (input, key, why) in cases {
        let e = WireConfig::from_url(input).unwrap_err();
        assert!(matches!(e, WireError::Config { .. }), "{input}: {e:?}");
        let m = e.to_string();
        assert!(m.contains(key) && m.contains(why), "{input}: {m}");
    }
    // Every spelling of UTF-8 the server accepts still validates, and a config built in
    // code is checked too.
    for ok in ["UTF8", "utf-8", "unicode"] {
        let url = format!("host=h client_encoding={ok}");
        WireConfig::from_url(&url).unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
    let coded = WireConfig::from_url("host=h")
        .unwrap()
        .with_param("client_encoding", "SJIS");
    assert!(
        matches!(coded.validate(), Err(WireError::Config { .. })),
        "{:?}",
        coded.validate()
    );
}

#[test]
fn several_hosts_and_every_target_session_attrs() {
    use pg_pool_conninfo::TargetSessionAttrs as T;
    let url = WireConfig::from_url("postgres://u@h1:5432,[::1]:5433,h3/d").unwrap();
    assert_eq!(url.addr, "h1:5432,[::1]:5433,h3:5432");
    assert_eq!(
        url.addrs().collect::<Vec<_>>(),
        ["h1:5432", "[::1]:5433", "h3:5432"]
    );
    assert_eq!(url.target_session_attrs, T::Any);
    let kv = WireConfig::from_url("host=a,b port=5433").unwrap();
    assert_eq!(kv.addr, "a:5433,b:5433", "one port for every host");
    let kv = WireConfig::from_url("host=a,b port=5433,5434").unwrap();
    assert_eq!(kv.addr, "a:5433,b:5434", "one port per host");
    let e = msg("host=a,b,c port=1,2");
    assert!(e.contains("`port`") && e.contains("3 hosts"), "{e}");
    for (value, attrs) in [
        ("any", T::Any),
        ("read-write", T::ReadWrite),
        ("read-only", T::ReadOnly),
        ("primary", T::Primary),
        ("standby", T::Standby),
        ("prefer-standby", T::PreferStandby),
    ] {
        let c = WireConfig::from_url(&format!("host=a,b target_session_attrs={value}")).unwrap();
        assert_eq!(c.target_session_attrs, attrs, "{value}");
        assert!(format!("{c:?}").contains("target_session_attrs"));
        // The pool's bound fits every attempt: two hosts, twice for prefer-standby.
        let c = WireConfig::from_url(&format!(
            "host=a,b target_session_attrs={value} connect_timeout=3"
        ))
        .unwrap();
        let attempts = if attrs == T::PreferStandby { 4 } else { 2 };
        assert_eq!(c.per_host_timeout(), Some(Duration::from_secs(3)));
        assert_eq!(
            c.pool_config().connect_timeout,
            Duration::from_secs(3 * attempts)
        );
    }
    assert!(msg("host=a target_session_attrs=master").contains("`target_session_attrs`"));
    // Without connect_timeout, several hosts share the pool's bound.
    let c = WireConfig::from_url("host=a,b,c,d pool_connect_timeout=8s").unwrap();
    assert_eq!(c.per_host_timeout(), Some(Duration::from_secs(2)));
    assert_eq!(c.pool_config().connect_timeout, Duration::from_secs(8));
    // Addresses built in code are checked one by one.
    for (addr, why) in [
        ("a:1,,b:2", "empty address"),
        ("a:1,b", "without a port"),
        ("a:1,::1:5432", "brackets"),
        ("a:1,b:99999", "port"),
    ] {
        let mut c = WireConfig::default();
        c.addr = addr.into();
        let e = c.validate().unwrap_err().to_string();
        assert!(e.contains("`addr`") && e.contains(why), "{addr}: {e}");
    }
}

#[test]
fn errors_match_conninfo_and_never_show_secrets() {
    for input in [
        "http://h/d",
        "postgres://h:99999/d",
        "postgres://u:SeCrEt%zz@h/d",
        "postgres://h/d?flag",
        "postgres://[::1/d",
        "postgres://uSeR:SeC/rEt@h/d",
        "postgres://uSeR:SeC?rEt@h/d",
        "user=uSeR password=SeC rEt",
        "postgres://h/d%00",
    ] {
        let e = WireConfig::from_url(input).unwrap_err();
        assert!(matches!(e, WireError::ConnInfo(_)), "{input}: {e:?}");
        let expected = ConnInfo::parse(input).unwrap_err().to_string();
        assert_eq!(e.to_string(), expected);
        for secret in ["SeC", "rEt", "uSeR"] {
            assert!(!expected.contains(secret), "{input}: {expected}");
        }
    }
    assert!(msg("postgres://u:pa/ss@h/d").contains("percent-encode"));
}

#[test]
fn nul_bytes_never_reach_the_startup_message() {
    // From a string: refused while parsing, naming the key.
    for (input, key) in [
        ("postgres://h/d%00user%00evil", "`dbname`"),
        ("postgres://u%00x@h/d", "`user`"),
        (
            "postgres://h/d?application_name=a%00options%00-c%20x%3D1",
            "`application_name`",
        ),
        ("postgres://h/d?options=%00", "`options`"),
        ("postgres://h/d?search_path=a%00b", "`search_path`"),
    ] {
        let m = msg(input);
        assert!(m.contains(key) && m.contains("NUL"), "{input}: {m}");
    }
    // Built in code: refused by validate(), before any connection attempt.
    let mut built = Vec::new();
    let mut base = WireConfig::default();
    base.addr = "127.0.0.1:1".into();
    let mut c = base.clone();
    c.database = "d\0user\0postgres".into();
    built.push((c, "`database`"));
    let mut c = base.clone();
    c.user = "u\0x".into();
    built.push((c, "`user`"));
    let mut c = base.clone();
    c.password = "pw\0x".into();
    built.push((c, "`password`"));
    built.push((
        base.clone().with_application_name("a\0b"),
        "`application_name`",
    ));
    built.push((
        base.clone().with_param("search_path", "a\0b"),
        "`search_path`",
    ));
    built.push((base.clone().with_param("x\0y", "1"), "`params`"));
    built.push((base.clone().with_param("user", "other"), "`user`"));
    built.push((
        base.clone().with_param("replication", "true"),
        "`replication`",
    ));
    built.push((base.clone().with_param("_pq_.ext", "1"), "`_pq_.ext`"));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    for (config, key) in built {
        let e = config.validate().unwrap_err();
        assert!(e.to_string().contains(key), "{e}");
        // The connection attempt stops at validation: 127.0.0.1:1 is never dialled (that
        // would be an I/O error instead).
        let e = runtime.block_on(WirePoolable::open(&config)).err().unwrap();
        assert!(matches!(e, WireError::Config { .. }), "{e:?}");
        assert!(!e.to_string().contains("pw"), "{e}");
    }
    assert!(
        base.with_param("idle_session_timeout", "300")
            .validate()
            .is_ok()
    );
}

#[test]
fn quoted_whitespace_is_kept_and_an_explicit_passfile_is_read() {
    let c = WireConfig::from_url("host=h password='two  spaces\tand a tab\t'").unwrap();
    assert_eq!(c.password, "two  spaces\tand a tab\t");
    let path = std::env::temp_dir().join(format!("pg-pool-wire-pgpass-{}", std::process::id()));
    std::fs::write(&path, "h:5432:*:app:from-file\n").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let url = format!("host=h user=app passfile='{}'", path.display());
    let password = WireConfig::from_url(&url).map(|c| c.password);
    std::fs::remove_file(&path).unwrap();
    assert_eq!(password.unwrap(), "from-file");
}

#[test]
fn debug_redacts_the_password() {
    let c = WireConfig::from_url("postgres://app:Hunter2Secret@h/d?sslmode=require").unwrap();
    let connector = pg_pool_wire::WireConnector::new(c.clone());
    for text in [
        format!("{c:?}"),
        format!("{c:#?}"),
        format!("{connector:?}"),
        format!("{connector:#?}"),
    ] {
        assert!(!text.contains("Hunter2Secret"), "{text}");
        assert!(text.contains("<redacted>"), "{text}");
    }
}

#[test]
fn from_env_layers_under_database_url() {
    let env = |name: &str| match name {
        "DATABASE_URL" => Some("postgres://app@db:6000".to_owned()),
        "PGDATABASE" => Some("shop".to_owned()),
        "PGPASSWORD" => Some("pw".to_owned()),
        "PGHOST" => Some("ignored".to_owned()),
        _ => None,
    };
    let c = WireConfig::from_env_with(env).unwrap();
    assert_eq!(c.addr, "db:6000");
    assert_eq!((c.user.as_str(), c.database.as_str()), ("app", "shop"));
    assert_eq!(c.password, "pw");
    let e = WireConfig::from_env_with(|n| (n == "PGPORT").then(|| "x".to_owned())).unwrap_err();
    assert!(e.to_string().contains("PGPORT"), "{e}");
}

/// Startup settings given in the string are in effect on a real server, survive
/// `RESET ALL`, and the password and database from the string work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn startup_settings_reach_the_server() {
    let cluster = TestCluster::shared();
    let base = wire_config(cluster, None, "conninfo-wire");
    let url = format!(
        "{}&options=-c%20work_mem%3D1234kB&statement_timeout=4321&search_path=pg_catalog%2Cpublic",
        common::url(cluster, None, "conninfo-wire")
    );
    let config = WireConfig::from_url(&url).unwrap();
    assert_eq!(config.password, base.password);
    let mut conn = WirePoolable::open(&config).await.unwrap();
    let rows = conn
        .simple_query(
            "RESET ALL; SELECT current_setting('work_mem'), current_setting('statement_timeout'), \
             current_setting('search_path'), current_setting('application_name')",
        )
        .await
        .unwrap();
    let row: Vec<&str> = rows[0].iter().map(|v| v.as_deref().unwrap()).collect();
    assert_eq!(
        row,
        ["1234kB", "4321ms", "pg_catalog,public", "conninfo-wire"]
    );
}

#[test]
fn socket_options_it_cannot_set_are_refused() {
    for s in [
        "host=h keepalives=0",
        "host=h keepalives_idle=30",
        "postgres://h/db?keepalives_count=3",
    ] {
        let e = msg(s);
        assert!(
            e.contains("keepalives") && e.contains("socket options"),
            "{s}: {e}"
        );
    }
    let e = msg("host=h tcp_user_timeout=1000");
    assert!(e.contains("tcp_user_timeout"), "{e}");
}
