//! The protocol tap: what a session provably did, read off the PostgreSQL messages that
//! pass through its stream ([`TapStream`](crate::tap_stream::TapStream)), so the return
//! path resets only a session that changed.
//!
//! Both directions are framed (type byte, `i32` length, body), partial headers kept across
//! reads and writes, bodies never copied: only the bytes inspected are looked at, and no
//! message allocates but for the first sight of an SQL text (its verdict is kept, with a
//! copy of a short text). A message that arrives whole (the usual case) is inspected in one
//! step, in place; the server's rows, descriptions and completions are skipped by type
//! and length alone. The counters a return path reads are kept by each direction while
//! it reads one buffer and published once at its end (both directions run on the
//! connection's task, and a buffer is published before the stream's call returns).
//!
//! Exchanges are numbered in wire order: each `Query`, `Sync` and `FunctionCall` the
//! client writes is one, and each `ReadyForQuery` the server sends completes the oldest.
//! What changed the session is recorded against the exchange it belongs to; a reset
//! exchange that completed without an error erases everything up to and including its
//! own number.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering, fence};

mod backend;
mod frontend;
mod marker;

pub(crate) use backend::Backend;
pub(crate) use frontend::Frontend;
pub(crate) use marker::Nonce;

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
    /// One bit per exchange number modulo 64: set when a `Sync` ended it (not a `Query` or
    /// a `FunctionCall`).
    sync_ended: AtomicU64,
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
    /// A `DISCARD ALL` or `DEALLOCATE` completed: protocol-level prepared statements the
    /// client caches may be gone from the server. Taken by the return path.
    pub(crate) statements_dropped: AtomicBool,
    /// The completions counted when the client last went to read the socket: tokio-postgres
    /// reads again only once it has handed every whole message it read to its caller (a
    /// request's response channel), so the responses of these exchanges are no longer in
    /// its hands. One still there would hold back every later response: a row stream kept
    /// but never read, for one.
    dispatched: AtomicU64,
    /// `weighty_completed` at the same moment.
    dispatched_weighty: AtomicU64,
    /// The return path's marker (`marker.rs`).
    pub(crate) markers: marker::Markers,
    /// Woken at a `ReadyForQuery` (and when a marker is written, and when the client goes
    /// to read again) while a return path waits.
    ready: event_listener::Event,
    /// Return paths waiting on `ready`: the connection task notifies only when there is one
    /// (almost never), sparing every `ReadyForQuery` the event's lock.
    waiting: AtomicUsize,
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

    /// Whether a `DISCARD ALL` or `DEALLOCATE` completed since the last call: the statement
    /// cache must then be emptied, or it would hand out statements the server forgot.
    pub(crate) fn take_statements_dropped(&self) -> bool {
        // Read first: the swap (a locked instruction) only when there is something to take.
        self.statements_dropped.load(Ordering::Acquire)
            && self.statements_dropped.swap(false, Ordering::AcqRel)
    }

    /// Whether `in_hot_standby` changed since startup.
    pub(crate) fn role_changed(&self) -> bool {
        self.role_changed.load(Ordering::Relaxed)
    }

    /// Waits until nothing is outstanding; the caller bounds it with a timer.
    ///
    /// No wake-up is lost: the waiter counts itself in `waiting` before it registers and
    /// looks again after (`listen` ends with a `SeqCst` fence); the connection task stores
    /// the completion, then a `SeqCst` fence, then reads `waiting` (see [`TapShared::wake`]).
    /// Either the waiter sees the completion, or the connection task sees the waiter and
    /// notifies, under the event's lock, a listener registered before or after it.
    pub(crate) async fn settled(&self) {
        loop {
            if self.view().outstanding == 0 {
                return;
            }
            let _counted = Waiting::new(&self.waiting);
            let listener = self.ready.listen();
            if self.view().outstanding == 0 {
                return;
            }
            listener.await;
        }
    }

    /// The client goes to read the socket (see `dispatched`).
    pub(crate) fn reading(&self) {
        // Both directions run on the connection's task: `completed` is its own last store.
        let completed = self.completed.load(Ordering::Relaxed);
        if self.dispatched.load(Ordering::Relaxed) != completed {
            let weighty = self.weighty_completed.load(Ordering::Relaxed);
            self.dispatched_weighty.store(weighty, Ordering::Release);
            self.dispatched.store(completed, Ordering::Release);
            self.wake();
        }
    }

    /// Whether the expected marker was written, every exchange written before it completed
    /// (those that only close statements or portals excepted, as for [`TapView`]'s
    /// `outstanding`: a dropped `Statement` closes itself on its own, and its answer goes
    /// to nobody) and the client handed their responses over; or the framing was lost (the
    /// caller then finds the tap no longer live).
    fn marker_through(&self) -> bool {
        if self.desync.load(Ordering::Acquire) {
            return true;
        }
        let Some((at, weighty_before)) = self.markers.seen() else {
            return false;
        };
        if self.ring_overflow.load(Ordering::Acquire) {
            self.dispatched.load(Ordering::Acquire) + 1 >= at
        } else {
            self.dispatched_weighty.load(Ordering::Acquire) >= weighty_before
        }
    }

    /// Waits until [`TapShared::marker_through`]; the caller bounds it with a timer. No
    /// wake-up is lost, as in [`TapShared::settled`].
    pub(crate) async fn marker_passed(&self) {
        loop {
            if self.marker_through() {
                return;
            }
            let _counted = Waiting::new(&self.waiting);
            let listener = self.ready.listen();
            if self.marker_through() {
                return;
            }
            listener.await;
        }
    }

    /// Wakes the return paths waiting in [`TapShared::settled`], if any (see there).
    fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.waiting.load(Ordering::Relaxed) > 0 {
            self.ready.notify(usize::MAX);
        }
    }

    fn mark_dirty(&self, exchange: u64) {
        self.dirty_at.fetch_max(exchange, Ordering::AcqRel);
    }

    fn mark_desync(&self) {
        self.desync.store(true, Ordering::Release);
        self.wake();
    }
}

/// One waiter counted in [`TapShared::waiting`] while it lives (a waiter dropped mid-wait
/// by its timer uncounts itself too).
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::SeqCst);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
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
    /// A whole message at once, its body in place: what `begin`, `body` and `end` would
    /// record, in one step.
    fn whole(&mut self, kind: u8, body: &[u8], shared: &TapShared);
}

impl Framing {
    /// Feeds `bytes`; `false` once the framing is lost.
    #[inline]
    fn feed<I: Inspect>(&mut self, mut bytes: &[u8], inspect: &mut I, shared: &TapShared) -> bool {
        while !bytes.is_empty() {
            // Fast path: whole messages at a message boundary (the usual case: the driver
            // writes and the server sends whole messages), each inspected in place.
            if self.body_left.is_none() && self.got == 0 {
                while let Some(&[kind, a, b, c, d]) = bytes.get(..5) {
                    let len = i32::from_be_bytes([a, b, c, d]);
                    if len < 4 {
                        return false;
                    }
                    // Non-negative and at least 4.
                    let body = (len - 4) as usize;
                    let Some(whole) = bytes.get(5..5 + body) else {
                        break;
                    };
                    inspect.whole(kind, whole, shared);
                    bytes = &bytes[5 + body..];
                }
                if bytes.is_empty() {
                    return true;
                }
            }
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

#[cfg(test)]
mod tests;
