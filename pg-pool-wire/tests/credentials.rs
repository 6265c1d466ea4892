//! Rotating credentials through pg-wired: a password provider consulted before each
//! connect.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pg_pool_conninfo::SslMode;
use pg_pool_core::{ConnectError, Connector, LifecycleHooks};
use pg_pool_test_support::TestCluster;
use pg_pool_wire::{
    PasswordProvider, WireConfig, WireConnector, WireError, WirePool, WirePoolable,
};

use common::{blocking, pool_config};

fn role_config(cluster: &TestCluster, role: &str) -> WireConfig {
    let mut config = WireConfig::default();
    config.addr = format!("127.0.0.1:{}", cluster.port());
    config.user = role.to_owned();
    config.database = cluster.database().to_owned();
    config.application_name = Some(role.to_owned());
    config.tls.mode = SslMode::Disable;
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotating_credentials() {
    let cluster: &'static TestCluster = blocking(TestCluster::shared).await;
    let role = "rotating_wire";
    let create = format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'initial'");
    blocking(move || cluster.sql(&create).expect("create role")).await;

    // Each attempt sets a new password on the server and uses it.
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&calls);
    let provider = PasswordProvider::new(move || {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            let password = format!("rotated-{n}");
            let sql = format!("ALTER ROLE {role} PASSWORD '{password}'");
            blocking(move || cluster.sql(&sql)).await?;
            Ok::<_, pg_pool_test_support::Error>(password)
        }
    });
    let connector = WireConnector::try_new(role_config(cluster, role))
        .expect("valid settings")
        .with_password_provider(provider);
    let mut settings = pool_config(3);
    settings.min_idle = 0;
    let pool = WirePool::builder(connector)
        .config(settings)
        .hooks(LifecycleHooks::default())
        .build()
        .await
        .expect("pool builds");
    let mut first = pool.get().await.expect("first session");
    let mut second = pool.get().await.expect("second session, after a rotation");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "one provider call per connect"
    );
    for conn in [&mut first, &mut second] {
        let user = conn
            .query_value("SELECT current_user")
            .await
            .expect("old sessions work");
        assert_eq!(user.as_deref(), Some(role));
    }
    drop((first, second));

    // A stale password fails its attempt once with the server's error; nothing retries
    // it without a caller.
    let stale_calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&stale_calls);
    let stale = PasswordProvider::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, std::io::Error>("rotated-0") }
    });
    let connector = WireConnector::try_new(role_config(cluster, role))
        .expect("valid settings")
        .with_password_provider(stale);
    let mut settings = pool_config(2);
    settings.min_idle = 0;
    let pool = WirePool::builder(connector)
        .config(settings)
        .hooks(LifecycleHooks::default())
        .build()
        .await
        .expect("pool builds");
    let err = pool.get().await.expect_err("a stale password is refused");
    let code = err.connect_error().and_then(|e| match e {
        ConnectError::Driver(d) => d.code().map(str::to_owned),
        _ => None,
    });
    assert_eq!(code.as_deref(), Some("28P01"), "{err}");
    assert_eq!(stale_calls.load(Ordering::SeqCst), 1);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let later = stale_calls.load(Ordering::SeqCst);
    println!("wire: provider calls 500 ms after the failure: {later}");
    assert_eq!(
        later, 1,
        "nothing retried the stale password without a caller"
    );
    drop(pool);
    let drop_role = format!("DROP ROLE IF EXISTS {role}");
    blocking(move || cluster.sql(&drop_role).expect("drop role")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provider_failures_are_contained() {
    let cluster: &'static TestCluster = blocking(TestCluster::shared).await;
    let config = role_config(cluster, cluster.user());
    let attempt = |provider| {
        let connector = WireConnector::try_new(config.clone())
            .expect("valid settings")
            .with_password_provider(provider);
        async move {
            Connector::<WirePoolable>::connect(&connector)
                .await
                .expect_err("the attempt fails")
        }
    };
    let err = attempt(PasswordProvider::new(|| async {
        Err::<String, _>(std::io::Error::other(
            "vault refused lease token=SECRET-9F2",
        ))
    }))
    .await;
    assert!(matches!(err, WireError::PasswordProvider { .. }), "{err:?}");
    let shown = err.to_string();
    assert!(
        shown.contains("password provider") && !shown.contains("SECRET-9F2"),
        "{shown}"
    );
    let cause = std::error::Error::source(&err)
        .expect("a cause")
        .to_string();
    assert!(cause.contains("vault refused"), "{cause}");

    let err = attempt(PasswordProvider::new(
        || -> std::future::Ready<Result<String, std::io::Error>> { panic!("provider bug") },
    ))
    .await;
    let cause = std::error::Error::source(&err)
        .expect("a cause")
        .to_string();
    assert!(cause.contains("panicked"), "{cause}");

    let err = attempt(PasswordProvider::new(|| async {
        Ok::<_, std::io::Error>("a\0b")
    }))
    .await;
    let cause = std::error::Error::source(&err)
        .expect("a cause")
        .to_string();
    assert!(cause.contains("NUL"), "{cause}");

    // The provider's password wins over the config's.
    let mut wrong = config.clone();
    wrong.password = "not-the-password".into();
    let good = cluster.password().to_owned();
    let connector = WireConnector::try_new(wrong)
        .expect("valid settings")
        .with_password_provider(PasswordProvider::new(move || {
            let good = good.clone();
            async move { Ok::<_, std::io::Error>(good) }
        }));
    Connector::<WirePoolable>::connect(&connector)
        .await
        .expect("provider's password");
    assert!(
        !format!("{connector:?}").contains("not-the-password"),
        "Debug leaks"
    );
}
