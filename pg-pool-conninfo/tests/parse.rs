//! Examples of both connection-string forms: what they mean, and every kind of error.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use pg_pool_conninfo::{
    ChannelBinding, ConnInfo, ConnInfoErrorKind, Host, HostPort, RootCerts, SslMode,
    TargetSessionAttrs,
};
use pg_pool_core::{ConnPoolConfig, Fairness, IdleOrder};

fn err(s: &str) -> String {
    ConnInfo::parse(s).unwrap_err().to_string()
}

fn tcp(host: &str, port: u16) -> HostPort {
    HostPort {
        host: Host::Tcp(host.into()),
        port,
    }
}

#[test]
fn full_url() {
    let c = ConnInfo::parse(
        "postgresql://us%65r:p%3Ass%40w@db.example:6432/my%20db?application_name=a%20b\
         &options=-c%20x%3D1&connect_timeout=7&sslmode=verify-ca&sslrootcert=%2Fetc%2Fca.pem\
         &sslcert=c.pem&sslkey=k.pem&channel_binding=require&target_session_attrs=prefer-standby\
         &client_encoding=UTF8&search_path=app&fallback_application_name=fb",
    )
    .unwrap();
    assert_eq!(c.hosts, vec![tcp("db.example", 6432)]);
    assert_eq!(c.user.as_deref(), Some("user"));
    assert_eq!(c.password.as_ref().unwrap().expose(), "p:ss@w");
    assert_eq!(c.dbname.as_deref(), Some("my db"));
    assert_eq!(c.application_name.as_deref(), Some("a b"));
    assert_eq!(c.options.as_deref(), Some("-c x=1"));
    assert_eq!(c.connect_timeout, Some(Duration::from_secs(7)));
    assert_eq!(c.tls.mode, SslMode::VerifyCa);
    assert_eq!(
        c.tls.root_certs,
        Some(RootCerts::File("/etc/ca.pem".into()))
    );
    assert_eq!(c.tls.client_cert, Some(PathBuf::from("c.pem")));
    assert_eq!(c.tls.client_key, Some(PathBuf::from("k.pem")));
    assert_eq!(c.tls.channel_binding, ChannelBinding::Require);
    assert_eq!(c.target_session_attrs, TargetSessionAttrs::PreferStandby);
    assert_eq!(
        c.params,
        vec![
            ("client_encoding".to_owned(), "UTF8".to_owned()),
            ("search_path".to_owned(), "app".to_owned())
        ]
    );
    assert_eq!(c.effective_application_name(), Some("a b"));
    assert!(!format!("{c:?}").contains("p:ss@w"));
    assert!(!format!("{c:#?}").contains("p:ss@w"));
}

#[test]
fn url_hosts_ipv6_and_sockets() {
    let c = ConnInfo::parse("postgres://").unwrap();
    assert_eq!(c, ConnInfo::default());
    let c = ConnInfo::parse("postgres://bob@[::1]/").unwrap();
    assert_eq!(c.hosts, vec![tcp("::1", 5432)]);
    assert_eq!(c.dbname, None);
    let c = ConnInfo::parse("postgres://[2001:db8::1]:7000,h2,h3:7002").unwrap();
    assert_eq!(
        c.hosts,
        vec![tcp("2001:db8::1", 7000), tcp("h2", 5432), tcp("h3", 7002)]
    );
    let c = ConnInfo::parse("postgresql://%2Fvar%2Frun%2Fpostgresql:5433/db").unwrap();
    assert_eq!(c.hosts[0].host, Host::Unix("/var/run/postgresql".into()));
    assert_eq!(c.hosts[0].port, 5433);
    // A port without a host: libpq's TCP default host.
    let c = ConnInfo::parse("postgres://:6000/db").unwrap();
    assert_eq!(c.hosts, vec![tcp("localhost", 6000)]);
    // Query keys may give the hosts too (the later value wins).
    let c = ConnInfo::parse("postgres://ignored/db?host=/tmp,h2&port=1,2").unwrap();
    assert_eq!(
        c.hosts,
        vec![
            HostPort {
                host: Host::Unix("/tmp".into()),
                port: 1
            },
            tcp("h2", 2)
        ]
    );
    // An unencoded '@' in the password is tolerated: hosts never contain one.
    let c = ConnInfo::parse("postgres://u:a@b@h/d").unwrap();
    assert_eq!(c.password.unwrap().expose(), "a@b");
    assert_eq!(c.hosts, vec![tcp("h", 5432)]);
}

