//! The tap's framing and what it records, fed by hand-built protocol messages: whole,
//! split at every byte, and (property tests) in random chunks.

use super::*;
use crate::reset::{ResetStrategy, reset_texts};
use crate::session::SqlFlags;

mod chunking;
mod marker_proof;

/// One message: type byte, length, body.
fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![kind];
    out.extend_from_slice(&(body.len() as i32 + 4).to_be_bytes());
    out.extend_from_slice(body);
    out
}

fn cstr(parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    for part in parts {
        out.extend_from_slice(part);
        out.push(0);
    }
    out
}

fn query(sql: &str) -> Vec<u8> {
    msg(b'Q', &cstr(&[sql.as_bytes()]))
}

fn parse(name: &str, sql: &str) -> Vec<u8> {
    let mut body = cstr(&[name.as_bytes(), sql.as_bytes()]);
    body.extend_from_slice(&0i16.to_be_bytes());
    msg(b'P', &body)
}

fn bind(statement: &str) -> Vec<u8> {
    let mut body = cstr(&[b"", statement.as_bytes()]);
    body.extend_from_slice(&[0, 0, 0, 0, 0, 1, 0, 1]);
    msg(b'B', &body)
}

fn close(statement: &str) -> Vec<u8> {
    let mut body = vec![b'S'];
    body.extend_from_slice(&cstr(&[statement.as_bytes()]));
    msg(b'C', &body)
}

fn sync() -> Vec<u8> {
    msg(b'S', &[])
}

fn execute() -> Vec<u8> {
    msg(
        b'E',
        &cstr(&[b""])
            .into_iter()
            .chain(0i32.to_be_bytes())
            .collect::<Vec<_>>(),
    )
}

fn complete(tag: &str) -> Vec<u8> {
    msg(b'C', &cstr(&[tag.as_bytes()]))
}

fn ready(status: u8) -> Vec<u8> {
    msg(b'Z', &[status])
}

fn parameter(name: &str, value: &str) -> Vec<u8> {
    msg(b'S', &cstr(&[name.as_bytes(), value.as_bytes()]))
}

fn error() -> Vec<u8> {
    msg(b'E', &cstr(&[b"SERROR", b"C42000", b"Mnope", b""]))
}

fn data_row(len: usize) -> Vec<u8> {
    let mut body = 1i16.to_be_bytes().to_vec();
    body.extend_from_slice(&(len as i32).to_be_bytes());
    body.extend(std::iter::repeat_n(b'x', len));
    msg(b'D', &body)
}

/// A tap fed in wire order: the client's bytes, then the server's answer.
struct Session {
    shared: TapShared,
    front: Frontend,
    back: Backend,
}

impl Session {
    /// Startup done (the server's startup messages framed while disarmed), armed.
    fn armed() -> Self {
        let mut s = Self {
            shared: TapShared::default(),
            front: Frontend::default(),
            back: Backend::default(),
        };
        let mut startup = msg(b'R', &0i32.to_be_bytes());
        startup.extend(parameter("in_hot_standby", "off"));
        startup.extend(parameter("TimeZone", "UTC"));
        startup.extend(msg(b'K', &[0; 8]));
        startup.extend(ready(b'I'));
        s.back.feed(&startup, &s.shared);
        s.shared.arm();
        s
    }

    fn client(&mut self, bytes: &[u8]) -> &mut Self {
        self.front.feed(bytes, &self.shared);
        self
    }

    fn server(&mut self, bytes: &[u8]) -> &mut Self {
        self.back.feed(bytes, &self.shared);
        self
    }

    fn view(&self) -> TapView {
        self.shared.view()
    }
}

fn cat(parts: &[Vec<u8>]) -> Vec<u8> {
    parts.concat()
}

