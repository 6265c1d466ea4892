//! A session that stops answering is closed on our side as soon as it is given up: when
//! the liveness check replaces it, and when the listener is dropped while a request waits
//! on it. Its socket and the task driving it do not linger until TCP gives up.
//!
//! The path to the server goes quiet through a [`FaultProxy`] in [`ProxyMode::Stall`];
//! the listener's hosts are two proxies in front of the same server, so it reconnects
//! through the second while the first stays stalled. The stalled proxy reads nothing, so
//! neither it nor the server can see our side close: the sockets this process holds
//! towards each proxy are counted instead (`/proc`).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use pg_pool_core::runtime::timeout;
use pg_pool_test_support::{FaultProxy, ProxyMode, TestCluster};
use pg_pool_tokio_postgres::{ListenerEvent, PgListener, PgRuntime};

use super::support::{WAIT, connector_for, expect, next_event, notifier, notify, settings};
use crate::common::{blocking, pg_config, sleep};

pub(crate) async fn stalled_session_is_closed_at_once<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let first = FaultProxy::start(cluster.addr()).expect("proxy");
    let second = FaultProxy::start(cluster.addr()).expect("proxy");
    let app = format!("tp-listen-stall-{tag}");
    let channel = format!("stall_{tag}");
    // Hosts: the first proxy, then the second; one second per host.
    let mut pg = pg_config(cluster, Some(first.addr()), &app);
    pg.pg
        .host("127.0.0.1")
        .port(second.port())
        .connect_timeout(Duration::from_secs(1));
    let mut config = settings();
    config.health_check_interval = Some(Duration::from_millis(300));
    config.probe_timeout = Duration::from_millis(500);
    config.connect_timeout = Duration::from_secs(3);
    let connector = connector_for::<R>(pg);
    let mut listener = PgListener::connect_with(&connector, &config)
        .await
        .expect("the listener connects");
    listener.listen(&channel).await.expect("LISTEN");
    assert_eq!(
        sockets_to(first.addr()).await,
        1,
        "the session is on the first host"
    );

    // The first path goes quiet: the check replaces the session through the second host.
    first.set_mode(ProxyMode::Stall);
    let stalled_at = Instant::now();
    match next_event(&mut listener, "the gap").await {
        ListenerEvent::Reconnected(gap) => {
            println!(
                "[{tag}] replaced {:?} after the stall: {gap:?}",
                stalled_at.elapsed()
            );
        }
        other => panic!("expected the gap first, got {other:?}"),
    }
    let closed = sockets_gone::<R>(first.addr()).await;
    println!(
        "[{tag}] the replaced session's socket closed {closed:?} after the reconnect \
         (the stalled proxy still holds {} connection(s) it cannot see closed)",
        first.active_connections()
    );
    assert!(
        closed.is_some(),
        "[{tag}] the replaced session still holds {} socket(s) after {:?}",
        sockets_to(first.addr()).await,
        LIMIT
    );
    let sender = notifier::<R>(cluster, &format!("tp-listen-stall-tx-{tag}")).await;
    notify(&sender, &channel, "after").await;
    expect(&mut listener, &channel, "after").await;
    assert_eq!(
        sockets_to(second.addr()).await,
        1,
        "the new session is on the second host"
    );

    // The second path goes quiet too, with a request waiting on it; then the listener is
    // dropped: its task ends and closes the session although the request never completes.
    second.set_mode(ProxyMode::Stall);
    let runtime = R::current().expect("inside the runtime");
    let waited = timeout(
        &runtime,
        Duration::from_millis(200),
        listener.listen("stall_pending"),
    )
    .await;
    assert!(
        waited.is_none(),
        "[{tag}] LISTEN answered through a stalled path?"
    );
    let dropped = Instant::now();
    drop(listener);
    let closed = sockets_gone::<R>(second.addr()).await;
    println!(
        "[{tag}] after the listener was dropped, its stalled session's socket closed {closed:?} \
         later ({:?} since the drop; the waiting request alone would have been given up \
         after {:?})",
        dropped.elapsed(),
        config.connect_timeout
    );
    assert!(
        closed.is_some(),
        "[{tag}] the dropped listener still holds {} socket(s)",
        sockets_to(second.addr()).await
    );
    assert_eq!(
        sockets_to(first.addr()).await,
        0,
        "[{tag}] nothing left on the first host"
    );

    // The paths come back: the proxies see both sides closed and let go of the server.
    first.set_mode(ProxyMode::Pass);
    second.set_mode(ProxyMode::Pass);
    let started = Instant::now();
    while first.active_connections() + second.active_connections() > 0 {
        assert!(
            started.elapsed() < WAIT,
            "[{tag}] the proxies still hold connections"
        );
        sleep::<R>(Duration::from_millis(20)).await;
    }
    println!(
        "[{tag}] once the paths passed again, the proxies let go within {:?}",
        started.elapsed()
    );
}

/// How long a closed session's socket may take to go (it takes milliseconds; the machine is
/// shared and sometimes slow).
const LIMIT: Duration = Duration::from_secs(10);

/// How long it took until this process holds no socket to `addr`, polled; `None` past
/// [`LIMIT`].
async fn sockets_gone<R: PgRuntime>(addr: SocketAddr) -> Option<Duration> {
    let started = Instant::now();
    while started.elapsed() < LIMIT {
        if sockets_to(addr).await == 0 {
            return Some(started.elapsed());
        }
        sleep::<R>(Duration::from_millis(10)).await;
    }
    None
}

/// TCP sockets this process holds, connected to `addr` (Linux: `/proc/self/fd` against
/// `/proc/net/tcp`).
async fn sockets_to(addr: SocketAddr) -> usize {
    blocking(move || {
        let port = format!(":{:04X}", addr.port());
        let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
        let inodes: Vec<String> = table
            .lines()
            .skip(1)
            .filter_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                let remote = fields.get(2)?;
                remote
                    .ends_with(&port)
                    .then(|| fields.get(9).map(|s| (*s).to_owned()))?
            })
            .collect();
        std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
            .filter(|target| {
                let target = target.to_string_lossy();
                inodes
                    .iter()
                    .any(|inode| target == format!("socket:[{inode}]"))
            })
            .count()
    })
    .await
}
