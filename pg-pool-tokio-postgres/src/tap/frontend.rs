//! The client's direction of the tap: exchanges, the SQL judge, statements by name, the pool's
//! own reset text.

use std::sync::atomic::Ordering;

use super::marker::MarkerBuffer;
use super::{Framing, Inspect, TapShared};
use crate::tap_scan::{NameHash, ResetMatch, SqlJudge, cstr, nul_at};

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
    /// A `Query` that may be the return path's marker, gathered when it comes in pieces.
    marker: MarkerBuffer,
    /// The expected marker was written in this write: wake the return path.
    marked: bool,
    /// Named statements whose SQL changes the session.
    pub(super) stateful: Vec<u64>,
    pub(super) overflow: bool,
    /// The unnamed statement's SQL changes the session.
    pub(super) unnamed_stateful: bool,
    /// The exchange being written does more than close statements or portals.
    weighty: bool,
    /// The shared counters, read at the start of each write and published at its end
    /// (this direction alone writes `sent`, `weighty_sent` and `close_only`; `completed`
    /// cannot move during a write: both directions run on the connection's task).
    sent: u64,
    weighty_sent: u64,
    close_only: u64,
    sync_ended: u64,
    completed: u64,
}

impl Frontend {
    /// Feeds bytes the client wrote (only once armed).
    pub(crate) fn feed(&mut self, bytes: &[u8], shared: &TapShared) {
        self.sent = shared.sent.load(Ordering::Relaxed);
        self.weighty_sent = shared.weighty_sent.load(Ordering::Relaxed);
        self.close_only = shared.close_only.load(Ordering::Relaxed);
        self.sync_ended = shared.sync_ended.load(Ordering::Relaxed);
        self.completed = shared.completed.load(Ordering::Relaxed);
        let sent = self.sent;
        let mut framing = self.framing;
        let sound = framing.feed(bytes, self, shared);
        self.framing = framing;
        if self.sent != sent {
            shared.close_only.store(self.close_only, Ordering::Relaxed);
            shared.sync_ended.store(self.sync_ended, Ordering::Relaxed);
            shared
                .weighty_sent
                .store(self.weighty_sent, Ordering::Release);
            shared.sent.store(self.sent, Ordering::Release);
        }
        if std::mem::take(&mut self.marked) {
            shared.wake();
        }
        if !sound {
            shared.mark_desync();
        }
    }

    /// The exchange the message being written belongs to.
    fn next_exchange(&self) -> u64 {
        self.sent + 1
    }

    /// The exchange being written is complete on the client's side (`sync`: by a `Sync`,
    /// which alone may end an exchange that only closes); returns its number.
    fn complete_exchange(&mut self, shared: &TapShared, sync: bool) -> u64 {
        let weighty = std::mem::take(&mut self.weighty) || !sync;
        let exchange = self.sent + 1;
        if exchange - self.completed > 64 {
            shared.ring_overflow.store(true, Ordering::Release);
        }
        let bit = 1u64 << (exchange % 64);
        if sync {
            self.sync_ended |= bit;
        } else {
            self.sync_ended &= !bit;
        }
        if weighty {
            self.close_only &= !bit;
            self.weighty_sent += 1;
        } else {
            self.close_only |= bit;
        }
        self.sent = exchange;
        exchange
    }

    /// A `Query` whose SQL `changes` the session (`reset`: it is one of the pool's reset
    /// texts, byte for byte) was written.
    fn queried(&mut self, shared: &TapShared, changes: bool, reset: bool) {
        let exchange = self.complete_exchange(shared, false);
        if changes {
            shared.mark_dirty(exchange);
        }
        if reset {
            shared.reset_sent_at.store(exchange, Ordering::Release);
        }
    }

    /// A `Query` whose body may be the return path's marker: if it is the one expected,
    /// records its exchange (it changes nothing) and returns `true`.
    fn offer_marker(&mut self, shared: &TapShared, body: &[u8]) -> bool {
        if !shared
            .markers
            .offer(body, self.next_exchange(), self.weighty_sent)
        {
            return false;
        }
        self.queried(shared, false, false);
        self.marked = true;
        true
    }

