//! The client's direction of the tap: exchanges, the SQL judge, statements by name, the pool's
//! own reset text.

use std::sync::atomic::Ordering;

use super::{Framing, Inspect, TapShared};
use crate::tap_scan::{NameHash, ResetMatch, SqlJudge};

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
    sql: SqlJudge,
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
        self.sql.start();
        if kind == b'Q' {
            self.reset = ResetMatch::start();
        }
    }

    fn body(&mut self, bytes: &[u8]) {
        match self.kind {
            b'Q' => {
                self.sql.feed(bytes);
                self.reset.feed(bytes);
            }
            // Parse: statement name, SQL, parameter types.
            b'P' => {
                let sql = self.fields(bytes, 0, |this, _, part| this.name.feed(part));
                self.sql.feed(sql);
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
                if self.sql.changes() {
                    shared.mark_dirty(exchange);
                }
                if self.reset.matched() {
                    shared.reset_sent_at.store(exchange, Ordering::Release);
                }
            }
            b'P' => {
                let stateful = self.sql.changes();
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
