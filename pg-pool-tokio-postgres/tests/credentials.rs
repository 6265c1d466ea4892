//! Rotating credentials: a password provider consulted before each connect, on tokio,
//! async-std and smol.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use pg_pool_conninfo::SslMode;
use pg_pool_core::Connector as _;
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::tokio_postgres::Config;
use pg_pool_tokio_postgres::{PasswordProvider, PgConfig, PgConnector, PgError, PgPool, PgRuntime};

use common::{Harness, blocking, pool_config, sleep};

/// Settings for `role` on `cluster` with no password of their own.
fn role_config(cluster: &TestCluster, role: &str) -> PgConfig {
    let mut pg = Config::new();
    pg.host("127.0.0.1")
        .port(cluster.port())
        .user(role)
        .dbname(cluster.database())
        .application_name(role);
    let mut config = PgConfig::new(pg);
    config.tls.mode = SslMode::Disable;
    config
}

/// A provider that sets a new password on the server (`ALTER ROLE`) and returns it, as a
/// credential service would; counts its calls.
fn rotating(
    cluster: &'static TestCluster,
    role: String,
    calls: Arc<AtomicUsize>,
) -> PasswordProvider {
    PasswordProvider::new(move || {
        let role = role.clone();
        let n = calls.fetch_add(1, Ordering::SeqCst) + 1;
        async move {
            let password = format!("rotated-{n}");
            let sql = format!("ALTER ROLE {role} PASSWORD '{password}'");
            blocking(move || cluster.sql(&sql)).await?;
            Ok::<_, pg_pool_test_support::Error>(password)
        }
    })
}

async fn rotation<R: PgRuntime>(tag: &str) {
    let cluster: &'static TestCluster = blocking(TestCluster::shared).await;
    let role = format!("rotating_{}", tag.replace('-', "_"));
    let create = format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'initial'");
    blocking(move || cluster.sql(&create).expect("create role")).await;
    let runtime = R::current().expect("inside the runtime");

    // Each new session gets a fresh password; sessions opened with an older one go on.
    let calls = Arc::new(AtomicUsize::new(0));
    let connector = PgConnector::try_new(runtime.clone(), role_config(cluster, &role))
        .expect("valid settings")
        .with_password_provider(rotating(cluster, role.clone(), Arc::clone(&calls)));
    let mut pool_settings = pool_config(3);
    pool_settings.min_idle = 0;
    let pool = PgPool::builder(connector)
        .config(pool_settings)
        .runtime(runtime.clone())
        .build()
        .await
        .expect("pool builds");
    let first = pool.get().await.expect("first session");
    let second = pool.get().await.expect("second session, after a rotation");
    assert_eq!(
        calls.load(Ordering::SeqCst),
        2,
        "{tag}: one provider call per connect"
    );
    for conn in [&first, &second] {
        let row = conn
            .query_one("SELECT current_user::text", &[])
            .await
            .expect("old sessions work");
        assert_eq!(row.get::<_, String>(0), role);
    }
    drop((first, second));

    // A provider with a stale password fails its attempt once, with the server's error;
    // the pool does not retry it in a loop.
    let stale_calls = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&stale_calls);
    let stale = PasswordProvider::new(move || {
        counter.fetch_add(1, Ordering::SeqCst);
        async { Ok::<_, std::io::Error>("rotated-0") }
    });
    let connector = PgConnector::try_new(runtime.clone(), role_config(cluster, &role))
        .expect("valid settings")
        .with_password_provider(stale);
    let mut pool_settings = pool_config(2);
    pool_settings.min_idle = 0;
    let pool = PgPool::builder(connector)
        .config(pool_settings)
        .runtime(runtime.clone())
        .build()
        .await
        .expect("pool builds");
    let err = pool.get().await.expect_err("a stale password is refused");
    let code = err.connect_error().and_then(|e| match e {
        pg_pool_core::ConnectError::Driver(d) => d.code().map(str::to_owned),
        _ => None,
    });
    assert_eq!(code.as_deref(), Some("28P01"), "{tag}: {err}");
    assert_eq!(
        stale_calls.load(Ordering::SeqCst),
        1,
        "{tag}: one attempt, one call"
    );
    sleep::<R>(Duration::from_millis(500)).await;
    let later = stale_calls.load(Ordering::SeqCst);
    println!("{tag}: provider calls 500 ms after the failure: {later}");
    assert_eq!(
        later, 1,
        "{tag}: nothing retried the stale password without a caller"
    );
    drop(pool);

    let drop_role = format!("DROP ROLE IF EXISTS {role}");
    blocking(move || cluster.sql(&drop_role).expect("drop role")).await;
}

