//! The streaming scanners of the protocol tap: words in SQL text, statement names, and the
//! pool's own reset SQL, each fed a message body piece by piece, without allocating.

use crate::reset::reset_texts;

/// Words that make SQL whose command tag is otherwise neutral change the session:
/// temporary tables (`TEMP`, `TEMPORARY`, `pg_temp`), session advisory locks, and
/// `set_config`. Matched as substrings, case-insensitively (`pg_advisory_lock` counts); a
/// word matched by accident costs one reset. None of them has a proper prefix that is also
/// a suffix, so a mismatch restarts the match at the current byte.
const WORDS: [&[u8]; 3] = [b"temp", b"advisory", b"set_config"];

/// Finds any of [`WORDS`] in a stream of bytes.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Words {
    progress: [u8; WORDS.len()],
    found: bool,
}

impl Words {
    pub(crate) fn feed(&mut self, mut bytes: &[u8]) {
        if self.found {
            return;
        }
        while !bytes.is_empty() {
            // Between matches, skip to the next byte that can start a word (`t`, `a`, `s`).
            if self.progress == [0; WORDS.len()] {
                match bytes
                    .iter()
                    .position(|&b| matches!(b | 0x20, b't' | b'a' | b's'))
                {
                    Some(at) => bytes = &bytes[at..],
                    None => return,
                }
            }
            let byte = bytes[0];
            bytes = &bytes[1..];
            let byte = byte.to_ascii_lowercase();
            for (word, progress) in WORDS.iter().zip(self.progress.iter_mut()) {
                if word[usize::from(*progress)] == byte {
                    *progress += 1;
                    if usize::from(*progress) == word.len() {
                        self.found = true;
                        return;
                    }
                } else {
                    *progress = u8::from(word[0] == byte);
                }
            }
        }
    }

    pub(crate) fn found(&self) -> bool {
        self.found
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

    fn words(chunks: &[&[u8]]) -> bool {
        let mut w = Words::default();
        for c in chunks {
            w.feed(c);
        }
        w.found()
    }

    #[test]
    fn words_across_chunks() {
        assert!(words(&[b"CREATE TE", b"MPORARY TABLE t()"]));
        assert!(words(&[b"select pg_", b"a", b"dvisory_lock(1)"]));
        assert!(words(&[b"SELECT SET_CONFIG('a.b', '1', false)"]));
        assert!(words(&[b"sselect set_set_config"]));
        assert!(words(&[b"tetemp"]));
        assert!(!words(&[b"SELECT 1", b" FROM t"]));
        assert!(!words(&[b"tem", b"_p advisor set_confi"]));
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

    #[test]
    fn words_match_a_plain_search_in_any_chunking() {
        let pieces: [&[u8]; 12] = [
            b"te",
            b"mp",
            b"TEMP",
            b"adv",
            b"isory",
            b"set_",
            b"config",
            b"s",
            b"a",
            b"t",
            b" x;",
            b"\xc3\xa9",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for _ in 0..20_000 {
            let text: Vec<u8> = (0..next() % 10)
                .flat_map(|_| {
                    pieces[(next() % pieces.len() as u64) as usize]
                        .iter()
                        .copied()
                })
                .collect();
            let lower = text.to_ascii_lowercase();
            let expected = WORDS
                .iter()
                .any(|w| lower.windows(w.len()).any(|window| window == *w));
            let mut words = Words::default();
            let mut rest = &text[..];
            while !rest.is_empty() {
                let take = 1 + (next() as usize % rest.len());
                words.feed(&rest[..take]);
                rest = &rest[take..];
            }
            assert_eq!(
                words.found(),
                expected,
                "{:?}",
                String::from_utf8_lossy(&text)
            );
        }
    }
}
