//! Unix-socket hosts (`host_path`) on tokio, async-std and smol.

mod common;

use pg_pool_conninfo::SslMode;
use pg_pool_core::Connector as _;
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::tokio_postgres::Config;
use pg_pool_tokio_postgres::{PgConfig, PgConnector, PgRuntime};

use common::{Harness, blocking};

/// Settings for the test role over `cluster`'s unix socket.
fn unix_config(cluster: &TestCluster, password: &str, mode: SslMode) -> PgConfig {
    unix_config_on(cluster, cluster.port(), password, mode)
}

/// As [`unix_config`], for the socket of `port`.
fn unix_config_on(cluster: &TestCluster, port: u16, password: &str, mode: SslMode) -> PgConfig {
    let dir = cluster.socket_dir().expect("a throwaway cluster");
    let mut pg = Config::new();
    pg.host_path(dir)
        .port(port)
        .user(cluster.user())
        .password(password)
        .dbname(cluster.database());
    let mut config = PgConfig::new(pg);
    config.tls.mode = mode;
    config
}

async fn over_unix_socket<R: PgRuntime>(tag: &str) {
    let cluster: &'static TestCluster = blocking(TestCluster::tls_shared).await;
    let runtime = R::current().expect("inside the runtime");
    // sslmode is ignored on unix sockets, as in libpq: even require connects (in plain
    // text; PostgreSQL offers no TLS there).
    for mode in [SslMode::Prefer, SslMode::Require, SslMode::Disable] {
        let connector = PgConnector::try_new(
            runtime.clone(),
            unix_config(cluster, cluster.password(), mode),
        )
        .expect("valid settings");
        let conn = connector
            .connect()
            .await
            .unwrap_or_else(|e| panic!("{tag}: unix socket, {mode:?}: {e}"));
        // The server sees a unix-socket session: no client address, no TLS.
        let row = conn
            .query_one(
                "SELECT inet_client_addr() IS NULL, ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
                &[],
            )
            .await
            .expect("query");
        assert!(
            row.get::<_, bool>(0),
            "{tag}: {mode:?}: a unix-socket session"
        );
        assert!(
            !row.get::<_, bool>(1),
            "{tag}: {mode:?}: no TLS on unix sockets"
        );
    }
    // The socket asks for the password (pg_hba `local ... scram-sha-256`).
    let connector = PgConnector::try_new(runtime, unix_config(cluster, "wrong", SslMode::Prefer))
        .expect("valid settings");
    let err = match connector.connect().await {
        Ok(_) => panic!("{tag}: a wrong password was accepted"),
        Err(e) => e,
    };
    assert_eq!(err.code(), Some("28P01"), "{tag}: {err}");

    // No server on that port: the socket file is missing, and the error says so.
    let port = cluster.port().wrapping_add(1);
    let missing = unix_config_on(cluster, port, cluster.password(), SslMode::Prefer);
    let connector =
        PgConnector::try_new(R::current().expect("runtime"), missing).expect("valid settings");
    let err = connector.connect().await.expect_err("no socket there");
    assert!(err.to_string().contains("No such file"), "{tag}: {err}");
}

#[test]
fn tokio_unix_socket() {
    common::TokioMt::block_on(over_unix_socket::<pg_pool_tokio::Tokio>("tokio"));
}

#[test]
fn async_std_unix_socket() {
    common::AsyncStdRt::block_on(over_unix_socket::<pg_pool_async_std::AsyncStd>("async-std"));
}

#[test]
fn smol_unix_socket() {
    common::SmolRt::block_on(over_unix_socket::<pg_pool_smol::Smol>("smol"));
}
