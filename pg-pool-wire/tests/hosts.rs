//! Several hosts on real servers: every `target_session_attrs` value picks the right member
//! of a primary and a streaming standby from a two-host string in both orders;
//! `prefer-standby` falls back to the primary when the standby is down; with every host
//! down the error names both; a wrong password on the first host ends the walk (as in
//! libpq); a host that never answers costs its `connect_timeout`, then the next is tried.

mod common;

use std::error::Error as _;
use std::time::{Duration, Instant};

use common::{blocking, pool_config};
use pg_pool_core::{Connector, LifecycleHooks, Poolable};
use pg_pool_test_support::{FaultProxy, ProxyMode, ReplicatedCluster, TestCluster};
use pg_pool_wire::{
    AsyncWirePoolable, WireConfig, WireConnector, WireError, WirePool, WirePoolable,
};

/// A `key=value` string over `ports` (in that order) on 127.0.0.1, as the test role.
fn two_hosts(cluster: &ReplicatedCluster, ports: [u16; 2], attrs: &str, app: &str) -> WireConfig {
    let s = format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user={} password={} dbname={} sslmode=disable \
         target_session_attrs={attrs} connect_timeout=5 application_name={app}",
        ports[0],
        ports[1],
        cluster.user(),
        cluster.password(),
        cluster.database()
    );
    WireConfig::from_url(&s).expect("the string parses")
}

/// The port and recovery state of the server a session is on.
async fn where_is(conn: &mut WirePoolable) -> (u16, bool) {
    let rows = conn
        .simple_query("SELECT inet_server_port(), pg_is_in_recovery()")
        .await
        .expect("where am I");
    let row = &rows[0];
    let port = row[0].as_deref().unwrap().parse().unwrap();
    (port, row[1].as_deref() == Some("t"))
}

async fn open(config: &WireConfig) -> Result<WirePoolable, WireError> {
    Connector::<WirePoolable>::connect(&WireConnector::try_new(config.clone())?).await
}

