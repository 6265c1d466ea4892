//! Losing the session: the gap is reported and every channel listened to again; requests
//! made while it is down apply on reconnect; errors that would repeat end the listener at
//! once instead of a retry loop.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use pg_pool_test_support::{FaultProxy, ProxyMode, TestCluster};
use pg_pool_tokio_postgres::{ListenerError, ListenerEvent, PgListener, PgRuntime};

use super::support::{
    WAIT, connector, connector_for, expect, listener, next_event, notifier, notify, settings,
    timed, try_next,
};
use crate::common::{backend_pids, blocking, pg_config};

pub(crate) async fn reconnects_after_terminate<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let app = format!("tp-listen-kill-{tag}");
    let channel = format!("kill_{tag}");
    let dropped = format!("kill_dropped_{tag}");
    let mut listener = listener(&connector::<R>(cluster, None, &app)).await;
    listener.listen(&channel).await.expect("LISTEN");
    listener.listen(&dropped).await.expect("LISTEN");
    listener.unlisten(&dropped).await.expect("UNLISTEN");
    let sender = notifier::<R>(cluster, &format!("tp-listen-kill-tx-{tag}")).await;
    notify(&sender, &channel, "before").await;
    expect(&mut listener, &channel, "before").await;

    let before = backend_pids(cluster, &app).await;
    assert_eq!(before.len(), 1, "the listener's one backend: {before:?}");
    let app2 = app.clone();
    let killed = blocking(move || cluster.terminate_backends(&app2).expect("terminate")).await;
    assert_eq!(killed, 1);
    let started = Instant::now();
    match next_event(&mut listener, "the gap").await {
        ListenerEvent::Reconnected(gap) => println!(
            "[{tag}] gap reported {:?} after pg_terminate_backend: {gap:?}",
            started.elapsed()
        ),
        other => panic!("expected the gap first, got {other:?}"),
    }
    let after = backend_pids(cluster, &app).await;
    assert_eq!(after.len(), 1, "one new backend: {after:?}");
    assert_ne!(after, before, "a new session");
    assert_eq!(listener.listening(), BTreeSet::from([channel.clone()]));
    // LISTEN was issued again before the gap was reported: this arrives; the channel
    // unlistened before the loss stays unlistened.
    notify(&sender, &dropped, "not listened").await;
    notify(&sender, &channel, "after").await;
    expect(&mut listener, &channel, "after").await;
}

pub(crate) async fn listen_while_down_applies_on_reconnect<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let proxy = FaultProxy::start(cluster.addr()).expect("proxy");
    let app = format!("tp-listen-down-{tag}");
    let [a, b] = ["a", "b"].map(|x| format!("down_{x}_{tag}"));
    let mut listener = listener(&connector::<R>(cluster, Some(proxy.addr()), &app)).await;
    listener.listen(&a).await.expect("LISTEN");

    // New connections are refused, then the session is killed: reconnects fail for now.
    proxy.set_mode(ProxyMode::Refuse);
    let app2 = app.clone();
    let killed = blocking(move || cluster.terminate_backends(&app2).expect("terminate")).await;
    assert_eq!(killed, 1);
    let down_since = Instant::now();

    // A consumer waiting meanwhile just waits: no error, no gap yet.
    let waited = try_next::<R>(&mut listener, Duration::from_millis(1500)).await;
    assert!(
        waited.is_none(),
        "nothing while the server is unreachable: {waited:?}"
    );
    let (listened, took) = timed::<R, _>("listen while down", listener.listen(&b)).await;
    listened.expect("remembered while down");
    println!("[{tag}] listen while down returned in {took:?}");
    assert_eq!(listener.listening(), BTreeSet::from([a.clone(), b.clone()]));
    let sender = notifier::<R>(cluster, &format!("tp-listen-down-tx-{tag}")).await;
    notify(&sender, &a, "sent during the outage").await;

    proxy.set_mode(ProxyMode::Pass);
    match next_event(&mut listener, "the gap").await {
        ListenerEvent::Reconnected(gap) => {
            println!(
                "[{tag}] back {:?} after the kill: {gap:?}",
                down_since.elapsed()
            );
            assert!(gap.attempts > 1, "attempts were refused first: {gap:?}");
            // Refused for at least 1.5 s (less the moment the loss took to notice).
            assert!(gap.down_for >= Duration::from_secs(1), "{gap:?}");
        }
        other => panic!("expected the gap first, got {other:?}"),
    }
    // Both channels are listened to on the new session; the outage's notification is
    // gone (the next one received is the one sent now).
    notify(&sender, &b, "b after").await;
    notify(&sender, &a, "a after").await;
    expect(&mut listener, &b, "b after").await;
    expect(&mut listener, &a, "a after").await;
}

