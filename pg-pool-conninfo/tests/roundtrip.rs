//! Property tests: generated `ConnInfo`s rendered as URLs and as `key=value` strings parse
//! back to the same value; any input is parsed without panicking; errors never show the
//! user name or password; malformed percent-encodings are errors.

use std::fmt::Write as _;
use std::net::Ipv6Addr;
use std::time::Duration;

use pg_pool_conninfo::{
    ChannelBinding, ConnInfo, ConnInfoErrorKind, Host, HostPort, PoolSettings, RootCerts,
    STARTUP_SETTINGS, Secret, SslMode, TargetSessionAttrs,
};
use pg_pool_core::IdleOrder;
use proptest::prelude::*;

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn enc(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            write!(out, "%{b:02X}").unwrap();
        }
    }
    out
}

/// Single-quotes a value for a `key=value` string.
fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

fn host_text(h: &Host) -> String {
    match h {
        Host::Tcp(name) => name.clone(),
        Host::Unix(path) => path.to_str().unwrap().to_owned(),
        _ => unreachable!(),
    }
}

fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

fn off(d: Option<Duration>) -> String {
    d.map_or("off".to_owned(), ms)
}

/// Every key but the user-info, hosts and database, as `(key, value)`.
fn pairs(c: &ConnInfo) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    let mut put = |k: &str, v: String| out.push((k.to_owned(), v));
    if let Some(v) = &c.application_name {
        put("application_name", v.clone());
    }
    if let Some(v) = &c.fallback_application_name {
        put("fallback_application_name", v.clone());
    }
    if let Some(v) = &c.options {
        put("options", v.clone());
    }
    if let Some(v) = c.connect_timeout {
        put("connect_timeout", v.as_secs().to_string());
    }
    let mode = match c.tls.mode {
        SslMode::Disable => "disable",
        SslMode::Allow => "allow",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
        _ => unreachable!(),
    };
    put("sslmode", mode.into());
    match &c.tls.root_certs {
        Some(RootCerts::System) => put("sslrootcert", "system".into()),
        Some(RootCerts::File(p)) => put("sslrootcert", p.to_str().unwrap().into()),
        _ => {}
    }
    if let Some(p) = &c.tls.client_cert {
        put("sslcert", p.to_str().unwrap().into());
    }
    if let Some(p) = &c.tls.client_key {
        put("sslkey", p.to_str().unwrap().into());
    }
    let cb = match c.tls.channel_binding {
        ChannelBinding::Disable => "disable",
        ChannelBinding::Prefer => "prefer",
        ChannelBinding::Require => "require",
        _ => unreachable!(),
    };
    put("channel_binding", cb.into());
    let tsa = match c.target_session_attrs {
        TargetSessionAttrs::Any => "any",
        TargetSessionAttrs::ReadWrite => "read-write",
        TargetSessionAttrs::ReadOnly => "read-only",
        TargetSessionAttrs::Primary => "primary",
        TargetSessionAttrs::Standby => "standby",
        TargetSessionAttrs::PreferStandby => "prefer-standby",
        _ => unreachable!(),
    };
    put("target_session_attrs", tsa.into());
    for (k, v) in &c.params {
        put(k, v.clone());
    }
    if let Some(p) = &c.passfile {
        put("passfile", p.to_str().unwrap().into());
    }
    let p = &c.pool;
    if let Some(v) = &p.name {
        put("pool_name", v.clone());
    }
    if let Some(v) = p.max_size {
        put("pool_max_size", v.to_string());
    }
    if let Some(v) = p.min_idle {
        put("pool_min_idle", v.to_string());
    }
    if let Some(v) = p.checkout_timeout {
        put("pool_checkout_timeout", ms(v));
    }
    if let Some(v) = p.idle_timeout {
        put("pool_idle_timeout", off(v));
    }
    if let Some(v) = p.max_lifetime {
        put("pool_max_lifetime", off(v));
    }
    if let Some(v) = p.test_on_checkout {
        put("pool_test_on_checkout", v.to_string());
    }
    if let Some(v) = p.idle_order {
        put(
            "pool_idle_order",
            if v == IdleOrder::Lifo { "lifo" } else { "fifo" }.into(),
        );
    }
    for (k, v) in &p.driver {
        put(k, v.clone());
    }
    out
}

fn render_url(c: &ConnInfo) -> String {
    let mut s = "postgres://".to_owned();
    if c.user.is_some() || c.password.is_some() {
        s += &enc(c.user.as_deref().unwrap_or(""));
        if let Some(p) = &c.password {
            s += ":";
            s += &enc(p.expose());
        }
        s += "@";
    }
    let hosts: Vec<String> = c
        .hosts
        .iter()
        .map(|hp| match &hp.host {
            Host::Tcp(name) if name.contains(':') => format!("[{name}]:{}", hp.port),
            h => format!("{}:{}", enc(&host_text(h)), hp.port),
        })
        .collect();
    s += &hosts.join(",");
    if let Some(db) = &c.dbname {
        s += "/";
        s += &enc(db);
    }
    let query: Vec<String> = pairs(c)
        .iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect();
    if !query.is_empty() {
        s += "?";
        s += &query.join("&");
    }
    s
}

fn render_kv(c: &ConnInfo) -> String {
    let mut out = Vec::new();
    if !c.hosts.is_empty() {
        let hosts: Vec<String> = c.hosts.iter().map(|hp| host_text(&hp.host)).collect();
        let ports: Vec<String> = c.hosts.iter().map(|hp| hp.port.to_string()).collect();
        out.push(format!("host={}", quote(&hosts.join(","))));
        out.push(format!("port = {}", ports.join(",")));
    }
    if let Some(u) = &c.user {
        out.push(format!("user={}", quote(u)));
    }
    if let Some(p) = &c.password {
        out.push(format!("password= {}", quote(p.expose())));
    }
    if let Some(d) = &c.dbname {
        out.push(format!("dbname ={}", quote(d)));
    }
    for (k, v) in pairs(c) {
        out.push(format!("{k}={}", quote(&v)));
    }
    out.join(" \t\n ")
}

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
