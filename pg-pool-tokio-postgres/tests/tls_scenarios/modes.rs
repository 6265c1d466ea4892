//! disable / allow / prefer / require against TLS and plain servers.

use pg_pool_conninfo::{ChannelBinding, SslMode};
use pg_pool_tokio_postgres::PgRuntime;

use super::{
    config, connect, error_text, files, plain_cluster, server_sees_tls, test_user, tls_cluster,
};

/// Each mode uses TLS exactly when libpq would.
pub(crate) async fn modes_follow_libpq<R: PgRuntime>(tag: &str) {
    let tls_server = tls_cluster().await;
    let plain = plain_cluster().await;
    let tls = files(tls_server);

    // prefer and require use TLS when the server offers it (no certificate check).
    for mode in [SslMode::Prefer, SslMode::Require] {
        let conn = connect::<R>(test_user(tls_server, "127.0.0.1", mode, None))
            .await
            .unwrap_or_else(|e| panic!("{tag}: {mode:?} on the TLS server: {e}"));
        assert!(
            server_sees_tls(tls_server, &conn).await,
            "{tag}: {mode:?} uses TLS"
        );
    }

    // prefer connects in clear to a server without TLS, as libpq; require fails.
    if plain.tls_files().is_none() && plain.is_throwaway() {
        let conn = connect::<R>(test_user(plain, "127.0.0.1", SslMode::Prefer, None))
            .await
            .unwrap_or_else(|e| panic!("{tag}: prefer on the plain server: {e}"));
        assert!(
            !server_sees_tls(plain, &conn).await,
            "{tag}: prefer fell back to plain"
        );
        let text = error_text(
            connect::<R>(test_user(plain, "127.0.0.1", SslMode::Require, None)).await,
            "require on a plain server",
        );
        assert!(
            text.contains("server does not support TLS"),
            "{tag}: {text}"
        );
    }

    // disable never uses TLS, so the TLS-only role is refused...
    let tls_only = |mode| {
        config(
            tls_server,
            "127.0.0.1",
            tls.tls_user(),
            tls.tls_password(),
            mode,
            None,
        )
    };
    let text = error_text(
        connect::<R>(tls_only(SslMode::Disable)).await,
        "disable, TLS-only role",
    );
    assert!(text.contains("no encryption"), "{tag}: {text}");
    // ...while allow tries plain text, is refused, and retries over TLS.
    let conn = connect::<R>(tls_only(SslMode::Allow))
        .await
        .unwrap_or_else(|e| panic!("{tag}: allow with the TLS-only role: {e}"));
    assert!(
        server_sees_tls(tls_server, &conn).await,
        "{tag}: allow retried with TLS"
    );
    // allow stays in plain text when the server accepts it.
    let conn = connect::<R>(test_user(tls_server, "127.0.0.1", SslMode::Allow, None))
        .await
        .unwrap_or_else(|e| panic!("{tag}: allow: {e}"));
    assert!(
        !server_sees_tls(tls_server, &conn).await,
        "{tag}: allow starts in plain text"
    );
    let conn = connect::<R>(test_user(tls_server, "127.0.0.1", SslMode::Disable, None))
        .await
        .unwrap_or_else(|e| panic!("{tag}: disable: {e}"));
    assert!(
        !server_sees_tls(tls_server, &conn).await,
        "{tag}: disable is plain"
    );

    // channel_binding=require: SCRAM-SHA-256-PLUS over TLS works (the server checks the
    // tls-server-end-point hash); without TLS it cannot be honoured.
    let mut cb = tls_only(SslMode::Require);
    cb.tls.channel_binding = ChannelBinding::Require;
    let conn = connect::<R>(cb)
        .await
        .unwrap_or_else(|e| panic!("{tag}: channel_binding=require over TLS: {e}"));
    assert!(server_sees_tls(tls_server, &conn).await);
    let mut cb = test_user(tls_server, "127.0.0.1", SslMode::Disable, None);
    cb.tls.channel_binding = ChannelBinding::Require;
    let text = error_text(
        connect::<R>(cb).await,
        "channel_binding=require in plain text",
    );
    assert!(text.contains("channel binding"), "{tag}: {text}");
}

/// Client-certificate (`cert`) authentication, and a handshake the server fails (a
/// certificate from the wrong CA) never falls back to plain text under prefer.
pub(crate) async fn client_certificates<R: PgRuntime>(tag: &str) {
    let cluster = tls_cluster().await;
    let tls = files(cluster);
    let mut with_cert = config(
        cluster,
        "localhost",
        tls.cert_user(),
        "",
        SslMode::VerifyFull,
        Some(tls.ca_cert()),
    );
    with_cert.tls.client_cert = Some(tls.client_cert().to_owned());
    with_cert.tls.client_key = Some(tls.client_key().to_owned());
    let conn = connect::<R>(with_cert)
        .await
        .unwrap_or_else(|e| panic!("{tag}: cert authentication: {e}"));
    let row = conn
        .query_one("SELECT current_user::text", &[])
        .await
        .expect("query");
    assert_eq!(row.get::<_, String>(0), tls.cert_user(), "{tag}");
    assert!(server_sees_tls(cluster, &conn).await);

    let text = error_text(
        connect::<R>(config(
            cluster,
            "localhost",
            tls.cert_user(),
            "",
            SslMode::VerifyFull,
            Some(tls.ca_cert()),
        ))
        .await,
        "cert role without a certificate",
    );
    assert!(
        text.contains("28000") || text.contains("certificate"),
        "{tag}: {text}"
    );

    // The test role could log in in plain text; a failed handshake must not lead there.
    let mut rogue = test_user(cluster, "127.0.0.1", SslMode::Prefer, None);
    rogue.tls.client_cert = Some(tls.rogue_client_cert().to_owned());
    rogue.tls.client_key = Some(tls.rogue_client_key().to_owned());
    let text = error_text(
        connect::<R>(rogue).await,
        "prefer with a rejected client certificate",
    );
    println!("{tag}: rejected client certificate under prefer: {text}");
    assert!(
        text.contains("alert") || text.contains("TLS"),
        "{tag}: {text}"
    );
}
