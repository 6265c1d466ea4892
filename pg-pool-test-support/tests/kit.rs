//! Tests of the test kit against the real thing: PostgreSQL, psql, pgbouncer
//! (install them with `bash scripts/install-test-deps.sh`).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use pg_pool_test_support::{Error, FaultProxy, PgBouncer, ProxyMode, TestCluster};

fn run(mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .expect("run psql")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).trim().to_owned()
}

/// Runs `query` as the test role through psql at `addr`; Ok(stdout) or Err(stderr).
fn query_via(cluster: &TestCluster, addr: SocketAddr, query: &str) -> Result<String, String> {
    let mut cmd = cluster.psql_via(addr);
    cmd.args(["-c", query]);
    let out = run(cmd);
    if out.status.success() {
        Ok(stdout(&out))
    } else {
        Err(stderr(&out))
    }
}

#[test]
fn cluster_runs_sql_and_exposes_connection_details() {
    let c = TestCluster::shared();
    assert_eq!(c.sql("select 1").unwrap(), "1");
    assert_eq!(
        c.sql("select 1, 'a' union all select 2, 'b'").unwrap(),
        "1|a\n2|b"
    );
    let err = c.sql("select nope").unwrap_err();
    assert!(matches!(err, Error::Sql { .. }), "{err}");
    assert!(err.to_string().contains("nope"), "{err}");

    assert_eq!(c.addr().port(), c.port());
    assert_eq!(c.addr().ip().to_string(), c.host());
    assert!(c.url().starts_with("postgres://"), "{}", c.url());
    assert!(
        c.url()
            .ends_with(&format!("@{}:{}/{}", c.host(), c.port(), c.database())),
        "{}",
        c.url()
    );
    if c.is_throwaway() {
        assert_eq!(c.host(), "127.0.0.1");
        assert_eq!(
            c.url(),
            format!(
                "postgres://pgpool:pgpool-test-pw@127.0.0.1:{}/pgpool",
                c.port()
            )
        );
        assert_ne!(c.admin_url(), c.url());
        assert_eq!(c.sql("show max_connections").unwrap(), "300");
        assert_eq!(c.sql("show fsync").unwrap(), "off");
        assert_eq!(c.sql("show password_encryption").unwrap(), "scram-sha-256");
        assert_eq!(c.sql("show listen_addresses").unwrap(), "127.0.0.1");
        assert_eq!(c.sql("show log_connections").unwrap(), "on");
        assert!(c.server_log_tail(10_000).contains("connection authorized"));
    }
}

#[test]
fn test_role_logs_in_with_password_and_not_without() {
    let c = TestCluster::shared();
    let mut ok = c.psql();
    ok.args(["-c", "select current_user, current_database()"]);
    let out = run(ok);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}|{}", c.user(), c.database()));

    let mut bad = c.psql();
    bad.env("PGPASSWORD", "definitely-wrong")
        .args(["-c", "select 1"]);
    let out = run(bad);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("password authentication failed"), "{err}");
}

#[test]
fn terminate_backends_kills_sessions_by_application_name() {
    let c = TestCluster::shared();
    let app = "kit-terminate-test";
    let mut cmd = c.psql();
    cmd.env("PGAPPNAME", app)
        .args(["-c", "select pg_sleep(30)"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let n = c
        .wait_for_backend_count(app, 1, Duration::from_secs(10))
        .unwrap();
    assert_eq!(n, 1, "sleeper session did not show up");

    let t = Instant::now();
    assert_eq!(c.terminate_backends(app).unwrap(), 1);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "psql still running after terminate"
        );
        thread::sleep(Duration::from_millis(20));
    };
    println!("psql exited {:?} after terminate", t.elapsed());
    assert!(!status.success());
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(err.contains("terminat"), "{err}");
    assert_eq!(c.backend_count(app).unwrap(), 0);
    assert_eq!(c.terminate_backends(app).unwrap(), 0);
}

