//! Fault and failover controls of a [`ReplicatedCluster`]: stop/kill/start a
//! member, promote a standby, rejoin an old primary, pause replay, wait for
//! replay.

use std::io::ErrorKind;
use std::time::Duration;

use super::lsn::Lsn;
use super::{RejoinMethod, ReplicatedCluster, provision};
use crate::Error;

impl ReplicatedCluster {
    /// Stops member `index` cleanly (`pg_ctl stop -m fast -w`): sessions are
    /// closed, new connections refused. A primary first sends its standbys
    /// all its WAL.
    ///
    /// # Errors
    ///
    /// If `pg_ctl` fails (for example the member is not running); the error
    /// names the member and carries its log tail.
    pub fn stop(&self, index: usize) -> Result<(), Error> {
        self.get(index)?
            .pg_ctl(self.tools(), &["stop", "-m", "fast"], false)
    }

    /// Kills member `index` like a crash (`pg_ctl stop -m immediate -w`):
    /// no shutdown checkpoint, standbys may miss its last WAL, and the next
    /// start runs crash recovery.
    ///
    /// # Errors
    ///
    /// As for [`stop`](Self::stop).
    pub fn stop_immediate(&self, index: usize) -> Result<(), Error> {
        self.get(index)?
            .pg_ctl(self.tools(), &["stop", "-m", "immediate"], false)
    }

    /// Starts member `index` again (`pg_ctl start -w`, same port), in
    /// whatever role its data directory says: a stopped primary comes back
    /// as a primary, even if another member has been promoted meanwhile (two
    /// primaries: see [`rejoin`](Self::rejoin)).
    ///
    /// # Errors
    ///
    /// If the server does not start within 60 s (the error carries the log
    /// tail).
    pub fn start_server(&self, index: usize) -> Result<(), Error> {
        self.get(index)?.pg_ctl(self.tools(), &["start"], true)
    }

    /// Promotes standby `index` to primary (`pg_ctl promote -w`) and checks
    /// that it accepts writes. Other standbys keep following the old primary
    /// until [`rejoin`](Self::rejoin)ed. The old primary is left alone: stop
    /// or kill it first, or there are two primaries (a split brain that
    /// [`primary`](Self::primary) reports) until it is rejoined.
    ///
    /// # Errors
    ///
    /// If the member is not a running standby, or is still in recovery once
    /// `pg_ctl` returns.
    pub fn promote(&self, index: usize) -> Result<(), Error> {
        let m = self.get(index)?;
        m.pg_ctl(self.tools(), &["promote"], false)?;
        if self.is_in_recovery(index)? {
            return Err(m.error(
                ErrorKind::Other,
                "promoting",
                "still in recovery after `pg_ctl promote -w` returned",
            ));
        }
        Ok(())
    }

    /// Makes member `index` a streaming standby of the primary among the
    /// other members: stops it if it runs (fast), rewinds it with `pg_rewind`
    /// against that primary (after a `CHECKPOINT` there so that its new
    /// timeline is visible) or, if the rewind fails, replaces its data
    /// directory by a fresh `pg_basebackup`; then writes `standby.signal` and
    /// `primary_conninfo` and starts it (same port). Works for an old primary
    /// after a failover (crashed, stopped or running) and for a standby
    /// (crashed, stopped or running) that should follow a newly promoted
    /// primary. A crashed standby is first started and stopped cleanly as a
    /// standby, so that pg_rewind accepts it.
    ///
    /// Returns how the data directory was brought in line. Call
    /// [`wait_for_replay`](Self::wait_for_replay) to wait until it has caught
    /// up.
    ///
    /// # Errors
    ///
    /// If no single other member is a running primary, or the stop, the
    /// base backup or the start fails (naming the member, with its log tail).
    /// The member is left stopped if the base backup fails.
    pub fn rejoin(&self, index: usize) -> Result<RejoinMethod, Error> {
        let m = self.get(index)?;
        let p = self.primary_excluding(Some(index))?;
        let primary = self.get(p)?;
        let tools = self.tools();
        if m.is_running(tools)? {
            m.pg_ctl(tools, &["stop", "-m", "fast"], false)?;
        }
        // A crashed standby: pg_rewind's own crash recovery (single-user
        // mode) cannot run a standby, and recovering it as a primary would
        // write WAL the primary lacks; so let it recover as a standby and
        // shut it down cleanly. If that fails, so does pg_rewind, and the
        // base backup takes over.
        if provision::cluster_state(tools, m.data_dir()).as_deref() == Some("in archive recovery") {
            let recovered = m
                .pg_ctl(tools, &["start"], true)
                .and_then(|()| m.pg_ctl(tools, &["stop", "-m", "fast"], false));
            if recovered.is_err() && m.is_running(tools)? {
                let _ = m.pg_ctl(tools, &["stop", "-m", "immediate"], false);
            }
        }
        primary.sql(tools, &["CHECKPOINT"])?;
        let method = {
            let _guard = m.lock();
            let who = m.describe();
            let (data, log) = (m.data_dir(), m.log_path());
            let method = match provision::rewind(tools, &who, log, primary.port(), data) {
                Ok(()) => RejoinMethod::Rewind,
                Err(rewind) => {
                    provision::remove_data_dir(data)?;
                    provision::base_backup(tools, &who, log, primary.port(), data)?;
                    RejoinMethod::BaseBackup {
                        rewind_error: rewind.to_string(),
                    }
                }
            };
            provision::configure_standby(tools, index, data, Some(m.port()), primary.port())?;
            method
        };
        m.pg_ctl(tools, &["start"], true)?;
        Ok(method)
    }