async fn provider_failures<R: PgRuntime>(tag: &str) {
    let cluster: &'static TestCluster = blocking(TestCluster::shared).await;
    let runtime = R::current().expect("inside the runtime");
    let config = role_config(cluster, cluster.user());
    let attempt = |provider| {
        let connector = PgConnector::try_new(runtime.clone(), config.clone())
            .expect("valid settings")
            .with_password_provider(provider);
        async move { connector.connect().await.expect_err("the attempt fails") }
    };

    // An error: reported with its cause as the source, never in the Display.
    let err = attempt(PasswordProvider::new(|| async {
        Err::<String, _>(std::io::Error::other(
            "vault refused lease token=SECRET-9F2",
        ))
    }))
    .await;
    assert!(
        matches!(err, PgError::PasswordProvider { .. }),
        "{tag}: {err:?}"
    );
    let shown = err.to_string();
    assert!(
        shown.contains("password provider") && !shown.contains("SECRET-9F2"),
        "{tag}: {shown}"
    );
    let cause = std::error::Error::source(&err)
        .expect("a cause")
        .to_string();
    assert!(cause.contains("vault refused"), "{tag}: {cause}");

    // A panic, in the call or in the future, is contained.
    let err = attempt(PasswordProvider::new(
        || -> std::future::Ready<Result<String, std::io::Error>> { panic!("provider bug") },
    ))
    .await;
    assert!(
        matches!(err, PgError::PasswordProvider { .. }),
        "{tag}: {err:?}"
    );
    let err = attempt(PasswordProvider::new(|| async {
        if true {
            panic!("provider bug, later");
        }
        Ok::<String, std::io::Error>(String::new())
    }))
    .await;
    let cause = std::error::Error::source(&err)
        .expect("a cause")
        .to_string();
    assert!(cause.contains("panicked"), "{tag}: {cause}");

    // A password the protocol cannot carry is refused before anything is sent.
    let err = attempt(PasswordProvider::new(|| async {
        Ok::<_, std::io::Error>("a\0b")
    }))
    .await;
    let cause = std::error::Error::source(&err)
        .expect("a cause")
        .to_string();
    assert!(cause.contains("NUL"), "{tag}: {cause}");

    // The provider's password wins over the config's.
    let good = cluster.password().to_owned();
    let mut with_wrong = config.clone();
    with_wrong.pg.password("not-the-password");
    let connector = PgConnector::try_new(runtime.clone(), with_wrong)
        .expect("valid settings")
        .with_password_provider(PasswordProvider::new(move || {
            let good = good.clone();
            async move { Ok::<_, std::io::Error>(good) }
        }));
    connector
        .connect()
        .await
        .unwrap_or_else(|e| panic!("{tag}: provider password: {e}"));
    let shown = format!("{:?} {:?}", connector.config(), connector.tls());
    assert!(!shown.contains(cluster.password()), "{tag}: Debug leaks");
}

macro_rules! on_runtime {
    ($name:ident, $harness:ty, $rt:ty) => {
        mod $name {
            use super::*;

            #[test]
            fn rotating_credentials() {
                <$harness>::block_on(rotation::<$rt>(stringify!($name)));
            }

            #[test]
            fn provider_failures_are_contained() {
                <$harness>::block_on(provider_failures::<$rt>(stringify!($name)));
            }
        }
    };
}

on_runtime!(tokio_mt, common::TokioMt, pg_pool_tokio::Tokio);
on_runtime!(async_std, common::AsyncStdRt, pg_pool_async_std::AsyncStd);
on_runtime!(smol, common::SmolRt, pg_pool_smol::Smol);