#[test]
fn key_value_strings() {
    let c = ConnInfo::parse(
        "  host = h1,h2 port=5433\tuser=app password='two  spaces\tand a tab \\' \\\\'\n dbname='' \
         application_name=bare\\ space options='-c geqo=off'",
    )
    .unwrap();
    assert_eq!(c.hosts, vec![tcp("h1", 5433), tcp("h2", 5433)]);
    assert_eq!(c.user.as_deref(), Some("app"));
    assert_eq!(c.password.unwrap().expose(), "two  spaces\tand a tab ' \\");
    assert_eq!(c.dbname, None);
    assert_eq!(c.application_name.as_deref(), Some("bare space"));
    assert_eq!(c.options.as_deref(), Some("-c geqo=off"));
    // Empty values, quoted or at the end; later keys win.
    let c = ConnInfo::parse("application_name='' user=a user=b sslmode=").unwrap_err();
    assert_eq!(c.key(), Some("sslmode"));
    let c = ConnInfo::parse("application_name='' user=a user=b").unwrap();
    assert_eq!(c.application_name.as_deref(), Some(""));
    assert_eq!(c.user.as_deref(), Some("b"));
    assert_eq!(ConnInfo::parse("").unwrap(), ConnInfo::default());
    assert_eq!(ConnInfo::parse(" \t\n").unwrap(), ConnInfo::default());
}

#[test]
fn libpq_semantics() {
    let c = ConnInfo::parse("host=a,,/sock port=1,,3").unwrap();
    assert_eq!(c.hosts[1], tcp("localhost", 5432));
    assert_eq!(c.hosts[2].host, Host::Unix("/sock".into()));
    // connect_timeout: zero or negative is no limit, as libpq.
    assert_eq!(
        ConnInfo::parse("connect_timeout=0")
            .unwrap()
            .connect_timeout,
        None
    );
    assert_eq!(
        ConnInfo::parse("connect_timeout=-3")
            .unwrap()
            .connect_timeout,
        None
    );
    // sslrootcert=system implies verify-full and refuses weaker modes.
    let c = ConnInfo::parse("sslrootcert=system").unwrap();
    assert_eq!(c.tls.mode, SslMode::VerifyFull);
    assert_eq!(c.tls.root_certs, Some(RootCerts::System));
    assert!(err("sslrootcert=system sslmode=require").contains("verify-full"));
    // Accepted with the value pg-pool implements; refused otherwise.
    assert!(ConnInfo::parse("gssencmode=prefer load_balance_hosts=disable").is_ok());
    let e = ConnInfo::parse("gssencmode=require").unwrap_err();
    assert_eq!(e.kind(), ConnInfoErrorKind::Unsupported);
    let e = ConnInfo::parse("host=h hostaddr=10.0.0.1").unwrap_err();
    assert_eq!(e.kind(), ConnInfoErrorKind::Unsupported);
    assert!(e.to_string().contains("`hostaddr`"), "{e}");
    for mode in [
        "disable",
        "allow",
        "prefer",
        "require",
        "verify-ca",
        "verify-full",
    ] {
        assert!(
            ConnInfo::parse(&format!("sslmode={mode}")).is_ok(),
            "{mode}"
        );
    }
}

