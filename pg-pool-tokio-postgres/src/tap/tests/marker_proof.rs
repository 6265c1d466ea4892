//! What the return path's marker proof reads off the tap: the marker recognised only with
//! the expected nonce, the client's reading after the last completion, and a request
//! swallowed by a `COPY ... FROM STDIN` that nobody feeds.

use super::*;

const HEX: [u8; 32] = *b"00112233445566778899aabbccddeeff";

fn marker() -> Vec<u8> {
    query(&marker::Nonce::fixed(HEX).sql())
}

fn expecting() -> Session {
    let s = Session::armed();
    s.shared.markers.expect(&marker::Nonce::fixed(HEX));
    s
}

#[test]
fn the_marker_is_its_own_clean_exchange() {
    let mut s = expecting();
    s.client(&query("SELECT 1"))
        .server(&cat(&[complete("SELECT 1"), ready(b'I')]));
    assert_eq!(s.shared.markers.seen_at(), None);
    s.client(&marker());
    assert_eq!(s.shared.markers.seen_at(), Some(2));
    let view = s.view();
    assert_eq!((view.sent, view.outstanding, view.dirty), (2, 1, false));
    // The client has not gone back to reading since the first exchange completed.
    assert!(!s.shared.marker_through());
    s.shared.reading();
    assert!(s.shared.marker_through());
    s.server(&cat(&[msg(b'I', &[]), ready(b'I')]));
    assert_eq!(s.view().outstanding, 0);
}

#[test]
fn everything_before_the_marker_must_be_answered_and_read() {
    let mut s = expecting();
    s.client(&query("SELECT pg_sleep(30)"));
    s.client(&marker());
    s.shared.reading();
    assert!(!s.shared.marker_through(), "the sleep is unanswered");
    // Its answer read, but not handed over yet: the client has not read again since.
    s.server(&cat(&[complete("SELECT 1"), ready(b'I')]));
    assert!(
        !s.shared.marker_through(),
        "the answer is still in the client's hands"
    );
    s.shared.reading();
    assert!(s.shared.marker_through());
}

#[test]
fn a_forged_or_spent_marker_is_ordinary_sql() {
    let mut s = Session::armed();
    // Nothing expected: a marker's text is just a comment.
    s.client(&marker());
    assert_eq!(s.shared.markers.seen_at(), None);
    s.shared.markers.expect(&marker::Nonce::fixed(HEX));
    let forged = query(&marker::Nonce::fixed(*b"00112233445566778899aabbccddeefe").sql());
    s.client(&forged);
    assert_eq!(s.shared.markers.seen_at(), None, "another nonce");
    s.client(&query("SET work_mem = '1MB'"));
    s.client(&marker());
    assert_eq!(s.shared.markers.seen_at(), Some(4));
    assert!(s.view().dirty, "the SET written before the marker is seen");
    // Spent: the same text again is not a marker.
    s.shared
        .markers
        .expect(&marker::Nonce::fixed(*b"ffeeddccbbaa99887766554433221100"));
    s.client(&marker());
    assert_eq!(s.shared.markers.seen_at(), None);
}

#[test]
fn a_query_swallowed_by_copy_in_stops_trusting_the_tap() {
    // `simple_query("COPY t FROM STDIN")` never feeds the copy: the server takes the
    // marker written behind it as the offending message and answers it no more.
    let mut s = expecting();
    s.client(&query("COPY t FROM STDIN")).client(&marker());
    s.server(&msg(b'G', &[0, 0, 0]));
    assert!(s.shared.live());
    s.server(&cat(&[
        msg(
            b'E',
            &cstr(&[b"SERROR", b"C08P01", b"Munexpected message type 0x51", b""]),
        ),
        ready(b'I'),
    ]));
    assert!(!s.shared.live(), "the tap no longer trusts its count");
    assert!(
        s.shared.marker_through(),
        "a waiting return path gives up at once"
    );
}

