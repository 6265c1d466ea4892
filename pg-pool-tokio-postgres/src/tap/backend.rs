//! The server's direction of the tap: command tags, `ReadyForQuery`, `ParameterStatus`.

use std::sync::atomic::Ordering;

use super::{Framing, Inspect, TapShared};

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
    /// `in_hot_standby` as the server first reported it (`on`: 1, `off`: 2).
    standby: u8,
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
                let tag = &self.kept[..self.kept_len];
                if tag.starts_with(b"PREPARE") {
                    shared.prepared_at.fetch_max(current, Ordering::AcqRel);
                }
                if tag.starts_with(b"DISCARD ALL") || tag.starts_with(b"DEALLOCATE") {
                    shared.statements_dropped.store(true, Ordering::Release);
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
                shared.wake();
            }
            _ => {}
        }
    }
}
