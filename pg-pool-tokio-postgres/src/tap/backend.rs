//! The server's direction of the tap: command tags, `ReadyForQuery`, `ParameterStatus`.

use std::sync::atomic::Ordering;

use super::{Framing, Inspect, TapShared};
use crate::tap_scan::{cstr, nul_at};

/// Command tags (first word) of statements that leave no session state behind, unless
/// their SQL says otherwise (see `SqlJudge`, which also counts `CALL` and any call of a
/// function that is not a known built-in). `DO` is not here: its body, arbitrary
/// PL/pgSQL, may `SET` anything.
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
    /// The server entered copy-in mode (`CopyInResponse`, `CopyBothResponse`) in the
    /// exchange being answered.
    copying: bool,
    /// `in_hot_standby` as the server first reported it (`on`: 1, `off`: 2).
    standby: u8,
    /// Whether the tap was armed when the bytes being read arrived.
    armed: bool,
    /// The shared counters and status, read at the start of each read and published at
    /// its end (this direction alone writes them), so that a read buffer holding many
    /// messages costs one publication and one wake-up check.
    completed: u64,
    weighty_completed: u64,
    status: u8,
    /// The status byte of the last `ReadyForQuery` read (kept by one without its byte).
    status_read: u8,
}

impl Backend {
    /// A framer for a stream whose first server byte answers an `SSLRequest`.
    #[cfg(feature = "tls")]
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
        self.armed = shared.is_armed();
        self.completed = shared.completed.load(Ordering::Relaxed);
        self.weighty_completed = shared.weighty_completed.load(Ordering::Relaxed);
        let completed = self.completed;
        let mut framing = self.framing;
        let sound = framing.feed(bytes, self, shared);
        self.framing = framing;
        if self.completed != completed {
            // The status before the count: a reader that sees the count sees its status.
            shared.status.store(self.status, Ordering::Release);
            shared
                .weighty_completed
                .store(self.weighty_completed, Ordering::Release);
            shared.completed.store(self.completed, Ordering::Release);
            shared.wake();
        }
        if !sound {
            shared.mark_desync();
        }
    }

    /// A `CommandComplete` with `tag` (its first [`KEEP`] bytes).
    fn tagged(&mut self, shared: &TapShared, tag: &[u8]) {
        if !self.armed {
            return;
        }
        let current = self.completed + 1;
        let first = tag.split(|&b| b == b' ').next().unwrap_or(tag);
        if !NEUTRAL_TAGS.contains(&first) {
            shared.mark_dirty(current);
        }
        if tag.starts_with(b"PREPARE") {
            shared.prepared_at.fetch_max(current, Ordering::AcqRel);
        }
        if tag.starts_with(b"DISCARD ALL") || tag.starts_with(b"DEALLOCATE") {
            shared.statements_dropped.store(true, Ordering::Release);
        }
    }

    /// A `ParameterStatus` setting `name` to `value`.
    fn parameter(&mut self, shared: &TapShared, name: &[u8], value: &[u8]) {
        if name == b"in_hot_standby" {
            let now = if value == b"on" { 1 } else { 2 };
            if self.standby == 0 {
                self.standby = now;
            } else if self.standby != now {
                shared.role_changed.store(true, Ordering::Relaxed);
            }
            return;
        }
        if self.armed {
            shared.mark_dirty(self.completed + 1);
        }
    }

    /// A `ReadyForQuery` with transaction status `status`: the oldest exchange completed.
    fn ready(&mut self, shared: &TapShared, status: u8) {
        if !self.armed {
            return;
        }
        let current = self.completed + 1;
        if current == shared.reset_sent_at.load(Ordering::Acquire) && !self.error {
            shared.reset_at.fetch_max(current, Ordering::AcqRel);
        }
        self.error = false;
        self.status = status;
        self.complete(shared, current);
        // An extended-protocol `COPY ... FROM STDIN` (tokio-postgres's `copy_in`): the
        // server ignores every `Sync` while it copies in, the one sent with the `Execute`
        // included, and answers the `Sync` written after `CopyDone`/`CopyFail` (the next
        // exchange: the client writes nothing else meanwhile) with this same
        // `ReadyForQuery`. Both exchanges are complete.
        let sync_ended = shared.sync_ended.load(Ordering::Relaxed) & (1 << (current % 64)) != 0;
        if std::mem::take(&mut self.copying)
            && sync_ended
            && current < shared.sent.load(Ordering::Acquire)
        {
            self.complete(shared, current + 1);
        }
    }

    /// Exchange `exchange` (the oldest outstanding) completed.
    fn complete(&mut self, shared: &TapShared, exchange: u64) {
        let close_only = shared.close_only.load(Ordering::Relaxed) & (1 << (exchange % 64));
        if close_only == 0 {
            self.weighty_completed += 1;
        }
        self.completed = exchange;
    }

    /// An `ErrorResponse` with SQLSTATE `code` (its first [`KEEP`] bytes).
    ///
    /// A protocol violation in copy-in mode means the server took a message the client
    /// meant as a request of its own (a `Query` written behind a `COPY ... FROM STDIN` that
    /// the client never feeds) as the offending one: that request gets no answer, and
    /// the tap's count of exchanges no longer matches the server's. Nothing it says is
    /// trusted from then on.
    fn errored(&mut self, shared: &TapShared, code: &[u8]) {
        self.error |= self.armed;
        if self.armed && self.copying && code == b"08P01" {
            shared.mark_desync();
        }
    }

    fn keep(&mut self, part: &[u8]) {
        let take = part.len().min(KEEP - self.kept_len);
        self.kept[self.kept_len..self.kept_len + take].copy_from_slice(&part[..take]);
        self.kept_len += take;
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
            b'C' if self.field == 0 => match nul_at(bytes) {
                Some(end) => {
                    self.keep(&bytes[..end]);
                    self.field = 1;
                }
                None => self.keep(bytes),
            },
            // ReadyForQuery: the status.
            b'Z' if self.field == 0 => {
                self.status_read = bytes[0];
                self.field = 1;
            }
            // ErrorResponse: fields, each a type byte and a string; the code (`C`) is kept.
            // `field`: 0 at a type byte, 1 in the code, 2 in another field, 3 at the end.
            b'E' => {
                for &byte in bytes {
                    match (self.field, byte) {
                        (0, 0) => self.field = 3,
                        (0, b'C') => self.field = 1,
                        (0, _) => self.field = 2,
                        (1 | 2, 0) => self.field = 0,
                        (1, _) => self.keep(&[byte]),
                        _ => {}
                    }
                }
            }
            // ParameterStatus: name, value.
            b'S' => {
                while self.field < 2 && !bytes.is_empty() {
                    let end = nul_at(bytes);
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
        let kept = self.kept;
        let kept = &kept[..self.kept_len];
        match self.kind {
            b'S' => {
                let value = self.value;
                self.parameter(shared, kept, &value[..self.value_len]);
            }
            b'C' => self.tagged(shared, kept),
            b'E' => self.errored(shared, kept),
            b'G' | b'W' => self.copying |= self.armed,
            b'Z' => self.ready(shared, self.status_read),
            _ => {}
        }
    }

    #[inline]
    fn whole(&mut self, kind: u8, body: &[u8], shared: &TapShared) {
        match kind {
            // Rows, descriptions, parse/bind/close completions and the rest: their type is
            // all that matters.
            b'D' | b'T' | b't' | b'1' | b'2' | b'3' | b'n' | b's' | b'I' => {}
            b'C' => {
                let tag = cstr(body).0;
                self.tagged(shared, &tag[..tag.len().min(KEEP)]);
            }
            b'Z' => {
                // A `ReadyForQuery` without its byte keeps the last status, as when framed
                // piece by piece.
                if let Some(&status) = body.first() {
                    self.status_read = status;
                }
                self.ready(shared, self.status_read);
            }
            b'S' => {
                let (name, rest) = cstr(body);
                let value = rest.map_or(&[][..], |rest| cstr(rest).0);
                self.parameter(shared, name, value);
            }
            b'E' => {
                // Rare: read as when it comes in pieces.
                self.begin(kind, 0);
                self.body(body);
                self.end(shared);
            }
            b'G' | b'W' => self.copying |= self.armed,
            _ => {}
        }
    }
}
