//! [`PgListener`]: `LISTEN`/`NOTIFY` on a dedicated session that reconnects by itself.
//! The type's documentation tells the whole behaviour (this module is private).

mod channel;
mod event;
mod settings;
mod task;

use std::collections::BTreeSet;
use std::fmt;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_lite::Stream;
use pg_pool_core::ConnPoolConfig;

pub use event::{ChannelProblem, Gap, ListenerError, ListenerEvent};

use crate::connector::PgConnector;
use crate::driver_stop::{StopOnDrop, StopSignal};
use crate::runtime::PgRuntime;
use settings::Settings;
use task::{Command, Item, Reply, Task, Wanted};

/// A dedicated `LISTEN` session on runtime `R` that reconnects when lost.
///
/// Made with [`PgListener::connect`] from the [`PgConnector`] a pool is built from (or
/// any other). It yields [`ListenerEvent`]s through [`recv`](Self::recv) or as a
/// [`Stream`] of `Result<ListenerEvent, ListenerError>` (which ends after the error that
/// ends the listener). Dropping it closes its session at once, even one that stopped
/// answering with a request or a check waiting on it.
///
/// # Behaviour
///
/// Pooled sessions cannot listen: a session goes back to the pool after each use, its
/// reset runs `UNLISTEN *`, and notifications that arrive while it sits idle are dropped.
/// A listener keeps one session of its own, opened with the connector's settings (TLS,
/// password provider, `target_session_attrs`, `application_name`) but outside any pool:
/// it takes no pool capacity and a pool's `max_size` does not count it.
///
/// A task on the connector's runtime owns the session. It forwards every notification
/// into an unbounded buffer that [`PgListener::recv`] (or the [`Stream`]) reads, so a slow
/// consumer loses nothing (and a consumer that stops reading lets the buffer grow). When
/// the session is lost it reconnects with exponential backoff and jitter (the pool's
/// `connect_backoff` and `connect_backoff_max`; each attempt bounded by
/// `connect_timeout`), issues `LISTEN` again for every channel, and then yields
/// [`ListenerEvent::Reconnected`] before any notification of the new session:
/// notifications sent in between are lost, and the consumer must re-read whatever they
/// describe. Failed attempts are logged (`WARN`); the consumer just keeps waiting. An
/// error that would repeat on every attempt (wrong password, unknown database or role,
/// TLS settings that cannot work) is yielded as `Err` instead, and ends the listener.
/// A new session that refuses the `LISTEN`s (a standby reached after a failover without
/// `target_session_attrs=read-write`) counts as a failed attempt and is retried.
///
/// Nothing else uses the session, so the task also checks it with a round trip every
/// `health_check_interval` (30 s when the config sets none), bounded by `probe_timeout`:
/// a connection that died without a word (a peer gone behind a firewall) is replaced like
/// a lost one instead of staying silent forever.
///
/// Channel names are any identifier PostgreSQL keeps as given (1 to 63 bytes, no NUL)
/// and are always sent quoted, so `Foo"bar` is the channel `NOTIFY "Foo""bar"` and
/// `pg_notify('Foo"bar', ...)` reach, and nothing in a name reaches the wire as SQL. Being
/// quoted, names are case-sensitive: `listen("Jobs")` is not reached by `NOTIFY Jobs`
/// (which means `jobs`); use `NOTIFY "Jobs"` or `pg_notify('Jobs', ...)`.
///
/// It needs a real PostgreSQL session: through pgbouncer, only session mode
/// delivers notifications; a hot standby refuses `LISTEN`.
///
/// # Examples
///
/// ```no_run
/// # #[cfg(feature = "tokio")]
/// # async fn run() -> Result<(), Box<dyn std::error::Error>> {
/// use pg_pool_tokio::Tokio;
/// use pg_pool_tokio_postgres::{ListenerEvent, PgConfig, PgConnector, PgListener};
///
/// let config = PgConfig::from_url("postgres://app:secret@127.0.0.1/shop")?;
/// let connector = PgConnector::<Tokio>::current(config)?;
/// let mut listener = PgListener::connect(&connector).await?;
/// listener.listen("orders").await?;
/// loop {
///     match listener.recv().await? {
///         ListenerEvent::Notification(n) => println!("order {}", n.payload()),
///         ListenerEvent::Reconnected(gap) => {
///             println!("down for {:?}: notifications may be lost, re-reading orders", gap.down_for);
///         }
///     }
/// }
/// # }
/// ```
///
/// As a [`Stream`], on smol:
///
/// ```no_run
/// # #[cfg(feature = "smol")]
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use futures_lite::StreamExt;
/// use pg_pool_smol::Smol;
/// use pg_pool_tokio_postgres::{ListenerEvent, PgConfig, PgConnector, PgListener};
///
/// smol::block_on(async {
///     let config = PgConfig::from_url("postgres://app:secret@127.0.0.1/shop")?;
///     let connector = PgConnector::try_new(Smol::default(), config)?;
///     let mut listener = PgListener::connect(&connector).await?;
///     listener.listen("Jobs Done").await?; // NOTIFY "Jobs Done", 'payload'
///     while let Some(event) = listener.next().await {
///         match event? {
///             ListenerEvent::Notification(n) => println!("{}", n.payload()),
///             ListenerEvent::Reconnected(_) => println!("may have missed some"),
///         }
///     }
///     Ok(())
/// })
/// # }
/// # #[cfg(not(feature = "smol"))]
/// # fn main() {}
/// ```
pub struct PgListener<R: PgRuntime> {
    /// Boxed: the receiver is `!Unpin`, the listener need not be.
    events: Pin<Box<async_channel::Receiver<Item>>>,
    commands: async_channel::Sender<Command>,
    wanted: Wanted,
    /// Ends the task when the listener is dropped, whatever it is waiting for (a request
    /// or a check on a session that stopped answering), which closes its session at once.
    _gone: StopOnDrop,
    _runtime: PhantomData<fn() -> R>,
}

