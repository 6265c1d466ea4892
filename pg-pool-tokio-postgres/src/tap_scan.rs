//! The streaming scanners of the protocol tap: the judge of SQL text, statement names, and
//! the pool's own reset SQL, each fed a message body piece by piece (the judge copies only
//! a text split across writes).

use std::hash::BuildHasher;

use pg_pool_conninfo::sql::sql_changes_session;

use crate::reset::reset_texts;

/// The longest SQL text judged; longer text counts as a change unread (one reset).
const JUDGED_SQL_MAX: usize = 1 << 20;

/// Verdicts kept per session, by hash of the SQL text.
const VERDICTS: usize = 256;

/// A split SQL text's buffer larger than this is freed once judged.
const SPLIT_KEEP: usize = 16 * 1024;

/// Texts up to this many bytes are kept with their verdict and compared whole; longer
/// ones are known by their keyed hash and length.
const KEPT_TEXT_MAX: usize = 256;

/// The index of the first NUL byte of `bytes`, eight bytes at a time.
pub(crate) fn nul_at(bytes: &[u8]) -> Option<usize> {
    const LOW: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut words = bytes.chunks_exact(8);
    let mut at = 0;
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
        // The lowest byte flagged is the first NUL (a byte above a NUL may be flagged by
        // the borrow, never one below it).
        let zero = word.wrapping_sub(LOW) & !word & HIGH;
        if zero != 0 {
            return Some(at + (zero.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    words
        .remainder()
        .iter()
        .position(|&b| b == 0)
        .map(|i| at + i)
}

/// The bytes of `body` up to its first NUL, and those after it (`None` without a NUL).
pub(crate) fn cstr(body: &[u8]) -> (&[u8], Option<&[u8]>) {
    match nul_at(body) {
        Some(end) => (&body[..end], Some(&body[end + 1..])),
        None => (body, None),
    }
}

/// One remembered verdict: the SQL text's hash and length, the text itself when short, and
/// whether it changes the session.
#[derive(Debug, Default)]
struct Verdict {
    hash: u64,
    len: u32,
    known: bool,
    changes: bool,
    text: Option<Box<[u8]>>,
}

/// Judges the SQL text of each `Query` and `Parse` with
/// [`sql_changes_session`](pg_pool_conninfo::sql::sql_changes_session), fed the text
/// piece by piece up to its NUL (what follows is ignored).
///
/// A text that arrives whole (the usual case) is judged in place, without copying; a text
/// split across writes is gathered in a buffer kept for the next one. Verdicts are kept in
/// a small table: a text of up to [`KEPT_TEXT_MAX`] bytes is found by a quick hash and
/// then compared whole with the text kept beside its verdict (a collision only costs a
/// judgement), a longer one by a keyed 64-bit hash (random keys per session, so chosen
/// text cannot collide on purpose) and its length: a statement seen before costs a hash
/// and a comparison. The texts kept take at most `VERDICTS` × [`KEPT_TEXT_MAX`] bytes
/// (64 KiB) per session. A text never completed (no NUL) or longer than [`JUDGED_SQL_MAX`] counts as a
/// change.
#[derive(Default)]
pub(crate) struct SqlJudge {
    /// Pieces of the current text, when it came in more than one.
    split: Vec<u8>,
    /// Bytes of the current text seen so far.
    len: usize,
    /// The current text reached its NUL.
    done: bool,
    /// The current text's verdict, once done.
    changes: bool,
    keys: std::hash::RandomState,
    verdicts: Option<Box<[Verdict]>>,
}

impl std::fmt::Debug for SqlJudge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqlJudge")
            .field("len", &self.len)
            .field("done", &self.done)
            .field("changes", &self.changes)
            .finish_non_exhaustive()
    }
}

impl SqlJudge {
    /// A new message begins.
    pub(crate) fn start(&mut self) {
        self.split.clear();
        self.len = 0;
        self.done = false;
        self.changes = true;
    }

    /// The next piece of the text (the bytes after its NUL are ignored).
    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        if self.done || bytes.is_empty() {
            return;
        }
        let (text, complete) = match nul_at(bytes) {
            Some(end) => (&bytes[..end], true),
            None => (bytes, false),
        };
        let first = self.len == 0;
        self.len = self.len.saturating_add(text.len());
        if self.len > JUDGED_SQL_MAX {
            // Counted as a change unread; the rest is not gathered.
            self.split = Vec::new();
            self.done = complete;
            return;
        }
        if complete && first {
            self.changes = self.judge(text);
            self.done = true;
            return;
        }
        self.split.extend_from_slice(text);
        if complete {
            let split = std::mem::take(&mut self.split);
            self.changes = self.judge(&split);
            self.split = split;
            self.split.clear();
            if self.split.capacity() > SPLIT_KEEP {
                self.split = Vec::new();
            }
            self.done = true;
        }
    }

    /// The verdict on a whole message body at once (a text and its NUL, maybe more): what
    /// [`start`](Self::start), [`feed`](Self::feed) and [`changes`](Self::changes) say.
    pub(crate) fn judge_whole(&mut self, bytes: &[u8]) -> bool {
        match nul_at(bytes) {
            Some(end) if end <= JUDGED_SQL_MAX => self.judge(&bytes[..end]),
            _ => true,
        }
    }

    /// Whether the text of the message that just ended may change the session.
    pub(crate) fn changes(&self) -> bool {
        !self.done || self.len > JUDGED_SQL_MAX || self.changes
    }

    /// The verdict on a whole text, from the table when it was judged before.
    fn judge(&mut self, text: &[u8]) -> bool {
        let short = text.len() <= KEPT_TEXT_MAX;
        let hash = if short {
            quick_hash(text)
        } else {
            self.keys.hash_one(text)
        };
        // At most JUDGED_SQL_MAX.
        let len = text.len() as u32;
        let verdicts = self
            .verdicts
            .get_or_insert_with(|| (0..VERDICTS).map(|_| Verdict::default()).collect());
        let slot = &mut verdicts[(hash % VERDICTS as u64) as usize];
        if slot.known
            && slot.hash == hash
            && slot.len == len
            && slot.text.as_deref() == short.then_some(text)
        {
            return slot.changes;
        }
        let changes = sql_changes_session(&String::from_utf8_lossy(text));
        *slot = Verdict {
            hash,
            len,
            known: true,
            changes,
            text: short.then(|| text.into()),
        };
        changes
    }
}

