//! libpq's `target_session_attrs`, checked on an open session: which values need which
//! query, and the passes over the hosts each value makes.

use pg_pool_conninfo::TargetSessionAttrs;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::error::PgError;

/// One round trip tells every value apart: whether the server is in recovery (a standby)
/// and whether a session is read-only by default (a standby, or
/// `default_transaction_read_only`).
const STATE_SQL: &str = "SELECT pg_is_in_recovery(), current_setting('transaction_read_only')";

/// The libpq spelling of `attrs`.
pub(crate) fn spelling(attrs: TargetSessionAttrs) -> &'static str {
    match attrs {
        TargetSessionAttrs::ReadWrite => "read-write",
        TargetSessionAttrs::ReadOnly => "read-only",
        TargetSessionAttrs::Primary => "primary",
        TargetSessionAttrs::Standby => "standby",
        TargetSessionAttrs::PreferStandby => "prefer-standby",
        _ => "any",
    }
}

/// tokio-postgres's own value, which knows only `any`, `read-write` and `read-only`.
pub(crate) fn from_driver(attrs: tokio_postgres::config::TargetSessionAttrs) -> TargetSessionAttrs {
    use tokio_postgres::config::TargetSessionAttrs as Driver;
    match attrs {
        Driver::ReadWrite => TargetSessionAttrs::ReadWrite,
        Driver::ReadOnly => TargetSessionAttrs::ReadOnly,
        _ => TargetSessionAttrs::Any,
    }
}

/// What each pass over the hosts accepts: `prefer-standby` is a pass accepting only a
/// standby, then a pass accepting any server, as in libpq; every other value is one pass.
pub(crate) fn passes(wanted: TargetSessionAttrs) -> &'static [TargetSessionAttrs] {
    match wanted {
        TargetSessionAttrs::PreferStandby => {
            &[TargetSessionAttrs::Standby, TargetSessionAttrs::Any]
        }
        TargetSessionAttrs::ReadWrite => &[TargetSessionAttrs::ReadWrite],
        TargetSessionAttrs::ReadOnly => &[TargetSessionAttrs::ReadOnly],
        TargetSessionAttrs::Primary => &[TargetSessionAttrs::Primary],
        TargetSessionAttrs::Standby => &[TargetSessionAttrs::Standby],
        _ => &[TargetSessionAttrs::Any],
    }
}

/// Checks that the session on `client` has the attributes `accept` asks for (one query,
/// none for `any`).
///
/// # Errors
///
/// [`PgError::SessionAttrs`] when it does not (or its answer cannot be read), the
/// driver's error when the query fails.
pub(crate) async fn check(client: &Client, accept: TargetSessionAttrs) -> Result<(), PgError> {
    let wanted = match accept {
        TargetSessionAttrs::ReadWrite
        | TargetSessionAttrs::ReadOnly
        | TargetSessionAttrs::Primary
        | TargetSessionAttrs::Standby => accept,
        _ => return Ok(()),
    };
    let state = client
        .simple_query(STATE_SQL)
        .await?
        .into_iter()
        .find_map(|m| match m {
            SimpleQueryMessage::Row(row) => {
                let in_recovery = match row.get(0)? {
                    "t" => true,
                    "f" => false,
                    _ => return None,
                };
                let read_only = match row.get(1)? {
                    "on" => true,
                    "off" => false,
                    _ => return None,
                };
                Some((in_recovery, read_only))
            }
            _ => None,
        });
    let Some((in_recovery, read_only)) = state else {
        return Err(PgError::SessionAttrs {
            wanted,
            reason: "the server's answer to the state query could not be read",
        });
    };
    let reason = match wanted {
        TargetSessionAttrs::ReadWrite if read_only => "server does not allow writes",
        TargetSessionAttrs::ReadOnly if !read_only => "server is not read-only",
        TargetSessionAttrs::Primary if in_recovery => "server is not a primary (it is in recovery)",
        TargetSessionAttrs::Standby if !in_recovery => "server is not a standby",
        _ => return Ok(()),
    };
    Err(PgError::SessionAttrs { wanted, reason })
}
