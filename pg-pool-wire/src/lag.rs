//! Replication lag, for `ClusterPool`'s read routing.

use std::time::Duration;

use pg_pool_core::ReplicaLag;

use crate::error::WireError;
use crate::wire_poolable::WirePoolable;

/// How far the server's replay is behind what it received, in seconds: `NULL` on a server
/// that is not a standby, `0` when it has replayed everything it received, otherwise the
/// age of the last transaction it replayed, or infinity when it is behind but has replayed
/// no transaction since it started (so the lag cannot be timed, only known to exist).
pub(crate) const LAG_SQL: &str = "SELECT CASE \
    WHEN NOT pg_is_in_recovery() THEN NULL \
    WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 \
    ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8, \
                  'Infinity'::float8) END";

/// Parses what [`LAG_SQL`] returns.
pub(crate) fn parse_lag(value: Option<&str>) -> Result<Option<Duration>, WireError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let seconds: f64 = value
        .parse()
        .map_err(|_| WireError::config("replica_lag", format!("unexpected lag `{value}`")))?;
    Ok(Some(
        Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX),
    ))
}

impl ReplicaLag for WirePoolable {
    async fn replica_lag(&mut self) -> Result<Option<Duration>, WireError> {
        let value = self.query_value(LAG_SQL).await?;
        parse_lag(value.as_deref())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_values() {
        assert_eq!(parse_lag(None).unwrap(), None);
        assert_eq!(parse_lag(Some("0")).unwrap(), Some(Duration::ZERO));
        assert_eq!(
            parse_lag(Some("1.5")).unwrap(),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_lag(Some("-0.2")).unwrap(), Some(Duration::ZERO));
        assert_eq!(parse_lag(Some("Infinity")).unwrap(), Some(Duration::MAX));
        assert!(parse_lag(Some("soon")).is_err());
    }
}
