//! `target_session_attrs`: whether a new session's server is the kind asked for, and what
//! to watch on the session afterwards.

use pg_pool_conninfo::TargetSessionAttrs;
use pg_wired::WireConn;

use crate::error::WireError;
use crate::hosts::Opened;
use crate::wire_poolable::{TERMINATE, WirePoolable};

/// What one pass of the host walk accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Want {
    /// Any server (`any`, and `prefer-standby`'s second pass).
    Any,
    /// `read-write`: `transaction_read_only` off.
    ReadWrite,
    /// `read-only`: `transaction_read_only` on.
    ReadOnly,
    /// `primary`: not in recovery.
    Primary,
    /// `standby` (or `prefer-standby`'s first pass, `preferred`): in recovery.
    Standby {
        /// Asked as `prefer-standby`.
        preferred: bool,
    },
}

impl From<TargetSessionAttrs> for Want {
    fn from(attrs: TargetSessionAttrs) -> Self {
        match attrs {
            TargetSessionAttrs::ReadWrite => Want::ReadWrite,
            TargetSessionAttrs::ReadOnly => Want::ReadOnly,
            TargetSessionAttrs::Primary => Want::Primary,
            TargetSessionAttrs::Standby => Want::Standby { preferred: false },
            TargetSessionAttrs::PreferStandby => Want::Standby { preferred: true },
            _ => Want::Any,
        }
    }
}

/// What a pooled session watches for in the `ParameterStatus` messages the server sends
/// after a query: a change that means the server is no longer what the session was
/// opened for, reported through `Poolable::server_changed`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) enum Watch {
    /// Nothing (`any`, `primary`, or `prefer-standby` that fell back to a primary).
    #[default]
    Nothing,
    /// The standby was promoted: `in_hot_standby` turned `off`.
    Promotion,
    /// The server turned read-only: `default_transaction_read_only` turned `on`.
    ReadOnly,
}

impl Watch {
    /// The cause to report when the server sends `name = value`, if it is one.
    pub(crate) fn server_change(self, name: &str, value: &str) -> Option<&'static str> {
        match (self, name, value) {
            (Watch::Promotion, "in_hot_standby", "off") => {
                Some("in_hot_standby off: the standby was promoted")
            }
            (Watch::ReadOnly, "default_transaction_read_only", "on") => {
                Some("default_transaction_read_only on: the server turned read-only")
            }
            _ => None,
        }
    }
}

/// The role facts a check needs, from the `ParameterStatus` of the startup when the
/// server reports them (PostgreSQL 14 and later), otherwise from one query.
fn reported(conn: &WireConn, name: &str) -> Option<bool> {
    conn.params.get(name).map(|v| v == "on")
}

/// Checks the session against `want`: on a match the session and what to watch on it; on
/// a mismatch (or a failed check) the session is ended with `Terminate` and the error is
/// [`WireError::SessionAttrs`] (or the query's).
///
/// `read-write`/`read-only` use `default_transaction_read_only` and `in_hot_standby` as
/// reported at startup (read-only when either is on, as libpq), otherwise
/// `SHOW transaction_read_only`; `primary`/`standby` use `in_hot_standby`, otherwise
/// `SELECT pg_is_in_recovery()`.
pub(crate) async fn check_session(conn: WireConn, want: Want) -> Result<Opened, WireError> {
    if want == Want::Any {
        return Ok(Opened {
            conn,
            watch: Watch::Nothing,
        });
    }
    let mut conn = WirePoolable::new(conn);
    let verdict = judge(&mut conn, want).await;
    let conn = conn.into_wire();
    match verdict {
        Ok(watch) => Ok(Opened { conn, watch }),
        Err(error) => {
            terminate(conn).await;
            Err(error)
        }
    }
}