#[test]
fn pool_settings() {
    let c = ConnInfo::parse(
        "postgres://h/d?pool_max_size=20&pool_min_idle=2&pool_checkout_timeout=1500ms\
         &pool_connect_timeout=5s&pool_max_lifetime=1h30m&pool_idle_timeout=off\
         &pool_health_check_interval=5m&pool_test_on_checkout=false&pool_name=api\
         &pool_idle_order=fifo&pool_leak_detection_threshold=10s&pool_reset=clean&pool_profile=session",
    )
    .unwrap();
    let mut pool = ConnPoolConfig::default();
    c.pool.apply(&mut pool);
    assert_eq!(pool.max_size, 20);
    assert_eq!(pool.min_idle, 2);
    assert_eq!(pool.checkout_timeout, Duration::from_millis(1500));
    assert_eq!(pool.connect_timeout, Duration::from_secs(5));
    assert_eq!(pool.max_lifetime, Some(Duration::from_secs(5400)));
    assert_eq!(pool.idle_timeout, None);
    assert_eq!(pool.health_check_interval, Some(Duration::from_secs(300)));
    assert!(!pool.test_on_checkout);
    assert_eq!(pool.name, "api");
    assert_eq!(pool.idle_order, IdleOrder::Fifo);
    assert_eq!(pool.leak_detection_threshold, Some(Duration::from_secs(10)));
    // Unset settings keep the pool's own values.
    assert_eq!(pool.probe_timeout, ConnPoolConfig::default().probe_timeout);
    assert!(pool.validate().is_ok());
    assert_eq!(
        c.pool.driver,
        vec![
            ("pool_reset".to_owned(), "clean".to_owned()),
            ("pool_profile".to_owned(), "session".to_owned())
        ]
    );
    let e = err("pool_checkout_timeout=500");
    assert!(e.contains("needs a unit"), "{e}");
    assert!(err("pool_checkout_timeout=5d").contains("unknown unit"));
    assert!(err("pool_checkout_timeout=99999999999999999999h").contains("too large"));
    assert!(err("pool_max_size=-1").contains("whole number"));
    assert!(err("pool_test_on_checkout=maybe").contains("boolean"));
    assert!(err("pool_idle_order=random").contains("lifo, fifo"));
}

#[test]
fn pool_fairness() {
    let c = ConnInfo::parse("postgres://h/d?pool_fairness=bounded:2ms").unwrap();
    let mut pool = ConnPoolConfig::default();
    c.pool.apply(&mut pool);
    assert_eq!(pool.fairness, Fairness::Bounded(Duration::from_millis(2)));
    let c = ConnInfo::parse("host=h pool_fairness=strict").unwrap();
    assert_eq!(c.pool.fairness, Some(Fairness::Strict));
    for bad in ["fair", "bounded", "bounded:0ms", "bounded:5"] {
        let e = err(&format!("postgres://h/d?pool_fairness={bad}"));
        println!("{e}");
        assert!(
            e.contains("pool_fairness") && e.contains("strict or bounded:<duration>"),
            "{e}"
        );
    }
}

