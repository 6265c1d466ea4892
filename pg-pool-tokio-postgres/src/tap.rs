//! The protocol tap: what a session provably did, read off the PostgreSQL messages that
//! pass through its stream ([`TapStream`](crate::tap_stream::TapStream)), so the return
//! path resets only a session that changed.
//!
//! Both directions are framed (type byte, `i32` length, body), partial headers kept across
//! reads and writes, bodies never copied: only the bytes inspected are looked at, and no
//! message allocates. Exchanges are numbered in wire order: each `Query`, `Sync` and
//! `FunctionCall` the client writes is one, and each `ReadyForQuery` the server sends
//! completes the oldest. What changed the session is recorded against the exchange it
//! belongs to; a reset exchange that completed without an error erases everything up to
//! and including its own number.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering};

use crate::tap_scan::{NameHash, ResetMatch, Words};

/// What the tap saw, shared between the stream (the connection task) and the pooled
/// connection (its return path).
#[derive(Debug, Default)]
pub(crate) struct TapShared {
    /// Set once startup is over: both directions are then at a message boundary.
    armed: AtomicBool,
    /// The framing lost its way (a length below 4): nothing the tap says is trusted.
    desync: AtomicBool,
    /// Exchanges written by the client since the tap was armed.
    sent: AtomicU64,
    /// Exchanges the server completed (`ReadyForQuery`) since the tap was armed.
    completed: AtomicU64,
    /// Exchanges written that do more than close statements or portals (a dropped
    /// `Statement` sends `Close` and `Sync` on its own, which changes nothing a return
    /// needs to wait for), and those of them completed.
    weighty_sent: AtomicU64,
    weighty_completed: AtomicU64,
    /// One bit per exchange number modulo 64: set when that exchange only closes.
    close_only: AtomicU64,
    /// More than 64 exchanges were outstanding at once: every exchange counts as weighty.
    ring_overflow: AtomicBool,
    /// The transaction status byte of the last `ReadyForQuery` (`I`, `T`, `E`).
    status: AtomicU8,
    /// The last exchange that changed the session.
    dirty_at: AtomicU64,
    /// The last exchange that created an SQL-level prepared statement (`PREPARE`).
    prepared_at: AtomicU64,
    /// The last reset exchange that completed without an error.
    reset_at: AtomicU64,
    /// The exchange carrying the last reset written (its outcome not yet known).
    reset_sent_at: AtomicU64,
    /// `in_hot_standby` changed value after startup: the server's role changed.
    role_changed: AtomicBool,
    /// Woken at every `ReadyForQuery`, for a return path waiting for one.
    ready: event_listener::Event,
}

/// The transaction status of the last `ReadyForQuery`, with what is still outstanding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TapView {
    /// Exchanges written since the tap was armed.
    pub(crate) sent: u64,
    /// Exchanges written and not yet completed, but for those that only close statements
    /// or portals.
    pub(crate) outstanding: u64,
    /// `b'I'`, `b'T'` or `b'E'`.
    pub(crate) status: u8,
    /// An exchange since the last reset changed the session.
    pub(crate) dirty: bool,
    /// An exchange since the last reset ran SQL `PREPARE`.
    pub(crate) prepared: bool,
}

impl TapView {
    /// Nothing outstanding and outside any transaction block.
    pub(crate) fn idle(self) -> bool {
        self.outstanding == 0 && self.status == b'I'
    }
}

impl TapShared {
    /// Startup is over: start recording.
    pub(crate) fn arm(&self) {
        self.status.store(b'I', Ordering::Release);
        self.armed.store(true, Ordering::Release);
    }

    /// Whether the tap is armed and its framing sound.
    pub(crate) fn live(&self) -> bool {
        self.armed.load(Ordering::Acquire) && !self.desync.load(Ordering::Acquire)
    }

    pub(crate) fn is_armed(&self) -> bool {
        self.armed.load(Ordering::Acquire)
    }

