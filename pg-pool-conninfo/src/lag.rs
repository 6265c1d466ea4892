//! Replication lag as both drivers ask for it, for `ClusterPool`'s read routing.

use std::time::Duration;

/// How far the server's replay is behind what it received, in seconds: `NULL` on a server
/// that is not a standby, `0` when it has replayed everything it received, otherwise the
/// age of the last transaction it replayed, or infinity when it is behind but has replayed
/// no transaction since it started (so the lag cannot be timed, only known to exist).
///
/// A simple query with no parameters, so it runs under every profile (pgbouncer in
/// transaction mode too). Parse its one value with [`parse_replica_lag`].
pub const REPLICA_LAG_SQL: &str = "SELECT CASE \
    WHEN NOT pg_is_in_recovery() THEN NULL \
    WHEN pg_last_wal_receive_lsn() IS NOT DISTINCT FROM pg_last_wal_replay_lsn() THEN 0 \
    ELSE COALESCE(EXTRACT(EPOCH FROM now() - pg_last_xact_replay_timestamp())::float8, \
                  'Infinity'::float8) END";

/// Parses the text value [`REPLICA_LAG_SQL`] returns: `None` for `NULL` (not a standby),
/// otherwise the lag, saturating at `Duration::MAX` for infinity.
///
/// # Errors
///
/// The value when it is not a number (never for what the query returns).
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use pg_pool_conninfo::parse_replica_lag;
///
/// assert_eq!(parse_replica_lag(None), Ok(None));
/// assert_eq!(parse_replica_lag(Some("1.5")), Ok(Some(Duration::from_millis(1500))));
/// assert_eq!(parse_replica_lag(Some("Infinity")), Ok(Some(Duration::MAX)));
/// ```
pub fn parse_replica_lag(value: Option<&str>) -> Result<Option<Duration>, String> {
    let Some(value) = value else {
        return Ok(None);
    };
    let seconds: f64 = value
        .parse()
        .map_err(|_| format!("unexpected replication lag `{value}`"))?;
    Ok(Some(
        Duration::try_from_secs_f64(seconds.max(0.0)).unwrap_or(Duration::MAX),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_values() {
        assert_eq!(parse_replica_lag(Some("0")), Ok(Some(Duration::ZERO)));
        assert_eq!(parse_replica_lag(Some("-0.2")), Ok(Some(Duration::ZERO)));
        assert!(parse_replica_lag(Some("soon")).is_err());
    }
}