/// A quick hash of a short text, eight bytes at a time (texts are compared whole after it,
/// so it needs spread, not secrecy).
fn quick_hash(text: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut hash = text.len() as u64;
    let mut words = text.chunks_exact(8);
    for word in &mut words {
        let word = u64::from_le_bytes(word.try_into().unwrap_or([0; 8]));
        hash = (hash ^ word).wrapping_mul(K).rotate_left(29);
    }
    let mut tail = [0u8; 8];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    hash = (hash ^ u64::from_le_bytes(tail)).wrapping_mul(K);
    hash ^ (hash >> 32)
}

/// A statement name, hashed as it streams by (FNV-1a, 64 bits).
#[derive(Debug, Clone, Copy)]
pub(crate) struct NameHash {
    hash: u64,
    len: usize,
}

impl Default for NameHash {
    fn default() -> Self {
        Self {
            hash: 0xcbf2_9ce4_8422_2325,
            len: 0,
        }
    }
}

impl NameHash {
    /// The hash of a whole name.
    pub(crate) fn of(bytes: &[u8]) -> Self {
        let mut name = Self::default();
        name.feed(bytes);
        name
    }

    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.hash = (self.hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
        }
        self.len += bytes.len();
    }

    /// The unnamed statement (or portal).
    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub(crate) fn value(&self) -> u64 {
        self.hash
    }
}

/// Whether a `Query` body is, byte for byte, one of the pool's reset texts (with its NUL).
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct ResetMatch {
    /// One bit per text of [`reset_texts`] still matching.
    live: u32,
    pos: usize,
}

impl ResetMatch {
    pub(crate) fn start() -> Self {
        let count = reset_texts().len().min(32);
        Self {
            live: if count == 32 {
                u32::MAX
            } else {
                (1 << count) - 1
            },
            pos: 0,
        }
    }

