//! The same session fed whole, byte by byte and (property tests) in random chunks: the
//! tap records the same.

use proptest::prelude::*;

use super::*;

/// A transcript exercising every kind of message the tap inspects, with large ones.
fn transcript() -> (Vec<u8>, Vec<u8>) {
    let client = cat(&[
        query("SELECT 1"),
        parse("s1", "SELECT pg_advisory_lock($1)"),
        sync(),
        query(&reset_sql()),
        query(&format!("SELECT '{}'", "y".repeat(70_000))),
        bind("s1"),
        execute(),
        sync(),
        close("s1"),
        sync(),
        query("CREATE TEMPORARY TABLE t (x int)"),
    ]);
    let server = cat(&[
        complete("SELECT 1"),
        ready(b'I'),
        msg(b'1', &[]),
        ready(b'I'),
        reset_answer(),
        data_row(100_000),
        complete("SELECT 1"),
        parameter("in_hot_standby", "on"),
        ready(b'I'),
        msg(b'2', &[]),
        complete("SELECT 1"),
        ready(b'T'),
        msg(b'3', &[]),
        ready(b'T'),
        complete("CREATE TABLE"),
        ready(b'I'),
    ]);
    (client, server)
}

/// Feeds the transcript in the given chunk sizes (cycled); returns what the tap recorded
/// at each step of the server's side, and at the end.
fn observe(client_chunks: &[usize], server_chunks: &[usize]) -> (TapView, bool, bool, u64, u64) {
    let (client, server) = transcript();
    let mut s = Session::armed();
    for chunk in chunks(&client, client_chunks) {
        s.client(chunk);
    }
    for chunk in chunks(&server, server_chunks) {
        s.server(chunk);
    }
    (
        s.view(),
        s.shared.role_changed(),
        s.shared.live(),
        s.shared.sent.load(Ordering::Relaxed),
        s.shared.dirty_at.load(Ordering::Relaxed),
    )
}

fn chunks<'a>(mut bytes: &'a [u8], sizes: &[usize]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut i = 0;
    while !bytes.is_empty() {
        let size = sizes[i % sizes.len()].clamp(1, bytes.len());
        out.push(&bytes[..size]);
        bytes = &bytes[size..];
        i += 1;
    }
    out
}

#[test]
fn whole_and_byte_by_byte_agree() {
    let whole = observe(&[usize::MAX], &[usize::MAX]);
    assert_eq!(
        whole.0,
        TapView {
            sent: 7,
            outstanding: 0,
            status: b'I',
            dirty: true,
            prepared: false
        }
    );
    assert!(whole.1 && whole.2, "{whole:?}");
    assert_eq!(whole.3, 7);
    assert_eq!(observe(&[1], &[1]), whole);
    assert_eq!(observe(&[4, 1, 5], &[5, 2, 3]), whole);
}

proptest! {
    #[test]
    fn random_chunks_observe_the_same(
        client in proptest::collection::vec(1usize..9000, 1..20),
        server in proptest::collection::vec(1usize..9000, 1..20),
    ) {
        prop_assert_eq!(observe(&client, &server), observe(&[usize::MAX], &[usize::MAX]));
    }
}

/// Client messages the whole-message path and the piecewise path must read alike, the
/// malformed included (fields without their NUL, empty bodies).
fn odd_client_messages() -> Vec<Vec<u8>> {
    vec![
        parse("", "SELECT f()"),
        parse("", "SELECT 1"),
        parse("s1", "SELECT f()"),
        parse("s2", "SELECT 1"),
        msg(b'P', b"s3"),
        msg(b'P', b"s3\0SELECT f()"),
        msg(b'P', b"\0SELECT 1"),
        msg(b'P', b""),
        bind(""),
        bind("s1"),
        bind("s2"),
        msg(b'B', b""),
        msg(b'B', b"\0"),
        msg(b'B', b"portal"),
        msg(b'B', b"p\0s1"),
        close(""),
        close("s1"),
        close("s2"),
        msg(b'C', b"S"),
        msg(b'C', b"Ss1"),
        msg(b'C', b""),
        msg(b'C', b"P\0"),
        query("SELECT 1"),
        query("SET x = 1"),
        msg(b'Q', b"SELECT 1"),
        msg(b'Q', b""),
        query(&reset_sql()),
        msg(b'F', &[0, 0, 0, 1]),
        msg(b'H', b""),
        msg(b'D', b"S\0"),
        execute(),
        sync(),
        sync(),
        query(&marker::Nonce::fixed(*b"0123456789abcdef0123456789abcdef").sql()),
        query(&marker::Nonce::fixed(*b"0123456789abcdef0123456789abcdee").sql()),
        msg(b'd', b"1\n"),
        msg(b'c', b""),
    ]
}

