//! What the statement-cache tests share: a pool of one and the server's view of the
//! session's prepared statements.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use pg_pool_test_support::TestCluster;
use pg_pool_tokio::Tokio;
use pg_pool_tokio_postgres::{PgConfig, PgConnection, PgPool};

use crate::common::{first_row, pool, pool_config};

/// A pool of one, no test on checkout, with `pg`.
pub(crate) async fn single(pg: PgConfig) -> PgPool<Tokio> {
    let mut config = pool_config(1);
    config.test_on_checkout = false;
    pool::<Tokio>(pg, config).await
}

/// How many statements the session has prepared through the protocol (not SQL `PREPARE`),
/// and how many times the one for `sql` ran, if it exists.
pub(crate) async fn server_statements(conn: &PgConnection, sql: &str) -> (i64, Option<i64>) {
    let quoted = sql.replace('\'', "''");
    let rows = conn
        .simple_query(&format!(
            "SELECT (SELECT count(*) FROM pg_prepared_statements WHERE NOT from_sql), \
             (SELECT generic_plans + custom_plans FROM pg_prepared_statements \
              WHERE NOT from_sql AND statement = '{quoted}')"
        ))
        .await
        .unwrap();
    let row = first_row(&rows);
    (row[0].parse().unwrap(), row[1].parse().ok())
}

/// The last statement backend `pid` ran, as the server reports it.
pub(crate) async fn last_query(cluster: &'static TestCluster, pid: i32) -> String {
    let q = format!("SELECT query FROM pg_stat_activity WHERE pid = {pid}");
    crate::common::blocking(move || cluster.sql(&q).unwrap()).await
}