#[test]
fn stop_start_restart_keep_the_port() {
    let c = TestCluster::start().unwrap();
    if !c.is_throwaway() {
        let err = c.stop().unwrap_err();
        assert!(err.to_string().contains("throwaway"), "{err}");
        println!("skipped: PG_POOL_TEST_URL is set");
        return;
    }
    let port = c.port();
    let t = Instant::now();
    c.stop().unwrap();
    println!("stop (fast): {:?}", t.elapsed());
    let err = c.sql("select 1").unwrap_err().to_string();
    assert!(
        err.contains("Connection refused") || err.contains("connection refused"),
        "{err}"
    );
    assert_eq!(
        TcpStream::connect(c.addr()).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );

    let t = Instant::now();
    c.start_server().unwrap();
    println!("start: {:?}", t.elapsed());
    assert_eq!(c.port(), port);
    assert_eq!(c.sql("select 1").unwrap(), "1");
    assert_eq!(query_via(&c, c.addr(), "select 2").unwrap(), "2");

    let t = Instant::now();
    c.restart_fast().unwrap();
    println!("restart_fast: {:?}", t.elapsed());
    assert_eq!(c.sql("select 3").unwrap(), "3");

    let t = Instant::now();
    c.restart_immediate().unwrap();
    println!("restart_immediate: {:?}", t.elapsed());
    assert_eq!(c.sql("select 4").unwrap(), "4");
    assert_eq!(query_via(&c, c.addr(), "select 5").unwrap(), "5");
    assert_eq!(
        c.sql("show port").unwrap(),
        port.to_string(),
        "port changed"
    );

    let dir = c.log_path().unwrap().parent().unwrap().to_owned();
    assert!(dir.exists());
    drop(c);
    assert!(!dir.exists(), "cluster directory left behind");
    assert!(TcpStream::connect(SocketAddr::from(([127, 0, 0, 1], port))).is_err());
}

#[test]
fn external_url_mode_refuses_fault_injection() {
    let shared = TestCluster::shared();
    let ext = TestCluster::external(shared.url()).unwrap();
    assert!(!ext.is_throwaway());
    assert_eq!(ext.port(), shared.port());
    assert_eq!(ext.user(), shared.user());
    assert_eq!(ext.sql("select current_user").unwrap(), shared.user());
    let err = ext.restart_fast().unwrap_err();
    assert!(matches!(err, Error::NotThrowaway { .. }));
    assert!(
        err.to_string()
            .contains("fault injection needs a throwaway cluster"),
        "{err}"
    );
    assert!(TestCluster::external("mysql://x@y/z").is_err());
}

/// A tiny echo server; returns its address. The accept thread blocks in
/// accept (it does not spin) and ends with the test process.
fn echo_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { continue };
            thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = s.read(&mut buf) {
                    if n == 0 || s.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    addr
}

fn connect(proxy: &FaultProxy) -> TcpStream {
    let s = TcpStream::connect_timeout(&proxy.addr(), Duration::from_secs(2)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn echo(s: &mut TcpStream, msg: &[u8]) -> Vec<u8> {
    s.write_all(msg).unwrap();
    let mut buf = vec![0u8; msg.len()];
    s.read_exact(&mut buf).unwrap();
    buf
}

/// Expects that nothing arrives within `wait`.
fn assert_silent(s: &mut TcpStream, wait: Duration) {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 16];
    let t = Instant::now();
    match s.read(&mut buf) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("expected a read timeout, got {other:?}"),
    }
    println!("read timed out after {:?}", t.elapsed());
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
}

#[test]
fn proxy_pass_delay_and_stall() {
    let proxy = FaultProxy::start(echo_server()).unwrap();
    assert_eq!(proxy.mode(), ProxyMode::Pass);
    let mut a = connect(&proxy);
    assert_eq!(echo(&mut a, b"hello"), b"hello");

    proxy.set_mode(ProxyMode::Delay(Duration::from_millis(200)));
    let t = Instant::now();
    assert_eq!(echo(&mut a, b"slow"), b"slow");
    let took = t.elapsed();
    println!("delayed round trip: {took:?} (expected >= 400ms)");
    assert!(took >= Duration::from_millis(380), "{took:?}");

    proxy.set_mode(ProxyMode::Stall);
    a.write_all(b"held").unwrap();
    assert_silent(&mut a, Duration::from_millis(300));
    // New connections are accepted but stalled too.
    let mut b = connect(&proxy);
    b.write_all(b"new").unwrap();
    assert_silent(&mut b, Duration::from_millis(300));

    proxy.set_mode(ProxyMode::Pass);
    let mut buf = [0u8; 4];
    a.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"held");
    let mut buf = [0u8; 3];
    b.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"new");
    assert_eq!(proxy.accepted(), 2);
    assert_eq!(proxy.active_connections(), 2);
}

