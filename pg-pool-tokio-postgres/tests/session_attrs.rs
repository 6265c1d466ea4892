//! libpq's `target_session_attrs` on a real primary and streaming standby, on tokio, smol
//! and async-std: every value picks the right server from a two-host string in both
//! orders, `prefer-standby` falls back to the primary while the standby is down, a
//! server error during startup ends the host search except `57P03` (as in libpq), and
//! when every host fails the one error names each host and why.
//!
//! One replicated cluster serves every case of every runtime (it is slow to start); the
//! cases that stop servers run last.

mod attrs_support;
mod common;

use std::error::Error as _;

use attrs_support::{Servers, assert_names_each_host, reached, refused, server_port};
use common::{AsyncStdRt, Harness, SmolRt, TokioMt};
use pg_pool_core::{Connector, Poolable};
use pg_pool_test_support::ReplicatedCluster;
use pg_pool_tokio_postgres::pg_pool_conninfo::TargetSessionAttrs;
use pg_pool_tokio_postgres::{PgConfig, PgConnection, PgConnector, PgError, PgRuntime};

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