impl<R: PgRuntime> PgListener<R> {
    /// Opens the listener's session with `connector`'s settings, reconnecting later with
    /// the backoff and connect timeout of its connection string
    /// ([`PgConfig::pool_config`](crate::PgConfig::pool_config): `connect_timeout`,
    /// `pool_connect_backoff`, `pool_connect_backoff_max`, `pool_health_check_interval`
    /// and `pool_probe_timeout`, or their defaults). It listens to nothing yet.
    ///
    /// # Errors
    ///
    /// [`ListenerError::Connect`] with the driver's error (a wrong password reads
    /// `FATAL 28P01: password authentication failed ...`), or
    /// [`ListenerError::Timeout`]. The first connect is not retried.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the half-open session; nothing is left running.
    pub async fn connect(connector: &PgConnector<R>) -> Result<Self, ListenerError> {
        Self::connect_with(connector, &connector.config().pool_config()).await
    }

    /// Like [`connect`](Self::connect), with the connect timeout and backoff of `config`,
    /// for example a pool's own settings (`pool.config()`), so listener and pool back off
    /// alike. Only `connect_timeout` (each attempt, and each `LISTEN`/`UNLISTEN`),
    /// `connect_backoff`, `connect_backoff_max`, `health_check_interval` (the liveness
    /// check, 30 s if `None`) and `probe_timeout` (its bound) are used; the listener's
    /// session still does not count against that pool.
    ///
    /// # Errors
    ///
    /// [`ListenerError::Config`] if `config` does not validate; otherwise as
    /// [`connect`](Self::connect).
    ///
    /// # Cancel safety
    ///
    /// As [`connect`](Self::connect).
    pub async fn connect_with(
        connector: &PgConnector<R>,
        config: &ConnPoolConfig,
    ) -> Result<Self, ListenerError> {
        let settings = Settings::from_pool_config(config)?;
        let live = task::open(connector, &settings).await?;
        let (commands, requests) = async_channel::unbounded();
        let (events_tx, events) = async_channel::unbounded();
        let wanted = Wanted::default();
        let task = Task {
            connector: connector.clone(),
            settings,
            wanted: wanted.clone(),
            commands: requests,
            events: events_tx,
        };
        let gone = Arc::new(StopSignal::default());
        let signal = Arc::clone(&gone);
        // Dropping `run` drops the session it holds, which closes it (see `task::Live`).
        connector.runtime().spawn(async move {
            futures_lite::future::or(task.run(live), signal.stopped()).await;
        });
        Ok(Self {
            events: Box::pin(events),
            commands,
            wanted,
            _gone: StopOnDrop(gone),
            _runtime: PhantomData,
        })
    }