#[test]
fn malformed_input_is_an_error_naming_the_problem() {
    let cases: &[(&str, &str)] = &[
        (
            "http://h/d",
            "scheme must be postgres:// or postgresql://, found `http`",
        ),
        ("postgres://h:99999/d", "not a number from 1 to 65535"),
        ("postgres://h:0/d", "not a number from 1 to 65535"),
        ("postgres://h:abc/d", "not a number from 1 to 65535"),
        (
            "postgres://u:secret%zz@h/d",
            "password: has a `%` not followed by two hex digits",
        ),
        ("postgres://h/d%4", "database name: has a `%`"),
        ("postgres://h/d%C3%28", "not valid UTF-8"),
        ("postgres://h%2/d", "URL host: has a `%`"),
        ("postgres://h/d?flag", "has no `=value`"),
        ("postgres://h/d?a=1&&b=2", "is empty"),
        ("postgres://h/d?options=a=b", "second `=`"),
        ("postgres://h/d?bogus=1", "unknown key `bogus`"),
        (
            "postgres://h/d?sslmode=maybe",
            "`sslmode`: `maybe` is not one of disable",
        ),
        ("postgres://[::1/d", "closing `]`"),
        ("postgres://[::1]x/d", "after the `]`"),
        (
            "postgres://h/d?connect_timeout=x",
            "`connect_timeout`: `x` is not a whole number",
        ),
        (
            "postgres://h/d?target_session_attrs=master",
            "`target_session_attrs`",
        ),
        ("postgres://h/d%00", "`dbname`: contains a NUL byte"),
        ("postgres://%00@h/d", "`user`: contains a NUL byte"),
        (
            "postgres://h/d?application_name=a%00b",
            "`application_name`: contains a NUL",
        ),
        ("host=h1,h2,h3 port=1,2", "lists 2 ports for 3 hosts"),
        ("host=h port=", "does not exist"),
        ("host", "`host`: is missing `=`"),
        ("password='open", "has an unterminated quote"),
        ("user='a'b", "continues after its closing quote"),
        ("bogus=1", "unknown key `bogus`"),
        ("user=a\0b", "`user`: contains a NUL byte"),
        ("options='-c x\0'", "`options`: contains a NUL byte"),
    ];
    for (input, expected) in cases {
        let message = match ConnInfo::parse(input) {
            Ok(info) if *expected == "does not exist" => {
                // `port=` (empty) is the default port, not an error.
                assert_eq!(info.hosts, vec![tcp("h", 5432)]);
                continue;
            }
            Ok(info) => panic!("{input:?} parsed: {info:?}"),
            Err(e) => e.to_string(),
        };
        assert!(
            message.contains(expected),
            "{input:?}: {message:?} lacks {expected:?}"
        );
        assert!(
            message.starts_with("invalid connection string: "),
            "{message}"
        );
        assert!(!message.contains('\0'));
    }
}

#[test]
fn errors_never_show_user_or_password() {
    let cases = [
        // The reviewed defect: an unencoded '/' or '?' in the password.
        "postgres://uSER7:PaSS/WoRD@h/d",
        "postgres://uSER7:PaSS?WoRD@h/d",
        "postgres://uSER7:PaSS/WoRD=1@h/d?x=1",
        "postgres://uSER7:12/WoRD@h/d",
        "postgres://uSER7:Pa@SS/WoRD@h/d",
        "postgres://uSER7:PaSS%zzWoRD@h/d",
        "postgres://uSER7%zz:PaSSWoRD@h/d",
        "postgres://uSER7:PaSSWoRD@h:PaSS/d",
        "postgres://uSER7:PaSS?WoRD=x@h/d",
        "postgres://h/d?user=uSER7&password=PaSS&WoRD=x",
        "postgres://h/d?password=PaSS%zzWoRD",
        "postgres://h/d?password=PaSS%00WoRD",
        "user=uSER7 password=PaSS WoRD",
        "user=uSER7 password=PaSS WoRD=1",
        "user=uSER7 password='PaSS WoRD",
        "user=uSER7\0 password=PaSSWoRD",
        "password=PaSS\0WoRD",
        "password='PaSS'WoRD",
        // Found by the property test: the unknown key after the password holds a NUL.
        "user=uSER7 password=PaSS WoRD=\0",
    ];
    for input in cases {
        let message = ConnInfo::parse(input).unwrap_err().to_string();
        for secret in ["uSER7", "PaSS", "WoRD"] {
            assert!(
                !message.contains(secret),
                "{input:?}: {message:?} shows {secret:?}"
            );
        }
    }
}

