//! Helpers of the TLS, unix-socket and credential tests: configs built in code against
//! the kit's TLS cluster, one-off connects, and the server's own view of a session.

#![allow(dead_code)]

pub(crate) mod modes;
pub(crate) mod verification;

use std::path::Path;

use pg_pool_conninfo::{RootCerts, SslMode};
use pg_pool_core::Connector as _;
use pg_pool_test_support::{TestCluster, TlsFiles};
use pg_pool_tokio_postgres::{PgConfig, PgConnection, PgConnector, PgError, PgRuntime};

use crate::common::blocking;

/// The shared TLS cluster (started off the async threads on first use).
pub(crate) async fn tls_cluster() -> &'static TestCluster {
    blocking(TestCluster::tls_shared).await
}

/// The shared plain (no TLS) cluster.
pub(crate) async fn plain_cluster() -> &'static TestCluster {
    blocking(TestCluster::shared).await
}

/// Its certificates.
pub(crate) fn files(cluster: &TestCluster) -> &TlsFiles {
    cluster.tls_files().expect("a TLS cluster")
}

/// Settings for `user`/`password` on `cluster`, dialing `host`, with `mode` and roots.
pub(crate) fn config(
    cluster: &TestCluster,
    host: &str,
    user: &str,
    password: &str,
    mode: SslMode,
    root: Option<&Path>,
) -> PgConfig {
    let mut pg = pg_pool_tokio_postgres::tokio_postgres::Config::new();
    pg.host(host)
        .port(cluster.port())
        .user(user)
        .dbname(cluster.database())
        .application_name("pg-pool-tls-test");
    if !password.is_empty() {
        pg.password(password);
    }
    let mut config = PgConfig::new(pg);
    config.tls.mode = mode;
    config.tls.root_certs = root.map(|p| RootCerts::File(p.to_owned()));
    config
}

/// The test role on `cluster` at `host`.
pub(crate) fn test_user(
    cluster: &TestCluster,
    host: &str,
    mode: SslMode,
    root: Option<&Path>,
) -> PgConfig {
    config(
        cluster,
        host,
        cluster.user(),
        cluster.password(),
        mode,
        root,
    )
}

/// One connect attempt with `config` on the current runtime `R`.
pub(crate) async fn connect<R: PgRuntime>(config: PgConfig) -> Result<PgConnection, PgError> {
    let connector = PgConnector::<R>::try_new(R::current().expect("inside the runtime"), config)?;
    connector.connect().await
}

/// Whether the server reports TLS (`pg_stat_ssl.ssl`) for `conn`'s backend, asked from
/// another session.
pub(crate) async fn server_sees_tls(cluster: &'static TestCluster, conn: &PgConnection) -> bool {
    let pid = conn.backend_pid().await.expect("backend pid");
    let query = format!("SELECT ssl FROM pg_stat_ssl WHERE pid = {pid}");
    let out = blocking(move || cluster.sql(&query).expect("pg_stat_ssl")).await;
    match out.as_str() {
        "t" => true,
        "f" => false,
        other => panic!("no pg_stat_ssl row for backend {pid}: {other:?}"),
    }
}

/// The connect error's text (its `Display`), panicking if the connect worked.
pub(crate) fn error_text(result: Result<PgConnection, PgError>, what: &str) -> String {
    match result {
        Ok(_) => panic!("{what}: connected, expected an error"),
        Err(e) => e.to_string(),
    }
}