#[test]
fn a_copy_that_fails_on_its_data_keeps_the_tap() {
    let mut s = expecting();
    s.client(&query("COPY t FROM STDIN"));
    s.server(&msg(b'G', &[0, 0, 0]));
    s.client(&msg(b'd', b"x\n")).client(&msg(b'c', b""));
    s.server(&cat(&[
        msg(b'E', &cstr(&[b"SERROR", b"C22P02", b"Mbad", b""])),
        ready(b'I'),
    ]));
    assert!(s.shared.live());
    // A protocol violation outside copy-in mode does not swallow a request of its own.
    s.client(&query("SELECT 1"));
    s.server(&cat(&[
        msg(b'E', &cstr(&[b"SERROR", b"C08P01", b"Mbad", b""])),
        ready(b'I'),
    ]));
    assert!(s.shared.live());
    assert_eq!(s.view().outstanding, 0);
}

#[test]
fn a_statement_closing_itself_is_not_waited_for() {
    // tokio-postgres's `query_one(&str)` prepares a statement and closes it when it drops:
    // that `Close`/`Sync` is on the wire, unanswered, when the marker follows.
    let mut s = expecting();
    s.client(&cat(&[parse("s0", "SELECT 1"), sync()]))
        .server(&cat(&[msg(b'1', &[]), ready(b'I')]));
    s.client(&cat(&[bind("s0"), execute(), sync()]))
        .server(&cat(&[complete("SELECT 1"), ready(b'I')]));
    s.client(&cat(&[close("s0"), sync()])).client(&marker());
    assert_eq!(s.shared.markers.seen_at(), Some(4));
    s.shared.reading();
    assert!(s.shared.marker_through(), "the close is not waited for");
    // Something weighty unanswered is.
    let mut s = expecting();
    s.client(&cat(&[parse("", "SELECT 1"), sync()]));
    s.client(&cat(&[close("s0"), sync()])).client(&marker());
    s.shared.reading();
    assert!(!s.shared.marker_through());
    s.server(&cat(&[msg(b'1', &[]), ready(b'I')]));
    s.shared.reading();
    assert!(s.shared.marker_through());
}

#[test]
fn an_extended_copy_in_is_one_exchange_for_the_server() {
    // tokio-postgres's `copy_in`: `Bind`, `Execute`, `Sync`, the data, `CopyDone`, `Sync`.
    // The server ignores the first `Sync` while it copies in and answers once.
    for end in [msg(b'c', b""), msg(b'f', b"stop\0")] {
        let mut s = expecting();
        s.client(&cat(&[bind(""), execute(), sync()]));
        s.server(&cat(&[msg(b'2', &[]), msg(b'G', &[0, 0, 0])]));
        s.client(&cat(&[msg(b'd', b"1\n"), end, sync()]));
        assert_eq!(s.view().outstanding, 2);
        s.server(&cat(&[complete("COPY 1"), ready(b'I')]));
        assert_eq!((s.view().sent, s.view().outstanding), (2, 0));
        s.client(&marker());
        s.shared.reading();
        assert!(s.shared.marker_through());
        assert!(s.shared.live());
    }
    // Refused before copying in (no `CopyInResponse`): each `Sync` is answered.
    let mut s = expecting();
    s.client(&cat(&[bind(""), execute(), sync()]));
    s.client(&cat(&[msg(b'f', b"stop\0"), sync()]));
    s.server(&cat(&[error(), ready(b'I')]));
    assert_eq!(
        s.view().outstanding,
        1,
        "the second `Sync` is still to be answered"
    );
    s.server(&ready(b'I'));
    assert_eq!(s.view().outstanding, 0);
    // A simple-protocol `COPY` (a `Query`) is one exchange either way.
    let mut s = expecting();
    s.client(&query("COPY t FROM STDIN"));
    s.server(&msg(b'G', &[0, 0, 0]));
    s.client(&cat(&[msg(b'd', b"1\n"), msg(b'c', b"")]));
    s.client(&query("SELECT 1"));
    s.server(&cat(&[complete("COPY 1"), ready(b'I')]));
    assert_eq!(
        s.view().outstanding,
        1,
        "the `SELECT` is still to be answered"
    );
}