#[test]
fn validate_catches_what_code_builds() {
    let mut c = ConnInfo::parse("postgres://u:p@h/d").unwrap();
    assert!(c.validate().is_ok());
    c.dbname = Some("d\0user\0postgres".into());
    let e = c.validate().unwrap_err();
    assert_eq!(
        (e.key(), e.kind()),
        (Some("dbname"), ConnInfoErrorKind::Nul)
    );
    c.dbname = None;
    c.password = Some("se\0cret".into());
    let e = c.validate().unwrap_err();
    assert_eq!(e.key(), Some("password"));
    assert!(!e.to_string().contains("cret"));
    c.password = None;
    c.params.push(("replication".into(), "database".into()));
    assert_eq!(
        c.validate().unwrap_err().kind(),
        ConnInfoErrorKind::UnknownKey
    );
    c.params.clear();
    c.params.push(("search_path".into(), "a\0b".into()));
    assert_eq!(c.validate().unwrap_err().key(), Some("search_path"));
    c.params.clear();
    c.hosts = vec![tcp("", 5432)];
    assert_eq!(c.validate().unwrap_err().key(), Some("host"));
    c.hosts = vec![tcp("h", 0)];
    assert_eq!(c.validate().unwrap_err().key(), Some("port"));
}

#[test]
fn typos_that_would_hurt_the_pool_are_refused() {
    let e = err("pool_max_size=1000000000");
    assert!(e.contains("at most 262143"), "{e}");
    assert!(ConnInfo::parse("pool_max_size=262143").is_ok());
    assert!(err("pool_checkout_timeout=9000h").contains("too large"));
    assert!(ConnInfo::parse("pool_max_lifetime=8760h").is_ok());
    assert!(err("connect_timeout=99999999").contains("too large"));
}

#[test]
fn repeated_keys_keep_the_last_value_in_linear_time() {
    let n = 100_000;
    let mut s = String::with_capacity(n * 24);
    for i in 0..n {
        write!(s, "user=u{i} search_path=s{i} pool_zz{}=v{i} ", i % 3).unwrap();
    }
    let started = std::time::Instant::now();
    let c = ConnInfo::parse(&s).unwrap();
    println!("{} keys parsed in {:?}", 3 * n, started.elapsed());
    assert_eq!(c.user.as_deref(), Some(format!("u{}", n - 1).as_str()));
    assert_eq!(
        c.params,
        vec![("search_path".to_owned(), format!("s{}", n - 1))]
    );
    let driver: Vec<&str> = c.pool.driver.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(driver, ["pool_zz1", "pool_zz2", "pool_zz0"]);
}

#[test]
fn keepalives_and_tcp_user_timeout() {
    let c = ConnInfo::parse(
        "host=h keepalives=1 keepalives_idle=30 keepalives_interval=5 keepalives_count=3 \
         tcp_user_timeout=1500",
    )
    .unwrap();
    assert_eq!(c.keepalives.enabled, Some(true));
    assert_eq!(c.keepalives.idle, Some(Duration::from_secs(30)));
    assert_eq!(c.keepalives.interval, Some(Duration::from_secs(5)));
    assert_eq!(c.keepalives.count, Some(3));
    assert!(c.keepalives.is_set());
    assert_eq!(c.tcp_user_timeout, Some(Duration::from_millis(1500)));
    let url = ConnInfo::parse("postgres://h/db?keepalives=0&tcp_user_timeout=0").unwrap();
    assert_eq!(url.keepalives.enabled, Some(false));
    assert_eq!(
        url.tcp_user_timeout, None,
        "0 is the system default, as libpq"
    );
    let plain = ConnInfo::parse("host=h").unwrap();
    assert!(!plain.keepalives.is_set());
    for (bad, why) in [
        ("keepalives=yes", "is not one of 1, 0"),
        ("keepalives_idle=0", "at least 1 second"),
        ("keepalives_idle=-5", "not a whole number"),
        ("keepalives_interval=1.5", "not a whole number"),
        ("keepalives_count=99999999999", "too large"),
        ("tcp_user_timeout=abc", "not a whole number"),
        ("keepalives_idle=999999999999", "too large"),
    ] {
        let e = err(&format!("host=h {bad}"));
        assert!(e.contains(why), "{bad}: {e}");
        let key = bad.split('=').next().unwrap();
        assert!(e.contains(&format!("`{key}`")), "{bad}: {e}");
    }
}
