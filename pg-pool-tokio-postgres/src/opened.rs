//! What opening a session yields ([`PgSession`]) and what the opener is asked for
//! ([`SessionOptions`]).

use std::fmt;
use std::sync::Arc;

use pg_pool_conninfo::TargetSessionAttrs;
use tokio_postgres::{Client, Notification};

use crate::driver_stop::StopSignal;
use crate::tap::TapShared;

/// Options for opening one session with [`PgRuntime::open`](crate::PgRuntime::open) or
/// [`connect_raw`](crate::connect_raw).
///
/// # Examples
///
/// ```
/// use pg_pool_tokio_postgres::SessionOptions;
///
/// let options = SessionOptions::default().with_notifications();
/// assert!(options.notifications());
/// ```
///
/// A [`PgConfig`](crate::PgConfig) gives the options that honour its whole
/// `target_session_attrs` ([`PgConfig::session_options`](crate::PgConfig::session_options)):
///
/// ```
/// use pg_pool_tokio_postgres::PgConfig;
/// use pg_pool_tokio_postgres::pg_pool_conninfo::TargetSessionAttrs;
///
/// let config = PgConfig::from_url("postgres://h1,h2/db?target_session_attrs=standby")?;
/// let options = config.session_options().with_notifications();
/// assert_eq!(options.target_session_attrs(), Some(TargetSessionAttrs::Standby));
/// # Ok::<(), pg_pool_tokio_postgres::PgError>(())
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionOptions {
    notifications: bool,
    target_session_attrs: Option<TargetSessionAttrs>,
}

impl SessionOptions {
    /// Asks for the session's `NotificationResponse`s (`LISTEN`/`NOTIFY`): the task
    /// driving the session forwards them to [`PgSession::take_notifications`] instead of
    /// dropping them.
    #[must_use]
    pub fn with_notifications(mut self) -> Self {
        self.notifications = true;
        self
    }

    /// Whether notifications are forwarded.
    pub fn notifications(&self) -> bool {
        self.notifications
    }

    /// Asks for a server with these attributes, with libpq's full set of
    /// `target_session_attrs` values (`primary`, `standby` and `prefer-standby` included),
    /// in place of the `tokio_postgres::Config`'s own `target_session_attrs` (which knows
    /// only `any`, `read-write` and `read-only`). See
    /// [`connect_raw_with`](crate::connect_raw_with) for how each value is checked.
    #[must_use]
    pub fn with_target_session_attrs(mut self, attrs: TargetSessionAttrs) -> Self {
        self.target_session_attrs = Some(attrs);
        self
    }

    /// The attributes asked for with
    /// [`with_target_session_attrs`](Self::with_target_session_attrs); `None` (the default)
    /// means the `tokio_postgres::Config`'s own `target_session_attrs`.
    pub fn target_session_attrs(&self) -> Option<TargetSessionAttrs> {
        self.target_session_attrs
    }
}

/// The receiving end of a session's notifications. It ends (yields `Err` on `recv`) once
/// the session is gone: the driving task has stopped, because the connection failed or
/// the [`Client`] was dropped.
pub type NotificationReceiver = async_channel::Receiver<Notification>;

/// The sending end, held by the task driving the session.
pub(crate) type NotificationSender = async_channel::Sender<Notification>;

/// An open session: the tokio-postgres [`Client`] (its `Connection` already driven on
/// the runtime), and what was asked for in [`SessionOptions`].
pub struct PgSession {
    pub(crate) client: Client,
    pub(crate) notifications: Option<NotificationReceiver>,
    /// What the protocol tap sees of the session ([`crate::tap`]); `None` for a session
    /// opened by other means, whose bytes the pool never sees.
    pub(crate) tap: Option<Arc<TapShared>>,
    /// Stops the task driving the session at once ([`crate::runtime::drive`]); `None` for
    /// a session opened by other means.
    pub(crate) stop: Option<Arc<StopSignal>>,
}

impl PgSession {
    /// A session opened by other means (for example `Config::connect` in a runtime of
    /// your own), its `Connection` already driven. It forwards no notifications.
    pub fn from_client(client: Client) -> Self {
        Self {
            client,
            notifications: None,
            tap: None,
            stop: None,
        }
    }

    /// The client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Takes the receiver of the session's notifications, if they were asked for
    /// ([`SessionOptions::with_notifications`]) and not taken yet.
    pub fn take_notifications(&mut self) -> Option<NotificationReceiver> {
        self.notifications.take()
    }

    /// The client, dropping anything else.
    pub fn into_client(self) -> Client {
        self.client
    }
}

impl fmt::Debug for PgSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgSession")
            .field("notifications", &self.notifications.is_some())
            .field("tapped", &self.tap.is_some())
            .finish_non_exhaustive()
    }
}

/// A channel for `options`' notifications, if asked for.
pub(crate) fn notification_channel(
    options: &SessionOptions,
) -> (Option<NotificationSender>, Option<NotificationReceiver>) {
    if options.notifications {
        let (tx, rx) = async_channel::unbounded();
        (Some(tx), Some(rx))
    } else {
        (None, None)
    }
}
