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