#[test]
fn a_plain_select_leaves_the_session_clean() {
    let mut s = Session::armed();
    assert_eq!(
        s.view(),
        TapView {
            sent: 0,
            outstanding: 0,
            status: b'I',
            dirty: false,
            prepared: false
        }
    );
    s.client(&query("SELECT 1"));
    assert_eq!(s.view().outstanding, 1);
    s.server(&cat(&[complete("SELECT 1"), ready(b'I')]));
    assert!(s.view().idle() && !s.view().dirty);
    // Extended protocol: parse, bind, execute, sync; inserts and updates.
    s.client(&cat(&[parse("s0", "INSERT INTO t VALUES ($1)"), sync()]));
    s.client(&cat(&[bind("s0"), execute(), sync()]));
    assert_eq!(s.view().outstanding, 2);
    s.server(&cat(&[
        msg(b'1', &[]),
        ready(b'I'),
        msg(b'2', &[]),
        complete("INSERT 0 1"),
        ready(b'I'),
    ]));
    assert!(s.view().idle() && !s.view().dirty, "{:?}", s.view());
    assert!(!s.shared.role_changed());
}

#[test]
fn tags_and_words_that_change_the_session() {
    for (sql, tag) in [
        ("SET work_mem = '1MB'", "SET"),
        ("select pg_advisory_lock(1)", "SELECT 1"),
        ("SELECT set_config('a.b', 'c', false)", "SELECT 1"),
        ("CREATE TEMP TABLE x (i int)", "CREATE TABLE"),
        ("LISTEN c", "LISTEN"),
        ("PREPARE p AS SELECT 1", "PREPARE"),
        ("DECLARE c CURSOR WITH HOLD FOR SELECT 1", "DECLARE CURSOR"),
        ("DO $$ BEGIN EXECUTE 'SET work_mem = 1'; END $$", "DO"),
        // Code the server runs, its changes unreported: judged from the SQL.
        ("CALL app.set_path()", "CALL"),
        ("SELECT app.set_path()", "SELECT 1"),
        ("VALUES (app.listen())", "VALUES 1"),
        ("SELECT * FROM t WHERE x = lock_it()", "SELECT 0"),
    ] {
        let mut s = Session::armed();
        s.client(&query(sql))
            .server(&cat(&[complete(tag), ready(b'I')]));
        assert!(s.view().idle() && s.view().dirty, "{sql}");
        assert_eq!(s.view().prepared, tag == "PREPARE", "{sql}");
    }
    // A parameter the server reports changed, whatever the statement.
    let mut s = Session::armed();
    s.client(&query("SELECT f()")).server(&cat(&[
        complete("SELECT 1"),
        parameter("DateStyle", "German"),
        ready(b'I'),
    ]));
    assert!(s.view().dirty);
    // A function call message.
    let mut s = Session::armed();
    s.client(&msg(b'F', &[0; 10]))
        .server(&cat(&[msg(b'V', &[0; 4]), ready(b'I')]));
    assert!(s.view().idle() && s.view().dirty);
}

#[test]
fn transaction_status_comes_from_ready_for_query() {
    let mut s = Session::armed();
    s.client(&query("BEGIN"))
        .server(&cat(&[complete("BEGIN"), ready(b'T')]));
    assert!(!s.view().idle() && !s.view().dirty);
    s.client(&query("SELECT 1/0"))
        .server(&cat(&[error(), ready(b'E')]));
    assert_eq!(s.view().status, b'E');
    s.client(&query("ROLLBACK"))
        .server(&cat(&[complete("ROLLBACK"), ready(b'I')]));
    assert!(s.view().idle());
}

fn reset_sql() -> String {
    ResetStrategy::Full
        .pipelined_sql(SqlFlags::default())
        .unwrap()
}

/// The reset's own tags.
fn reset_answer() -> Vec<u8> {
    cat(&[
        complete("SELECT 1"),
        complete("CLOSE CURSOR ALL"),
        complete("SET"),
        complete("RESET"),
        complete("UNLISTEN"),
        parameter("DateStyle", "ISO, MDY"),
        complete("DISCARD TEMP"),
        complete("DISCARD SEQUENCES"),
        ready(b'I'),
    ])
}