    /// The state as of the last completed exchange.
    pub(crate) fn view(&self) -> TapView {
        // Completions first: what is read of them never runs ahead of what was sent.
        let completed = self.completed.load(Ordering::Acquire);
        let weighty_completed = self.weighty_completed.load(Ordering::Acquire);
        let sent = self.sent.load(Ordering::Acquire);
        let weighty_sent = self.weighty_sent.load(Ordering::Acquire);
        let reset_at = self.reset_at.load(Ordering::Acquire);
        let outstanding = if self.ring_overflow.load(Ordering::Acquire) {
            sent.saturating_sub(completed)
        } else {
            weighty_sent.saturating_sub(weighty_completed)
        };
        TapView {
            sent,
            outstanding,
            status: self.status.load(Ordering::Acquire),
            dirty: self.dirty_at.load(Ordering::Acquire) > reset_at,
            prepared: self.prepared_at.load(Ordering::Acquire) > reset_at,
        }
    }

    /// A reset ran to its end on the checked path, the session idle and in the pool's
    /// hands alone: everything completed so far is erased.
    pub(crate) fn reset_completed(&self) {
        let completed = self.completed.load(Ordering::Acquire);
        self.reset_at.fetch_max(completed, Ordering::AcqRel);
    }

    /// Whether `in_hot_standby` changed since startup.
    pub(crate) fn role_changed(&self) -> bool {
        self.role_changed.load(Ordering::Relaxed)
    }

    /// Waits until nothing is outstanding; the caller bounds it with a timer.
    pub(crate) async fn settled(&self) {
        loop {
            if self.view().outstanding == 0 {
                return;
            }
            let listener = self.ready.listen();
            if self.view().outstanding == 0 {
                return;
            }
            listener.await;
        }
    }

    fn mark_dirty(&self, exchange: u64) {
        self.dirty_at.fetch_max(exchange, Ordering::AcqRel);
    }

    fn mark_desync(&self) {
        self.desync.store(true, Ordering::Release);
        self.ready.notify(usize::MAX);
    }
}

/// Where a framer is within the byte stream.
#[derive(Debug, Clone, Copy, Default)]
struct Framing {
    /// The header read so far: type byte and length.
    header: [u8; 5],
    got: u8,
    /// Body bytes of the current message still to come; `None` while in a header.
    body_left: Option<u32>,
}

/// What a direction does with the messages it frames.
trait Inspect {
    /// A message of type `kind` with a body of `len` bytes begins.
    fn begin(&mut self, kind: u8, len: u32);
    /// Part of the current message's body.
    fn body(&mut self, bytes: &[u8]);
    /// The current message ended.
    fn end(&mut self, shared: &TapShared);
}

impl Framing {
    /// Feeds `bytes`; `false` once the framing is lost.
    fn feed<I: Inspect>(&mut self, mut bytes: &[u8], inspect: &mut I, shared: &TapShared) -> bool {
        while !bytes.is_empty() {
            match self.body_left {
                None => {
                    let want = 5 - usize::from(self.got);
                    let take = want.min(bytes.len());
                    let start = usize::from(self.got);
                    self.header[start..start + take].copy_from_slice(&bytes[..take]);
                    self.got += take as u8;
                    bytes = &bytes[take..];
                    if self.got < 5 {
                        return true;
                    }
                    self.got = 0;
                    let len = i32::from_be_bytes([
                        self.header[1],
                        self.header[2],
                        self.header[3],
                        self.header[4],
                    ]);
                    let Some(body) = u32::try_from(len).ok().and_then(|l| l.checked_sub(4)) else {
                        return false;
                    };
                    inspect.begin(self.header[0], body);
                    if body == 0 {
                        inspect.end(shared);
                    } else {
                        self.body_left = Some(body);
                    }
                }
                Some(left) => {
                    let take = (left as usize).min(bytes.len());
                    inspect.body(&bytes[..take]);
                    bytes = &bytes[take..];
                    let left = left - take as u32;
                    if left == 0 {
                        self.body_left = None;
                        inspect.end(shared);
                    } else {
                        self.body_left = Some(left);
                    }
                }
            }
        }
        true
    }
}

/// Statements whose SQL changes the session, by name hash; beyond this many, every
/// `Bind` counts as a change.
const STATEFUL_STATEMENTS_MAX: usize = 256;

