//! The return path's marker: an empty `Query` (a comment) carrying a one-time random
//! nonce, which the tap recognises when it is written.
//!
//! tokio-postgres writes a client's requests in the order they were queued, so once the
//! marker is on the wire, every request queued before it has been written, and judged by
//! the tap. The nonce makes the marker unforgeable: 128 bits drawn from the operating
//! system for each return, expected by the tap only while that return waits for it and
//! forgotten as soon as it is seen. A marker text read back from the server (a statement
//! log, `pg_stat_activity`) names a nonce already spent; user SQL that guesses one has a
//! chance of 2^-128. The nonce never reaches a log or a `Debug` of this crate.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

/// What every marker starts with.
const PREFIX: &[u8] = b"/* pg-pool checkin ";
/// What every marker ends with (before the `Query`'s NUL).
const SUFFIX: &[u8] = b" */";
/// Hex digits of a nonce.
const NONCE_LEN: usize = 32;
/// The body of a marker `Query`: its text and the NUL that ends it.
pub(crate) const BODY_LEN: usize = PREFIX.len() + NONCE_LEN + SUFFIX.len() + 1;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// One marker's nonce: 128 random bits as 32 lowercase hex digits.
pub(crate) struct Nonce([u8; NONCE_LEN]);

// Manual impl: the nonce itself is never shown.
impl std::fmt::Debug for Nonce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Nonce(<hidden>)")
    }
}

impl Nonce {
    /// A fresh nonce from the operating system's generator; `None` if it fails (the return
    /// path then proves the session idle without a marker).
    pub(crate) fn random() -> Option<Nonce> {
        let mut raw = [0u8; NONCE_LEN / 2];
        getrandom::fill(&mut raw).ok()?;
        let mut hex = [0u8; NONCE_LEN];
        for (i, byte) in raw.iter().enumerate() {
            hex[2 * i] = HEX[usize::from(byte >> 4)];
            hex[2 * i + 1] = HEX[usize::from(byte & 0x0f)];
        }
        Some(Nonce(hex))
    }

    /// A nonce of the given hex digits (tests replay a known marker).
    #[cfg(test)]
    pub(crate) fn fixed(hex: [u8; NONCE_LEN]) -> Nonce {
        Nonce(hex)
    }

    /// The marker's SQL: a comment, which the server answers with `EmptyQueryResponse`.
    pub(crate) fn sql(&self) -> String {
        let mut sql = String::with_capacity(BODY_LEN - 1);
        sql.push_str(std::str::from_utf8(PREFIX).unwrap_or_default());
        // Hex digits only: ASCII.
        sql.extend(self.0.iter().map(|&b| char::from(b)));
        sql.push_str(std::str::from_utf8(SUFFIX).unwrap_or_default());
        sql
    }
}

/// The nonce a return path waits for and where the tap saw it written.
#[derive(Default)]
pub(crate) struct Markers {
    expected: Mutex<Option<[u8; NONCE_LEN]>>,
    /// The exchange that carried the expected marker, once written (0: not yet).
    seen_at: AtomicU64,
    /// How many exchanges written before it did more than close statements or portals.
    weighty_before: AtomicU64,
}

// Manual impl: the expected nonce is never shown.
impl std::fmt::Debug for Markers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Markers")
            .field("expecting", &self.lock().is_some())
            .field("seen_at", &self.seen_at.load(Ordering::Relaxed))
            .finish()
    }
}

impl Markers {
    fn lock(&self) -> MutexGuard<'_, Option<[u8; NONCE_LEN]>> {
        self.expected.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for `nonce` from now on (forgetting any earlier one and where it was seen).
    /// Call before the marker is queued: the queueing hands it to the connection task,
    /// which then sees the nonce stored.
    pub(crate) fn expect(&self, nonce: &Nonce) {
        let mut expected = self.lock();
        *expected = Some(nonce.0);
        self.seen_at.store(0, Ordering::Release);
    }

    /// Stops waiting: a marker written from now on is not recognised.
    pub(crate) fn forget(&self) {
        *self.lock() = None;
    }

    /// The exchange that carried the expected marker, once the tap saw it written.
    pub(crate) fn seen_at(&self) -> Option<u64> {
        self.seen().map(|(at, _)| at)
    }

    /// The exchange that carried the expected marker, once the tap saw it written, and
    /// how many exchanges written before it did more than close.
    pub(crate) fn seen(&self) -> Option<(u64, u64)> {
        match self.seen_at.load(Ordering::Acquire) {
            0 => None,
            at => Some((at, self.weighty_before.load(Ordering::Relaxed))),
        }
    }