    /// A `Parse` of statement `name` whose SQL changes the session or not.
    fn parsed(&mut self, shared: &TapShared, name: NameHash, stateful: bool) {
        if name.is_empty() {
            self.unnamed_stateful = stateful;
        } else if stateful {
            if self.stateful.len() < STATEFUL_STATEMENTS_MAX {
                self.stateful.push(name.value());
            } else {
                self.overflow = true;
            }
        }
        if stateful {
            shared.mark_dirty(self.next_exchange());
        }
    }

    /// A `Bind` of statement `name`.
    fn bound(&mut self, shared: &TapShared, name: NameHash) {
        if self.is_stateful(name) {
            shared.mark_dirty(self.next_exchange());
        }
    }

    /// A `Close` of statement `name`.
    fn closed_statement(&mut self, name: NameHash) {
        if name.is_empty() {
            self.unnamed_stateful = false;
        } else if let Some(i) = self.stateful.iter().position(|&h| h == name.value()) {
            self.stateful.swap_remove(i);
        }
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
            match nul_at(bytes) {
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
    fn begin(&mut self, kind: u8, len: u32) {
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
            self.marker.start(len);
        }
    }

    fn body(&mut self, bytes: &[u8]) {
        match self.kind {
            b'Q' => {
                self.sql.feed(bytes);
                self.reset.feed(bytes);
                self.marker.feed(bytes);
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
                let marker = self.marker;
                if marker
                    .body()
                    .is_some_and(|body| self.offer_marker(shared, body))
                {
                    return;
                }
                let (changes, reset) = (self.sql.changes(), self.reset.matched());
                self.queried(shared, changes, reset);
            }
            b'P' => {
                let stateful = self.sql.changes();
                self.parsed(shared, self.name, stateful);
            }
            b'B' => self.bound(shared, self.name),
            b'C' if self.close_kind == b'S' => self.closed_statement(self.name),
            b'S' => {
                self.complete_exchange(shared, true);
            }
            b'F' => {
                let exchange = self.complete_exchange(shared, false);
                shared.mark_dirty(exchange);
            }
            _ => {}
        }
    }

    #[inline]
    fn whole(&mut self, kind: u8, body: &[u8], shared: &TapShared) {
        match kind {
            b'S' => {
                self.complete_exchange(shared, true);
            }
            b'H' => {}
            // Close: `S` or `P`, then the name. A named statement is looked up (hashed)
            // only when some named statement is remembered as changing the session.
            b'C' => match body {
                [b'S'] | [b'S', 0, ..] => self.closed_statement(NameHash::default()),
                [b'S', rest @ ..] if !self.stateful.is_empty() => {
                    self.closed_statement(NameHash::of(cstr(rest).0));
                }
                _ => {}
            },
            // Bind: portal name, statement name, the rest. As for `Close`, a named statement
            // is hashed only when it could be one remembered.
            b'B' => {
                self.weighty = true;
                let statement = match body {
                    [0, rest @ ..] => Some(rest),
                    _ => cstr(body).1,
                };
                let name = match statement {
                    None | Some([] | [0, ..]) => NameHash::default(),
                    Some(_) if self.stateful.is_empty() && !self.overflow => return,
                    Some(rest) => NameHash::of(cstr(rest).0),
                };
                self.bound(shared, name);
            }
            // Parse: statement name, SQL, parameter types. The name is hashed only when it
            // must be remembered.
            b'P' => {
                self.weighty = true;
                let (name, rest) = match body {
                    [0, rest @ ..] => (&[][..], Some(rest)),
                    _ => cstr(body),
                };
                let stateful = rest.is_none_or(|sql| self.sql.judge_whole(sql));
                let name = if name.is_empty() {
                    NameHash::default()
                } else if stateful {
                    NameHash::of(name)
                } else {
                    // Named, harmless: nothing to remember, nothing to forget.
                    return;
                };
                self.parsed(shared, name, stateful);
            }
            b'Q' => {
                if body.len() == super::marker::BODY_LEN && self.offer_marker(shared, body) {
                    return;
                }
                let changes = self.sql.judge_whole(body);
                self.queried(shared, changes, ResetMatch::whole(body));
            }
            b'F' => {
                let exchange = self.complete_exchange(shared, false);
                shared.mark_dirty(exchange);
            }
            _ => self.weighty = true,
        }
    }
}