    pub(crate) fn feed(&mut self, bytes: &[u8]) {
        if self.live == 0 {
            return;
        }
        for (i, text) in reset_texts().iter().enumerate().take(32) {
            let bit = 1u32 << i;
            if self.live & bit == 0 {
                continue;
            }
            let matches = text
                .get(self.pos..self.pos + bytes.len())
                .is_some_and(|expected| expected == bytes);
            if !matches {
                self.live &= !bit;
            }
        }
        self.pos += bytes.len();
    }

    /// Whether a whole `Query` body is one of the texts, byte for byte.
    pub(crate) fn whole(body: &[u8]) -> bool {
        reset_texts().iter().take(32).any(|text| **text == *body)
    }

    /// The whole body was one of the texts.
    pub(crate) fn matched(&self) -> bool {
        reset_texts()
            .iter()
            .enumerate()
            .take(32)
            .any(|(i, text)| self.live & (1 << i) != 0 && text.len() == self.pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The judge's verdict on `body` (a text and its NUL, maybe more) fed in `chunks`.
    fn judged(judge: &mut SqlJudge, body: &[u8], chunks: &[usize]) -> bool {
        judge.start();
        let mut rest = body;
        for &size in chunks.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let take = size.clamp(1, rest.len());
            judge.feed(&rest[..take]);
            rest = &rest[take..];
        }
        judge.changes()
    }

    const TEXTS: [&str; 10] = [
        "SELECT $1::int4 + 1",
        "SELECT 'temporary advisory set_config'",
        "INSERT INTO t VALUES ($1)",
        "SELECT my_function()",
        "CALL p()",
        "DO $$ BEGIN EXECUTE 'SET search_path TO x'; END $$",
        "VALUES (f(1))",
        "SELECT * FROM t WHERE x = s.f()",
        "SELECT pg_advisory_lock(1)",
        "CREATE TEMP TABLE t (x int)",
    ];

    #[test]
    fn the_judge_agrees_with_the_shared_rule_in_any_chunking() {
        let mut judge = SqlJudge::default();
        for chunks in [&[usize::MAX][..], &[1], &[3, 1, 7], &[5]] {
            // Twice: judged, then from the table.
            for _ in 0..2 {
                for text in TEXTS {
                    let mut body = text.as_bytes().to_vec();
                    body.extend_from_slice(b"\0\0\x01trailing");
                    let expected = sql_changes_session(text);
                    assert_eq!(
                        judged(&mut judge, &body, chunks),
                        expected,
                        "{text} {chunks:?}"
                    );
                }
            }
        }
        assert!(!sql_changes_session(TEXTS[0]) && sql_changes_session(TEXTS[3]));
    }

    #[test]
    fn the_pools_own_probes_change_nothing() {
        let mut judge = SqlJudge::default();
        for text in [
            crate::reset::IDLE_CHECK_SQL,
            pg_pool_conninfo::REPLICA_LAG_SQL,
            "SELECT pg_backend_pid()",
        ] {
            let body = format!("{text}\0");
            assert!(
                !judged(&mut judge, body.as_bytes(), &[usize::MAX]),
                "{text}"
            );
            assert!(!judged(&mut judge, body.as_bytes(), &[7]), "{text}");
        }
        // Anything added to a probe is judged.
        let more = format!("{}; SELECT f()\0", pg_pool_conninfo::REPLICA_LAG_SQL);
        assert!(judged(&mut judge, more.as_bytes(), &[usize::MAX]));
    }

    #[test]
    fn unfinished_or_huge_text_counts() {
        let mut judge = SqlJudge::default();
        judge.start();
        judge.feed(b"SELECT 1");
        assert!(judge.changes(), "no NUL: never complete");
        let mut huge = b"SELECT '".to_vec();
        huge.resize(JUDGED_SQL_MAX + 10, b'y');
        huge.extend_from_slice(b"'\0");
        assert!(judged(&mut judge, &huge, &[usize::MAX]));
        assert!(judged(&mut judge, &huge, &[4096]));
        assert!(
            judge.split.capacity() <= SPLIT_KEEP,
            "the big buffer was not kept"
        );
        // A long text under the limit, split: judged, and its buffer not kept.
        let mut long = b"SELECT '".to_vec();
        long.resize(100_000, b'y');
        long.extend_from_slice(b"'\0");
        assert!(!judged(&mut judge, &long, &[4096]));
        assert!(judge.split.capacity() <= SPLIT_KEEP);
        assert!(!judged(&mut judge, b"SELECT 1\0", &[usize::MAX]));
    }

    #[test]
    fn verdicts_are_kept_per_text() {
        let mut judge = SqlJudge::default();
        // Many texts through the table: each keeps its own verdict.
        for round in 0..3 {
            for i in 0..600 {
                let (text, expected) = if i % 2 == 0 {
                    (format!("SELECT {i}"), false)
                } else {
                    (format!("SELECT f{i}()"), true)
                };
                let body = format!("{text}\0");
                assert_eq!(
                    judged(&mut judge, body.as_bytes(), &[usize::MAX]),
                    expected,
                    "{text} round {round}"
                );
            }
        }
    }

    #[test]
    fn texts_sharing_a_slot_keep_their_own_verdicts() {
        let mut judge = SqlJudge::default();
        // Texts whose quick hashes fall in one slot: each found whole, never another's.
        let target = quick_hash(b"SELECT 0") % VERDICTS as u64;
        let same_slot: Vec<String> = (0..100_000)
            .map(|i| format!("SELECT {i}"))
            .filter(|t| quick_hash(t.as_bytes()) % VERDICTS as u64 == target)
            .take(4)
            .collect();
        assert_eq!(same_slot.len(), 4);
        for text in &same_slot {
            let harmful = format!("{text} FROM f()");
            for _ in 0..2 {
                assert!(!judged(
                    &mut judge,
                    format!("{text}\0").as_bytes(),
                    &[usize::MAX]
                ));
                assert!(judged(
                    &mut judge,
                    format!("{harmful}\0").as_bytes(),
                    &[usize::MAX]
                ));
            }
        }
        // Long texts go by the keyed hash and keep no copy.
        let long = format!("SELECT '{}'\0", "z".repeat(KEPT_TEXT_MAX));
        assert!(!judged(&mut judge, long.as_bytes(), &[usize::MAX]));
        assert!(!judged(&mut judge, long.as_bytes(), &[usize::MAX]));
        let verdicts = judge.verdicts.as_deref().unwrap_or(&[]);
        assert!(
            verdicts
                .iter()
                .all(|v| v.text.as_ref().is_none_or(|t| t.len() <= KEPT_TEXT_MAX))
        );
        assert!(verdicts.iter().any(|v| v.known && v.text.is_none()));
    }

    #[test]
    fn nul_at_finds_the_first_nul() {
        let mut next = crate::test_rng::xorshift(0x9e37_79b9_7f4a_7c15u64);
        for _ in 0..20_000 {
            let len = (next() % 40) as usize;
            // Mostly bytes around 0, 1 and 0x80, where a borrow could mislead.
            let bytes: Vec<u8> = (0..len)
                .map(|_| match next() % 6 {
                    0 => 0,
                    1 => 1,
                    2 => 0x80,
                    3 => 0xff,
                    _ => next() as u8,
                })
                .collect();
            assert_eq!(
                nul_at(&bytes),
                bytes.iter().position(|&b| b == 0),
                "{bytes:?}"
            );
        }
        assert_eq!(cstr(b"ab\0cd"), (&b"ab"[..], Some(&b"cd"[..])));
        assert_eq!(cstr(b"ab"), (&b"ab"[..], None));
    }

    #[test]
    fn reset_text_exact() {
        let text = &reset_texts()[0];
        let mut m = ResetMatch::start();
        let (a, b) = text.split_at(7);
        m.feed(a);
        m.feed(b);
        assert!(m.matched());
        let mut m = ResetMatch::start();
        m.feed(&text[..text.len() - 1]);
        assert!(!m.matched(), "without its NUL");
        m.feed(b"\0x");
        assert!(!m.matched(), "with more after it");
        let mut m = ResetMatch::start();
        m.feed(b"SELECT 1\0");
        assert!(!m.matched());
    }

    #[test]
    fn names_hash_by_content() {
        let mut a = NameHash::default();
        a.feed(b"s1");
        a.feed(b"2");
        let mut b = NameHash::default();
        b.feed(b"s12");
        assert_eq!(a.value(), b.value());
        assert!(!a.is_empty() && NameHash::default().is_empty());
    }
}