/// Server messages as above.
fn odd_server_messages() -> Vec<Vec<u8>> {
    vec![
        complete("SELECT 1"),
        complete("PREPARE"),
        complete("DISCARD ALL"),
        complete("DEALLOCATE ALL"),
        complete("SET"),
        complete("A VERY LONG TAG THAT GOES BEYOND WHAT IS KEPT"),
        msg(b'C', b"SELECT 1"),
        msg(b'C', b""),
        ready(b'I'),
        ready(b'T'),
        msg(b'Z', b""),
        parameter("in_hot_standby", "on"),
        parameter("in_hot_standby", "off"),
        parameter("TimeZone", "UTC"),
        msg(b'S', b"in_hot_standby"),
        msg(b'S', b"in_hot_standby\0on"),
        error(),
        msg(b'E', &cstr(&[b"SERROR", b"C08P01", b"Munexpected", b""])),
        msg(b'E', &cstr(&[b"C22P02", b""])),
        msg(b'E', b"C08P01"),
        msg(b'E', b""),
        msg(b'E', b"\0"),
        msg(b'G', &[0, 0, 0]),
        msg(b'W', &[0, 0, 0]),
        data_row(3),
        msg(b'1', b""),
        msg(b'n', b""),
    ]
}

/// What a tap recorded, its framers' own memory included.
fn recorded(s: &Session) -> String {
    format!(
        "{:?} dirty_at={} prepared_at={} reset_at={} weighty={} close_only={:x} \
         dropped={:?} role={} unnamed={} stateful={:?} overflow={} live={} marker={:?}",
        s.view(),
        s.shared.dirty_at.load(Ordering::Relaxed),
        s.shared.prepared_at.load(Ordering::Relaxed),
        s.shared.reset_at.load(Ordering::Relaxed),
        s.shared.weighty_sent.load(Ordering::Relaxed),
        s.shared.close_only.load(Ordering::Relaxed),
        s.shared.statements_dropped,
        s.shared.role_changed(),
        s.front.unnamed_stateful,
        s.front.stateful,
        s.front.overflow,
        s.shared.live(),
        s.shared.markers.seen_at(),
    )
}

/// Feeds the chosen messages (client `picks`, then server `answers`), each whole or one
/// byte at a time.
fn replay(picks: &[usize], answers: &[usize], bytewise: bool) -> String {
    let (client, server) = (odd_client_messages(), odd_server_messages());
    let mut s = Session::armed();
    s.shared
        .markers
        .expect(&marker::Nonce::fixed(*b"0123456789abcdef0123456789abcdef"));
    let feed = |bytes: &[u8], f: &mut dyn FnMut(&[u8])| {
        if bytewise {
            bytes.chunks(1).for_each(f);
        } else {
            f(bytes);
        }
    };
    for &i in picks {
        feed(&client[i % client.len()], &mut |b| {
            s.client(b);
        });
    }
    for &i in answers {
        feed(&server[i % server.len()], &mut |b| {
            s.server(b);
        });
    }
    recorded(&s)
}

#[test]
fn odd_messages_read_alike_whole_and_in_pieces() {
    let client: Vec<usize> = (0..odd_client_messages().len()).collect();
    let server: Vec<usize> = (0..odd_server_messages().len()).collect();
    assert_eq!(
        replay(&client, &server, false),
        replay(&client, &server, true)
    );
}

proptest! {
    #[test]
    fn random_odd_messages_read_alike(
        client in proptest::collection::vec(0usize..64, 0..24),
        server in proptest::collection::vec(0usize..64, 0..24),
    ) {
        prop_assert_eq!(replay(&client, &server, false), replay(&client, &server, true));
    }
}
