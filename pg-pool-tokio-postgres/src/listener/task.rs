//! The task behind a [`PgListener`](crate::PgListener): it owns the session, forwards its
//! notifications, runs `LISTEN`/`UNLISTEN` requests, and reconnects when the session is
//! lost.

use std::collections::BTreeSet;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use futures_lite::future;
use pg_pool_core::runtime::timeout;
use tokio_postgres::Client;

use super::channel;
use super::event::{Gap, ListenerError, ListenerEvent};
use super::settings::Settings;
use crate::connector::PgConnector;
use crate::driver_stop::StopOnDrop;
use crate::error::PgError;
use crate::opened::NotificationReceiver;
use crate::runtime::PgRuntime;

/// What the listener yields, in order.
pub(super) type Item = Result<ListenerEvent, ListenerError>;

/// The channels the listener wants, shared with [`PgListener::listening`]. Changed only
/// by the task, never held across an await.
///
/// [`PgListener::listening`]: crate::PgListener::listening
pub(super) type Wanted = Arc<Mutex<BTreeSet<String>>>;

/// A request from the listener; each carries where to send its outcome.
pub(super) enum Command {
    Listen(String, Reply),
    Unlisten(String, Reply),
    UnlistenAll(Reply),
}

pub(super) type Reply = async_channel::Sender<Result<(), ListenerError>>;

impl Command {
    fn sql(&self) -> (&'static str, String) {
        match self {
            Command::Listen(name, _) => ("LISTEN", channel::listen_sql(name)),
            Command::Unlisten(name, _) => ("UNLISTEN", channel::unlisten_sql(name)),
            Command::UnlistenAll(_) => ("UNLISTEN", "UNLISTEN *".to_owned()),
        }
    }

    /// Records the request in `wanted` and reports `outcome` to the caller (if it still
    /// waits).
    fn finish(self, wanted: &Wanted, outcome: Result<(), ListenerError>) {
        let reply = match self {
            Command::Listen(name, reply) => {
                if outcome.is_ok() {
                    lock(wanted).insert(name);
                }
                reply
            }
            Command::Unlisten(name, reply) => {
                if outcome.is_ok() {
                    lock(wanted).remove(&name);
                }
                reply
            }
            Command::UnlistenAll(reply) => {
                if outcome.is_ok() {
                    lock(wanted).clear();
                }
                reply
            }
        };
        let _ = reply.try_send(outcome);
    }
}

pub(super) fn lock(wanted: &Wanted) -> std::sync::MutexGuard<'_, BTreeSet<String>> {
    // The set is valid after any panic (inserts and removes are atomic).
    wanted.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A session that forwards its notifications. Dropping it closes the session at once:
/// the client goes first (a session with nothing in flight says `Terminate`), then the
/// task driving it is stopped, so a session that stopped answering (its liveness check,
/// or a request, still waiting) does not keep its socket and task until TCP gives up.
pub(super) struct Live {
    client: Client,
    notifications: NotificationReceiver,
    /// Last: dropped after the client.
    _stop: Option<StopOnDrop>,
}

/// Opens a session with `connector`'s settings (a fresh password from its provider, if
/// any), within the connect timeout.
pub(super) async fn open<R: PgRuntime>(
    connector: &PgConnector<R>,
    settings: &Settings,
) -> Result<Live, ListenerError> {
    let attempt = async {
        // Nothing unchecked reaches a startup message, whoever built the config.
        connector.config().validate()?;
        let tls = connector.tls()?;
        // The connection string's target_session_attrs apply, as to the pool's sessions.
        let options = connector.config().session_options().with_notifications();
        let mut session = match connector.password_provider() {
            Some(provider) => {
                let password = provider
                    .fetch()
                    .await
                    .map_err(|source| PgError::PasswordProvider { source })?;
                let mut pg = connector.config().pg.clone();
                pg.password(password.expose());
                connector.runtime().open(&pg, tls, &options).await?
            }
            None => {
                connector
                    .runtime()
                    .open(&connector.config().pg, tls, &options)
                    .await?
            }
        };
        // Taken first: from here on, dropping the session (an error below, the timeout)
        // stops its driver too.
        let stop = session.stop.take().map(StopOnDrop);
        let notifications = session.take_notifications().ok_or_else(|| {
            PgError::config(
                "notifications",
                "this runtime's `PgRuntime::open` does not forward notifications",
            )
        })?;
        Ok::<_, PgError>(Live {
            client: session.into_client(),
            notifications,
            _stop: stop,
        })
    };
    // Boxed: the connect path is a large future, and a listener's futures stay small.
    match timeout(
        connector.runtime(),
        settings.connect_timeout,
        Box::pin(attempt),
    )
    .await
    {
        Some(result) => result.map_err(ListenerError::Connect),
        None => Err(ListenerError::Timeout {
            after: settings.connect_timeout,
        }),
    }
}

