//! TLS through pg-wired against real servers: what works, what is refused when the
//! connector is built, and what the server itself reports (`pg_stat_ssl`).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use pg_pool_conninfo::{ChannelBinding, RootCerts, SslMode};
use pg_pool_core::Connector;
use pg_pool_test_support::TestCluster;
use pg_pool_wire::{AsyncWirePoolable, WireConfig, WireConnector, WireError, WirePoolable};

use common::blocking;

async fn tls_cluster() -> &'static TestCluster {
    blocking(TestCluster::tls_shared).await
}

/// Settings for `user` on `cluster` at `host`, with `mode` and roots.
fn config(
    cluster: &TestCluster,
    host: &str,
    user: &str,
    password: &str,
    mode: SslMode,
    root: Option<&Path>,
) -> WireConfig {
    let mut config = WireConfig::default();
    config.addr = format!("{host}:{}", cluster.port());
    config.user = user.to_owned();
    config.password = password.to_owned();
    config.database = cluster.database().to_owned();
    config.tls.mode = mode;
    config.tls.root_certs = root.map(|p| RootCerts::File(p.to_owned()));
    config
}

fn test_user(cluster: &TestCluster, host: &str, mode: SslMode, root: Option<&Path>) -> WireConfig {
    config(
        cluster,
        host,
        cluster.user(),
        cluster.password(),
        mode,
        root,
    )
}

async fn connect(config: WireConfig) -> Result<WirePoolable, WireError> {
    Connector::<WirePoolable>::connect(&WireConnector::try_new(config)?).await
}

/// Whether the server reports TLS for `conn`'s backend, asked from another session.
async fn server_sees_tls(cluster: &'static TestCluster, conn: &mut WirePoolable) -> bool {
    let pid = conn
        .query_value("SELECT pg_backend_pid()")
        .await
        .expect("backend pid")
        .expect("a pid");
    let query = format!("SELECT ssl FROM pg_stat_ssl WHERE pid = {pid}");
    let out = blocking(move || cluster.sql(&query).expect("pg_stat_ssl")).await;
    match out.as_str() {
        "t" => true,
        "f" => false,
        other => panic!("no pg_stat_ssl row for backend {pid}: {other:?}"),
    }
}

