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

/// One remembered verdict: the SQL text's hash and length, and whether it changes the
/// session.
#[derive(Debug, Default, Clone, Copy)]
struct Verdict {
    hash: u64,
    len: u32,
    known: bool,
    changes: bool,
}

/// Judges the SQL text of each `Query` and `Parse` with
/// [`sql_changes_session`](pg_pool_conninfo::sql::sql_changes_session), fed the text
/// piece by piece up to its NUL (what follows is ignored).
///
/// A text that arrives whole (the usual case) is judged in place, without copying; a text
/// split across writes is gathered in a buffer kept for the next one. Verdicts are kept in
/// a small table keyed by a keyed 64-bit hash of the text (random keys per session, so
/// chosen text cannot collide on purpose) and its length: a statement seen before costs
/// a hash. A text never completed (no NUL) or longer than [`JUDGED_SQL_MAX`] counts as a
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
    verdicts: Option<Box<[Verdict; VERDICTS]>>,
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
        let (text, complete) = match bytes.iter().position(|&b| b == 0) {
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

    /// Whether the text of the message that just ended may change the session.
    pub(crate) fn changes(&self) -> bool {
        !self.done || self.len > JUDGED_SQL_MAX || self.changes
    }

    /// The verdict on a whole text, from the table when it was judged before.
    fn judge(&mut self, text: &[u8]) -> bool {
        let hash = self.keys.hash_one(text);
        // At most JUDGED_SQL_MAX.
        let len = text.len() as u32;
        let verdicts = self
            .verdicts
            .get_or_insert_with(|| Box::new([Verdict::default(); VERDICTS]));
        let slot = &mut verdicts[(hash % VERDICTS as u64) as usize];
        if slot.known && slot.hash == hash && slot.len == len {
            return slot.changes;
        }
        let changes = sql_changes_session(&String::from_utf8_lossy(text));
        *slot = Verdict {
            hash,
            len,
            known: true,
            changes,
        };
        changes
    }
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