/// The client's direction: queries, statements, syncs.
#[derive(Debug, Default)]
pub(crate) struct Frontend {
    framing: Framing,
    kind: u8,
    /// Which NUL-terminated field of the body is being read.
    field: u8,
    /// `Close`: the first body byte (`S` statement, `P` portal).
    close_kind: u8,
    name: NameHash,
    words: Words,
    reset: ResetMatch,
    /// Named statements whose SQL changes the session.
    stateful: Vec<u64>,
    overflow: bool,
    /// The unnamed statement's SQL changes the session.
    unnamed_stateful: bool,
    /// The exchange being written does more than close statements or portals.
    weighty: bool,
}

impl Frontend {
    /// Feeds bytes the client wrote (only once armed).
    pub(crate) fn feed(&mut self, bytes: &[u8], shared: &TapShared) {
        let mut framing = self.framing;
        if !framing.feed(bytes, self, shared) {
            shared.mark_desync();
        }
        self.framing = framing;
    }

    /// The exchange the message being written belongs to.
    fn next_exchange(shared: &TapShared) -> u64 {
        shared.sent.load(Ordering::Relaxed) + 1
    }

    /// The exchange being written is complete on the client's side; returns its number.
    fn complete_exchange(&mut self, shared: &TapShared) -> u64 {
        let weighty = std::mem::take(&mut self.weighty) || self.kind != b'S';
        let exchange = shared.sent.load(Ordering::Relaxed) + 1;
        let completed = shared.completed.load(Ordering::Relaxed);
        if exchange - completed > 64 {
            shared.ring_overflow.store(true, Ordering::Release);
        }
        let bit = 1u64 << (exchange % 64);
        if weighty {
            shared.close_only.fetch_and(!bit, Ordering::Relaxed);
            shared.weighty_sent.fetch_add(1, Ordering::AcqRel);
        } else {
            shared.close_only.fetch_or(bit, Ordering::Relaxed);
        }
        shared.sent.store(exchange, Ordering::Release);
        exchange
    }

    /// Reads NUL-terminated fields: feeds each byte of field `into` to `f`, moving to the
    /// next field at each NUL. Returns the rest once past field `last`.
    fn fields<'b>(
        &mut self,
        mut bytes: &'b [u8],
        last: u8,
        mut f: impl FnMut(&mut Self, u8, &[u8]),
    ) -> &'b [u8] {
        while self.field <= last && !bytes.is_empty() {
            match bytes.iter().position(|&b| b == 0) {
                Some(end) => {
                    f(self, self.field, &bytes[..end]);
                    self.field += 1;
                    bytes = &bytes[end + 1..];
                }
                None => {
                    f(self, self.field, bytes);
                    return &[];
                }
            }
        }
        bytes
    }

    fn is_stateful(&self, name: NameHash) -> bool {
        if name.is_empty() {
            self.unnamed_stateful
        } else {
            self.overflow || self.stateful.contains(&name.value())
        }
    }
}

impl Inspect for Frontend {
    fn begin(&mut self, kind: u8, _len: u32) {
        self.kind = kind;
        if !matches!(kind, b'C' | b'S' | b'H') {
            self.weighty = true;
        }
        self.field = 0;
        self.close_kind = 0;
        self.name = NameHash::default();
        self.words = Words::default();
        if kind == b'Q' {
            self.reset = ResetMatch::start();
        }
    }

    fn body(&mut self, bytes: &[u8]) {
        match self.kind {
            b'Q' => {
                self.words.feed(bytes);
                self.reset.feed(bytes);
            }
            // Parse: statement name, SQL, parameter types.
            b'P' => {
                self.fields(bytes, 1, |this, field, part| match field {
                    0 => this.name.feed(part),
                    _ => this.words.feed(part),
                });
            }
            // Bind: portal name, statement name, the rest.
            b'B' => {
                self.fields(bytes, 1, |this, field, part| {
                    if field == 1 {
                        this.name.feed(part);
                    }
                });
            }
            // Close: `S` or `P`, then the name.
            b'C' => {
                let bytes = if self.close_kind == 0 {
                    self.close_kind = bytes[0];
                    &bytes[1..]
                } else {
                    bytes
                };
                self.fields(bytes, 0, |this, _, part| this.name.feed(part));
            }
            _ => {}
        }
    }

