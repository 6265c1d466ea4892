//! libpq's `target_session_attrs` on a real primary and streaming standby, on tokio, smol
//! and async-std: every value picks the right server from a two-host string in both
//! orders, `prefer-standby` falls back to the primary while the standby is down, a
//! server error during startup ends the host search except `57P03` (as in libpq), and
//! when every host fails the one error names each host and why.
//!
//! One replicated cluster serves every case of every runtime (it is slow to start); the
//! cases that stop servers run last.

mod common;

use std::error::Error as _;

use common::{AsyncStdRt, Harness, SmolRt, TokioMt};
use pg_pool_core::{Connector, Poolable};
use pg_pool_test_support::ReplicatedCluster;
use pg_pool_tokio_postgres::pg_pool_conninfo::TargetSessionAttrs;
use pg_pool_tokio_postgres::{PgConfig, PgConnection, PgConnector, PgError, PgRuntime};

/// What the cases need of the cluster, owned, so it moves into any runtime.
#[derive(Clone)]
struct Servers {
    primary: u16,
    standby: u16,
    password: String,
}

impl Servers {
    /// A `key=value` string over `ports` in that order.
    fn conninfo(&self, ports: &[u16], attrs: &str, extra: &str) -> String {
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
async fn connect<R: PgRuntime>(conninfo: &str) -> Result<PgConnection, PgError> {
    let config = PgConfig::from_url(conninfo).expect("the test's string parses");
    PgConnector::<R>::current(config)
        .expect("inside the runtime")
        .connect()
        .await
}

/// The port of the server a session reached.
async fn server_port(conn: &PgConnection) -> u16 {
    let row = conn
        .query_one("SELECT inet_server_port()", &[])
        .await
        .expect("inet_server_port");
    u16::try_from(row.get::<_, i32>(0)).expect("a port")
}

/// Connects with `conninfo` and returns the port of the server reached.
async fn reached<R: PgRuntime>(conninfo: &str) -> u16 {
    let conn = connect::<R>(conninfo)
        .await
        .unwrap_or_else(|e| panic!("{conninfo:?} connects: {e}"));
    server_port(&conn).await
}

/// Connects with `conninfo`, which must fail.
async fn refused<R: PgRuntime>(conninfo: &str) -> PgError {
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
fn assert_names_each_host(e: &PgError, hosts: &[(u16, &str)], servers: &Servers) {
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

/// Every value, both host orders, while both servers run.
async fn picks_the_right_server<R: PgRuntime>(s: Servers) {
    let (p, st) = (s.primary, s.standby);
    for order in [[p, st], [st, p]] {
        for (attrs, expected) in [
            ("any", order[0]),
            ("read-write", p),
            ("read-only", st),
            ("primary", p),
            ("standby", st),
            ("prefer-standby", st),
        ] {
            let got = reached::<R>(&s.conninfo(&order, attrs, "")).await;
            assert_eq!(got, expected, "{attrs} over {order:?}");
        }
    }

    // A primary whose sessions are read-only by default: `read-only` accepts it (libpq
    // checks `transaction_read_only`), `standby` does not (it checks recovery), and no
    // server allows writes.
    let read_only = "options='-c default_transaction_read_only=on'";
    for (attrs, expected) in [("read-only", p), ("standby", st), ("primary", p)] {
        let got = reached::<R>(&s.conninfo(&[p, st], attrs, read_only)).await;
        assert_eq!(got, expected, "{attrs} with read-only sessions");
    }
    let e = refused::<R>(&s.conninfo(&[p, st], "read-write", read_only)).await;
    assert_names_each_host(
        &e,
        &[
            (
                p,
                "server does not allow writes (target_session_attrs=read-write)",
            ),
            (st, "server does not allow writes"),
        ],
        &s,
    );
    for failure in e.host_failures().unwrap() {
        assert!(matches!(
            failure.error(),
            PgError::SessionAttrs {
                wanted: TargetSessionAttrs::ReadWrite,
                ..
            }
        ));
    }
    // A failover can change which server matches: not a permanent failure.
    assert!(!PgConnection::is_permanent_connect_error(&e));

    // One host: its own error, not a list.
    let e = refused::<R>(&s.conninfo(&[p], "standby", "")).await;
    assert!(
        matches!(
            e,
            PgError::SessionAttrs {
                wanted: TargetSessionAttrs::Standby,
                ..
            }
        ),
        "{e:?}"
    );
    assert_eq!(
        e.to_string(),
        "server is not a standby (target_session_attrs=standby)"
    );
    let e = refused::<R>(&s.conninfo(&[st], "primary", "")).await;
    assert!(e.to_string().contains("not a primary"), "{e}");

    // A tokio-postgres `Config` alone: its own `target_session_attrs` applies.
    let mut pg = pg_pool_tokio_postgres::tokio_postgres::Config::new();
    pg.host("127.0.0.1")
        .host("127.0.0.1")
        .port(st)
        .port(p)
        .user("pgpool")
        .password(s.password.as_str())
        .dbname("pgpool")
        .target_session_attrs(
            pg_pool_tokio_postgres::tokio_postgres::config::TargetSessionAttrs::ReadWrite,
        );
    let config = PgConfig::new(pg);
    assert_eq!(config.session_attrs(), TargetSessionAttrs::ReadWrite);
    let conn = PgConnector::<R>::current(config)
        .unwrap()
        .connect()
        .await
        .expect("read-write from the driver's config");
    assert_eq!(server_port(&conn).await, p);

    // A wrong password ends the search at the first host, as in libpq: one error, that
    // host's 28P01 (a second host tried would have made it a list).
    let wrong = Servers {
        password: "not-the-password".into(),
        ..s.clone()
    };
    for order in [[p, st], [st, p]] {
        let e = refused::<R>(&wrong.conninfo(&order, "any", "")).await;
        println!("wrong password over {order:?}: {e}");
        assert!(matches!(e, PgError::Driver(_)), "{e:?}");
        assert_eq!(e.code(), Some("28P01"), "{e}");
        assert!(PgConnection::is_permanent_connect_error(&e));
    }
}

/// With the standby up but refusing sessions (`hot_standby = off`: 57P03).
async fn cannot_connect_now<R: PgRuntime>(s: Servers) {
    let (p, st) = (s.primary, s.standby);
    let e = refused::<R>(&s.conninfo(&[st], "any", "")).await;
    println!("a standby without hot standby: {e}");
    assert_eq!(e.code(), Some("57P03"), "{e}");
    assert!(!PgConnection::is_permanent_connect_error(&e));
    for attrs in ["any", "prefer-standby", "read-write"] {
        let got = reached::<R>(&s.conninfo(&[st, p], attrs, "")).await;
        assert_eq!(got, p, "{attrs}: the search goes on after 57P03");
    }
    let e = refused::<R>(&s.conninfo(&[st, p], "standby", "")).await;
    assert_names_each_host(
        &e,
        &[
            (st, "57P03"),
            (p, "server is not a standby (target_session_attrs=standby)"),
        ],
        &s,
    );
}

/// With the standby stopped.
async fn standby_down<R: PgRuntime>(s: Servers) {
    let (p, st) = (s.primary, s.standby);
    for order in [[p, st], [st, p]] {
        let got = reached::<R>(&s.conninfo(&order, "prefer-standby", "")).await;
        assert_eq!(
            got, p,
            "prefer-standby falls back to the primary over {order:?}"
        );
    }
    let e = refused::<R>(&s.conninfo(&[p, st], "standby", "")).await;
    assert_names_each_host(
        &e,
        &[
            (p, "server is not a standby (target_session_attrs=standby)"),
            (st, "connection refused"),
        ],
        &s,
    );
    assert!(matches!(
        e.source().unwrap().downcast_ref::<PgError>(),
        Some(PgError::SessionAttrs { .. })
    ));
    assert!(!PgConnection::is_permanent_connect_error(&e));

    // The unreachable host first, then a wrong password: both listed; the server's code
    // still reads through; not permanent, since the first host may come back.
    let wrong = Servers {
        password: "not-the-password".into(),
        ..s.clone()
    };
    let e = refused::<R>(&wrong.conninfo(&[st, p], "any", "")).await;
    assert_names_each_host(&e, &[(st, "connection refused"), (p, "28P01")], &wrong);
    assert!(!e.to_string().contains(&s.password));
    assert_eq!(e.code(), Some("28P01"));
    assert!(!PgConnection::is_permanent_connect_error(&e));
}

/// With both servers stopped.
async fn all_down<R: PgRuntime>(s: Servers) {
    let (p, st) = (s.primary, s.standby);
    for attrs in ["any", "read-write", "prefer-standby", "standby"] {
        let e = refused::<R>(&s.conninfo(&[p, st], attrs, "")).await;
        assert_names_each_host(
            &e,
            &[(p, "connection refused"), (st, "connection refused")],
            &s,
        );
        assert!(matches!(
            e.source().unwrap().downcast_ref::<PgError>(),
            Some(PgError::Connect { port, .. }) if *port == p
        ));
        assert!(!PgConnection::is_permanent_connect_error(&e));
    }
    // One host: the error it always was.
    let e = refused::<R>(&s.conninfo(&[p], "any", "")).await;
    assert!(
        matches!(e, PgError::Connect { port, .. } if port == p),
        "{e:?}"
    );
    assert!(
        e.to_string()
            .starts_with(&format!("could not connect to 127.0.0.1:{p}: ")),
        "{e}"
    );
}

#[test]
fn every_value_picks_the_right_server_and_failures_name_every_host() {
    let cluster = ReplicatedCluster::start(1).expect("primary + standby");
    let servers = Servers {
        primary: cluster.member(0).unwrap().port(),
        standby: cluster.member(1).unwrap().port(),
        password: cluster.password().to_owned(),
    };
    assert!(cluster.is_in_recovery(1).unwrap());

    TokioMt::block_on(picks_the_right_server::<pg_pool_tokio::Tokio>(
        servers.clone(),
    ));
    SmolRt::block_on(picks_the_right_server::<pg_pool_smol::Smol>(
        servers.clone(),
    ));
    AsyncStdRt::block_on(picks_the_right_server::<pg_pool_async_std::AsyncStd>(
        servers.clone(),
    ));

    // A standby without hot standby answers every connection with 57P03: the one error
    // after which libpq, and this crate, go on to the next host.
    let conf = cluster
        .member(1)
        .unwrap()
        .data_dir()
        .join("postgresql.auto.conf");
    let mut text = std::fs::read_to_string(&conf).expect("the standby's auto.conf");
    text.push_str("\nhot_standby = off\n");
    std::fs::write(&conf, text).expect("hot_standby off");
    cluster.stop(1).expect("stop the standby");
    cluster
        .start_server(1)
        .expect("the standby, without hot standby");
    TokioMt::block_on(cannot_connect_now::<pg_pool_tokio::Tokio>(servers.clone()));
    SmolRt::block_on(cannot_connect_now::<pg_pool_smol::Smol>(servers.clone()));
    AsyncStdRt::block_on(cannot_connect_now::<pg_pool_async_std::AsyncStd>(
        servers.clone(),
    ));

    cluster.stop(1).expect("stop the standby");
    TokioMt::block_on(standby_down::<pg_pool_tokio::Tokio>(servers.clone()));
    SmolRt::block_on(standby_down::<pg_pool_smol::Smol>(servers.clone()));
    AsyncStdRt::block_on(standby_down::<pg_pool_async_std::AsyncStd>(servers.clone()));

    cluster.stop(0).expect("stop the primary");
    TokioMt::block_on(all_down::<pg_pool_tokio::Tokio>(servers.clone()));
    SmolRt::block_on(all_down::<pg_pool_smol::Smol>(servers.clone()));
    AsyncStdRt::block_on(all_down::<pg_pool_async_std::AsyncStd>(servers));
}

/// A pool asking for `standby` (and one asking for `primary`) across a failover: the
/// primary is killed and the first standby promoted. A fresh connect (the pool's idle
/// sessions evicted) goes to the remaining standby, and once that is stopped too, fails
/// with an error naming all three hosts. Fresh connects on smol and async-std agree.
#[test]
fn a_standby_pool_moves_on_after_its_standby_is_promoted() {
    let cluster: &'static ReplicatedCluster = Box::leak(Box::new(
        ReplicatedCluster::start(2).expect("primary + two standbys"),
    ));
    let ports: Vec<u16> = cluster.members().iter().map(|m| m.port()).collect();
    let (m0, m1, m2) = (ports[0], ports[1], ports[2]);
    let servers = Servers {
        primary: m0,
        standby: m1,
        password: cluster.password().to_owned(),
    };
    let standby = servers.conninfo(&ports, "standby", "");
    let primary = servers.conninfo(&ports, "primary", "");

    let (s, standby_url) = (servers.clone(), standby.clone());
    TokioMt::block_on(async move {
        let mut settings = common::pool_config(2);
        settings.connect_timeout = std::time::Duration::from_secs(30);
        let reads = common::pool::<pg_pool_tokio::Tokio>(
            PgConfig::from_url(&standby_url).unwrap(),
            settings.clone(),
        )
        .await;
        let writes =
            common::pool::<pg_pool_tokio::Tokio>(PgConfig::from_url(&primary).unwrap(), settings)
                .await;
        assert_eq!(server_port(&reads.get().await.unwrap()).await, m1);
        assert_eq!(server_port(&writes.get().await.unwrap()).await, m0);

        common::blocking(move || {
            cluster.stop_immediate(0).expect("kill the primary");
            cluster.promote(1).expect("promote the first standby");
        })
        .await;
        {
            // Nothing told this idle session that its server was promoted.
            let pooled = reads.get().await.unwrap();
            let row = pooled
                .query_one("SELECT inet_server_port(), pg_is_in_recovery()", &[])
                .await
                .unwrap();
            println!(
                "pooled standby session after the promotion: port {}, in recovery {}",
                row.get::<_, i32>(0),
                row.get::<_, bool>(1)
            );
        }

        // A fresh connect skips the promoted server for the standby still in recovery,
        // and the primary pool finds the new primary.
        reads.evict_all();
        writes.evict_all();
        let conn = reads.get().await.expect("the remaining standby");
        assert_eq!(server_port(&conn).await, m2);
        drop(conn);
        let conn = writes.get().await.expect("the new primary");
        assert_eq!(server_port(&conn).await, m1);
        drop(conn);

        common::blocking(move || cluster.stop(2).expect("stop the last standby")).await;
        reads.evict_all();
        let started = std::time::Instant::now();
        let e = reads.get().await.expect_err("no standby is left");
        println!("no standby left, after {:?}: {e}", started.elapsed());
        let e = e.driver_error().expect("the connect error");
        assert_names_each_host(
            e,
            &[
                (m0, "connection refused"),
                (m1, "server is not a standby (target_session_attrs=standby)"),
                (m2, "connection refused"),
            ],
            &s,
        );
    });

    // The other runtimes, connecting afresh after the failover.
    SmolRt::block_on(fresh_connect_after_failover::<pg_pool_smol::Smol>(
        servers.clone(),
        ports.clone(),
    ));
    AsyncStdRt::block_on(fresh_connect_after_failover::<pg_pool_async_std::AsyncStd>(
        servers, ports,
    ));
}

/// After the failover of the test above (member 0 down, 1 promoted, 2 stopped).
async fn fresh_connect_after_failover<R: PgRuntime>(s: Servers, ports: Vec<u16>) {
    assert_eq!(
        reached::<R>(&s.conninfo(&ports, "primary", "")).await,
        ports[1]
    );
    assert_eq!(
        reached::<R>(&s.conninfo(&ports, "prefer-standby", "")).await,
        ports[1]
    );
    let e = refused::<R>(&s.conninfo(&ports, "standby", "")).await;
    assert_names_each_host(
        &e,
        &[
            (ports[0], "connection refused"),
            (ports[1], "server is not a standby"),
            (ports[2], "connection refused"),
        ],
        &s,
    );
}
