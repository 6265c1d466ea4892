//! What the wrapper can tell about a session from the SQL it sent.
//!
//! Only ever used to add work (a transaction check, deallocating SQL-level prepared
//! statements), never to skip any: a word missed here costs safety only where the docs say
//! so, a word matched by accident costs one round trip.

/// What a piece of SQL text may do to the session beyond what every reset undoes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct SqlFlags {
    /// It may open a transaction block (`BEGIN`, `START TRANSACTION`), so the transaction
    /// status at return is unknown and must be checked.
    pub(crate) opens_transaction: bool,
    /// It may create SQL-level prepared statements (`PREPARE`), which the statement-keeping
    /// resets must deallocate.
    pub(crate) prepares: bool,
}

impl SqlFlags {
    /// Both flags: nothing is known.
    pub(crate) const UNKNOWN: SqlFlags = SqlFlags {
        opens_transaction: true,
        prepares: true,
    };

    /// Whether any flag is set.
    #[cfg(test)]
    pub(crate) fn any(self) -> bool {
        self.opens_transaction || self.prepares
    }

    /// The flags as bits (`opens_transaction` 1, `prepares` 2).
    pub(crate) fn bits(self) -> u8 {
        u8::from(self.opens_transaction) | (u8::from(self.prepares) << 1)
    }

    /// The flags of [`SqlFlags::bits`].
    pub(crate) fn from_bits(bits: u8) -> SqlFlags {
        SqlFlags {
            opens_transaction: bits & 1 != 0,
            prepares: bits & 2 != 0,
        }
    }
}

/// Classifies `sql` by its words (ASCII letters, digits, `_`), case-insensitively, without
/// allocating. Errs on the safe side: `BEGIN` inside a `DO` block or a string also counts.
///
/// Runs on every call, so it walks the bytes once and compares only words of the lengths
/// that matter (`begin` and `start`: 5, `prepare`: 7, `transaction`: 11).
pub(crate) fn classify(sql: &str) -> SqlFlags {
    let mut flags = SqlFlags::default();
    let mut previous_was_start = false;
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if !is_word_byte(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && is_word_byte(bytes[i]) {
            i += 1;
        }
        let word = &bytes[start..i];
        let is_start = match word.len() {
            5 => {
                if word.eq_ignore_ascii_case(b"begin") {
                    flags.opens_transaction = true;
                }
                word.eq_ignore_ascii_case(b"start")
            }
            7 => {
                if word.eq_ignore_ascii_case(b"prepare") {
                    flags.prepares = true;
                }
                false
            }
            11 => {
                if previous_was_start && word.eq_ignore_ascii_case(b"transaction") {
                    flags.opens_transaction = true;
                }
                false
            }
            _ => false,
        };
        previous_was_start = is_start;
    }
    flags
}

/// Which bytes are word bytes: ASCII letters and digits, and `_`.
static WORD_BYTES: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 256 {
        let b = byte as u8;
        table[byte] = b.is_ascii_alphanumeric() || b == b'_';
        byte += 1;
    }
    table
};

/// A byte of a word: an ASCII letter or digit, or `_`. Every other byte separates words,
/// the bytes of a non-ASCII character included (each is at least `0x80`).
fn is_word_byte(byte: u8) -> bool {
    WORD_BYTES[usize::from(byte)]
}

#[cfg(test)]
mod tests {
    use super::classify;

    fn opens(sql: &str) -> bool {
        classify(sql).opens_transaction
    }

    #[test]
    fn spots_transaction_starts() {
        assert!(opens("BEGIN"));
        assert!(opens("select 1; begin isolation level serializable"));
        assert!(opens("START   TRANSACTION READ ONLY"));
        assert!(opens("DO $$ BEGIN PERFORM 1; END $$"));
        assert!(!opens("SELECT begins FROM t"));
        assert!(!opens("INSERT INTO t VALUES (1)"));
        assert!(!opens("SELECT 'started'"));
        assert!(!opens("SELECT 1"));
    }

    #[test]
    fn spots_prepare() {
        assert!(classify("PREPARE s AS SELECT 1").prepares);
        assert!(classify("select 1; prepare x(int) as select $1").prepares);
        assert!(!classify("SELECT prepared FROM t").prepares);
        assert!(!classify("SELECT 1").any());
    }
    /// The definition by `char`s, which the byte walk must match.
    fn by_chars(sql: &str) -> super::SqlFlags {
        let mut flags = super::SqlFlags::default();
        let mut previous_was_start = false;
        for word in sql
            .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
            .filter(|w| !w.is_empty())
        {
            if word.eq_ignore_ascii_case("begin")
                || (previous_was_start && word.eq_ignore_ascii_case("transaction"))
            {
                flags.opens_transaction = true;
            }
            if word.eq_ignore_ascii_case("prepare") {
                flags.prepares = true;
            }
            previous_was_start = word.eq_ignore_ascii_case("start");
        }
        flags
    }

    #[test]
    fn byte_walk_matches_the_char_definition() {
        let pieces = [
            "begin",
            "BEGIN",
            "start",
            "Start",
            "transaction",
            "TRANSACTION",
            "prepare",
            "PrePare",
            " ",
            "  ",
            "_",
            "x",
            "1",
            ";",
            "é",
            "日本",
            "\n",
            "(",
            "'",
            "$$",
            "_begin",
            "begins",
            "started",
            "preparex",
            "transactions",
        ];
        let mut next = crate::test_rng::xorshift(0x2545_f491_4f6c_dd1du64);
        for _ in 0..20_000 {
            let len = next() % 8;
            let sql: String = (0..len)
                .map(|_| pieces[(next() % pieces.len() as u64) as usize])
                .collect();
            assert_eq!(classify(&sql), by_chars(&sql), "{sql:?}");
        }
    }
}
