//! What a [`ReplicatedCluster`]'s members are doing: which one is the
//! primary, WAL positions, replication lag.

use std::io::ErrorKind;
use std::thread;
use std::time::{Duration, Instant};

use super::ReplicatedCluster;
use super::lsn::{Lsn, ReplicationLag};
use crate::Error;

impl ReplicatedCluster {
    /// Whether member `index` is a standby (`pg_is_in_recovery()`).
    ///
    /// # Errors
    ///
    /// If the member cannot be queried (down, or no such member).
    pub fn is_in_recovery(&self, index: usize) -> Result<bool, Error> {
        let m = self.get(index)?;
        match m
            .sql(&self.tools, &["SELECT pg_is_in_recovery()"])?
            .as_str()
        {
            "t" => Ok(true),
            "f" => Ok(false),
            other => Err(m.error(
                ErrorKind::InvalidData,
                "SELECT pg_is_in_recovery()",
                format!("unexpected output {other:?}"),
            )),
        }
    }

    /// The index of the member that accepts writes now: the one running
    /// member not in recovery. Members that are down are skipped.
    ///
    /// # Errors
    ///
    /// If no member, or more than one, is a running primary (the message
    /// gives each member's state).
    pub fn primary(&self) -> Result<usize, Error> {
        self.primary_excluding(None)
    }

    /// Like [`primary`](Self::primary), ignoring member `excluded`.
    pub(crate) fn primary_excluding(&self, excluded: Option<usize>) -> Result<usize, Error> {
        let mut primaries = Vec::new();
        let mut states = Vec::new();
        for m in self.members.iter().filter(|m| Some(m.index()) != excluded) {
            match self.is_in_recovery(m.index()) {
                Ok(false) => {
                    primaries.push(m.index());
                    states.push(format!("{}: primary", m.describe()));
                }
                Ok(true) => states.push(format!("{}: standby", m.describe())),
                Err(e) => {
                    let first = e.to_string();
                    let first = first.lines().next().unwrap_or_default().to_owned();
                    states.push(format!("{}: unreachable ({first})", m.describe()));
                }
            }
        }
        if let [only] = primaries[..] {
            return Ok(only);
        }
        let what = if primaries.is_empty() {
            "no running member accepts writes"
        } else {
            "more than one member accepts writes (split brain)"
        };
        let ignoring = excluded.map_or(String::new(), |i| format!(" (ignoring member {i})"));
        Err(Error::io(
            format!("finding the primary{ignoring}"),
            std::io::Error::new(
                ErrorKind::NotFound,
                format!("{what}: {}", states.join("; ")),
            ),
        ))
    }

    /// Member `index`'s last replayed WAL position.
    pub(crate) fn replay_lsn(&self, index: usize) -> Result<Lsn, Error> {
        let m = self.get(index)?;
        let out = m.sql(&self.tools, &["SELECT pg_last_wal_replay_lsn()"])?;
        Lsn::parse(&out).ok_or_else(|| {
            m.error(
                ErrorKind::InvalidData,
                "reading pg_last_wal_replay_lsn()",
                format!("got {out:?}; is it a standby?"),
            )
        })
    }

    /// A WAL position on member `primary` that covers every transaction
    /// committed there before the call and that has been flushed (so it
    /// will be streamed even with `synchronous_commit=off`): a transactional
    /// WAL message committed with `synchronous_commit=on`, then the flush
    /// position.
    pub(crate) fn flushed_primary_lsn(&self, primary: usize) -> Result<Lsn, Error> {
        let m = self.get(primary)?;
        let out = m.sql(
            &self.tools,
            &[
                "SET synchronous_commit = on",
                "SELECT pg_logical_emit_message(true, 'pg-pool-test-support', 'sync')",
                "SELECT pg_current_wal_flush_lsn()",
            ],
        )?;
        Lsn::parse(&out).ok_or_else(|| {
            m.error(
                ErrorKind::InvalidData,
                "reading pg_current_wal_flush_lsn()",
                format!("got {out:?}"),
            )
        })
    }

    /// Polls `done` every 20 ms until it returns `Some` or `timeout` passes.
    pub(crate) fn poll<T>(
        timeout: Duration,
        mut done: impl FnMut() -> Result<Option<T>, Error>,
    ) -> Result<Option<T>, Error> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(v) = done()? {
                return Ok(Some(v));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Measures how far standby `index` is behind the current primary.
    ///
    /// # Errors
    ///
    /// If there is no single primary among the other members, or a member
    /// cannot be queried (`index` being the primary included).
    pub fn replication_lag(&self, index: usize) -> Result<ReplicationLag, Error> {
        let m = self.get(index)?;
        let p = self.primary_excluding(Some(index))?;
        let primary = self.get(p)?;
        let primary_lsn_text = primary.sql(&self.tools, &["SELECT pg_current_wal_lsn()"])?;
        let primary_lsn = Lsn::parse(&primary_lsn_text).ok_or_else(|| {
            primary.error(
                ErrorKind::InvalidData,
                "reading pg_current_wal_lsn()",
                format!("got {primary_lsn_text:?}"),
            )
        })?;
        let out = m.sql(
            &self.tools,
            &["SELECT coalesce(pg_last_wal_receive_lsn()::text, ''), \
               coalesce(pg_last_wal_replay_lsn()::text, ''), \
               pg_get_wal_replay_pause_state()"],
        )?;
        let fields: Vec<&str> = out.split('|').collect();
        let bad = |what: &str| {
            m.error(
                ErrorKind::InvalidData,
                "reading its WAL positions",
                format!("{what} in {out:?}; is it a standby?"),
            )
        };
        let [receive, replay, pause] = fields[..] else {
            return Err(bad("expected 3 fields"));
        };
        let replay_lsn = Lsn::parse(replay).ok_or_else(|| bad("no replay position"))?;
        let reported = primary.sql(
            &self.tools,
            &[&format!(
                "SELECT extract(epoch FROM replay_lag) FROM pg_stat_replication \
                 WHERE application_name = 'member{index}'"
            )],
        )?;
        let reported_replay_lag = reported
            .lines()
            .next()
            .and_then(|s| s.trim().parse::<f64>().ok())
            .filter(|s| s.is_finite() && *s >= 0.0)
            .map(Duration::from_secs_f64);
        Ok(ReplicationLag {
            primary: p,
            primary_lsn,
            receive_lsn: Lsn::parse(receive),
            replay_lsn,
            bytes: primary_lsn.bytes_after(replay_lsn),
            replay_paused: pause != "not paused",
            reported_replay_lag,
        })
    }
}