/// Whether the server matches `want`, and what to watch if it does.
async fn judge(conn: &mut WirePoolable, want: Want) -> Result<Watch, WireError> {
    let mismatch =
        |wanted: &'static str, found: &'static str| WireError::SessionAttrs { wanted, found };
    match want {
        Want::Any => Ok(Watch::Nothing),
        Want::ReadWrite | Want::ReadOnly => {
            let read_only = match (
                reported(conn.wire(), "default_transaction_read_only"),
                reported(conn.wire(), "in_hot_standby"),
            ) {
                (Some(default_ro), Some(standby)) => default_ro || standby,
                _ => {
                    let value = conn.query_value("SHOW transaction_read_only").await?;
                    value.as_deref() == Some("on")
                }
            };
            match (want, read_only) {
                (Want::ReadWrite, false) => Ok(Watch::ReadOnly),
                (Want::ReadWrite, true) => Err(mismatch("read-write", "read-only")),
                (_, true) => Ok(Watch::Promotion),
                (_, false) => Err(mismatch("read-only", "not read-only")),
            }
        }
        Want::Primary | Want::Standby { .. } => {
            let standby = match reported(conn.wire(), "in_hot_standby") {
                Some(standby) => standby,
                None => {
                    let value = conn.query_value("SELECT pg_is_in_recovery()").await?;
                    value.as_deref() == Some("t")
                }
            };
            match (want, standby) {
                (Want::Primary, false) => Ok(Watch::Nothing),
                (Want::Primary, true) => Err(mismatch("primary", "a standby")),
                (_, true) => Ok(Watch::Promotion),
                (Want::Standby { preferred: true }, false) => {
                    Err(mismatch("prefer-standby", "not a standby"))
                }
                (_, false) => Err(mismatch("standby", "not a standby")),
            }
        }
    }
}

/// Ends a session the walk does not keep: `Terminate`, so the server logs a clean
/// disconnect, then the socket closes.
async fn terminate(mut conn: WireConn) {
    let _ = conn.send_raw(&TERMINATE).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watches_only_what_ends_the_match() {
        let promoted = ("in_hot_standby", "off");
        let read_only = ("default_transaction_read_only", "on");
        assert!(
            Watch::Promotion
                .server_change(promoted.0, promoted.1)
                .is_some()
        );
        assert!(
            Watch::Promotion
                .server_change("in_hot_standby", "on")
                .is_none()
        );
        assert!(
            Watch::Promotion
                .server_change(read_only.0, read_only.1)
                .is_none()
        );
        assert!(
            Watch::ReadOnly
                .server_change(read_only.0, read_only.1)
                .is_some()
        );
        assert!(
            Watch::ReadOnly
                .server_change(promoted.0, promoted.1)
                .is_none()
        );
        assert!(
            Watch::Nothing
                .server_change(promoted.0, promoted.1)
                .is_none()
        );
        assert!(
            Watch::Nothing
                .server_change(read_only.0, read_only.1)
                .is_none()
        );
        assert_eq!(Want::from(TargetSessionAttrs::Any), Want::Any);
        assert_eq!(
            Want::from(TargetSessionAttrs::PreferStandby),
            Want::Standby { preferred: true }
        );
    }

    /// The query path, for servers that do not report `in_hot_standby` and
    /// `default_transaction_read_only` (before PostgreSQL 14): the reports are removed
    /// from a real session's startup parameters, so the check has to ask.
    #[tokio::test]
    async fn asks_the_server_when_it_did_not_report() {
        let cluster = pg_pool_test_support::TestCluster::shared();
        let open = |options: Option<&str>| {
            let mut url = format!("{}?sslmode=disable", cluster.url());
            if let Some(options) = options {
                url.push_str("&options=");
                url.push_str(options);
            }
            let config = crate::WireConfig::from_url(&url).unwrap();
            async move {
                let mut conn = WirePoolable::new(config.connect().await.unwrap().conn);
                assert!(conn.wire().params.contains_key("in_hot_standby"));
                conn.wire_mut().params.remove("in_hot_standby");
                conn.wire_mut()
                    .params
                    .remove("default_transaction_read_only");
                conn
            }
        };
        let mut conn = open(None).await;
        assert_eq!(
            judge(&mut conn, Want::Primary).await.unwrap(),
            Watch::Nothing
        );
        assert_eq!(
            judge(&mut conn, Want::ReadWrite).await.unwrap(),
            Watch::ReadOnly
        );
        let e = judge(&mut conn, Want::Standby { preferred: false }).await;
        assert_eq!(
            e.unwrap_err().to_string(),
            "server is not a standby (target_session_attrs=standby)"
        );
        let e = judge(&mut conn, Want::ReadOnly).await.unwrap_err();
        assert!(e.to_string().contains("not read-only"), "{e}");
        // A session that is read-only by its own default.
        let mut conn = open(Some("-c%20default_transaction_read_only%3Don")).await;
        assert_eq!(
            judge(&mut conn, Want::ReadOnly).await.unwrap(),
            Watch::Promotion
        );
        let e = judge(&mut conn, Want::ReadWrite).await.unwrap_err();
        assert!(e.to_string().contains("server is read-only"), "{e}");
    }
}