/// Why [`Task::serve`] stopped.
enum Served {
    /// The listener was dropped.
    ListenerGone,
    /// The session ended or stopped answering.
    SessionLost,
}

/// The task's state: what it was given when the listener was made.
pub(super) struct Task<R: PgRuntime> {
    pub(super) connector: PgConnector<R>,
    pub(super) settings: Settings,
    pub(super) wanted: Wanted,
    pub(super) commands: async_channel::Receiver<Command>,
    pub(super) events: async_channel::Sender<Item>,
}

impl<R: PgRuntime> Task<R> {
    /// Serves `live`, reconnecting whenever the session is lost, until the listener is
    /// dropped or a reconnect fails for good. Each session is closed as it is left behind
    /// (see [`Live`]): at once, even one that stopped answering.
    pub(super) async fn run(self, mut live: Live) {
        loop {
            match self.serve(&live).await {
                Served::ListenerGone => return,
                Served::SessionLost => {
                    // What arrived before the loss was sent while listening: deliver it.
                    while let Ok(n) = live.notifications.try_recv() {
                        if self
                            .events
                            .try_send(Ok(ListenerEvent::Notification(n)))
                            .is_err()
                        {
                            return;
                        }
                    }
                    drop(live);
                }
            }
            match self.reconnect().await {
                None => return,
                Some(Ok(new)) => live = new,
                Some(Err(error)) => {
                    tracing::error!(%error, "the listener ends: it cannot reconnect");
                    let _ = self.events.try_send(Err(error));
                    return;
                }
            }
        }
    }

    /// Forwards `live`'s notifications and runs requests on it until it is lost or the
    /// listener is dropped.
    async fn serve(&self, live: &Live) -> Served {
        enum Next<C, N> {
            Command(C),
            Notification(N),
            Ping,
        }
        let runtime = self.connector.runtime();
        let mut forwarded = 0_u32;
        // One timer per interval, not one per notification.
        let mut tick = Box::pin(runtime.sleep(self.settings.ping_interval));
        loop {
            // Requests first: they are rare, so a flood of notifications cannot starve
            // them, and they cannot starve notifications.
            let next = future::or(
                async { Next::Command(self.commands.recv().await) },
                future::or(
                    async { Next::Notification(live.notifications.recv().await) },
                    async {
                        (&mut tick).await;
                        Next::Ping
                    },
                ),
            )
            .await;
            match next {
                Next::Ping => {
                    if !self.ping(&live.client).await {
                        return Served::SessionLost;
                    }
                    tick = Box::pin(runtime.sleep(self.settings.ping_interval));
                }
                Next::Command(Err(_)) => return Served::ListenerGone,
                Next::Command(Ok(command)) => {
                    if !self.run_command(command, &live.client).await {
                        return Served::SessionLost;
                    }
                }
                Next::Notification(Ok(n)) => {
                    if self
                        .events
                        .try_send(Ok(ListenerEvent::Notification(n)))
                        .is_err()
                    {
                        return Served::ListenerGone;
                    }
                    forwarded = forwarded.wrapping_add(1);
                    if forwarded.is_multiple_of(64) {
                        // Channel receives use no runtime budget: give the thread back
                        // now and then while a backlog is forwarded.
                        future::yield_now().await;
                    }
                }
                Next::Notification(Err(_)) => return Served::SessionLost,
            }
        }
    }