fn error_text(result: Result<WirePoolable, WireError>, what: &str) -> String {
    match result {
        Ok(_) => panic!("{what}: connected, expected an error"),
        Err(e) => e.to_string(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verification_and_modes() {
    let cluster = tls_cluster().await;
    let tls = cluster.tls_files().unwrap();
    let ca = Some(tls.ca_cert());

    let mut conn = connect(test_user(cluster, "localhost", SslMode::VerifyFull, ca))
        .await
        .expect("verify-full to localhost");
    assert!(
        server_sees_tls(cluster, &mut conn).await,
        "verify-full uses TLS"
    );

    let text = error_text(
        connect(test_user(cluster, "127.0.0.1", SslMode::VerifyFull, ca)).await,
        "verify-full to 127.0.0.1",
    );
    assert!(text.contains("do not match the host name"), "{text}");
    println!("wire, verify-full, wrong name: {text}");

    let text = error_text(
        connect(test_user(
            cluster,
            "localhost",
            SslMode::VerifyFull,
            Some(tls.other_ca_cert()),
        ))
        .await,
        "the wrong CA",
    );
    assert!(text.contains("not signed by a trusted root"), "{text}");

    // prefer and require use TLS when offered (verified: pg-wired always verifies).
    for mode in [SslMode::Prefer, SslMode::Require] {
        let mut conn = connect(test_user(cluster, "localhost", mode, ca))
            .await
            .unwrap_or_else(|e| panic!("{mode:?}: {e}"));
        assert!(
            server_sees_tls(cluster, &mut conn).await,
            "{mode:?} uses TLS"
        );
    }
    // Without a root, pg-wired checks against the bundled public roots: the test CA is
    // not one, so prefer fails instead of connecting unverified, and never in plain text.
    let text = error_text(
        connect(test_user(cluster, "localhost", SslMode::Prefer, None)).await,
        "prefer without a root",
    );
    assert!(text.contains("not signed by a trusted root"), "{text}");

    // allow: plain text when accepted, TLS when the server insists.
    let mut conn = connect(test_user(cluster, "localhost", SslMode::Allow, ca))
        .await
        .expect("allow");
    assert!(
        !server_sees_tls(cluster, &mut conn).await,
        "allow starts in plain text"
    );
    let tls_only = |mode| {
        config(
            cluster,
            "localhost",
            tls.tls_user(),
            tls.tls_password(),
            mode,
            ca,
        )
    };
    let mut conn = connect(tls_only(SslMode::Allow))
        .await
        .expect("allow, TLS-only role");
    assert!(
        server_sees_tls(cluster, &mut conn).await,
        "allow retried over TLS"
    );
    let text = error_text(
        connect(tls_only(SslMode::Disable)).await,
        "disable, TLS-only role",
    );
    assert!(text.contains("no encryption"), "{text}");

    // channel_binding=require: SCRAM-SHA-256-PLUS over TLS.
    let mut cb = tls_only(SslMode::VerifyFull);
    cb.tls.channel_binding = ChannelBinding::Require;
    let mut conn = connect(cb).await.expect("channel binding over TLS");
    assert!(server_sees_tls(cluster, &mut conn).await);
    let mut cb = test_user(cluster, "localhost", SslMode::Disable, None);
    cb.tls.channel_binding = ChannelBinding::Require;
    let text = error_text(connect(cb).await, "channel_binding=require in plain text");
    assert!(text.contains("channel_binding"), "{text}");

    // Client-certificate authentication.
    let mut with_cert = config(
        cluster,
        "localhost",
        tls.cert_user(),
        "",
        SslMode::VerifyFull,
        ca,
    );
    with_cert.tls.client_cert = Some(tls.client_cert().to_owned());
    with_cert.tls.client_key = Some(tls.client_key().to_owned());
    let mut conn = connect(with_cert.clone())
        .await
        .expect("cert authentication");
    let user = conn
        .query_value("SELECT current_user")
        .await
        .expect("query");
    assert_eq!(user.as_deref(), Some(tls.cert_user()));
    assert!(server_sees_tls(cluster, &mut conn).await);
    // The pipelined connection kind takes the same path.
    let connector = WireConnector::try_new(with_cert).unwrap();
    let conn = Connector::<AsyncWirePoolable>::connect(&connector)
        .await
        .expect("async conn");
    drop(conn);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_server() {
    let cluster: &'static TestCluster = blocking(TestCluster::shared).await;
    if cluster.tls_files().is_some() || !cluster.is_throwaway() {
        return;
    }
    // prefer connects in clear to a server without TLS (it answers `N`), as libpq.
    let mut conn = connect(test_user(cluster, "127.0.0.1", SslMode::Prefer, None))
        .await
        .expect("prefer on a plain server");
    assert!(!server_sees_tls(cluster, &mut conn).await);
    let text = error_text(
        connect(test_user(cluster, "127.0.0.1", SslMode::Require, None)).await,
        "require on a plain server",
    );
    assert!(text.contains("does not offer TLS"), "{text}");
}

#[test]
fn unsupported_settings_are_refused_when_built() {
    let refused = |config: WireConfig| WireConnector::try_new(config).unwrap_err().to_string();
    let mut c = WireConfig::default();
    c.tls.mode = SslMode::VerifyCa;
    c.tls.root_certs = Some(RootCerts::File("/nonexistent/ca.crt".into()));
    assert!(refused(c.clone()).contains("verify-ca cannot be honoured"));
    c.tls.mode = SslMode::VerifyFull;
    assert!(refused(c.clone()).contains("/nonexistent/ca.crt"));
    c.tls.root_certs = None;
    assert!(refused(c.clone()).contains("need sslrootcert"));
    let mut c = WireConfig::default();
    c.tls.channel_binding = ChannelBinding::Disable;
    assert!(refused(c.clone()).contains("channel_binding=disable"));
    c.tls.mode = SslMode::Disable;
    assert!(WireConnector::try_new(c).is_ok());
    let mut c = WireConfig::default();
    c.addr = "/var/run/postgresql:5432".into();
    let text = refused(c.clone());
    assert!(
        text.contains("unix sockets are not supported by pg-wired"),
        "{text}"
    );
    // `new` keeps the problem and every attempt reports it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let attempt: Result<WirePoolable, WireError> =
        rt.block_on(Connector::<WirePoolable>::connect(&WireConnector::new(c)));
    assert!(matches!(attempt, Err(WireError::Config { .. })));
}

/// The TLS handshake's share of a pg-wired connect (SCRAM included), interleaved.
/// Printed, not asserted.
#[tokio::test(flavor = "current_thread")]
async fn handshake_cost_is_measured() {
    let cluster = tls_cluster().await;
    let ca = cluster.tls_files().unwrap().ca_cert();
    let connectors = [
        (
            "plain (disable)",
            WireConnector::try_new(test_user(cluster, "localhost", SslMode::Disable, None))
                .unwrap(),
        ),
        (
            "TLS (verify-full)",
            WireConnector::try_new(test_user(
                cluster,
                "localhost",
                SslMode::VerifyFull,
                Some(ca),
            ))
            .unwrap(),
        ),
    ];
    const ROUNDS: usize = 30;
    let mut times = vec![Vec::<Duration>::new(); connectors.len()];
    for round in 0..=ROUNDS {
        for (i, (_, connector)) in connectors.iter().enumerate() {
            let start = Instant::now();
            let conn = Connector::<WirePoolable>::connect(connector)
                .await
                .expect("connects");
            if round > 0 {
                times[i].push(start.elapsed());
            }
            drop(conn);
        }
    }
    for ((name, _), times) in connectors.iter().zip(&mut times) {
        times.sort();
        assert_eq!(times.len(), ROUNDS);
        println!(
            "wire connect, {name}: median {:?}, p90 {:?}, min {:?} over {ROUNDS}",
            times[ROUNDS / 2],
            times[ROUNDS * 9 / 10],
            times[0]
        );
    }
}

/// Of several hosts, each is verified against its own name: the certificate names
/// `localhost` only, so `127.0.0.1` fails verification and the walk moves on to
/// `localhost` on the same server, which passes; with neither name right, the error names
/// the mismatch of each host.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_host_is_verified_against_its_own_name() {
    let cluster = tls_cluster().await;
    let ca = Some(cluster.tls_files().unwrap().ca_cert());
    let mut config = test_user(cluster, "127.0.0.1", SslMode::VerifyFull, ca);
    config.addr = format!("127.0.0.1:{0},localhost:{0}", cluster.port());
    let mut conn = connect(config.clone())
        .await
        .expect("the second host's name matches");
    assert!(server_sees_tls(cluster, &mut conn).await);
    config.addr = format!("localhost:{0},127.0.0.1:{0}", cluster.port());
    connect(config.clone())
        .await
        .expect("the first host's name matches");
    config.addr = format!("127.0.0.1:{0},127.0.0.1:{0}", cluster.port());
    let error = match connect(config).await {
        Ok(_) => panic!("connected with a certificate for another name"),
        Err(WireError::Hosts(error)) => error,
        Err(other) => panic!("{other:?}"),
    };
    println!("two hosts, both the wrong name: {error}");
    assert_eq!(error.errors().len(), 2);
    for host in error.errors() {
        assert!(matches!(host.error(), WireError::Tls { .. }), "{host}");
        assert!(
            host.to_string().contains("do not match the host name"),
            "{host}"
        );
    }
}
