//! Tests of the replicated cluster of the test kit against real PostgreSQL
//! servers (primary, streaming standbys, pg_rewind), through `psql` only.

use std::io::{BufRead, BufReader, ErrorKind};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use pg_pool_test_support::{Error, RejoinMethod, ReplicatedCluster};

/// Generous: the machine may be loaded.
const REPLAY_TIMEOUT: Duration = Duration::from_secs(60);

/// Runs `query` as the test role through `cmd` (a psql command); Ok(stdout)
/// or Err(stderr).
fn query(mut cmd: Command, query: &str) -> Result<String, String> {
    let out = cmd
        .args(["-c", query])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run psql");
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
    }
}

/// Runs `q` as the test role on member `i`; panics on failure.
fn on(c: &ReplicatedCluster, i: usize, q: &str) -> String {
    query(c.psql(i).unwrap(), q).unwrap_or_else(|e| panic!("member {i}: {q}: {e}"))
}

/// The notes in table `t` on member `i`, in order.
fn notes(c: &ReplicatedCluster, i: usize) -> Vec<String> {
    on(c, i, "SELECT note FROM t ORDER BY id")
        .lines()
        .map(str::to_owned)
        .collect()
}

fn timed<T>(what: &str, f: impl FnOnce() -> T) -> T {
    let t = Instant::now();
    let v = f();
    println!("{what}: {:?}", t.elapsed());
    v
}

/// The port psql lands on through `url`.
fn landed_port(c: &ReplicatedCluster, url: &str) -> u16 {
    query(c.psql_conninfo(url), "SELECT inet_server_port()")
        .unwrap_or_else(|e| panic!("{url}: {e}"))
        .parse()
        .unwrap()
}

