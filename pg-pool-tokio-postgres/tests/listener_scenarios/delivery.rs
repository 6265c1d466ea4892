//! Delivery: order, payloads and sender pids; several channels; `unlisten`; a slow
//! consumer; cancelled `recv`s; the session closing with the listener.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures_lite::StreamExt;
use pg_pool_core::runtime::timeout;
use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::{ListenerEvent, PgListener, PgPool, PgRuntime};

use super::support::{WAIT, connector, expect, listener, notifier, notify, timed};
use crate::common::{backends, eventually, spawn};

pub(crate) async fn order_and_payloads<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let channel = format!("order_{tag}");
    let mut listener = listener(&connector::<R>(
        cluster,
        None,
        &format!("tp-listen-order-{tag}"),
    ))
    .await;
    listener.listen(&channel).await.expect("LISTEN");
    assert_eq!(listener.listening(), BTreeSet::from([channel.clone()]));

    let sender = notifier::<R>(cluster, &format!("tp-listen-order-tx-{tag}")).await;
    let pid = sender.backend_pid().await.expect("the sender's pid");
    let big: String = "0123456789abcdef".chars().cycle().take(7_000).collect();
    let mut payloads = vec![
        "first".to_owned(),
        String::new(),
        big,
        "ünïcødé ✓ 'quotes' \"double\" \\ back".to_owned(),
    ];
    payloads.extend((0..50).map(|i| format!("n{i}")));
    payloads.push("last".to_owned());
    for payload in &payloads {
        notify(&sender, &channel, payload).await;
    }
    let started = Instant::now();
    for payload in &payloads {
        let n = expect(&mut listener, &channel, payload).await;
        assert_eq!(n.process_id(), pid, "the sending backend's pid");
    }
    println!(
        "[{tag}] {} notifications (empty and 7,000-byte payloads among them) read in order in {:?}",
        payloads.len(),
        started.elapsed()
    );
}

pub(crate) async fn several_channels_and_unlisten<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|x| format!("multi_{x}_{tag}"));
    let mut listener = listener(&connector::<R>(
        cluster,
        None,
        &format!("tp-listen-multi-{tag}"),
    ))
    .await;
    for channel in [&a, &b, &c] {
        listener.listen(channel).await.expect("LISTEN");
    }
    listener
        .listen(&a)
        .await
        .expect("listening twice is harmless");
    assert_eq!(
        listener.listening(),
        BTreeSet::from([a.clone(), b.clone(), c.clone()])
    );
    let sender = notifier::<R>(cluster, &format!("tp-listen-multi-tx-{tag}")).await;
    let sent = [
        (&a, "a1"),
        (&b, "b1"),
        (&c, "c1"),
        (&a, "a2"),
        (&c, "c2"),
        (&b, "b2"),
    ];
    for (channel, payload) in sent {
        notify(&sender, channel, payload).await;
    }
    for (channel, payload) in sent {
        expect(&mut listener, channel, payload).await;
    }

    // Notifications from one session arrive in commit order, so a later one on a
    // channel still listened to proves the earlier one was not delivered.
    listener.unlisten(&b).await.expect("UNLISTEN");
    assert_eq!(listener.listening(), BTreeSet::from([a.clone(), c.clone()]));
    notify(&sender, &b, "after unlisten").await;
    notify(&sender, &a, "a3").await;
    expect(&mut listener, &a, "a3").await;

    listener.unlisten_all().await.expect("UNLISTEN *");
    assert!(listener.listening().is_empty());
    notify(&sender, &a, "after unlisten_all").await;
    notify(&sender, &c, "after unlisten_all").await;
    listener.listen(&d).await.expect("LISTEN");
    notify(&sender, &d, "sentinel").await;
    expect(&mut listener, &d, "sentinel").await;
    listener
        .unlisten("never_listened")
        .await
        .expect("unknown channels are fine");
    println!(
        "[{tag}] several channels interleaved in order; unlisten and unlisten_all stop delivery"
    );
}

pub(crate) async fn slow_consumer_loses_nothing<R: PgRuntime>(tag: &'static str) {
    const COUNT: usize = 2_000;
    let cluster = TestCluster::shared();
    let channel = format!("slow_{tag}");
    let mut listener = listener(&connector::<R>(
        cluster,
        None,
        &format!("tp-listen-slow-{tag}"),
    ))
    .await;
    listener.listen(&channel).await.expect("LISTEN");
    let sender = notifier::<R>(cluster, &format!("tp-listen-slow-tx-{tag}")).await;
    // One transaction, distinct payloads: all delivered, in order, at commit.
    sender
        .execute(
            "SELECT pg_notify($1, i::text) FROM generate_series(1, $2::int) AS i",
            &[&channel, &(COUNT as i32)],
        )
        .await
        .expect("notify in bulk");
    // The consumer reads nothing meanwhile: everything is buffered.
    let buffered = eventually::<R, _, _>(WAIT, || async { listener.buffered() == COUNT }).await;
    let took = buffered.unwrap_or_else(|| {
        panic!(
            "only {} of {COUNT} buffered within {WAIT:?}",
            listener.buffered()
        )
    });
    println!("[{tag}] {COUNT} notifications buffered while the consumer slept, within {took:?}");
    R::current()
        .unwrap()
        .sleep(Duration::from_millis(200))
        .await;
    for i in 1..=COUNT {
        expect(&mut listener, &channel, &i.to_string()).await;
    }
    assert_eq!(listener.buffered(), 0);
}