    fn end(&mut self, shared: &TapShared) {
        match self.kind {
            b'Q' => {
                let exchange = self.complete_exchange(shared);
                if self.words.found() {
                    shared.mark_dirty(exchange);
                }
                if self.reset.matched() {
                    shared.reset_sent_at.store(exchange, Ordering::Release);
                }
            }
            b'P' => {
                let stateful = self.words.found();
                if self.name.is_empty() {
                    self.unnamed_stateful = stateful;
                } else if stateful {
                    if self.stateful.len() < STATEFUL_STATEMENTS_MAX {
                        self.stateful.push(self.name.value());
                    } else {
                        self.overflow = true;
                    }
                }
                if stateful {
                    shared.mark_dirty(Self::next_exchange(shared));
                }
            }
            b'B' if self.is_stateful(self.name) => {
                shared.mark_dirty(Self::next_exchange(shared));
            }
            b'C' if self.close_kind == b'S' => {
                if self.name.is_empty() {
                    self.unnamed_stateful = false;
                } else if let Some(i) = self.stateful.iter().position(|&h| h == self.name.value()) {
                    self.stateful.swap_remove(i);
                }
            }
            b'S' => {
                self.complete_exchange(shared);
            }
            b'F' => {
                let exchange = self.complete_exchange(shared);
                shared.mark_dirty(exchange);
            }
            _ => {}
        }
    }
}

/// Command tags (first word) of statements that leave no session state behind, unless
/// their SQL says otherwise (see [`Words`]). `DO` is not here: its body, arbitrary
/// PL/pgSQL, is right there in the SQL and may `SET` anything.
const NEUTRAL_TAGS: &[&[u8]] = &[
    b"SELECT",
    b"INSERT",
    b"UPDATE",
    b"DELETE",
    b"MERGE",
    b"BEGIN",
    b"START",
    b"COMMIT",
    b"ROLLBACK",
    b"END",
    b"ABORT",
    b"SAVEPOINT",
    b"RELEASE",
    b"COPY",
    b"FETCH",
    b"MOVE",
    b"SHOW",
    b"EXPLAIN",
    b"CREATE",
    b"ALTER",
    b"DROP",
    b"TRUNCATE",
    b"VACUUM",
    b"ANALYZE",
    b"CALL",
    b"GRANT",
    b"REVOKE",
    b"COMMENT",
    b"NOTIFY",
    b"CHECKPOINT",
    b"CLUSTER",
    b"REINDEX",
    b"REFRESH",
    b"LOCK",
    b"CLOSE",
    b"SECURITY",
    b"IMPORT",
    b"REASSIGN",
    b"VALUES",
    b"TABLE",
];

/// Bytes kept of a command tag or a parameter name: enough for every one compared.
const KEEP: usize = 24;

/// The server's direction: command tags, transaction status, parameter changes.
#[derive(Debug, Default)]
pub(crate) struct Backend {
    framing: Framing,
    /// The first byte is the answer to an `SSLRequest`, not a message.
    ssl_answer_first: bool,
    /// The server switched to TLS: this (raw) stream carries ciphertext from now on.
    inert: bool,
    kind: u8,
    field: u8,
    kept: [u8; KEEP],
    kept_len: usize,
    value: [u8; 8],
    value_len: usize,
    /// An `ErrorResponse` arrived in the exchange being answered.
    error: bool,
    /// `in_hot_standby` as the server first reported it (`on`: 1, `off`: 2).
    standby: u8,
}

impl Backend {
    /// A framer for a stream whose first server byte answers an `SSLRequest`.
    pub(crate) fn after_ssl_answer() -> Self {
        Self {
            ssl_answer_first: true,
            ..Self::default()
        }
    }

    /// Whether the raw stream now carries TLS (the tap above TLS takes over).
    pub(crate) fn is_inert(&self) -> bool {
        self.inert
    }