fn hosts_error(result: Result<WirePoolable, WireError>, what: &str) -> pg_pool_wire::HostsError {
    match result {
        Ok(_) => panic!("{what}: connected, expected every host to fail"),
        Err(WireError::Hosts(e)) => e,
        Err(other) => panic!("{what}: expected an error naming every host, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn target_session_attrs_pick_the_right_member() {
    let cluster: &'static ReplicatedCluster = Box::leak(Box::new(
        blocking(|| ReplicatedCluster::start(1).expect("a primary and a standby")).await,
    ));
    let primary = cluster.member(0).unwrap().port();
    let standby = cluster.member(1).unwrap().port();
    for order in [[primary, standby], [standby, primary]] {
        for (attrs, expected) in [
            ("any", order[0]),
            ("read-write", primary),
            ("primary", primary),
            ("read-only", standby),
            ("standby", standby),
            ("prefer-standby", standby),
        ] {
            let config = two_hosts(cluster, order, attrs, "hosts-attrs");
            let mut conn = open(&config)
                .await
                .unwrap_or_else(|e| panic!("{attrs} over {order:?}: {e}"));
            let (port, in_recovery) = where_is(&mut conn).await;
            println!("{attrs} over {order:?}: port {port}, in recovery {in_recovery}");
            assert_eq!(port, expected, "{attrs} over {order:?}");
            assert_eq!(in_recovery, port == standby, "{attrs} over {order:?}");
            // The pipelined kind walks the same way.
            let conn = Connector::<AsyncWirePoolable>::connect(&WireConnector::new(config))
                .await
                .unwrap_or_else(|e| panic!("async {attrs} over {order:?}: {e}"));
            let rows = conn
                .exec_query("SELECT inet_server_port()::text", &[], &[])
                .await
                .unwrap();
            let port = String::from_utf8_lossy(rows[0].cell(0).unwrap()).into_owned();
            assert_eq!(port, expected.to_string(), "async {attrs} over {order:?}");
            drop(conn);
        }
    }

    // A host that does not match is closed, not left behind: `standby` over the primary
    // first leaves no session of its own on the primary.
    let config = two_hosts(cluster, [primary, standby], "standby", "hosts-rejected");
    let _kept = open(&config).await.unwrap();
    let query = "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'hosts-rejected'";
    let left = common::eventually(Duration::from_secs(10), || async {
        blocking(move || cluster.sql(0, query).unwrap()).await == "0"
    })
    .await;
    assert!(left.is_some(), "the primary kept the rejected session");

    // Through a pool: the standby's connections are watched for a promotion.
    let pool = WirePool::builder(WireConnector::new(two_hosts(
        cluster,
        [primary, standby],
        "read-write",
        "hosts-pool",
    )))
    .config(pool_config(2))
    .hooks(LifecycleHooks::default())
    .build()
    .await
    .unwrap();
    let mut conn = pool.get().await.unwrap();
    assert_eq!(where_is(&mut conn).await, (primary, false));
    conn.execute("CREATE TABLE IF NOT EXISTS hosts_t (n int); INSERT INTO hosts_t VALUES (1)")
        .await
        .unwrap();
    drop(conn);

    // The standby stops: prefer-standby falls back to the primary in both orders, and
    // standby fails naming both hosts.
    blocking(move || cluster.stop(1).unwrap()).await;
    for order in [[primary, standby], [standby, primary]] {
        let started = Instant::now();
        let config = two_hosts(cluster, order, "prefer-standby", "hosts-fallback");
        let mut conn = open(&config)
            .await
            .unwrap_or_else(|e| panic!("prefer-standby over {order:?}, standby down: {e}"));
        assert_eq!(where_is(&mut conn).await, (primary, false), "{order:?}");
        println!(
            "prefer-standby over {order:?}, standby down: the primary in {:?}",
            started.elapsed()
        );
        let config = two_hosts(cluster, order, "standby", "hosts-nostandby");
        let error = hosts_error(open(&config).await, "standby with the standby down");
        let text = error.to_string();
        println!("standby over {order:?}, standby down: {text}");
        assert!(
            text.starts_with("could not connect to any of 2 hosts: "),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "127.0.0.1:{primary}: server is not a standby (target_session_attrs=standby)"
            )),
            "{text}"
        );
        assert!(
            text.contains(&format!("127.0.0.1:{standby}: I/O error")),
            "{text}"
        );
        assert_eq!(error.errors().len(), 2);
        assert_eq!(error.errors()[0].addr(), format!("127.0.0.1:{}", order[0]));
        assert!(!error.stopped_early());
        let first = error.source().expect("the first host's error");
        assert!(
            first
                .to_string()
                .starts_with(&format!("127.0.0.1:{}", order[0]))
        );
        let wrapped = WireError::Hosts(error);
        assert!(!WirePoolable::is_permanent_connect_error(&wrapped));
        assert!(!text.contains(cluster.password()), "{text}");
    }

    // Every host down: the error names both, with why.
    blocking(move || cluster.stop(0).unwrap()).await;
    let config = two_hosts(cluster, [primary, standby], "any", "hosts-down");
    let error = hosts_error(open(&config).await, "every host down");
    let text = error.to_string();
    println!("every host down: {text}");
    for port in [primary, standby] {
        assert!(
            text.contains(&format!("127.0.0.1:{port}: I/O error")),
            "{text}"
        );
    }
    assert!(text.to_lowercase().contains("refused"), "{text}");
    assert!(!text.contains(cluster.password()), "{text}");
    // A pool over them fails its checkout with the same error, and recovers when a host
    // comes back, walking the list again.
    // The idle connection died with its server: its first use fails and evicts it.
    let mut stale = pool.get().await.expect("the idle connection");
    stale
        .execute("SELECT 1")
        .await
        .expect_err("its server stopped");
    drop(stale);
    let error = pool.get().await.map(drop).expect_err("every host down");
    println!("pool.get with every host down: {error}");
    assert!(
        error
            .to_string()
            .contains("could not connect to any of 2 hosts"),
        "{error}"
    );
    blocking(move || cluster.start_server(0).unwrap()).await;
    let took = common::eventually(Duration::from_secs(20), || async {
        pool.get().await.is_ok()
    })
    .await;
    println!("pool back after the primary restarted: {took:?}");
    assert!(took.is_some(), "the pool never reconnected");
    let mut conn = pool.get().await.unwrap();
    assert_eq!(where_is(&mut conn).await, (primary, false));
    drop(conn);
    pool.drain().await;
}