    /// Listens to `channel` (`LISTEN "channel"`, quoted). Listening to a channel twice is
    /// harmless. Notifications sent after this returns are delivered.
    ///
    /// While the session is down, the channel is only remembered and this returns at
    /// once; the `LISTEN` is issued on the new session before
    /// [`ListenerEvent::Reconnected`] is yielded.
    ///
    /// # Errors
    ///
    /// [`ListenerError::InvalidChannel`] (nothing sent) for an empty name, a NUL byte or
    /// more than 63 bytes; [`ListenerError::Command`] if the server refuses (a hot standby
    /// does); [`ListenerError::Closed`] once the listener has ended.
    ///
    /// # Cancel safety
    ///
    /// Not cancel safe: once polled, the request is sent and carried out even if this
    /// future is dropped; [`listening`](Self::listening) shows the outcome once done.
    pub async fn listen(&mut self, channel: &str) -> Result<(), ListenerError> {
        channel::check(channel)?;
        self.request(|reply| Command::Listen(channel.to_owned(), reply))
            .await
    }

    /// Stops listening to `channel` (`UNLISTEN "channel"`). Notifications the session
    /// received before the server ran it are still delivered. Unknown channels are fine.
    ///
    /// # Errors
    ///
    /// As [`listen`](Self::listen).
    ///
    /// # Cancel safety
    ///
    /// As [`listen`](Self::listen).
    pub async fn unlisten(&mut self, channel: &str) -> Result<(), ListenerError> {
        channel::check(channel)?;
        self.request(|reply| Command::Unlisten(channel.to_owned(), reply))
            .await
    }

    /// Stops listening to every channel (`UNLISTEN *`).
    ///
    /// # Errors
    ///
    /// [`ListenerError::Command`] if the server refuses; [`ListenerError::Closed`] once
    /// the listener has ended.
    ///
    /// # Cancel safety
    ///
    /// As [`listen`](Self::listen).
    pub async fn unlisten_all(&mut self) -> Result<(), ListenerError> {
        self.request(Command::UnlistenAll).await
    }

    /// The channels listened to (or to be listened to again once the session is back),
    /// sorted.
    pub fn listening(&self) -> BTreeSet<String> {
        task::lock(&self.wanted).clone()
    }

    /// How many events are buffered, received but not yet read.
    pub fn buffered(&self) -> usize {
        self.events.len()
    }

    /// The next event: a notification, in the order the session received them, or
    /// [`ListenerEvent::Reconnected`] after the session was replaced. Waits as long as it
    /// takes, outages included.
    ///
    /// # Errors
    ///
    /// The error that ends the listener ([`ListenerError::Connect`] with a wrong password,
    /// for example) once, then [`ListenerError::Closed`].
    ///
    /// # Cancel safety
    ///
    /// Cancel safe: a dropped `recv` takes nothing from the buffer, so no notification is
    /// lost; use it in `select!` freely.
    pub async fn recv(&mut self) -> Result<ListenerEvent, ListenerError> {
        self.events
            .recv()
            .await
            .unwrap_or(Err(ListenerError::Closed))
    }

    async fn request(
        &mut self,
        command: impl FnOnce(Reply) -> Command,
    ) -> Result<(), ListenerError> {
        let (reply, outcome) = async_channel::bounded(1);
        self.commands
            .try_send(command(reply))
            .map_err(|_| ListenerError::Closed)?;
        outcome.recv().await.unwrap_or(Err(ListenerError::Closed))
    }
}

/// `Result<ListenerEvent, ListenerError>`s as [`recv`](PgListener::recv) yields them;
/// the stream ends after the error that ends the listener. Polling is cancel safe.
impl<R: PgRuntime> Stream for PgListener<R> {
    type Item = Result<ListenerEvent, ListenerError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.events.as_mut().poll_next(cx)
    }
}

impl<R: PgRuntime> fmt::Debug for PgListener<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgListener")
            .field("listening", &self.listening())
            .field("buffered", &self.buffered())
            .field("ended", &self.commands.is_closed())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    /// A listener and what it yields can move between tasks and threads.
    #[test]
    fn listener_and_events_are_send_and_sync() {
        fn send_sync<T: Send + Sync + Unpin>() {}
        #[cfg(feature = "tokio")]
        send_sync::<super::PgListener<pg_pool_tokio::Tokio>>();
        #[cfg(feature = "smol")]
        send_sync::<super::PgListener<pg_pool_smol::Smol>>();
        send_sync::<super::ListenerEvent>();
        send_sync::<super::ListenerError>();
    }
}
