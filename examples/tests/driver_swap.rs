//! The driver swap against a real server: the same application code gives the same results
//! with pg-pool-wire and with pg-pool-tokio-postgres.

use pg_pool::wire::{WireConnector, WirePoolable};
use pg_pool::{ConnPool, Tokio};
use pg_pool_examples::swap::{app_config, app_hooks, run_app};
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::{PgConfig, PgConnection, PgConnector};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_application_on_both_drivers() {
    let cluster = TestCluster::shared();
    let url = cluster.url().to_owned();

    let connector = WireConnector::from_url(&url).unwrap();
    let pool = ConnPool::<WirePoolable>::builder(connector)
        .config(app_config())
        .hooks(app_hooks())
        .build()
        .await
        .unwrap();
    let wire = run_app(pool).await.unwrap();

    let connector = PgConnector::<Tokio>::current(PgConfig::from_url(&url).unwrap()).unwrap();
    let pool = ConnPool::<PgConnection>::builder(connector)
        .config(app_config())
        .hooks(app_hooks())
        .build()
        .await
        .unwrap();
    let tokio_postgres = run_app(pool).await.unwrap();

    println!("wire: {wire:?}\ntokio-postgres: {tokio_postgres:?}");
    for report in [&wire, &tokio_postgres] {
        assert_eq!(report.queries, 160);
        assert_eq!(
            report.application_names,
            ["swap-app"],
            "checkout hook ran on the server"
        );
        assert!(report.creates >= 1 && report.creates <= 4, "{report:?}");
        assert_eq!(report.left_after_drain, 0);
    }
    let backends = cluster
        .wait_for_backend_count("swap-app", 0, std::time::Duration::from_secs(5))
        .unwrap();
    assert_eq!(backends, 0, "no session left tagged by the application");
}