#[test]
fn the_reset_erases_what_came_before_it_on_the_wire() {
    let mut s = Session::armed();
    s.client(&query("SET work_mem = '1MB'"))
        .server(&cat(&[complete("SET"), ready(b'I')]));
    assert!(s.view().dirty);
    // Pipelined: the reset and the next user's statement are written before either answer.
    s.client(&query(&reset_sql())).client(&query("SELECT 1"));
    assert!(s.view().dirty);
    s.server(&reset_answer());
    assert!(!s.view().dirty, "erased by the reset");
    s.server(&cat(&[complete("SELECT 1"), ready(b'I')]));
    assert!(s.view().idle() && !s.view().dirty);
    // A change after the reset stays.
    s.client(&query(&reset_sql())).client(&query("SET x.y = 1"));
    s.server(&reset_answer())
        .server(&cat(&[complete("SET"), ready(b'I')]));
    assert!(s.view().dirty, "a change after the reset");
}

#[test]
fn a_failed_reset_erases_nothing() {
    let mut s = Session::armed();
    s.client(&query("SET work_mem = '1MB'"))
        .server(&cat(&[complete("SET"), ready(b'I')]));
    s.client(&query(&reset_sql()))
        .server(&cat(&[error(), ready(b'I')]));
    assert!(s.view().dirty);
    // Nor does SQL that merely resembles it.
    let mut almost = reset_sql();
    almost.push(' ');
    s.client(&query(&almost)).server(&reset_answer());
    assert!(s.view().dirty);
    // Every pipelined text is recognised.
    for text in reset_texts() {
        let sql = std::str::from_utf8(&text[..text.len() - 1]).unwrap();
        let mut s = Session::armed();
        s.client(&query("LISTEN c"))
            .server(&cat(&[complete("LISTEN"), ready(b'I')]));
        s.client(&query(sql)).server(&reset_answer());
        assert!(!s.view().dirty, "{sql}");
    }
}

#[test]
fn stateful_statements_are_remembered_by_name() {
    let mut s = Session::armed();
    s.client(&cat(&[parse("s7", "SELECT pg_advisory_lock($1)"), sync()]))
        .server(&cat(&[msg(b'1', &[]), ready(b'I')]));
    assert!(s.view().dirty);
    s.client(&query(&reset_sql())).server(&reset_answer());
    assert!(!s.view().dirty);
    // Run again by name, after the reset: its SQL is not on the wire, its name is.
    s.client(&cat(&[bind("s7"), execute(), sync()]))
        .server(&cat(&[msg(b'2', &[]), complete("SELECT 1"), ready(b'I')]));
    assert!(s.view().dirty, "a stateful statement run again");
    s.client(&query(&reset_sql())).server(&reset_answer());
    // Another statement is not stateful; a closed one is forgotten.
    s.client(&cat(&[
        parse("s8", "SELECT 1"),
        sync(),
        bind("s8"),
        execute(),
        sync(),
    ]));
    s.client(&cat(&[close("s7"), sync()]));
    s.server(&cat(&[
        msg(b'1', &[]),
        ready(b'I'),
        msg(b'2', &[]),
        complete("SELECT 1"),
    ]))
    .server(&cat(&[ready(b'I'), msg(b'3', &[]), ready(b'I')]));
    assert!(s.view().idle() && !s.view().dirty, "{:?}", s.view());
    s.client(&cat(&[bind("s7"), execute(), sync()]))
        .server(&cat(&[error(), ready(b'I')]));
    assert!(!s.view().dirty, "s7 was closed");
    // The unnamed statement: stateful until another unnamed parse.
    s.client(&cat(&[parse("", "SELECT pg_try_advisory_lock(1)"), sync()]))
        .server(&cat(&[msg(b'1', &[]), ready(b'I')]));
    s.client(&query(&reset_sql())).server(&reset_answer());
    s.client(&cat(&[bind(""), execute(), sync()]))
        .server(&cat(&[complete("SELECT 1"), ready(b'I')]));
    assert!(s.view().dirty);
    s.client(&query(&reset_sql())).server(&reset_answer());
    s.client(&cat(&[parse("", "SELECT 2"), bind(""), execute(), sync()]))
        .server(&cat(&[complete("SELECT 1"), ready(b'I')]));
    assert!(!s.view().dirty);
}