/// Polls `f` every 50 ms until it returns true or `limit` passes.
fn within(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until member `primary` lists exactly `expected` as streaming
/// standbys (application names, sorted); panics with what it saw.
fn assert_streaming_to(c: &ReplicatedCluster, primary: usize, expected: &str) {
    let q = "SELECT string_agg(application_name || ':' || state, ',' ORDER BY application_name) \
             FROM pg_stat_replication";
    let mut seen = String::new();
    let ok = within(REPLAY_TIMEOUT, || {
        seen = c.sql(primary, q).unwrap();
        seen == expected
    });
    assert!(
        ok,
        "member {primary} streams to {seen:?}, expected {expected:?}"
    );
}

/// Whether a live (non-zombie) process has this id.
fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // state is the field after the parenthesised command name
        Ok(stat) => stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// Live processes whose command line mentions `path`.
fn processes_mentioning(path: &Path) -> Vec<String> {
    let needle = path.to_string_lossy().into_owned();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(pid) = name.parse::<u32>() else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&needle) && process_alive(pid) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

fn refused(addr: SocketAddr) -> bool {
    TcpStream::connect_timeout(&addr, Duration::from_secs(5)).is_err()
}

#[test]
fn replication_failover_rejoin_and_cleanup() {
    let c = timed("start (primary + 2 standbys, base backups)", || {
        ReplicatedCluster::start(2).unwrap()
    });
    assert_eq!(c.len(), 3);
    let ports: Vec<u16> = c.members().iter().map(|m| m.port()).collect();
    assert!(
        ports[0] != ports[1] && ports[1] != ports[2] && ports[0] != ports[2],
        "{ports:?}"
    );
    for (i, m) in c.members().iter().enumerate() {
        assert_eq!(m.index(), i);
        assert_eq!(c.sql(i, "SHOW port").unwrap(), m.port().to_string());
        assert_eq!(c.sql(i, "SHOW wal_level").unwrap(), "replica");
        assert_eq!(c.sql(i, "SHOW wal_log_hints").unwrap(), "on");
        assert_eq!(c.sql(i, "SHOW hot_standby").unwrap(), "on");
        assert_eq!(c.sql(i, "SHOW listen_addresses").unwrap(), "127.0.0.1");
        assert_eq!(
            m.url(),
            format!(
                "postgres://pgpool:pgpool-test-pw@127.0.0.1:{}/pgpool",
                m.port()
            )
        );
    }
    assert_eq!(c.primary().unwrap(), 0);
    assert!(!c.is_in_recovery(0).unwrap());
    assert!(c.is_in_recovery(1).unwrap() && c.is_in_recovery(2).unwrap());
    assert_streaming_to(&c, 0, "member1:streaming,member2:streaming");
    assert_eq!(
        c.multi_host_url(Some("read-write")),
        format!(
            "postgres://pgpool:pgpool-test-pw@127.0.0.1:{},127.0.0.1:{},127.0.0.1:{}/pgpool\
             ?target_session_attrs=read-write",
            ports[0], ports[1], ports[2]
        )
    );

    // Bad member indexes are errors, not panics.
    let err = c.sql(3, "SELECT 1").unwrap_err().to_string();
    assert!(err.contains("member 3") && err.contains("0..=2"), "{err}");
    assert!(c.promote(7).is_err());
    let err = ReplicatedCluster::start(0).unwrap_err().to_string();
    assert!(err.contains("standbys must be"), "{err}");
    // Standby-only operations on the primary fail and say why.
    let err = c.promote(0).unwrap_err().to_string();
    assert!(
        err.contains("not in standby mode") && err.contains("member 0"),
        "{err}"
    );
    let err = c.pause_replay(0).unwrap_err().to_string();
    assert!(err.contains("recovery is not in progress"), "{err}");
    let err = c.replication_lag(0).unwrap_err().to_string();
    assert!(err.contains("no running member accepts writes"), "{err}");

    // A row written on the primary appears on the standbys.
    on(&c, 0, "CREATE TABLE t (id int PRIMARY KEY, note text)");
    on(&c, 0, "INSERT INTO t VALUES (1, 'first')");
    for i in [1, 2] {
        let reached = timed(&format!("wait for replay on member {i}"), || {
            c.wait_for_replay(i, REPLAY_TIMEOUT).unwrap()
        });
        println!("member {i} replayed up to {reached}");
        assert_eq!(notes(&c, i), ["first"]);
    }
    // Standbys refuse writes; the error says so.
    let err = query(c.psql(1).unwrap(), "INSERT INTO t VALUES (9, 'x')").unwrap_err();
    assert!(err.contains("read-only transaction"), "{err}");
    let err = c.sql(2, "CREATE TABLE nope (x int)").unwrap_err();
    assert!(matches!(err, Error::Sql { .. }), "{err}");
    let err = err.to_string();
    assert!(
        err.contains("read-only") && err.contains("member 2"),
        "{err}"
    );
    assert!(err.contains("server log of member 2"), "{err}");
    // Waiting for the primary itself makes no sense and says so.
    let err = c
        .wait_for_replay(0, Duration::from_secs(1))
        .unwrap_err()
        .to_string();
    assert!(err.contains("no running member accepts writes"), "{err}");

    // libpq routes a multi-host URL by target_session_attrs.
    assert_eq!(
        landed_port(&c, &c.multi_host_url(Some("read-write"))),
        ports[0]
    );
    assert_eq!(
        landed_port(&c, &c.multi_host_url(Some("standby"))),
        ports[1]
    );
    assert_eq!(landed_port(&c, &c.multi_host_url(None)), ports[0]);

    // Paused replay: member 1 falls behind, member 2 does not.
    c.pause_replay(1).unwrap();
    assert!(c.is_replay_paused(1).unwrap());
    assert!(!c.is_replay_paused(2).unwrap());
    on(&c, 0, "INSERT INTO t VALUES (2, 'while paused')");
    c.wait_for_replay(2, REPLAY_TIMEOUT).unwrap();
    assert_eq!(notes(&c, 2), ["first", "while paused"]);
    let t = Instant::now();
    let err = c
        .wait_for_replay(1, Duration::from_millis(500))
        .unwrap_err();
    println!(
        "bounded wait on a paused standby gave up after {:?}",
        t.elapsed()
    );
    let msg = err.to_string();
    println!("its error: {}", msg.lines().next().unwrap());
    assert!(
        msg.contains("member 1")
            && msg.contains("not reached within")
            && msg.contains("replay pause"),
        "{msg}"
    );
    assert!(msg.contains("server log of member 1"), "{msg}");
    assert!(
        matches!(&err, Error::Io { source, .. } if source.kind() == ErrorKind::TimedOut),
        "{err:?}"
    );
    assert_eq!(notes(&c, 1), ["first"], "paused standby replayed a row");
    // It keeps receiving what it does not replay.
    let mut lag = c.replication_lag(1).unwrap();
    let received = within(REPLAY_TIMEOUT, || {
        lag = c.replication_lag(1).unwrap();
        lag.receive_lsn.is_some_and(|r| r > lag.replay_lsn)
    });
    println!("lag of the paused standby: {lag:?}");
    assert!(received, "{lag:?}");
    assert_eq!(lag.primary, 0);
    assert!(lag.replay_paused);
    assert!(lag.bytes > 0 && !lag.caught_up(), "{lag:?}");
    c.resume_replay(1).unwrap();
    assert!(!c.is_replay_paused(1).unwrap());
    timed("catch up after resume", || {
        c.wait_for_replay(1, REPLAY_TIMEOUT).unwrap()
    });
    assert_eq!(notes(&c, 1), ["first", "while paused"]);
    let lag = c.replication_lag(1).unwrap();
    println!("lag after resume: {lag:?}");
    assert!(!lag.replay_paused);

    // Failover: kill the primary, promote member 1.
    let old_pid = c.members()[0].postmaster_pid().unwrap();
    timed("kill primary (stop -m immediate)", || {
        c.stop_immediate(0).unwrap()
    });
    assert!(!process_alive(old_pid), "postmaster {old_pid} survived");
    assert!(refused(c.members()[0].addr()));
    let err = c.primary().unwrap_err().to_string();
    assert!(
        err.contains("no running member accepts writes") && err.contains("unreachable"),
        "{err}"
    );
    timed("promote member 1", || c.promote(1).unwrap());
    assert_eq!(c.primary().unwrap(), 1);
    on(&c, 1, "INSERT INTO t VALUES (3, 'on the new primary')");
    assert_eq!(
        landed_port(&c, &c.multi_host_url(Some("read-write"))),
        ports[1]
    );
    assert_eq!(
        landed_port(&c, &c.multi_host_url(Some("standby"))),
        ports[2]
    );

    // The old primary restarts as a primary (split brain) and diverges.
    timed("restart the killed primary (crash recovery)", || {
        c.start_server(0).unwrap()
    });
    let err = c.primary().unwrap_err().to_string();
    assert!(err.contains("split brain"), "{err}");
    on(&c, 0, "INSERT INTO t VALUES (4, 'diverged')");

    // Rejoin it: rewound onto the new primary's timeline, the diverged row
    // is gone and it follows the new primary.
    let method = timed("rejoin member 0 (pg_rewind)", || c.rejoin(0).unwrap());
    assert_eq!(method, RejoinMethod::Rewind, "{method:?}");
    assert!(c.is_in_recovery(0).unwrap());
    assert_eq!(c.primary().unwrap(), 1);
    timed("member 0 catches up", || {
        c.wait_for_replay(0, REPLAY_TIMEOUT).unwrap()
    });
    assert_eq!(
        notes(&c, 0),
        ["first", "while paused", "on the new primary"]
    );
    // Member 2 (which followed the old primary) is re-pointed the same way.
    let method = timed("rejoin member 2", || c.rejoin(2).unwrap());
    println!("member 2 rejoined by {method:?}");
    on(&c, 1, "INSERT INTO t VALUES (5, 'after rejoin')");
    for i in [0, 2] {
        c.wait_for_replay(i, REPLAY_TIMEOUT).unwrap();
        assert_eq!(
            notes(&c, i),
            [
                "first",
                "while paused",
                "on the new primary",
                "after rejoin"
            ],
            "member {i}"
        );
    }
    assert_streaming_to(&c, 1, "member0:streaming,member2:streaming");
    let lag = c.replication_lag(0).unwrap();
    println!("lag of member 0 behind member 1: {lag:?}");
    assert_eq!(lag.primary, 1);

    // A member that lost its data directory cannot be rewound: rejoin
    // falls back to a fresh base backup.
    c.stop(2).unwrap();
    std::fs::remove_dir_all(c.members()[2].data_dir()).unwrap();
    let method = timed(
        "rejoin member 2 by a fresh base backup (data directory lost)",
        || c.rejoin(2).unwrap(),
    );
    match &method {
        RejoinMethod::BaseBackup { rewind_error } => {
            println!(
                "pg_rewind failed as expected: {}",
                rewind_error.lines().next().unwrap()
            )
        }
        other => panic!("expected a base backup, got {other:?}"),
    }
    c.wait_for_replay(2, REPLAY_TIMEOUT).unwrap();
    assert_eq!(
        notes(&c, 2),
        [
            "first",
            "while paused",
            "on the new primary",
            "after rejoin"
        ]
    );
    assert!(c.is_in_recovery(2).unwrap());

    // A clean stop and start of a standby keeps it following.
    c.stop(2).unwrap();
    assert!(refused(c.members()[2].addr()));
    c.start_server(2).unwrap();
    c.wait_for_replay(2, REPLAY_TIMEOUT).unwrap();

    // A crashed standby is rewound (pg_rewind recovers it first).
    c.stop_immediate(2).unwrap();
    let method = timed("rejoin crashed member 2", || c.rejoin(2).unwrap());
    assert_eq!(method, RejoinMethod::Rewind, "{method:?}");
    on(&c, 1, "INSERT INTO t VALUES (6, 'last')");
    c.wait_for_replay(2, REPLAY_TIMEOUT).unwrap();
    assert_eq!(notes(&c, 2).last().unwrap(), "last");

    // Fail back: member 1 crashes and is rejoined without a restart
    // (pg_rewind recovers it in single-user mode first); member 2 follows.
    c.stop_immediate(1).unwrap();
    timed("promote member 0", || c.promote(0).unwrap());
    assert_eq!(c.primary().unwrap(), 0);
    on(&c, 0, "INSERT INTO t VALUES (7, 'failed back')");
    let method = timed("rejoin crashed primary member 1", || c.rejoin(1).unwrap());
    assert_eq!(method, RejoinMethod::Rewind, "{method:?}");
    c.rejoin(2).unwrap();
    for i in [1, 2] {
        c.wait_for_replay(i, REPLAY_TIMEOUT).unwrap();
        assert_eq!(notes(&c, i).last().unwrap(), "failed back", "member {i}");
    }
    assert_streaming_to(&c, 0, "member1:streaming,member2:streaming");

    // Drop stops every member and removes every directory.
    let dir = c.dir().to_owned();
    let pids: Vec<u32> = c
        .members()
        .iter()
        .filter_map(|m| m.postmaster_pid())
        .collect();
    let addrs: Vec<SocketAddr> = c.members().iter().map(|m| m.addr()).collect();
    assert_eq!(pids.len(), 3);
    assert!(dir.exists());
    timed("drop", || drop(c));
    assert!(!dir.exists(), "{} left behind", dir.display());
    for pid in pids {
        assert!(!process_alive(pid), "postmaster {pid} left running");
    }
    assert_eq!(processes_mentioning(&dir), Vec::<String>::new());
    for addr in addrs {
        assert!(refused(addr), "{addr} still accepts connections");
    }
}

const CHILD_ENV: &str = "PG_POOL_REPLICA_WATCHDOG_CHILD";

/// When the test process dies without running destructors, the watchdog
/// stops every member and removes the directory. The test runs itself as a
/// child process, which starts a cluster and is then killed (SIGKILL).
#[test]
fn watchdog_cleans_up_after_a_killed_test_process() {
    if std::env::var_os(CHILD_ENV).is_some() {
        let c = ReplicatedCluster::start(1).unwrap();
        println!("CHILD-DIR {}", c.dir().display());
        for m in c.members() {
            println!("CHILD-PID {}", m.postmaster_pid().unwrap());
        }
        println!("CHILD-READY");
        // Wait to be killed (bounded, in case the parent died).
        thread::sleep(Duration::from_secs(300));
        std::process::exit(1);
    }

    /// Kills the child if an assertion fails before it is killed on purpose.
    struct KillOnDrop(std::process::Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "watchdog_cleans_up_after_a_killed_test_process",
            "--exact",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut child = KillOnDrop(child);
    let (tx, rx) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut dir = None;
    let mut pids = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .expect("child did not report a started cluster within 180 s");
        // libtest may have printed "test NAME ... " on the same line.
        if let Some((_, d)) = line.split_once("CHILD-DIR ") {
            dir = Some(PathBuf::from(d.trim()));
        } else if let Some((_, p)) = line.split_once("CHILD-PID ") {
            pids.push(p.trim().parse::<u32>().unwrap());
        } else if line.contains("CHILD-READY") {
            break;
        }
    }
    let dir = dir.expect("child printed no directory");
    assert_eq!(pids.len(), 2);
    assert!(dir.exists());
    assert!(pids.iter().all(|&p| process_alive(p)));

    child.0.kill().unwrap();
    let status = child.0.wait().unwrap();
    assert!(!status.success());
    let t = Instant::now();
    let cleanup_deadline = t + Duration::from_secs(120);
    while (dir.exists() || pids.iter().any(|&p| process_alive(p)))
        && Instant::now() < cleanup_deadline
    {
        thread::sleep(Duration::from_millis(100));
    }
    println!("watchdog cleanup after SIGKILL: {:?}", t.elapsed());
    assert!(!dir.exists(), "{} left behind", dir.display());
    for pid in pids {
        assert!(!process_alive(pid), "postmaster {pid} left running");
    }
    assert_eq!(processes_mentioning(&dir), Vec::<String>::new());
}
