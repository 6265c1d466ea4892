//! Renders a `ConnInfo` back into a connection string, both forms, for the property tests.
//! Every value is quoted or percent-encoded, so the string parses back to the same value.

use std::fmt::Write as _;
use std::time::Duration;

use pg_pool_conninfo::{ChannelBinding, ConnInfo, Host, RootCerts, SslMode, TargetSessionAttrs};
use pg_pool_core::IdleOrder;

/// Percent-encodes everything but RFC 3986's unreserved characters.
pub(crate) fn enc(s: &str) -> String {
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
    if let Some(on) = c.keepalives.enabled {
        put("keepalives", if on { "1" } else { "0" }.to_owned());
    }
    if let Some(v) = c.keepalives.idle {
        put("keepalives_idle", v.as_secs().to_string());
    }
    if let Some(v) = c.keepalives.interval {
        put("keepalives_interval", v.as_secs().to_string());
    }
    if let Some(v) = c.keepalives.count {
        put("keepalives_count", v.to_string());
    }
    if let Some(v) = c.tcp_user_timeout {
        put("tcp_user_timeout", v.as_millis().to_string());
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

pub(crate) fn render_url(c: &ConnInfo) -> String {
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

pub(crate) fn render_kv(c: &ConnInfo) -> String {
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
