//! The `config_file` example's sample file and loading steps, and a pool built from them
//! against a real server.

use std::collections::HashMap;
use std::time::Duration;

use pg_pool::wire::{WireConnector, WirePoolable};
use pg_pool::{ConnPool, IdleOrder};
use pg_pool_examples::config_file::{load, resolve, sample_path};
use pg_pool_test_support::TestCluster;

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

#[test]
fn the_sample_file_parses_and_resolves() {
    let mut settings = load(&sample_path()).unwrap();
    assert_eq!(
        settings.url, None,
        "the sample leaves the connection to the environment"
    );
    settings.url = Some("postgres://app:pw-in-url@127.0.0.1:5439/shop".into());
    let (wire, config) = resolve(&settings, env(&[]), "sample-test").unwrap();
    assert_eq!(wire.addr, "127.0.0.1:5439");
    assert_eq!(config.name, "config-file-example");
    assert_eq!((config.max_size, config.min_idle), (8, 1));
    assert_eq!(config.checkout_timeout, Duration::from_secs(5));
    assert_eq!(config.connect_timeout, Duration::from_secs(3));
    assert_eq!(config.idle_timeout, Some(Duration::from_secs(300)));
    assert_eq!(config.health_check_interval, None);
    assert_eq!(config.idle_order, IdleOrder::Lifo);
    assert_eq!(config.slow_checkout_threshold, Duration::from_millis(500));
    let shown = format!("{settings:?}{wire:?}{config:?}");
    assert!(!shown.contains("pw-in-url"), "{shown}");
    let written = toml::to_string(&config).unwrap();
    assert!(!written.contains("pw-in-url"), "{written}");
}

#[test]
fn environment_overrides_the_file() {
    let mut settings = load(&sample_path()).unwrap();
    settings.url = Some("postgres://app@127.0.0.1/shop".into());
    let (_, config) = resolve(
        &settings,
        env(&[("PG_POOL_MAX_SIZE", "3"), ("PG_POOL_IDLE_TIMEOUT", "off")]),
        "sample-test",
    )
    .unwrap();
    assert_eq!(config.max_size, 3);
    assert_eq!(config.idle_timeout, None);

    // An override the pool rejects is an error naming the field, not a panic later.
    let e = resolve(&settings, env(&[("PG_POOL_MIN_IDLE", "9")]), "sample-test")
        .unwrap_err()
        .to_string();
    assert!(e.contains("min_idle"), "{e}");
}

#[test]
fn a_bad_file_names_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "[pool]\nmax_size = 8\ncheckout_timeout = \"5\"\n").unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(
        e.contains("bad.toml") && e.contains("pool_checkout_timeout"),
        "{e}"
    );
    std::fs::write(&path, "url = \"postgres://h\"\npasword = \"x\"\n").unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(e.contains("pasword") && e.contains("bad.toml:2:"), "{e}");
    // The line is not quoted: a mistyped password stays out of the message.
    std::fs::write(&path, "password = 73519246\n").unwrap();
    let e = load(&path).unwrap_err().to_string();
    assert!(e.contains("bad.toml:1:") && !e.contains("7351"), "{e}");
    // A driver key pg-pool-wire does not know is rejected when the driver config is built.
    std::fs::write(
        &path,
        "url = \"postgres://h\"\n[pool]\nstatement_cache = 4\n",
    )
    .unwrap();
    let settings = load(&path).unwrap();
    let e = resolve(&settings, env(&[]), "t").unwrap_err().to_string();
    assert!(e.contains("pool_statement_cache"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_builds_a_working_pool() {
    let cluster = TestCluster::shared();
    let mut settings = load(&sample_path()).unwrap();
    settings.url = Some(cluster.url().to_owned());
    let (wire, config) = resolve(&settings, env(&[]), "config-file-test").unwrap();
    let pool = ConnPool::<WirePoolable>::builder(WireConnector::new(wire))
        .config(config)
        .build()
        .await
        .unwrap();
    let mut conn = pool.get().await.unwrap();
    let name = conn
        .conn_mut()
        .query_value("SELECT current_setting('application_name')")
        .await
        .unwrap();
    assert_eq!(name.as_deref(), Some("config-file-test"));
    drop(conn);
    assert_eq!(pool.config().max_size, 8);
    assert_eq!(pool.config().name, "config-file-example");
    pool.drain().await;
}

#[test]
fn driver_keys_in_the_pool_table_reach_tokio_postgres() {
    use pg_pool_tokio_postgres::PgConfig;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pg.toml");
    std::fs::write(
        &path,
        "url = \"postgres://app@127.0.0.1/shop\"\n[pool]\nmax_size = 4\nstatement_cache = 16\n",
    )
    .unwrap();
    let settings = load(&path).unwrap();
    let config = PgConfig::from_conninfo(settings.conninfo_with_env(env(&[])).unwrap()).unwrap();
    println!("{config:?}");
    assert_eq!(config.pool_config().max_size, 4);
    assert_eq!(config.statement_cache_capacity, 16);

    std::fs::write(
        &path,
        "url = \"postgres://app@127.0.0.1/shop\"\n[pool]\nstatement_cahce = 16\n",
    )
    .unwrap();
    let settings = load(&path).unwrap();
    let e = PgConfig::from_conninfo(settings.conninfo_with_env(env(&[])).unwrap())
        .unwrap_err()
        .to_string();
    assert!(e.contains("pool_statement_cahce"), "{e}");
}