    /// Whether `body` (a whole `Query` body, NUL included) is the expected marker; if so,
    /// records it as written in `exchange`, after `weighty_before` exchanges that did more
    /// than close, and spends the nonce.
    pub(crate) fn offer(&self, body: &[u8], exchange: u64, weighty_before: u64) -> bool {
        if body.len() != BODY_LEN || !body.starts_with(PREFIX) {
            return false;
        }
        let (nonce, rest) = body[PREFIX.len()..].split_at(NONCE_LEN);
        if rest.get(..SUFFIX.len()) != Some(SUFFIX) || rest.last() != Some(&0) {
            return false;
        }
        let mut expected = self.lock();
        if expected.as_ref().map(|e| &e[..]) != Some(nonce) {
            return false;
        }
        *expected = None;
        self.weighty_before.store(weighty_before, Ordering::Relaxed);
        self.seen_at.store(exchange, Ordering::Release);
        true
    }
}

/// Gathers a `Query` body that may be a marker when it arrives in pieces.
#[derive(Clone, Copy)]
pub(crate) struct MarkerBuffer {
    bytes: [u8; BODY_LEN],
    /// Bytes gathered; `None` when the message cannot be a marker.
    len: Option<usize>,
}

// Manual impl: the bytes are a user's SQL or a nonce, never shown.
impl std::fmt::Debug for MarkerBuffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MarkerBuffer")
            .field("gathered", &self.len)
            .finish()
    }
}

impl Default for MarkerBuffer {
    fn default() -> Self {
        Self {
            bytes: [0; BODY_LEN],
            len: None,
        }
    }
}

impl MarkerBuffer {
    /// A `Query` with a body of `len` bytes begins.
    pub(crate) fn start(&mut self, len: u32) {
        self.len = (len as usize == BODY_LEN).then_some(0);
    }

    /// The next piece of the body.
    pub(crate) fn feed(&mut self, piece: &[u8]) {
        let Some(len) = self.len else {
            return;
        };
        match self.bytes.get_mut(len..len + piece.len()) {
            Some(into) => {
                into.copy_from_slice(piece);
                self.len = Some(len + piece.len());
            }
            None => self.len = None,
        }
    }

    /// The whole body, if it was gathered and may be a marker.
    pub(crate) fn body(&self) -> Option<&[u8]> {
        (self.len == Some(BODY_LEN)).then_some(&self.bytes[..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(nonce: &Nonce) -> Vec<u8> {
        let mut body = nonce.sql().into_bytes();
        body.push(0);
        body
    }

    #[test]
    fn only_the_expected_nonce_is_recognised_and_only_once() {
        let markers = Markers::default();
        let nonce = Nonce::random().unwrap();
        let marker = body(&nonce);
        assert_eq!(marker.len(), BODY_LEN);
        assert!(!markers.offer(&marker, 3, 0), "nothing expected yet");
        markers.expect(&nonce);
        let other = body(&Nonce::random().unwrap());
        assert!(!markers.offer(&other, 4, 0), "another nonce");
        let mut upper = marker.clone();
        upper[PREFIX.len()..PREFIX.len() + NONCE_LEN].make_ascii_uppercase();
        if upper != marker {
            assert!(!markers.offer(&upper, 4, 0), "not byte for byte");
        }
        assert_eq!(markers.seen_at(), None);
        assert!(markers.offer(&marker, 5, 0));
        assert_eq!(markers.seen_at(), Some(5));
        assert!(!markers.offer(&marker, 6, 0), "a spent nonce");
        assert_eq!(markers.seen_at(), Some(5));
        let next = Nonce::random().unwrap();
        markers.expect(&next);
        assert_eq!(markers.seen_at(), None);
        markers.forget();
        assert!(!markers.offer(&body(&next), 7, 0), "forgotten");
    }

    #[test]
    fn nonces_are_hidden_and_fresh() {
        let a = Nonce::random().unwrap();
        let b = Nonce::random().unwrap();
        assert_ne!(a.sql(), b.sql());
        assert!(a.sql().starts_with("/* pg-pool checkin ") && a.sql().ends_with(" */"));
        let shown = format!("{a:?}");
        assert!(!shown.contains(&a.sql()[PREFIX.len()..PREFIX.len() + 8]));
        let markers = Markers::default();
        markers.expect(&a);
        let shown = format!("{markers:?}");
        assert!(
            !shown.contains(&a.sql()[PREFIX.len()..PREFIX.len() + 8]),
            "{shown}"
        );
    }

    #[test]
    fn a_marker_in_pieces_is_gathered() {
        let nonce = Nonce::random().unwrap();
        let marker = body(&nonce);
        let mut buffer = MarkerBuffer::default();
        buffer.start(BODY_LEN as u32);
        let (a, b) = marker.split_at(9);
        buffer.feed(a);
        assert!(buffer.body().is_none());
        buffer.feed(b);
        assert_eq!(buffer.body(), Some(&marker[..]));
        let shown = format!("{buffer:?}");
        assert!(
            !shown.contains(&nonce.sql()[PREFIX.len()..PREFIX.len() + 8]) && !shown.contains('['),
            "{shown}"
        );
        buffer.start(BODY_LEN as u32 + 1);
        buffer.feed(&marker);
        assert!(buffer.body().is_none());
    }
}
