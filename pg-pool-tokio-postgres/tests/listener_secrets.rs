//! The listener with rotating credentials, on tokio, async-std and smol: every reconnect
//! attempt fetches a fresh password from the provider; failed attempts are logged, the
//! final permanent error too, and no log line, error Display, Debug or source chain holds
//! any of the passwords. One test (the capture is the process's global subscriber) runs
//! the scenario on each runtime in turn.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pg_pool_conninfo::SslMode;
use pg_pool_core::ConnPoolConfig;
use pg_pool_test_support::{FaultProxy, ProxyMode, TestCluster, TraceCapture, error_chain};
use pg_pool_tokio_postgres::tokio_postgres::Config;
use pg_pool_tokio_postgres::{
    ListenerEvent, PasswordProvider, PgConfig, PgConnector, PgListener, PgRuntime,
};

use common::{AsyncStdRt, Harness, SmolRt, TokioMt, blocking, pg_config};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn reconnects_fetch_fresh_passwords_and_log_none() {
    let capture = TraceCapture::install_global();
    let mut texts = Vec::new();
    let mut secrets = Vec::new();
    for (tag, run) in [
        ("tokio_mt", run_on::<TokioMt> as fn(&'static str) -> Outcome),
        ("async_std", run_on::<AsyncStdRt>),
        ("smol", run_on::<SmolRt>),
    ] {
        let outcome = run(tag);
        texts.extend(outcome.texts);
        secrets.extend(outcome.secrets);
    }
    let lines = capture.lines();
    assert!(
        lines.iter().any(|l| l.contains("could not reconnect")),
        "failed attempts are logged"
    );
    assert!(
        lines.iter().any(|l| l.contains("the listener ends")),
        "the final error is logged"
    );
    texts.extend(lines);
    for secret in &secrets {
        for text in &texts {
            assert!(!text.contains(secret.as_str()), "a password leaked: {text}");
        }
    }
    println!(
        "{} log lines and error texts searched for {} passwords: none found",
        texts.len(),
        secrets.len()
    );
}

struct Outcome {
    texts: Vec<String>,
    secrets: Vec<String>,
}

fn run_on<H: Harness>(tag: &'static str) -> Outcome {
    H::block_on(Box::pin(scenario::<H::Rt>(tag)))
}

async fn scenario<R: PgRuntime>(tag: &'static str) -> Outcome {
    let cluster: &'static TestCluster = blocking(TestCluster::shared).await;
    let role = format!("listen_rotating_{tag}");
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos()
        % 1_000_000_007;
    let [first, second, third] = ["Fir5t", "Sec0nd", "Th1rd"].map(|p| format!("{p}-{tag}-{nonce}"));
    let create = format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD '{first}'");
    blocking(move || cluster.sql(&create).expect("create role")).await;
    let proxy = FaultProxy::start(cluster.addr()).expect("proxy");

    // The provider hands out whatever `current` holds, counting its calls.
    let current = Arc::new(Mutex::new(first.clone()));
    let calls = Arc::new(AtomicUsize::new(0));
    let provider = {
        let (current, calls) = (current.clone(), calls.clone());
        PasswordProvider::new(move || {
            calls.fetch_add(1, Ordering::SeqCst);
            let password = current.lock().unwrap().clone();
            async move { Ok::<_, std::io::Error>(password) }
        })
    };
    let mut pg = Config::new();
    pg.host("127.0.0.1")
        .port(proxy.port())
        .user(&role)
        .dbname(cluster.database())
        .application_name(&role);
    let mut config = PgConfig::new(pg);
    config.tls.mode = SslMode::Disable;
    let connector = PgConnector::try_new(R::current().unwrap(), config)
        .expect("valid settings")
        .with_password_provider(provider);
    let mut settings = ConnPoolConfig::default();
    settings.connect_timeout = Duration::from_secs(10);
    settings.connect_backoff = Duration::from_millis(50);
    settings.connect_backoff_max = Duration::from_millis(300);
    let mut listener = PgListener::connect_with(&connector, &settings)
        .await
        .expect("the listener connects");
    let channel = format!("rotating_{tag}");
    listener.listen(&channel).await.expect("LISTEN");
    assert_eq!(calls.load(Ordering::SeqCst), 1, "one fetch per connect");

    // The password rotates while the server is unreachable: attempts fail (and are
    // logged), then one succeeds with the new password.
    let rotate = format!("ALTER ROLE {role} PASSWORD '{second}'");
    blocking(move || cluster.sql(&rotate).expect("rotate")).await;
    *current.lock().unwrap() = second.clone();
    proxy.set_mode(ProxyMode::Refuse);
    let role2 = role.clone();
    let killed = blocking(move || cluster.terminate_backends(&role2).expect("terminate")).await;
    assert_eq!(killed, 1);
    common::sleep::<R>(Duration::from_millis(800)).await;
    proxy.set_mode(ProxyMode::Pass);
    let gap =
        match pg_pool_core::runtime::timeout(&R::current().unwrap(), WAIT, listener.recv()).await {
            Some(Ok(ListenerEvent::Reconnected(gap))) => gap,
            other => panic!("[{tag}] expected the gap, got {other:?}"),
        };
    let fetched = calls.load(Ordering::SeqCst);
    println!("[{tag}] reconnected with the rotated password: {gap:?}, {fetched} fetches in all");
    assert!(gap.attempts > 1, "{gap:?}");
    assert_eq!(fetched, 1 + gap.attempts as usize, "one fetch per attempt");

    let sender = PgConnector::<R>::try_new(
        R::current().unwrap(),
        pg_config(cluster, None, &format!("tp-listen-rotating-tx-{tag}")),
    )
    .unwrap();
    let sender = pg_pool_core::Connector::connect(&sender)
        .await
        .expect("sender");
    sender
        .execute("SELECT pg_notify($1, 'after rotation')", &[&channel])
        .await
        .unwrap();
    match pg_pool_core::runtime::timeout(&R::current().unwrap(), WAIT, listener.recv()).await {
        Some(Ok(ListenerEvent::Notification(n))) => assert_eq!(n.payload(), "after rotation"),
        other => panic!("[{tag}] expected the notification, got {other:?}"),
    }

    // Rotated on the server but not in the provider: a permanent error ends the listener.
    let rotate = format!("ALTER ROLE {role} PASSWORD '{third}'");
    blocking(move || cluster.sql(&rotate).expect("rotate")).await;
    let role2 = role.clone();
    blocking(move || cluster.terminate_backends(&role2).expect("terminate")).await;
    let error =
        match pg_pool_core::runtime::timeout(&R::current().unwrap(), WAIT, listener.recv()).await {
            Some(Err(error)) => error,
            other => panic!("[{tag}] expected the listener to end, got {other:?}"),
        };
    assert_eq!(
        error.pg_error().and_then(|e| e.code()),
        Some("28P01"),
        "{error:?}"
    );
    let texts = vec![
        error_chain(&error),
        format!("{error:?}"),
        format!("{listener:?}"),
    ];
    let drop_role = format!("DROP ROLE {role}");
    blocking(move || cluster.sql(&drop_role).expect("drop role")).await;
    Outcome {
        texts,
        secrets: vec![first, second, third],
    }
}