#[test]
fn proxy_refuse_and_blackhole_keep_the_port() {
    let proxy = FaultProxy::start(echo_server()).unwrap();
    let addr = proxy.addr();
    let mut existing = connect(&proxy);
    // Make sure it has been accepted (closing the listener resets connections
    // still in its accept queue).
    assert_eq!(echo(&mut existing, b"first"), b"first");

    proxy.set_mode(ProxyMode::Refuse);
    let err = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
    assert_eq!(echo(&mut existing, b"still"), b"still");

    proxy.set_mode(ProxyMode::Pass);
    assert_eq!(proxy.addr(), addr);
    let mut c = connect(&proxy);
    assert_eq!(echo(&mut c, b"back"), b"back");

    let t = Instant::now();
    proxy.set_mode(ProxyMode::Blackhole);
    println!("set_mode(Blackhole) took {:?}", t.elapsed());
    for _ in 0..2 {
        let t = Instant::now();
        let err = TcpStream::connect_timeout(&addr, Duration::from_millis(300)).unwrap_err();
        let took = t.elapsed();
        println!("blackholed connect failed after {took:?}: {err}");
        assert!(
            matches!(err.kind(), ErrorKind::TimedOut | ErrorKind::WouldBlock),
            "{err}"
        );
        assert!(took >= Duration::from_millis(250), "{took:?}");
    }
    assert_eq!(echo(&mut existing, b"alive"), b"alive");

    proxy.set_mode(ProxyMode::Pass);
    let mut d = connect(&proxy);
    assert_eq!(echo(&mut d, b"again"), b"again");
    // The blackhole's filler connections are never accepted by the proxy.
    assert_eq!(proxy.accepted(), 3);
}

#[test]
fn proxy_reset_and_accept_then_silence() {
    let proxy = FaultProxy::start(echo_server()).unwrap();
    let mut a = connect(&proxy);
    assert_eq!(echo(&mut a, b"1"), b"1");

    let t = Instant::now();
    proxy.set_mode(ProxyMode::Reset);
    println!("set_mode(Reset) took {:?}", t.elapsed());
    assert_eq!(proxy.active_connections(), 0);
    let mut buf = [0u8; 8];
    let err = a.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");

    // New connections are accepted and reset at once.
    let mut b = connect(&proxy);
    let _ = b.write_all(b"x");
    let r = b.read(&mut buf);
    assert!(
        matches!(&r, Err(e) if e.kind() == ErrorKind::ConnectionReset),
        "{r:?}"
    );

    proxy.set_mode(ProxyMode::Pass);
    let mut c = connect(&proxy);
    assert_eq!(echo(&mut c, b"2"), b"2");

    proxy.set_mode(ProxyMode::AcceptThenSilence);
    let mut d = connect(&proxy);
    d.write_all(b"anyone?").unwrap();
    assert_silent(&mut d, Duration::from_millis(300));
    assert_eq!(proxy.silent_connections(), 1);
    // Existing connections keep passing.
    assert_eq!(echo(&mut c, b"3"), b"3");
    assert_eq!(proxy.accepted(), 4);

    // Reset also kills the silent ones.
    proxy.set_mode(ProxyMode::Reset);
    assert_eq!(proxy.silent_connections(), 0);
    let err = d.read(&mut buf).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
}

