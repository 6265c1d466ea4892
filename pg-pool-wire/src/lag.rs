//! Replication lag, for `ClusterPool`'s read routing: the query and its parsing are
//! `pg-pool-conninfo`'s, shared with the other driver.

use std::time::Duration;

use pg_pool_conninfo::{REPLICA_LAG_SQL, parse_replica_lag};
use pg_pool_core::ReplicaLag;

use crate::error::WireError;
use crate::wire_poolable::WirePoolable;

impl ReplicaLag for WirePoolable {
    async fn replica_lag(&mut self) -> Result<Option<Duration>, WireError> {
        let value = self.query_value(REPLICA_LAG_SQL).await?;
        parse_replica_lag(value.as_deref())
            .map_err(|reason| WireError::config("replica_lag", reason))
    }
}
