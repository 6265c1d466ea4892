//! Channel names: quotes, spaces, case and unicode round-trip; SQL in a name is only a
//! name; names PostgreSQL would change are refused before anything is sent.

use pg_pool_test_support::TestCluster;
use pg_pool_tokio_postgres::{ChannelProblem, ListenerError, PgRuntime};

use super::support::{connector, expect, listener, notifier, notify};
use crate::common::blocking;

pub(crate) async fn quoted_names_round_trip<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let mut listener = listener(&connector::<R>(
        cluster,
        None,
        &format!("tp-listen-names-{tag}"),
    ))
    .await;
    let mut names = vec![
        format!("Foo\"bar {tag}"),
        format!("with space {tag}"),
        format!("UPPER_{tag}"),
        format!("Ünïcødé ✓ {tag}"),
        format!("it's {tag}"),
        format!("back\\slash {tag}"),
        format!("\"\" {tag} \"\""),
    ];
    // Exactly 63 bytes, the longest name PostgreSQL keeps whole.
    let mut longest = format!("max_{tag}_");
    while longest.len() < 63 {
        longest.push('m');
    }
    assert_eq!(longest.len(), 63);
    names.push(longest);
    for name in &names {
        listener
            .listen(name)
            .await
            .unwrap_or_else(|e| panic!("LISTEN {name:?}: {e}"));
    }
    assert_eq!(listener.listening().len(), names.len());

    let sender = notifier::<R>(cluster, &format!("tp-listen-names-tx-{tag}")).await;
    for name in &names {
        notify(&sender, name, name).await;
        expect(&mut listener, name, name).await;
    }

    // A NOTIFY statement with the identifier quoted the same way reaches it too.
    sender
        .batch_execute(&format!("NOTIFY \"Foo\"\"bar {tag}\", 'by NOTIFY'"))
        .await
        .expect("NOTIFY");
    expect(&mut listener, &format!("Foo\"bar {tag}"), "by NOTIFY").await;

    // Quoted means case-sensitive: an unquoted NOTIFY folds to lower case and misses it.
    sender
        .batch_execute(&format!("NOTIFY UPPER_{tag}, 'folded'"))
        .await
        .expect("NOTIFY");
    notify(&sender, &format!("UPPER_{tag}"), "exact").await;
    expect(&mut listener, &format!("UPPER_{tag}"), "exact").await;
    println!("[{tag}] {} quoted channel names round-trip", names.len());
}

pub(crate) async fn injection_is_just_a_channel<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let table = format!("listen_victim_{tag}");
    let create = format!("DROP TABLE IF EXISTS {table}; CREATE TABLE {table} (id int)");
    blocking(move || cluster.sql(&create).expect("create the table")).await;
    let mut listener = listener(&connector::<R>(
        cluster,
        None,
        &format!("tp-listen-inject-{tag}"),
    ))
    .await;
    let hostile = [
        format!("x\"; DROP TABLE {table}; --"),
        format!("\"; DROP TABLE {table}"),
        format!("'); DROP TABLE {table}; --"),
    ];
    for name in &hostile {
        assert!(name.len() < 64, "{name}");
        listener
            .listen(name)
            .await
            .unwrap_or_else(|e| panic!("LISTEN {name:?}: {e}"));
    }
    let sender = notifier::<R>(cluster, &format!("tp-listen-inject-tx-{tag}")).await;
    for name in &hostile {
        notify(&sender, name, "still a channel").await;
        expect(&mut listener, name, "still a channel").await;
    }
    for name in &hostile {
        listener.unlisten(name).await.expect("UNLISTEN");
    }
    let check = format!("SELECT count(*) FROM pg_class WHERE relname = '{table}'");
    let left = blocking(move || cluster.sql(&check).expect("pg_class")).await;
    assert_eq!(left.trim(), "1", "the table is still there");
    let drop_it = format!("DROP TABLE {table}");
    blocking(move || cluster.sql(&drop_it).expect("drop the table")).await;
    println!(
        "[{tag}] {} channel names holding SQL were channels; nothing was dropped",
        hostile.len()
    );
}

pub(crate) async fn bad_names_are_refused<R: PgRuntime>(tag: &'static str) {
    let cluster = TestCluster::shared();
    let mut listener = listener(&connector::<R>(
        cluster,
        None,
        &format!("tp-listen-bad-{tag}"),
    ))
    .await;
    let too_long = "L".repeat(64);
    let wide = "é".repeat(32); // 64 bytes in 32 characters
    let cases: [(&str, ChannelProblem, &str); 4] = [
        ("", ChannelProblem::Empty, "empty"),
        ("a\0b", ChannelProblem::Nul { at: 1 }, "NUL byte at 1"),
        (
            &too_long,
            ChannelProblem::TooLong { bytes: 64 },
            "64 bytes long",
        ),
        (&wide, ChannelProblem::TooLong { bytes: 64 }, "63 at most"),
    ];
    for (name, problem, words) in cases {
        for result in [listener.listen(name).await, listener.unlisten(name).await] {
            let err = result.expect_err("refused");
            let text = err.to_string();
            println!("[{tag}] {name:?}: {text}");
            assert!(text.starts_with("invalid channel name"), "{text}");
            assert!(text.contains(words), "{text}");
            match err {
                ListenerError::InvalidChannel { problem: got, .. } => assert_eq!(got, problem),
                other => panic!("{other:?}"),
            }
        }
    }
    assert!(listener.listening().is_empty());
    // Nothing broke: the listener still works.
    let channel = format!("after_bad_{tag}");
    listener.listen(&channel).await.expect("LISTEN");
    let sender = notifier::<R>(cluster, &format!("tp-listen-bad-tx-{tag}")).await;
    notify(&sender, &channel, "fine").await;
    expect(&mut listener, &channel, "fine").await;
}
