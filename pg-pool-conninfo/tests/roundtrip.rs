//! Property tests: generated `ConnInfo`s rendered as URLs and as `key=value` strings parse
//! back to the same value; any input is parsed without panicking; errors never show the
//! user name or password; malformed percent-encodings are errors.

mod common;

use std::net::Ipv6Addr;
use std::time::Duration;

use common::{enc, render_kv, render_url};
use pg_pool_conninfo::{
    ChannelBinding, ConnInfo, ConnInfoErrorKind, Host, HostPort, Keepalives, PoolSettings,
    RootCerts, STARTUP_SETTINGS, Secret, SslMode, TargetSessionAttrs,
};
use pg_pool_core::IdleOrder;
use proptest::prelude::*;

fn text(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[^\u{0}]{{0,{max}}}")).unwrap()
}

fn non_empty(max: usize) -> impl Strategy<Value = String> {
    proptest::string::string_regex(&format!("[^\u{0}]{{1,{max}}}")).unwrap()
}

fn host() -> impl Strategy<Value = Host> {
    prop_oneof![
        "[a-z0-9][a-z0-9.-]{0,15}".prop_map(Host::Tcp),
        any::<[u16; 8]>().prop_map(|s| Host::Tcp(Ipv6Addr::from(s).to_string())),
        "/[^\u{0},]{0,12}".prop_map(|p| Host::Unix(p.into())),
    ]
}

fn duration() -> impl Strategy<Value = Duration> {
    (1u64..10_000_000).prop_map(Duration::from_millis)
}

fn pool() -> impl Strategy<Value = PoolSettings> {
    (
        proptest::option::of(text(8)),
        proptest::option::of(0usize..10_000),
        proptest::option::of(0usize..10_000),
        proptest::option::of(duration()),
        proptest::option::of(proptest::option::of(duration())),
        proptest::option::of(proptest::option::of(duration())),
        proptest::option::of(any::<bool>()),
        proptest::option::of(prop_oneof![Just(IdleOrder::Lifo), Just(IdleOrder::Fifo)]),
        proptest::collection::btree_map("pool_zz[a-z]{1,6}", text(6), 0..3),
    )
        .prop_map(
            |(name, max, min, checkout, idle, life, test, order, driver)| {
                let mut p = PoolSettings::default();
                p.name = name;
                p.max_size = max;
                p.min_idle = min;
                p.checkout_timeout = checkout;
                p.idle_timeout = idle;
                p.max_lifetime = life;
                p.test_on_checkout = test;
                p.idle_order = order;
                p.driver = driver.into_iter().collect();
                p
            },
        )
}

/// The keepalive keys and `tcp_user_timeout` (boxed: the composed strategy is large).
fn keepalives() -> BoxedStrategy<(Keepalives, Option<Duration>)> {
    (
        proptest::option::of(proptest::bool::ANY),
        proptest::option::of(1u64..1_000_000),
        proptest::option::of(1u64..1_000_000),
        proptest::option::of(0u32..=i32::MAX as u32),
        proptest::option::of(1u64..1_000_000_000),
    )
        .prop_map(|(enabled, idle, interval, count, user_timeout)| {
            let mut k = Keepalives::default();
            k.enabled = enabled;
            k.idle = idle.map(Duration::from_secs);
            k.interval = interval.map(Duration::from_secs);
            k.count = count;
            (k, user_timeout.map(Duration::from_millis))
        })
        .boxed()
}

prop_compose! {
    fn conninfo()(
        hosts in proptest::collection::vec((host(), 1u16..=65535), 0..4),
        user in proptest::option::of(non_empty(12)),
        password in proptest::option::of(non_empty(16)),
        dbname in proptest::option::of(non_empty(12)),
        app in proptest::option::of(text(12)),
        fallback in proptest::option::of(text(6)),
        options in proptest::option::of(text(12)),
        timeout in proptest::option::of(1u64..100_000),
        mode in 0usize..6,
        root in proptest::option::of(prop_oneof![Just(None), "[^\u{0}]{1,10}".prop_map(Some)]),
        cert in proptest::option::of(non_empty(8)),
        key in proptest::option::of(non_empty(8)),
        cb in 0usize..3,
        tsa in 0usize..6,
        params in proptest::sample::subsequence(STARTUP_SETTINGS.to_vec(), 0..4),
        values in proptest::collection::vec(text(8), 4),
        passfile in proptest::option::of(non_empty(8)),
        keepalive in keepalives(),
        pool in pool(),
    ) -> ConnInfo {
        let mut c = ConnInfo::default();
        c.hosts = hosts.into_iter().map(|(host, port)| HostPort { host, port }).collect();
        c.user = user;
        c.password = password.map(Secret::new);
        c.dbname = dbname;
        c.application_name = app;
        c.fallback_application_name = fallback;
        c.options = options;
        c.connect_timeout = timeout.map(Duration::from_secs);
        (c.keepalives, c.tcp_user_timeout) = keepalive;
        c.tls.mode = [SslMode::Disable, SslMode::Allow, SslMode::Prefer, SslMode::Require,
            SslMode::VerifyCa, SslMode::VerifyFull][mode];
        c.tls.root_certs = root.map(|r| match r {
            Some(path) if path != "system" => RootCerts::File(path.into()),
            _ => RootCerts::System,
        });
        if c.tls.root_certs == Some(RootCerts::System) {
            c.tls.mode = SslMode::VerifyFull;
        }
        c.tls.client_cert = cert.map(Into::into);
        c.tls.client_key = key.map(Into::into);
        c.tls.channel_binding =
            [ChannelBinding::Disable, ChannelBinding::Prefer, ChannelBinding::Require][cb];
        c.target_session_attrs = [TargetSessionAttrs::Any, TargetSessionAttrs::ReadWrite,
            TargetSessionAttrs::ReadOnly, TargetSessionAttrs::Primary,
            TargetSessionAttrs::Standby, TargetSessionAttrs::PreferStandby][tsa];
        c.params = params.into_iter().map(str::to_owned).zip(values).collect();
        c.passfile = passfile.map(Into::into);
        c.pool = pool;
        c
    }
}

