//! A pool asking for `standby` (and one asking for `primary`) across a failover on a real
//! primary and two streaming standbys; fresh connects on smol and async-std after it.

mod attrs_support;
mod common;

use attrs_support::{Servers, assert_names_each_host, reached, refused, server_port};
use common::{AsyncStdRt, Harness, SmolRt, TokioMt};
use pg_pool_test_support::ReplicatedCluster;
use pg_pool_tokio_postgres::{PgConfig, PgRuntime};

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