#[test]
fn proxy_counts_accepts_per_bucket() {
    let proxy = FaultProxy::start(echo_server()).unwrap();
    let bucket = Duration::from_millis(500);
    let first: Vec<TcpStream> = (0..3).map(|_| connect(&proxy)).collect();
    // Accepts are recorded by the acceptor thread: wait for them.
    let t = Instant::now();
    while proxy.accepted() < 3 && t.elapsed() < Duration::from_secs(2) {
        thread::sleep(Duration::from_millis(5));
    }
    let elapsed_first = t.elapsed();
    thread::sleep(Duration::from_millis(600));
    let second: Vec<TcpStream> = (0..2).map(|_| connect(&proxy)).collect();
    let t = Instant::now();
    while proxy.accepted() < 5 && t.elapsed() < Duration::from_secs(2) {
        thread::sleep(Duration::from_millis(5));
    }
    let counts = proxy.accepted_per_bucket(bucket);
    println!("accepts per {bucket:?}: {counts:?} (first three recorded after {elapsed_first:?})");
    assert_eq!(proxy.accepted(), 5);
    assert_eq!(counts.iter().sum::<usize>(), 5);
    assert_eq!(counts[0], 3, "{counts:?}");
    assert!(counts.len() >= 2);
    assert_eq!(counts[1..].iter().sum::<usize>(), 2, "{counts:?}");
    drop((first, second));
}

#[test]
fn proxy_drop_closes_connections_and_ends_threads() {
    let upstream = echo_server();
    let proxy = FaultProxy::start(upstream).unwrap();
    let mut a = connect(&proxy);
    assert_eq!(echo(&mut a, b"x"), b"x");
    proxy.set_mode(ProxyMode::AcceptThenSilence);
    let mut silent = connect(&proxy);
    proxy.set_mode(ProxyMode::Stall);
    let addr = proxy.addr();
    let t = Instant::now();
    drop(proxy);
    println!("proxy drop took {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(3));
    let mut buf = [0u8; 4];
    for s in [&mut a, &mut silent] {
        s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
        match s.read(&mut buf) {
            Ok(0) => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
            other => panic!("expected the connection closed, got {other:?}"),
        }
    }
    assert_eq!(
        TcpStream::connect(addr).unwrap_err().kind(),
        ErrorKind::ConnectionRefused
    );
}

#[test]
fn proxy_in_front_of_postgres() {
    let c = TestCluster::shared();
    let proxy = FaultProxy::start(c.addr()).unwrap();
    assert_eq!(
        query_via(c, proxy.addr(), "select current_user").unwrap(),
        c.user()
    );
    assert!(
        c.url_for_addr(proxy.addr())
            .contains(&format!(":{}/", proxy.port()))
    );
    proxy.set_mode(ProxyMode::Refuse);
    let err = query_via(c, proxy.addr(), "select 1").unwrap_err();
    assert!(err.to_lowercase().contains("refused"), "{err}");
    proxy.set_mode(ProxyMode::Pass);
    assert_eq!(query_via(c, proxy.addr(), "select 7").unwrap(), "7");
    assert_eq!(proxy.accepted(), 2);
}

#[test]
fn pgbouncer_forwards_to_the_cluster() {
    let c = TestCluster::shared();
    let t = Instant::now();
    let bouncer = PgBouncer::start(c, "transaction").unwrap();
    println!("pgbouncer started in {:?}", t.elapsed());
    assert_eq!(bouncer.pool_mode(), "transaction");
    assert_eq!(bouncer.addr().port(), bouncer.port());
    assert_eq!(bouncer.url(), c.url_for_addr(bouncer.addr()));

    let app = "kit-through-pgbouncer";
    let mut cmd = c.psql_via(bouncer.addr());
    cmd.env("PGAPPNAME", app).args([
        "-c",
        "select current_user, current_database(), current_setting('application_name')",
    ]);
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        bouncer.log_tail(4000)
    );
    assert_eq!(stdout(&out), format!("{}|{}|{app}", c.user(), c.database()));

    let mut bad = c.psql_via(bouncer.addr());
    bad.env("PGPASSWORD", "wrong").args(["-c", "select 1"]);
    let out = run(bad);
    assert!(!out.status.success());
    // pgbouncer reports a failed SCRAM exchange as "SASL authentication failed".
    let err = stderr(&out);
    assert!(
        err.contains("SASL authentication failed")
            || err.contains("password authentication failed"),
        "{err}"
    );

    assert!(matches!(
        PgBouncer::start(c, "bogus"),
        Err(Error::PgBouncerFailed { .. })
    ));
    let addr = bouncer.addr();
    drop(bouncer);
    assert!(TcpStream::connect(addr).is_err());
}