pub(crate) async fn silent_death_is_detected<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let proxy = FaultProxy::start(cluster.addr()).expect("proxy");
    let app = format!("tp-listen-silent-{tag}");
    let channel = format!("silent_{tag}");
    let mut config = settings();
    config.health_check_interval = Some(Duration::from_millis(300));
    config.probe_timeout = Duration::from_millis(500);
    config.connect_timeout = Duration::from_secs(2);
    let connector = connector::<R>(cluster, Some(proxy.addr()), &app);
    let mut listener = PgListener::connect_with(&connector, &config)
        .await
        .expect("the listener connects");
    listener.listen(&channel).await.expect("LISTEN");

    // The path goes quiet, both ways, without closing: only the check can tell.
    proxy.set_mode(ProxyMode::Stall);
    let stalled_at = Instant::now();
    let waited = try_next::<R>(&mut listener, Duration::from_millis(2500)).await;
    assert!(waited.is_none(), "nothing while stalled: {waited:?}");
    proxy.set_mode(ProxyMode::Pass);
    match next_event(&mut listener, "the gap").await {
        ListenerEvent::Reconnected(gap) => println!(
            "[{tag}] silent session replaced; back {:?} after the stall began: {gap:?}",
            stalled_at.elapsed()
        ),
        other => panic!("expected the gap first, got {other:?}"),
    }
    let sender = notifier::<R>(cluster, &format!("tp-listen-silent-tx-{tag}")).await;
    notify(&sender, &channel, "after").await;
    expect(&mut listener, &channel, "after").await;
    let pids = backend_pids(cluster, &app).await;
    assert!(
        pids.len() <= 2,
        "the old session is closed or closing: {pids:?}"
    );
}

pub(crate) async fn wrong_password_is_reported_at_once<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let mut config = pg_config(cluster, None, &format!("tp-listen-password-{tag}"));
    config.pg.password("not-the-password");
    let connector = connector_for::<R>(config);
    let (result, took) = timed::<R, _>("a wrong password", PgListener::connect(&connector)).await;
    let err = result.expect_err("a wrong password fails");
    println!("[{tag}] wrong password: {err} (after {took:?})");
    assert!(matches!(err, ListenerError::Connect(_)), "{err:?}");
    assert_eq!(err.pg_error().and_then(|e| e.code()), Some("28P01"));
    assert!(
        err.to_string().contains("password authentication failed"),
        "{err}"
    );
    assert!(!format!("{err} {err:?}").contains("not-the-password"));
}

pub(crate) async fn permanent_error_ends_the_listener<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let role = format!("listen_role_{}", tag.replace('-', "_"));
    let create = format!("DROP ROLE IF EXISTS {role}; CREATE ROLE {role} LOGIN PASSWORD 'first'");
    blocking(move || cluster.sql(&create).expect("create role")).await;
    let proxy = FaultProxy::start(cluster.addr()).expect("proxy");
    let mut config = pg_config(cluster, Some(proxy.addr()), &role);
    config.pg.user(&role).password("first");
    let mut listener = PgListener::connect_with(&connector_for::<R>(config), &settings())
        .await
        .expect("the listener connects");
    let channel = format!("ends_{tag}");
    listener.listen(&channel).await.expect("LISTEN");

    let change = format!("ALTER ROLE {role} PASSWORD 'second'");
    blocking(move || cluster.sql(&change).expect("change the password")).await;
    let role2 = role.clone();
    let killed = blocking(move || cluster.terminate_backends(&role2).expect("terminate")).await;
    assert_eq!(killed, 1);
    let started = Instant::now();
    let err = match try_next::<R>(&mut listener, WAIT).await {
        Some(Err(err)) => err,
        other => panic!("expected the listener to end with an error, got {other:?}"),
    };
    let took = started.elapsed();
    println!("[{tag}] the listener ended {took:?} after the kill: {err}");
    assert_eq!(
        err.pg_error().and_then(|e| e.code()),
        Some("28P01"),
        "{err:?}"
    );
    assert!(!format!("{err} {err:?}").contains("second"));

    // Ended: later calls say so at once, the stream is over, and nothing retries.
    assert!(matches!(listener.recv().await, Err(ListenerError::Closed)));
    assert!(matches!(
        listener.listen(&channel).await,
        Err(ListenerError::Closed)
    ));
    assert!(listener.next().await.is_none(), "the stream has ended");
    let attempts = proxy.accepted();
    R::current().unwrap().sleep(Duration::from_secs(1)).await;
    assert_eq!(
        proxy.accepted(),
        attempts,
        "no attempt after the permanent error"
    );
    println!("[{tag}] {attempts} connections through the proxy in all (first connect included)");
    assert!(attempts <= 3, "one attempt, not a loop: {attempts}");
    let drop_role = format!("DROP ROLE {role}");
    blocking(move || cluster.sql(&drop_role).expect("drop role")).await;
}