#[test]
fn a_role_change_is_reported() {
    let mut s = Session::armed();
    s.client(&query("SELECT 1")).server(&cat(&[
        complete("SELECT 1"),
        parameter("in_hot_standby", "off"),
        ready(b'I'),
    ]));
    assert!(!s.shared.role_changed());
    s.server(&parameter("in_hot_standby", "on"));
    assert!(s.shared.role_changed());
}

#[test]
fn startup_is_not_recorded_and_ssl_answers_are_skipped() {
    let s = Session::armed();
    assert!(!s.view().dirty, "startup parameters are not changes");
    let shared = TapShared::default();
    let mut back = Backend::after_ssl_answer();
    back.feed(b"S\x16\x03\x01garbage", &shared);
    assert!(back.is_inert());
    back.feed(&[0, 0, 0, 0, 0], &shared);
    shared.arm();
    assert!(shared.live(), "ciphertext is not framed");
    let mut back = Backend::after_ssl_answer();
    let mut bytes = b"N".to_vec();
    bytes.extend(msg(b'R', &0i32.to_be_bytes()));
    bytes.extend(ready(b'I'));
    back.feed(&bytes, &shared);
    assert!(!back.is_inert() && shared.live());
}

#[test]
fn a_bad_length_stops_trusting_the_tap() {
    let mut s = Session::armed();
    s.server(&[b'Z', 0, 0, 0, 2]);
    assert!(!s.shared.live());
    let mut s = Session::armed();
    s.client(&[b'Q', 0xff, 0xff, 0xff, 0xff]);
    assert!(!s.shared.live());
}

#[test]
fn closing_exchanges_are_not_waited_for() {
    // `query_one(sql)`: prepare, run, then the dropped statement's `Close` and `Sync`.
    let mut s = Session::armed();
    s.client(&cat(&[
        parse("s3", "SELECT 1"),
        msg(b'D', b"Ss3\0"),
        sync(),
    ]))
    .server(&cat(&[msg(b'1', &[]), ready(b'I')]));
    s.client(&cat(&[bind("s3"), execute(), sync()]))
        .client(&cat(&[close("s3"), sync()]));
    assert_eq!(s.view().outstanding, 1, "the run, not the close");
    s.server(&cat(&[msg(b'2', &[]), complete("SELECT 1"), ready(b'I')]));
    assert!(
        s.view().idle(),
        "the close alone is outstanding: {:?}",
        s.view()
    );
    s.server(&cat(&[msg(b'3', &[]), ready(b'I')]));
    assert!(s.view().idle());
    // A close together with other work is waited for.
    s.client(&cat(&[close("s3"), bind("s4"), execute(), sync()]));
    assert_eq!(s.view().outstanding, 1);
    s.server(&cat(&[msg(b'3', &[]), complete("SELECT 1"), ready(b'I')]));
    assert!(s.view().idle());
}

#[test]
fn more_closes_outstanding_than_the_ring_holds() {
    let mut s = Session::armed();
    for _ in 0..70 {
        s.client(&cat(&[close("x"), sync()]));
    }
    s.client(&query("SELECT 1"));
    assert_eq!(
        s.view().outstanding,
        71,
        "every exchange counts once the ring overflowed"
    );
    for _ in 0..70 {
        s.server(&cat(&[msg(b'3', &[]), ready(b'I')]));
    }
    assert_eq!(s.view().outstanding, 1);
    s.server(&cat(&[complete("SELECT 1"), ready(b'I')]));
    assert!(s.view().idle());
    // Within the ring: closes are not counted, the query is.
    let mut s = Session::armed();
    for _ in 0..40 {
        s.client(&cat(&[close("x"), sync()]));
    }
    s.client(&query("SELECT 1"));
    assert_eq!(s.view().outstanding, 1);
    for _ in 0..40 {
        s.server(&cat(&[msg(b'3', &[]), ready(b'I')]));
    }
    assert_eq!(s.view().outstanding, 1);
    s.server(&cat(&[complete("SELECT 1"), ready(b'I')]));
    assert!(s.view().idle());
}
