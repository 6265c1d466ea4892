//! Helpers of the listener scenarios: connectors, a notifying session, and waits with
//! generous, printed bounds.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pg_pool_core::{ConnPoolConfig, Connector as _, runtime::timeout};
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::tokio_postgres::Notification;
use pg_pool_tokio_postgres::{
    ListenerError, ListenerEvent, PgConfig, PgConnection, PgConnector, PgListener, PgRuntime,
};

use crate::common::pg_config;

/// The longest any single expected event may take (the machine is shared and slow at
/// times; a healthy run takes milliseconds).
pub(crate) const WAIT: Duration = Duration::from_secs(30);

/// Reconnect settings for tests: quick first retry, low cap, roomy connect timeout.
pub(crate) fn settings() -> ConnPoolConfig {
    let mut config = ConnPoolConfig::default();
    config.connect_timeout = Duration::from_secs(10);
    config.connect_backoff = Duration::from_millis(50);
    config.connect_backoff_max = Duration::from_millis(500);
    config
}

/// A connector on the current runtime `R` for `config`.
pub(crate) fn connector_for<R: PgRuntime>(config: PgConfig) -> PgConnector<R> {
    PgConnector::try_new(R::current().expect("inside the runtime"), config).expect("valid settings")
}

/// A connector to `cluster` (or `addr` in front of it) tagged `app`.
pub(crate) fn connector<R: PgRuntime>(
    cluster: &TestCluster,
    addr: Option<SocketAddr>,
    app: &str,
) -> PgConnector<R> {
    connector_for(pg_config(cluster, addr, app))
}

/// A listener through `connector` with the test settings.
pub(crate) async fn listener<R: PgRuntime>(connector: &PgConnector<R>) -> PgListener<R> {
    PgListener::connect_with(connector, &settings())
        .await
        .expect("the listener connects")
}

/// A plain session to `cluster` tagged `app`, to send notifications from.
pub(crate) async fn notifier<R: PgRuntime>(cluster: &TestCluster, app: &str) -> PgConnection {
    connector::<R>(cluster, None, app)
        .connect()
        .await
        .expect("the notifier connects")
}

/// `pg_notify(channel, payload)`, committed at once.
pub(crate) async fn notify(conn: &PgConnection, channel: &str, payload: &str) {
    conn.execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
        .await
        .unwrap_or_else(|e| panic!("pg_notify({channel:?}): {e}"));
}

/// The next event, within [`WAIT`].
pub(crate) async fn next_event<R: PgRuntime>(
    listener: &mut PgListener<R>,
    what: &str,
) -> ListenerEvent {
    match try_next::<R>(listener, WAIT).await {
        Some(Ok(event)) => event,
        Some(Err(e)) => panic!("waiting for {what}: the listener failed: {e}"),
        None => panic!("waiting for {what}: nothing within {WAIT:?}"),
    }
}

/// The next event, which must be a notification, within [`WAIT`].
pub(crate) async fn next_notification<R: PgRuntime>(
    listener: &mut PgListener<R>,
    what: &str,
) -> Notification {
    match next_event(listener, what).await {
        ListenerEvent::Notification(n) => n,
        ListenerEvent::Reconnected(gap) => panic!("waiting for {what}: a gap {gap:?}"),
    }
}

/// The next notification, checked against `channel` and `payload`.
pub(crate) async fn expect<R: PgRuntime>(
    listener: &mut PgListener<R>,
    channel: &str,
    payload: &str,
) -> Notification {
    let what = format!("{channel:?}/{}", shown(payload));
    let n = next_notification(listener, &what).await;
    assert_eq!(
        (n.channel(), shown(n.payload())),
        (channel, shown(payload)),
        "expected {what}"
    );
    assert_eq!(n.payload(), payload);
    n
}

/// What arrives within `limit`, if anything.
pub(crate) async fn try_next<R: PgRuntime>(
    listener: &mut PgListener<R>,
    limit: Duration,
) -> Option<Result<ListenerEvent, ListenerError>> {
    let runtime = R::current().expect("inside the runtime");
    timeout(&runtime, limit, listener.recv()).await
}

/// Runs `future`, printing how long it took; panics after [`WAIT`].
pub(crate) async fn timed<R: PgRuntime, T>(
    what: &str,
    future: impl std::future::Future<Output = T>,
) -> (T, Duration) {
    let runtime = R::current().expect("inside the runtime");
    let started = Instant::now();
    let out = timeout(&runtime, WAIT, future)
        .await
        .unwrap_or_else(|| panic!("{what}: not done within {WAIT:?}"));
    (out, started.elapsed())
}

/// A payload short enough to print.
fn shown(payload: &str) -> String {
    if payload.len() > 40 {
        format!(
            "{}... ({} bytes)",
            payload.chars().take(40).collect::<String>(),
            payload.len()
        )
    } else {
        payload.to_owned()
    }
}