    /// Feeds bytes the server sent, from the very first one: startup messages are framed
    /// too (only what matters after startup is recorded).
    pub(crate) fn feed(&mut self, mut bytes: &[u8], shared: &TapShared) {
        if self.inert || bytes.is_empty() {
            return;
        }
        if self.ssl_answer_first {
            self.ssl_answer_first = false;
            if bytes[0] == b'S' {
                self.inert = true;
                return;
            }
            bytes = &bytes[1..];
        }
        let mut framing = self.framing;
        if !framing.feed(bytes, self, shared) {
            shared.mark_desync();
        }
        self.framing = framing;
    }

    fn keep(&mut self, part: &[u8]) {
        let take = part.len().min(KEEP - self.kept_len);
        self.kept[self.kept_len..self.kept_len + take].copy_from_slice(&part[..take]);
        self.kept_len += take;
    }

    fn tag_is_neutral(&self) -> bool {
        let tag = &self.kept[..self.kept_len];
        let first = tag.split(|&b| b == b' ').next().unwrap_or(tag);
        NEUTRAL_TAGS.contains(&first)
    }
}

impl Inspect for Backend {
    fn begin(&mut self, kind: u8, _len: u32) {
        self.kind = kind;
        self.field = 0;
        self.kept_len = 0;
        self.value_len = 0;
    }

    fn body(&mut self, mut bytes: &[u8]) {
        match self.kind {
            // CommandComplete: the tag.
            b'C' if self.field == 0 => match bytes.iter().position(|&b| b == 0) {
                Some(end) => {
                    self.keep(&bytes[..end]);
                    self.field = 1;
                }
                None => self.keep(bytes),
            },
            // ReadyForQuery: the status.
            b'Z' if self.field == 0 => {
                self.value[0] = bytes[0];
                self.field = 1;
            }
            // ParameterStatus: name, value.
            b'S' => {
                while self.field < 2 && !bytes.is_empty() {
                    let end = bytes.iter().position(|&b| b == 0);
                    let part = &bytes[..end.unwrap_or(bytes.len())];
                    if self.field == 0 {
                        self.keep(part);
                    } else {
                        let take = part.len().min(self.value.len() - self.value_len);
                        self.value[self.value_len..self.value_len + take]
                            .copy_from_slice(&part[..take]);
                        self.value_len += take;
                    }
                    match end {
                        Some(end) => {
                            self.field += 1;
                            bytes = &bytes[end + 1..];
                        }
                        None => return,
                    }
                }
            }
            _ => {}
        }
    }

    fn end(&mut self, shared: &TapShared) {
        if self.kind == b'S' && &self.kept[..self.kept_len] == b"in_hot_standby" {
            let now = if &self.value[..self.value_len] == b"on" {
                1
            } else {
                2
            };
            if self.standby == 0 {
                self.standby = now;
            } else if self.standby != now {
                shared.role_changed.store(true, Ordering::Relaxed);
            }
            return;
        }
        if !shared.is_armed() {
            return;
        }
        let current = shared.completed.load(Ordering::Relaxed) + 1;
        match self.kind {
            b'C' => {
                if !self.tag_is_neutral() {
                    shared.mark_dirty(current);
                }
                if self.kept[..self.kept_len].starts_with(b"PREPARE") {
                    shared.prepared_at.fetch_max(current, Ordering::AcqRel);
                }
            }
            b'E' => self.error = true,
            b'S' => shared.mark_dirty(current),
            b'Z' => {
                if current == shared.reset_sent_at.load(Ordering::Acquire) && !self.error {
                    shared.reset_at.fetch_max(current, Ordering::AcqRel);
                }
                self.error = false;
                shared.status.store(self.value[0], Ordering::Release);
                let close_only = shared.close_only.load(Ordering::Relaxed) & (1 << (current % 64));
                if close_only == 0 {
                    shared.weighty_completed.fetch_add(1, Ordering::AcqRel);
                }
                shared.completed.store(current, Ordering::Release);
                shared.ready.notify(usize::MAX);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests;
