//! WAL positions and replication lag, as measured on a
//! [`ReplicatedCluster`](crate::ReplicatedCluster).

use std::fmt;
use std::time::Duration;

/// A WAL position (PostgreSQL's `pg_lsn`), written `X/Y` in hexadecimal.
///
/// Ordered like the server orders them; the difference of two positions is a
/// number of WAL bytes.
///
/// # Examples
///
/// ```
/// use pg_pool_test_support::Lsn;
///
/// let a = Lsn::parse("0/3000148").unwrap();
/// let b = Lsn::parse("0/3000000").unwrap();
/// assert!(a > b);
/// assert_eq!(a.bytes_after(b), 0x148);
/// assert_eq!(a.to_string(), "0/3000148");
/// assert_eq!(Lsn::parse("not an lsn"), None);
/// ```
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Lsn(u64);

impl Lsn {
    /// The position `value` (the server's 64-bit byte position).
    pub fn new(value: u64) -> Lsn {
        Lsn(value)
    }

    /// The 64-bit byte position.
    pub fn as_u64(self) -> u64 {
        self.0
    }

    /// Parses the server's `X/Y` notation (hexadecimal halves); `None` for
    /// anything else.
    pub fn parse(text: &str) -> Option<Lsn> {
        let (hi, lo) = text.trim().split_once('/')?;
        let ok =
            |s: &str| !s.is_empty() && s.len() <= 8 && s.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok(hi) || !ok(lo) {
            return None;
        }
        let hi = u64::from_str_radix(hi, 16).ok()?;
        let lo = u64::from_str_radix(lo, 16).ok()?;
        Some(Lsn((hi << 32) | lo))
    }

    /// How many WAL bytes `self` is past `earlier` (0 if it is not past it).
    pub fn bytes_after(self, earlier: Lsn) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// `Lsn(X/Y)`.
impl fmt::Debug for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Lsn({self})")
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// How far a standby is behind the primary, from
/// [`ReplicatedCluster::replication_lag`](crate::ReplicatedCluster::replication_lag).
///
/// The positions are read one after the other (primary first), not
/// atomically, so [`bytes`](Self::bytes) is a snapshot, exact only while the
/// primary is idle.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplicationLag {
    /// Index of the member that was the primary.
    pub primary: usize,
    /// The primary's current WAL write position (`pg_current_wal_lsn()`).
    pub primary_lsn: Lsn,
    /// The last position the standby received and flushed
    /// (`pg_last_wal_receive_lsn()`; `None` if it has not streamed yet).
    pub receive_lsn: Option<Lsn>,
    /// The last position the standby replayed (`pg_last_wal_replay_lsn()`).
    pub replay_lsn: Lsn,
    /// WAL bytes the standby has still to replay: `primary_lsn - replay_lsn`.
    pub bytes: u64,
    /// Whether replay is paused or a pause was requested
    /// (`pg_get_wal_replay_pause_state()`).
    pub replay_paused: bool,
    /// The primary's own estimate (`pg_stat_replication.replay_lag`): the
    /// time between the primary flushing recent WAL and the standby replaying
    /// it. `None` when the standby is not connected or the primary has
    /// nothing recent to measure (it resets to NULL once the standby is idle
    /// and caught up).
    pub reported_replay_lag: Option<Duration>,
}

impl ReplicationLag {
    /// Whether the standby had replayed everything the primary had written.
    pub fn caught_up(&self) -> bool {
        self.bytes == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        let l = Lsn::parse("16/B374D848").unwrap();
        assert_eq!(l.as_u64(), (0x16 << 32) | 0xB374_D848);
        assert_eq!(l.to_string(), "16/B374D848");
        assert_eq!(Lsn::parse(" 0/0\n"), Some(Lsn::new(0)));
        for bad in [
            "",
            "/",
            "0/",
            "/0",
            "0/0/0",
            "g/0",
            "123456789/0",
            "-1/0",
            "+1/0",
        ] {
            assert_eq!(Lsn::parse(bad), None, "{bad:?}");
        }
        assert_eq!(Lsn::new(5).bytes_after(Lsn::new(9)), 0);
        assert_eq!(Lsn::new(u64::MAX).to_string(), "FFFFFFFF/FFFFFFFF");
        assert_eq!(format!("{:?}", Lsn::new(0x1_0000_00ff)), "Lsn(1/FF)");
    }
}