pub(crate) async fn recv_is_cancel_safe<R: PgRuntime>(tag: &'static str) {
    const COUNT: usize = 300;
    let cluster = TestCluster::shared();
    let channel = format!("cancel_{tag}");
    let mut listener = listener(&connector::<R>(
        cluster,
        None,
        &format!("tp-listen-cancel-{tag}"),
    ))
    .await;
    listener.listen(&channel).await.expect("LISTEN");
    let sender = notifier::<R>(cluster, &format!("tp-listen-cancel-tx-{tag}")).await;
    let runtime = R::current().unwrap();
    // Nothing is sent yet: this wait is dropped for sure.
    let early = timeout(&runtime, Duration::from_millis(5), listener.recv()).await;
    assert!(early.is_none(), "nothing sent yet: {early:?}");
    let sending = {
        let channel = channel.clone();
        spawn::<R, _>(async move {
            for i in 0..COUNT {
                notify(&sender, &channel, &i.to_string()).await;
                if i % 10 == 9 {
                    // Pauses, so that more waits are dropped midway.
                    R::current().unwrap().sleep(Duration::from_millis(3)).await;
                }
            }
        })
    };
    let started = Instant::now();
    let (mut received, mut cancelled, mut round) = (0_usize, 1_usize, 0_usize);
    while received < COUNT {
        assert!(
            started.elapsed() < WAIT,
            "only {received} of {COUNT} within {WAIT:?}"
        );
        round += 1;
        // recv and the Stream, alternately, each dropped after 1 ms if nothing came.
        let event = if round % 2 == 0 {
            timeout(&runtime, Duration::from_millis(1), listener.recv()).await
        } else {
            timeout(&runtime, Duration::from_millis(1), listener.next())
                .await
                .map(|e| e.expect("the stream goes on"))
        };
        match event {
            None => cancelled += 1,
            Some(Ok(ListenerEvent::Notification(n))) => {
                assert_eq!(n.payload(), received.to_string(), "in order, none lost");
                received += 1;
            }
            Some(other) => panic!("unexpected {other:?}"),
        }
    }
    sending.recv().await.expect("the sender finished");
    println!(
        "[{tag}] {COUNT} notifications, none lost, across {cancelled} dropped recv/next futures in {:?}",
        started.elapsed()
    );
}

pub(crate) async fn dropping_closes_the_session<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let app = format!("tp-listen-drop-{tag}");
    let mut listener = listener(&connector::<R>(cluster, None, &app)).await;
    listener
        .listen(&format!("drop_{tag}"))
        .await
        .expect("LISTEN");
    let up = eventually::<R, _, _>(WAIT, || async { backends(cluster, &app).await == 1 }).await;
    assert!(up.is_some(), "one backend while listening");
    let first = next_or_nothing::<R>(&mut listener).await;
    assert!(first.is_none(), "nothing was sent: {first:?}");
    drop(listener);
    let ((), took) = timed::<R, _>("the backend goes away", async {
        while backends(cluster, &app).await != 0 {
            R::current().unwrap().sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    println!("[{tag}] dropping the listener closed its session within {took:?}");
}

/// An event within 100 ms, if any (to show that nothing is pending).
async fn next_or_nothing<R: PgRuntime>(
    listener: &mut pg_pool_tokio_postgres::PgListener<R>,
) -> Option<String> {
    super::support::try_next::<R>(listener, Duration::from_millis(100))
        .await
        .map(|e| format!("{e:?}"))
}

pub(crate) async fn beside_a_pool_outside_its_capacity<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let app = format!("tp-listen-pool-{tag}");
    let connector = connector::<R>(cluster, None, &app);
    let mut config = crate::common::pool_config(1);
    config.connect_backoff_max = Duration::from_millis(500);
    let pool: PgPool<R> = PgPool::builder(connector.clone())
        .config(config)
        .build()
        .await
        .expect("pool builds");
    // The pool's only connection is held: a listener inside its capacity would wait.
    let held = pool.get().await.expect("the pool's one connection");
    let (made, took) = timed::<R, _>(
        "a listener beside a full pool",
        PgListener::connect_with(&connector, &pool.config()),
    )
    .await;
    let mut listener = made.expect("the listener connects");
    println!("[{tag}] listener opened in {took:?} beside a pool whose one connection is held");
    let channel = format!("pool_{tag}");
    listener.listen(&channel).await.expect("LISTEN");
    notify(&held, &channel, "from the pool").await;
    expect(&mut listener, &channel, "from the pool").await;
    let m = pool.metrics();
    assert_eq!(
        (m.size, m.active),
        (1, 1),
        "the pool counts only its own: {m:?}"
    );
    assert_eq!(
        backends(cluster, &app).await,
        2,
        "the pool's session and the listener's"
    );
    drop(held);
    pool.drain().await;
    drop(listener);
}
