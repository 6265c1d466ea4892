//! Helpers of the `target_session_attrs` tests: connection strings over a replicated
//! cluster's members in a chosen order, connecting on any runtime, and the check that an
//! error names every host.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::error::Error as _;

use pg_pool_core::Connector;
use pg_pool_tokio_postgres::{PgConfig, PgConnection, PgConnector, PgError, PgRuntime};

/// What the cases need of the cluster, owned, so it moves into any runtime.
#[derive(Clone)]
pub(crate) struct Servers {
    pub(crate) primary: u16,
    pub(crate) standby: u16,
    pub(crate) password: String,
}

impl Servers {
    /// A `key=value` string over `ports` in that order.
    pub(crate) fn conninfo(&self, ports: &[u16], attrs: &str, extra: &str) -> String {
        let hosts = vec!["127.0.0.1"; ports.len()].join(",");
        let ports: Vec<String> = ports.iter().map(u16::to_string).collect();
        format!(
            "host={hosts} port={} user=pgpool password='{}' dbname=pgpool \
             target_session_attrs={attrs} connect_timeout=10 {extra}",
            ports.join(","),
            self.password.replace('\\', "\\\\").replace('\'', "\\'"),
        )
    }
}

/// Connects once with `conninfo` through the pool's connector on runtime `R`.
pub(crate) async fn connect<R: PgRuntime>(conninfo: &str) -> Result<PgConnection, PgError> {
    let config = PgConfig::from_url(conninfo).expect("the test's string parses");
    PgConnector::<R>::current(config)
        .expect("inside the runtime")
        .connect()
        .await
}

/// The port of the server a session reached.
pub(crate) async fn server_port(conn: &PgConnection) -> u16 {
    let row = conn
        .query_one("SELECT inet_server_port()", &[])
        .await
        .expect("inet_server_port");
    u16::try_from(row.get::<_, i32>(0)).expect("a port")
}

/// Connects with `conninfo` and returns the port of the server reached.
pub(crate) async fn reached<R: PgRuntime>(conninfo: &str) -> u16 {
    let conn = connect::<R>(conninfo)
        .await
        .unwrap_or_else(|e| panic!("{conninfo:?} connects: {e}"));
    server_port(&conn).await
}

/// Connects with `conninfo`, which must fail.
pub(crate) async fn refused<R: PgRuntime>(conninfo: &str) -> PgError {
    match connect::<R>(conninfo).await {
        Ok(conn) => panic!(
            "{conninfo:?} should fail, reached port {}",
            server_port(&conn).await
        ),
        Err(e) => e,
    }
}

/// Checks that `e` names each `(port, reason)` in order, with structured errors behind it,
/// and shows no secret.
pub(crate) fn assert_names_each_host(e: &PgError, hosts: &[(u16, &str)], servers: &Servers) {
    let text = e.to_string();
    println!("{text}");
    assert!(!text.contains(&servers.password), "no password: {text}");
    assert!(
        !format!("{e:?}").contains(&servers.password),
        "no password in Debug"
    );
    let failures = e
        .host_failures()
        .unwrap_or_else(|| panic!("an error per host: {e:?}"));
    assert!(
        text.starts_with(&format!(
            "could not connect to any of {} hosts: ",
            hosts.len()
        )),
        "{text}"
    );
    assert_eq!(failures.len(), hosts.len(), "{text}");
    for (failure, (port, reason)) in failures.iter().zip(hosts) {
        let entry = format!("127.0.0.1:{port}: ");
        assert!(failure.to_string().starts_with(&entry), "{failure}");
        assert!(failure.to_string().contains(reason), "{failure}");
        assert!(text.contains(&failure.to_string()), "{text}");
    }
    // `source()` is the first host's error.
    let source = e.source().expect("a source");
    assert_eq!(
        source.to_string(),
        failures.as_slice()[0].error().to_string()
    );
    assert!(e.is_fatal());
}