/// A wrong password on the first host ends the walk, as libpq does (checked with libpq 15's
/// `psql`): the second host, where the password is right, is not tried. With the good
/// host first, or the first host down, the good one is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_password_on_the_first_host_ends_the_walk() {
    let good = TestCluster::shared();
    let other: &'static TestCluster = Box::leak(Box::new(
        blocking(|| TestCluster::start().expect("a second server")).await,
    ));
    let role = good.user().to_owned();
    blocking(move || {
        other
            .sql(&format!(
                "ALTER ROLE {role} PASSWORD 'not-the-same-password'"
            ))
            .unwrap()
    })
    .await;
    let config = |ports: [u16; 2]| {
        WireConfig::from_url(&format!(
            "host=127.0.0.1,127.0.0.1 port={},{} user={} password={} dbname={} \
             sslmode=disable connect_timeout=5",
            ports[0],
            ports[1],
            good.user(),
            good.password(),
            good.database()
        ))
        .unwrap()
    };
    let result = open(&config([other.port(), good.port()])).await;
    let error = match result {
        Ok(_) => panic!("connected past a wrong password"),
        Err(e) => e,
    };
    let text = error.to_string();
    println!("wrong password on the first host: {text}");
    assert_eq!(error.code(), Some("28P01"), "{error:?}");
    assert!(WirePoolable::is_permanent_connect_error(&error));
    let WireError::Hosts(hosts) = &error else {
        panic!("{error:?}")
    };
    assert!(hosts.stopped_early());
    assert_eq!(hosts.errors().len(), 1);
    assert_eq!(
        hosts.errors()[0].addr(),
        format!("127.0.0.1:{}", other.port())
    );
    assert!(text.contains("1 more not tried"), "{text}");
    assert!(!text.contains(good.password()), "{text}");

    let mut conn = open(&config([good.port(), other.port()])).await.unwrap();
    assert_eq!(where_is(&mut conn).await.0, good.port());
    // The first host down (nothing listens on a port just freed): the second is used.
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut conn = open(&config([free, good.port()])).await.unwrap();
    assert_eq!(where_is(&mut conn).await.0, good.port());
}

/// A first host that never answers (a blackhole) costs its `connect_timeout`, then the
/// second host is used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_first_host_costs_its_connect_timeout() {
    let good = TestCluster::shared();
    let proxy = FaultProxy::start(good.addr()).unwrap();
    proxy.set_mode(ProxyMode::Blackhole);
    let config = WireConfig::from_url(&format!(
        "host=127.0.0.1,127.0.0.1 port={},{} user={} password={} dbname={} sslmode=disable \
         connect_timeout=1",
        proxy.port(),
        good.port(),
        good.user(),
        good.password(),
        good.database()
    ))
    .unwrap();
    let started = Instant::now();
    let mut conn = open(&config).await.expect("the second host");
    let took = started.elapsed();
    println!("blackholed first host, connect_timeout=1: connected to the second in {took:?}");
    assert_eq!(where_is(&mut conn).await.0, good.port());
    assert!(took >= Duration::from_millis(900), "{took:?}");
    assert!(took < Duration::from_secs(10), "{took:?}");
    // Both silent: each host's error is the per-host timeout.
    let mut both = config.clone();
    both.addr = format!("127.0.0.1:{0},127.0.0.1:{0}", proxy.port());
    let started = Instant::now();
    let error = hosts_error(open(&both).await, "two silent hosts");
    println!("two silent hosts: {error} after {:?}", started.elapsed());
    for host in error.errors() {
        assert!(
            matches!(host.error(), WireError::HostTimeout { limit } if *limit == Duration::from_secs(1)),
            "{host}"
        );
    }
}