/// Runs of five characters of `secret`: none may appear in an error message.
fn leaks(message: &str, secret: &str) -> Option<String> {
    let chars: Vec<char> = secret.chars().collect();
    chars
        .windows(5)
        .map(|w| w.iter().collect::<String>())
        .find(|w| message.contains(w.as_str()))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn url_round_trips(c in conninfo()) {
        let url = render_url(&c);
        let parsed = ConnInfo::parse(&url);
        prop_assert_eq!(parsed.as_ref().ok(), Some(&c), "{} -> {:?}", url, parsed);
        prop_assert!(c.validate().is_ok());
    }

    #[test]
    fn key_value_round_trips(c in conninfo()) {
        let kv = render_kv(&c);
        let parsed = ConnInfo::parse(&kv);
        prop_assert_eq!(parsed.as_ref().ok(), Some(&c), "{} -> {:?}", kv, parsed);
    }

    #[test]
    fn any_input_parses_or_fails_without_panicking(
        s in any::<String>(),
        t in "[a-z_=' \\\\%@:/?&,\\[\\]#0-9]{0,40}",
    ) {
        let _ = ConnInfo::parse(&s);
        let _ = ConnInfo::parse(&t);
        let _ = ConnInfo::parse(&format!("postgres://{s}"));
        let _ = ConnInfo::parse(&format!("postgresql://{t}"));
        let _ = ConnInfo::parse(&format!("host={t}"));
    }

    #[test]
    fn errors_never_show_user_or_password(
        user in "[A-Z0-9#:@&=%/?]{5,12}",
        password in "[A-Z0-9#@&=%:]{2,8}[/? ][A-Z0-9#@&=%:/? ]{2,8}",
    ) {
        let inputs = [
            format!("postgres://{user}:{password}@h/d"),
            format!("postgres://{}:{password}@h/d", enc(&user)),
            format!("postgres://{}:{}%zz@h/d", enc(&user), enc(&password)),
            format!("postgres://{}:{}@h:{password}/d", enc(&user), enc(&password)),
            format!("postgres://{}:{}@h/d?password={password}", enc(&user), enc(&password)),
            format!("postgres://h/d?user={user}&password={password}"),
            format!("user={user} password={password}"),
            format!("user={user} password='{password}"),
            format!("user={user}\0 password={password}"),
            format!("user='{user}' password={password}\0"),
        ];
        for input in &inputs {
            if let Err(e) = ConnInfo::parse(input) {
                let message = e.to_string();
                prop_assert!(leaks(&message, &user).is_none(), "{:?}: {} shows the user", input, message);
                prop_assert!(leaks(&message, &password).is_none(), "{:?}: {} shows the password", input, message);
            }
        }
    }

    #[test]
    fn an_error_elsewhere_never_shows_the_password(
        c in conninfo(),
        tail in "[^\u{0}]{0,8}",
        fault in 0usize..6,
        kv in any::<bool>(),
    ) {
        let mut c = c;
        let password = format!("PWMARK{tail}");
        c.password = Some(Secret::new(password.clone()));
        let rendered = if kv { render_kv(&c) } else { render_url(&c) };
        let sep = if kv { " " } else if rendered.contains('?') { "&" } else { "?" };
        let fault = [
            "sslmode=sometimes",
            "port=0",
            "bogus_key=1",
            "pool_max_size=many",
            "connect_timeout=soon",
            "target_session_attrs=leader",
        ][fault];
        let input = format!("{rendered}{sep}{fault}");
        let e = ConnInfo::parse(&input).unwrap_err();
        prop_assert!(!e.to_string().contains("PWMARK"), "{}: {}", input, e);
    }

    #[test]
    fn malformed_percent_encodings_are_errors(
        c in conninfo(),
        bad in prop_oneof![Just("%"), Just("%g1"), Just("%1"), Just("%zz"), Just("%%41"), Just("%1x")],
        at in 0usize..4,
    ) {
        let mut c = c;
        c.user = Some(c.user.unwrap_or_else(|| "u".into()));
        c.password = Some(c.password.unwrap_or_else(|| "p".into()));
        c.dbname = Some(c.dbname.unwrap_or_else(|| "d".into()));
        c.application_name = Some(c.application_name.unwrap_or_default());
        let (user, password, db, app) = (
            enc(c.user.as_deref().unwrap()),
            enc(c.password.as_ref().unwrap().expose()),
            enc(c.dbname.as_deref().unwrap()),
            enc(c.application_name.as_deref().unwrap()),
        );
        let (user, password, db, app) = match at {
            0 => (user + bad, password, db, app),
            1 => (user, password + bad, db, app),
            2 => (user, password, db + bad, app),
            _ => (user, password, db, app + bad),
        };
        let url = format!("postgres://{user}:{password}@h/{db}?application_name={app}");
        let e = ConnInfo::parse(&url).unwrap_err();
        prop_assert_eq!(e.kind(), ConnInfoErrorKind::PercentEncoding, "{}: {}", url, e);
    }
}
