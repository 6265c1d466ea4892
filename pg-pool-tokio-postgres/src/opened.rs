//! What opening a session yields ([`PgSession`]) and what the opener is asked for
//! ([`SessionOptions`]).

use std::fmt;
use std::sync::Arc;

use tokio_postgres::{Client, Notification};

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
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionOptions {
    notifications: bool,
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
}

impl PgSession {
    /// A session opened by other means (for example `Config::connect` in a runtime of
    /// your own), its `Connection` already driven. It forwards no notifications.
    pub fn from_client(client: Client) -> Self {
        Self {
            client,
            notifications: None,
            tap: None,
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