    /// Pauses WAL replay on standby `index` (`pg_wal_replay_pause()`): it
    /// keeps receiving WAL but applies no further record, so rows written on
    /// the primary stay invisible there and its lag grows, until
    /// [`resume_replay`](Self::resume_replay).
    ///
    /// # Errors
    ///
    /// If the member is down or not a standby.
    pub fn pause_replay(&self, index: usize) -> Result<(), Error> {
        self.sql(index, "SELECT pg_wal_replay_pause()").map(drop)
    }

    /// Resumes WAL replay on standby `index` (`pg_wal_replay_resume()`).
    ///
    /// # Errors
    ///
    /// If the member is down or not a standby.
    pub fn resume_replay(&self, index: usize) -> Result<(), Error> {
        self.sql(index, "SELECT pg_wal_replay_resume()").map(drop)
    }

    /// Whether replay on standby `index` is paused or a pause is pending
    /// (`pg_get_wal_replay_pause_state()`).
    ///
    /// # Errors
    ///
    /// If the member is down or not a standby.
    pub fn is_replay_paused(&self, index: usize) -> Result<bool, Error> {
        Ok(self.sql(index, "SELECT pg_get_wal_replay_pause_state()")? != "not paused")
    }

    /// Waits until standby `index` has replayed everything committed on the
    /// primary (the one running primary among the other members) before
    /// this call, polling its `pg_last_wal_replay_lsn()` every 20 ms for at
    /// most `timeout`. Returns the primary's WAL position that was reached.
    ///
    /// The target is the primary's WAL flush position after a small
    /// synchronously committed WAL message, so everything committed before
    /// the call, even with `synchronous_commit=off`, lies below it and will
    /// be streamed.
    ///
    /// # Errors
    ///
    /// If there is no single primary among the other members, or the
    /// standby has not got there within `timeout`: the error names the
    /// member, the target, what it received and replayed, whether replay is
    /// paused, the state of its WAL receiver and the last query error, then
    /// its log tail.
    pub fn wait_for_replay(&self, index: usize, timeout: Duration) -> Result<Lsn, Error> {
        let m = self.get(index)?;
        let p = self.primary_excluding(Some(index))?;
        let target = self.flushed_primary_lsn(p)?;
        let mut last_error = None;
        let reached = Self::poll(timeout, || match self.replay_lsn(index) {
            Ok(lsn) => Ok((lsn >= target).then_some(lsn)),
            // Keep trying: the standby may still be starting up.
            Err(e) => {
                last_error = Some(e);
                Ok(None)
            }
        })?;
        if reached.is_some() {
            return Ok(target);
        }
        let state = m
            .sql(
                self.tools(),
                &[
                    "SELECT 'received ' || coalesce(pg_last_wal_receive_lsn()::text, 'nothing') \
                   || ', replayed ' || coalesce(pg_last_wal_replay_lsn()::text, 'nothing') \
                   || ', replay ' || pg_get_wal_replay_pause_state() \
                   || ', WAL receiver ' || coalesce((SELECT status || ' from port ' \
                   || coalesce(sender_port::text, '?') FROM pg_stat_wal_receiver), \
                   'not running')",
                ],
            )
            .unwrap_or_else(|e| {
                let e = e.to_string();
                format!("state unknown: {}", e.lines().next().unwrap_or_default())
            });
        let last_error = last_error.map_or(String::new(), |e| {
            let e = e.to_string();
            format!("; last error: {}", e.lines().next().unwrap_or_default())
        });
        Err(m.error(
            ErrorKind::TimedOut,
            &format!("waiting to replay up to {target} (flushed on primary member {p})"),
            format!("not reached within {timeout:?}: {state}{last_error}"),
        ))
    }
}
