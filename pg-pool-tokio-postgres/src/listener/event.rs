//! What a [`PgListener`](crate::PgListener) yields: [`ListenerEvent`]s, and
//! [`ListenerError`] when it cannot go on.

use std::fmt;
use std::time::Duration;

use pg_pool_core::ConfigError;
use tokio_postgres::Notification;

use crate::error::PgError;

/// One thing a [`PgListener`](crate::PgListener) has to tell: a notification, or that
/// notifications may have been missed.
///
/// Deliberately not `#[non_exhaustive]`: a `match` must name [`Reconnected`] (or say
/// `_` on purpose), so a gap is never dropped by accident.
///
/// [`Reconnected`]: ListenerEvent::Reconnected
///
/// # Examples
///
/// ```
/// use pg_pool_tokio_postgres::ListenerEvent;
///
/// fn handle(event: ListenerEvent) {
///     match event {
///         ListenerEvent::Notification(n) => println!("{}: {}", n.channel(), n.payload()),
///         ListenerEvent::Reconnected(gap) => {
///             println!("session was down for {:?}: reload state", gap.down_for);
///         }
///     }
/// }
/// ```
#[derive(Debug, Clone)]
#[must_use = "a Reconnected event means notifications may have been missed"]
pub enum ListenerEvent {
    /// A `NotificationResponse`: its channel (`channel()`), payload (`payload()`, empty if
    /// none was given) and the process id of the backend that sent it (`process_id()`).
    Notification(Notification),
    /// The session was lost and a new one now listens to every channel again (the
    /// `LISTEN`s were issued before this event). Notifications sent between the loss and
    /// now were not received and never will be: re-read whatever state they describe.
    /// Every later [`Notification`](ListenerEvent::Notification) came on the new session.
    Reconnected(Gap),
}

/// The gap a [`ListenerEvent::Reconnected`] reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Gap {
    /// From noticing the loss to listening again on the new session.
    pub down_for: Duration,
    /// Connect attempts it took (1 when the first one succeeded).
    pub attempts: u32,
}

/// Why a channel name was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ChannelProblem {
    /// The name is empty (PostgreSQL has no zero-length identifier).
    Empty,
    /// The name holds a NUL byte, at this byte offset (PostgreSQL strings cannot).
    Nul {
        /// Byte offset of the first NUL.
        at: usize,
    },
    /// The name is longer than the 63 bytes PostgreSQL keeps: `LISTEN` would cut it, and
    /// a `pg_notify` with the whole name would not reach it.
    TooLong {
        /// The name's length in bytes.
        bytes: usize,
    },
}

impl fmt::Display for ChannelProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChannelProblem::Empty => f.write_str("it is empty"),
            ChannelProblem::Nul { at } => write!(f, "it holds a NUL byte at {at}"),
            ChannelProblem::TooLong { bytes } => write!(
                f,
                "it is {bytes} bytes long and PostgreSQL keeps 63 at most (NAMEDATALEN), \
                 so LISTEN and NOTIFY would not agree on it"
            ),
        }
    }
}

/// What a [`PgListener`](crate::PgListener) reports when a request fails or it cannot go
/// on.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ListenerError {
    /// A channel name PostgreSQL would not keep as given; nothing was sent.
    #[error("invalid channel name {name:?}: {problem}")]
    InvalidChannel {
        /// The name (its first 80 characters).
        name: String,
        /// What is wrong with it.
        problem: ChannelProblem,
    },
    /// The reconnect settings do not validate.
    #[error("invalid listener settings: {0}")]
    Config(#[from] ConfigError),
    /// The session could not be opened: the first connect failed, or a reconnect failed
    /// with an error that would repeat on every attempt (wrong password, unknown
    /// database or role, no `pg_hba.conf` entry, TLS settings that cannot work). After the
    /// latter the listener has ended.
    #[error("the listener could not connect: {0}")]
    Connect(#[source] PgError),
    /// Opening the session (and, when reconnecting, listening again) took longer than the
    /// connect timeout.
    #[error("the listener's session did not open within {after:?}")]
    Timeout {
        /// The connect timeout.
        after: Duration,
    },
    /// The server refused a `LISTEN` or `UNLISTEN` (on a hot standby, for example:
    /// `cannot execute LISTEN during recovery`); the channel set is unchanged.
    #[error("the server refused {command}: {source}")]
    Command {
        /// `LISTEN` or `UNLISTEN`.
        command: &'static str,
        /// The server's error.
        #[source]
        source: PgError,
    },
    /// The listener has ended: a permanent connect error was reported earlier, or the
    /// runtime that drove it shut down.
    #[error("the listener has ended and receives no more notifications")]
    Closed,
}

impl ListenerError {
    /// Whether connecting again with the same settings would fail the same way.
    pub(crate) fn is_permanent(&self) -> bool {
        match self {
            ListenerError::Connect(e) => crate::error::is_permanent_connect_error(e),
            ListenerError::Config(_) | ListenerError::Closed => true,
            ListenerError::InvalidChannel { .. }
            | ListenerError::Timeout { .. }
            | ListenerError::Command { .. } => false,
        }
    }

    /// The driver error behind this error, if any, for example to read its SQLSTATE
    /// (`28P01` for a wrong password).
    pub fn pg_error(&self) -> Option<&PgError> {
        match self {
            ListenerError::Connect(e) | ListenerError::Command { source: e, .. } => Some(e),
            _ => None,
        }
    }
}
