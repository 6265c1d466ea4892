//! What the wrapper can tell about a session from the SQL it sent.

/// Whether `sql` may open a transaction block (`BEGIN`, `START TRANSACTION`), so the
/// transaction status at return is unknown and must be checked.
///
/// Errs on the safe side: `BEGIN` inside a `DO` block or a function body also counts, at
/// the cost of one check round trip on return.
pub(crate) fn may_open_transaction(sql: &str) -> bool {
    let lower = sql.to_ascii_lowercase();
    let mut words = lower
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty());
    let mut previous = "";
    for word in words.by_ref() {
        if word == "begin" || (previous == "start" && word == "transaction") {
            return true;
        }
        previous = word;
    }
    false
}

#[cfg(test)]
mod tests {
    use super::may_open_transaction;

    #[test]
    fn spots_transaction_starts() {
        assert!(may_open_transaction("BEGIN"));
        assert!(may_open_transaction(
            "select 1; begin isolation level serializable"
        ));
        assert!(may_open_transaction("START   TRANSACTION READ ONLY"));
        assert!(may_open_transaction("DO $$ BEGIN PERFORM 1; END $$"));
        assert!(!may_open_transaction("SELECT begins FROM t"));
        assert!(!may_open_transaction("INSERT INTO t VALUES (1)"));
        assert!(!may_open_transaction("SELECT 'started'"));
    }
}