    /// One round trip within the ping timeout; false if the session is lost.
    async fn ping(&self, client: &Client) -> bool {
        let runtime = self.connector.runtime();
        match timeout(
            runtime,
            self.settings.ping_timeout,
            client.batch_execute("SELECT 1"),
        )
        .await
        {
            Some(Ok(())) => true,
            Some(Err(e)) => {
                tracing::warn!(error = %PgError::from(e), "the listener's session failed its check");
                false
            }
            None => {
                tracing::warn!(
                    timeout = ?self.settings.ping_timeout,
                    "the listener's session did not answer its check; it is replaced"
                );
                false
            }
        }
    }

    /// Runs `command` on the live session; false if the session turned out to be lost
    /// (the request is then kept and applied on the next session).
    async fn run_command(&self, command: Command, client: &Client) -> bool {
        let (verb, sql) = command.sql();
        let runtime = self.connector.runtime();
        match timeout(
            runtime,
            self.settings.connect_timeout,
            client.batch_execute(&sql),
        )
        .await
        {
            Some(Ok(())) => {
                command.finish(&self.wanted, Ok(()));
                true
            }
            Some(Err(e)) => {
                let e = PgError::from(e);
                if e.is_fatal() || client.is_closed() {
                    tracing::debug!(error = %e, "{verb} failed with the session; kept for the next one");
                    command.finish(&self.wanted, Ok(()));
                    false
                } else {
                    command.finish(
                        &self.wanted,
                        Err(ListenerError::Command {
                            command: verb,
                            source: e,
                        }),
                    );
                    true
                }
            }
            None => {
                tracing::warn!(
                    timeout = ?self.settings.connect_timeout,
                    "{verb} got no answer; the listener's session is replaced"
                );
                command.finish(&self.wanted, Ok(()));
                false
            }
        }
    }

    /// Opens a new session and listens again, with backoff between attempts; requests
    /// meanwhile only change the channel set. `None` once the listener is dropped.
    async fn reconnect(&self) -> Option<Result<Live, ListenerError>> {
        let lost_at = Instant::now();
        tracing::warn!("the listener's session was lost; reconnecting");
        let mut failures = 0_u32;
        loop {
            if failures > 0 {
                let delay = self.settings.delay(failures);
                self.offline(self.connector.runtime().sleep(delay)).await?;
            }
            let attempt = match self.offline(open(&self.connector, &self.settings)).await? {
                Ok(live) => self.listen_again(live).await,
                Err(e) => Err(e),
            };
            match attempt {
                Ok(live) => {
                    let gap = Gap {
                        down_for: lost_at.elapsed(),
                        attempts: failures + 1,
                    };
                    tracing::info!(down_for = ?gap.down_for, attempts = gap.attempts, "the listener reconnected");
                    self.events
                        .try_send(Ok(ListenerEvent::Reconnected(gap)))
                        .ok()?;
                    return Some(Ok(live));
                }
                Err(e) if e.is_permanent() => return Some(Err(e)),
                Err(error) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(%error, failures, "the listener could not reconnect; retrying after a backoff");
                }
            }
        }
    }

    /// Issues a `LISTEN` for every wanted channel on `live`, in one round trip. Requests
    /// wait meanwhile, so the set cannot change under it.
    async fn listen_again(&self, live: Live) -> Result<Live, ListenerError> {
        let sql: String = lock(&self.wanted)
            .iter()
            .map(|name| channel::listen_sql(name) + ";")
            .collect();
        if sql.is_empty() {
            return Ok(live);
        }
        let runtime = self.connector.runtime();
        match timeout(
            runtime,
            self.settings.connect_timeout,
            live.client.batch_execute(&sql),
        )
        .await
        {
            Some(Ok(())) => Ok(live),
            Some(Err(e)) => Err(ListenerError::Command {
                command: "LISTEN",
                source: e.into(),
            }),
            None => Err(ListenerError::Timeout {
                after: self.settings.connect_timeout,
            }),
        }
    }

    /// Runs `work` while there is no session: requests that arrive meanwhile are recorded
    /// (applied by [`listen_again`](Self::listen_again)) and answered at once. `None` if
    /// the listener is dropped first.
    async fn offline<F: Future>(&self, work: F) -> Option<F::Output> {
        let mut work = pin!(work);
        loop {
            let next = future::or(async { Some(Ok(work.as_mut().await)) }, async {
                self.commands.recv().await.ok().map(Err)
            })
            .await;
            match next? {
                Ok(output) => return Some(output),
                Err(command) => command.finish(&self.wanted, Ok(())),
            }
        }
    }
}
