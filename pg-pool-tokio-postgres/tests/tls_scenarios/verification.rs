//! What each sslmode verifies, against the kit's TLS server (certificate for `localhost`).

use pg_pool_conninfo::SslMode;
use pg_pool_tokio_postgres::PgRuntime;

use super::{config, connect, error_text, files, server_sees_tls, test_user, tls_cluster};

/// verify-full checks chain and name; verify-ca (and require with a root) only the chain.
pub(crate) async fn certificates_are_verified_as_libpq_does<R: PgRuntime>(tag: &str) {
    let cluster = tls_cluster().await;
    let tls = files(cluster);
    let ca = Some(tls.ca_cert());

    let conn = connect::<R>(test_user(cluster, "localhost", SslMode::VerifyFull, ca))
        .await
        .unwrap_or_else(|e| panic!("{tag}: verify-full to localhost: {e}"));
    assert!(
        server_sees_tls(cluster, &conn).await,
        "{tag}: verify-full uses TLS"
    );

    let text = error_text(
        connect::<R>(test_user(cluster, "127.0.0.1", SslMode::VerifyFull, ca)).await,
        "verify-full to 127.0.0.1",
    );
    assert!(
        text.contains("do not match the host name") && text.contains("127.0.0.1"),
        "{tag}: {text}"
    );
    println!("{tag}: verify-full, wrong name: {text}");

    for mode in [SslMode::VerifyCa, SslMode::Require] {
        let conn = connect::<R>(test_user(cluster, "127.0.0.1", mode, ca))
            .await
            .unwrap_or_else(|e| panic!("{tag}: {mode:?} to 127.0.0.1 with the CA: {e}"));
        assert!(server_sees_tls(cluster, &conn).await, "{tag}: {mode:?}");
    }

    let other = Some(tls.other_ca_cert());
    for (mode, host) in [
        (SslMode::VerifyFull, "localhost"),
        (SslMode::VerifyCa, "127.0.0.1"),
        (SslMode::Require, "127.0.0.1"),
    ] {
        let text = error_text(
            connect::<R>(test_user(cluster, host, mode, other)).await,
            "the wrong CA",
        );
        assert!(
            text.contains("not signed by a trusted root"),
            "{tag}: {mode:?}: {text}"
        );
    }

    // A TLS-only role: with a certificate check, still works over TLS.
    let conn = connect::<R>(config(
        cluster,
        "localhost",
        tls.tls_user(),
        tls.tls_password(),
        SslMode::VerifyFull,
        ca,
    ))
    .await
    .unwrap_or_else(|e| panic!("{tag}: TLS-only role: {e}"));
    assert!(server_sees_tls(cluster, &conn).await);
}
