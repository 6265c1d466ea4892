//! An in-process, fault-injecting TCP proxy built on std threads.

use std::collections::HashMap;
use std::io::{self, ErrorKind, Read as _, Write as _};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use socket2::{Domain, SockRef, Socket, Type};

/// How often idle threads look at the mode / shutdown flags.
const TICK: Duration = Duration::from_millis(20);
/// Timeout for the proxy's own connect to the upstream.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(3);
/// How long `set_mode(Reset)` waits for the connections to be torn down.
const RESET_WAIT: Duration = Duration::from_secs(3);

/// What a [`FaultProxy`] does with traffic and connection attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyMode {
    /// Forward both ways (the initial mode).
    Pass,
    /// Forward, but hold every chunk for this long before writing it on.
    Delay(Duration),
    /// Keep all sockets open but forward nothing, in both directions, for
    /// existing and new connections (new connections are accepted). Data is
    /// held back, and flows again when the mode changes.
    Stall,
    /// Reset (RST: `SO_LINGER` 0, then close) every current connection, on
    /// both sides, and reset new ones right after accepting them.
    Reset,
    /// Refuse new connections (the listener is closed, so connects fail with
    /// `ECONNREFUSED`); the same port is bound again when leaving this mode.
    /// Existing connections are not affected.
    Refuse,
    /// New connects hang (SYNs are dropped: the port is bound by a listener
    /// that never accepts and whose backlog is full), so they time out.
    /// Existing connections are not affected.
    Blackhole,
    /// Accept new connections but never connect them upstream, answer or
    /// close them (reads on the client side time out). Existing connections
    /// keep passing.
    AcceptThenSilence,
}

/// An in-process TCP proxy between a pool and its server that can inject
/// faults (see [`ProxyMode`]).
///
/// Listens on `127.0.0.1` (port chosen at start, kept across mode changes).
/// Uses plain std threads: one acceptor plus two per proxied connection.
/// Dropping it closes every socket and joins all its threads.
#[derive(Debug)]
pub struct FaultProxy {
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

#[derive(Debug)]
struct Shared {
    upstream: SocketAddr,
    addr: SocketAddr,
    started: Instant,
    shutdown: AtomicBool,
    mode: Mutex<ProxyMode>,
    listener: Mutex<Listener>,
    /// Serialises `set_mode` calls.
    control: Mutex<()>,
    /// Accept times, as offsets from `started`.
    accepts: Mutex<Vec<Duration>>,
    next_id: AtomicU64,
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    /// Connections accepted in `AcceptThenSilence` mode.
    silent: Mutex<Vec<TcpStream>>,
    threads: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug)]
enum Listener {
    Open(Socket),
    Closed,
    Blackhole {
        _socket: Socket,
        _fillers: Vec<TcpStream>,
    },
}

/// A proxied connection.
#[derive(Debug)]
struct Conn {
    client: TcpStream,
    upstream: TcpStream,
    kill: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FaultProxy {
    /// Starts a proxy on a free `127.0.0.1` port forwarding to `upstream`,
    /// in [`ProxyMode::Pass`].
    pub fn start(upstream: SocketAddr) -> io::Result<FaultProxy> {
        let socket = bind_listener(SocketAddr::from(([127, 0, 0, 1], 0)), 1024)?;
        let addr = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("listener has no IP address"))?;
        let shared = Arc::new(Shared {
            upstream,
            addr,
            started: Instant::now(),
            shutdown: AtomicBool::new(false),
            mode: Mutex::new(ProxyMode::Pass),
            listener: Mutex::new(Listener::Open(socket)),
            control: Mutex::new(()),
            accepts: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            conns: Mutex::new(HashMap::new()),
            silent: Mutex::new(Vec::new()),
            threads: Mutex::new(Vec::new()),
        });
        let s = Arc::clone(&shared);
        let acceptor = thread::Builder::new()
            .name(format!("fault-proxy-accept-{}", addr.port()))
            .spawn(move || accept_loop(&s))?;
        Ok(FaultProxy {
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// The address clients connect to (`127.0.0.1:PORT`).
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// The port clients connect to.
    pub fn port(&self) -> u16 {
        self.shared.addr.port()
    }

    /// The address traffic is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.shared.upstream
    }

    /// The current mode.
    pub fn mode(&self) -> ProxyMode {
        *lock(&self.shared.mode)
    }

    /// Switches the mode; in effect when this returns (for `Reset`, all
    /// connections present at the call have been reset; for `Blackhole`, the
    /// backlog is full).
    ///
    /// # Panics
    ///
    /// If the listener cannot be re-bound or the backlog cannot be filled;
    /// use [`try_set_mode`](Self::try_set_mode) to get the error instead.
    pub fn set_mode(&self, mode: ProxyMode) {
        if let Err(e) = self.try_set_mode(mode) {
            panic!(
                "FaultProxy::set_mode({mode:?}) on {}: {e}",
                self.shared.addr
            );
        }
    }

    /// Like [`set_mode`](Self::set_mode), returning errors.
    pub fn try_set_mode(&self, mode: ProxyMode) -> io::Result<()> {
        let s = &*self.shared;
        let _control = lock(&s.control);
        {
            let mut listener = lock(&s.listener);
            match (mode, &*listener) {
                (ProxyMode::Refuse, Listener::Closed) => {}
                (ProxyMode::Refuse, _) => *listener = Listener::Closed,
                (ProxyMode::Blackhole, Listener::Blackhole { .. }) => {}
                (ProxyMode::Blackhole, _) => {
                    // Close the old listener first: the new one takes the port.
                    *listener = Listener::Closed;
                    *listener = blackhole_listener(s.addr)?;
                }
                (_, Listener::Open(_)) => {}
                (_, _) => {
                    *listener = Listener::Closed;
                    *listener = Listener::Open(bind_listener(s.addr, 1024)?);
                }
            }
        }
        *lock(&s.mode) = mode;
        if mode == ProxyMode::Reset {
            let victims: Vec<(u64, Arc<Conn>)> = lock(&s.conns)
                .iter()
                .map(|(id, c)| (*id, Arc::clone(c)))
                .collect();
            for (_, c) in &victims {
                c.reset();
            }
            for stream in lock(&s.silent).drain(..) {
                let _ = SockRef::from(&stream).set_linger(Some(Duration::ZERO));
            }
            let ids: Vec<u64> = victims.into_iter().map(|(id, _)| id).collect();
            let deadline = Instant::now() + RESET_WAIT;
            while Instant::now() < deadline {
                let conns = lock(&s.conns);
                if !ids.iter().any(|id| conns.contains_key(id)) {
                    break;
                }
                drop(conns);
                thread::sleep(Duration::from_millis(2));
            }
        }
        Ok(())
    }

    /// Total connections accepted so far (in every mode that accepts).
    pub fn accepted(&self) -> usize {
        lock(&self.shared.accepts).len()
    }

    /// Connections accepted per consecutive `bucket` of time since the proxy
    /// started (the last bucket is the current, partial one). Lets a test
    /// show that there is no reconnect storm.
    ///
    /// # Panics
    ///
    /// If `bucket` is zero.
    pub fn accepted_per_bucket(&self, bucket: Duration) -> Vec<usize> {
        assert!(!bucket.is_zero(), "bucket must be non-zero");
        let now = self.shared.started.elapsed();
        let index = |d: Duration| (d.as_nanos() / bucket.as_nanos()) as usize;
        let mut counts = vec![0; index(now) + 1];
        for &t in lock(&self.shared.accepts).iter() {
            let i = index(t).min(counts.len() - 1);
            counts[i] += 1;
        }
        counts
    }

    /// Proxied connections currently open (not counting `AcceptThenSilence`
    /// ones).
    pub fn active_connections(&self) -> usize {
        lock(&self.shared.conns).len()
    }

    /// Connections accepted in [`ProxyMode::AcceptThenSilence`] and still held.
    pub fn silent_connections(&self) -> usize {
        lock(&self.shared.silent).len()
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        let s = &*self.shared;
        s.shutdown.store(true, Ordering::SeqCst);
        *lock(&s.listener) = Listener::Closed;
        for c in lock(&s.conns).values() {
            c.kill.store(true, Ordering::SeqCst);
        }
        lock(&s.silent).clear();
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
        let threads: Vec<JoinHandle<()>> = lock(&s.threads).drain(..).collect();
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Conn {
    /// Marks the connection for an RST on both sides; the pump threads close
    /// it within a tick.
    fn reset(&self) {
        let _ = SockRef::from(&self.client).set_linger(Some(Duration::ZERO));
        let _ = SockRef::from(&self.upstream).set_linger(Some(Duration::ZERO));
        self.kill.store(true, Ordering::SeqCst);
    }
}

fn bind_listener(addr: SocketAddr, backlog: i32) -> io::Result<Socket> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// A listener that never accepts, with backlog 1, filled by dummy
/// connections so that further SYNs are dropped.
fn blackhole_listener(addr: SocketAddr) -> io::Result<Listener> {
    let socket = bind_listener(addr, 1)?;
    let mut fillers = Vec::new();
    for _ in 0..8 {
        match TcpStream::connect_timeout(&addr, Duration::from_millis(100)) {
            Ok(s) => fillers.push(s),
            Err(e) if e.kind() == ErrorKind::TimedOut || e.kind() == ErrorKind::WouldBlock => {
                return Ok(Listener::Blackhole {
                    _socket: socket,
                    _fillers: fillers,
                });
            }
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(
        "could not fill the listen backlog (connects still succeed)",
    ))
}

fn accept_loop(s: &Arc<Shared>) {
    let mut last_prune = Instant::now();
    while !s.shutdown.load(Ordering::SeqCst) {
        let accepted = match &*lock(&s.listener) {
            Listener::Open(l) => match l.accept() {
                Ok((sock, _)) => Some(sock),
                Err(e) if e.kind() == ErrorKind::WouldBlock => None,
                Err(_) => None,
            },
            _ => None,
        };
        let Some(sock) = accepted else {
            if last_prune.elapsed() > Duration::from_secs(1) {
                lock(&s.threads).retain(|t| !t.is_finished());
                last_prune = Instant::now();
            }
            thread::sleep(Duration::from_millis(2));
            continue;
        };
        lock(&s.accepts).push(s.started.elapsed());
        let client: TcpStream = sock.into();
        let _ = client.set_nonblocking(false);
        let _ = client.set_nodelay(true);
        match *lock(&s.mode) {
            ProxyMode::Reset => {
                let _ = SockRef::from(&client).set_linger(Some(Duration::ZERO));
                drop(client);
            }
            ProxyMode::AcceptThenSilence => lock(&s.silent).push(client),
            _ => {
                let s2 = Arc::clone(s);
                // If the thread cannot be spawned, the client is dropped
                // with the closure.
                if let Ok(handle) = thread::Builder::new()
                    .name("fault-proxy-conn".to_owned())
                    .spawn(move || serve(&s2, client))
                {
                    lock(&s.threads).push(handle);
                }
            }
        }
    }
}

/// Runs one proxied connection: connects upstream, pumps both directions.
fn serve(s: &Arc<Shared>, client: TcpStream) {
    let Ok(upstream) = TcpStream::connect_timeout(&s.upstream, UPSTREAM_CONNECT_TIMEOUT) else {
        // Upstream down: the client sees the connection closed.
        return;
    };
    let _ = upstream.set_nodelay(true);
    for sock in [&client, &upstream] {
        let _ = sock.set_read_timeout(Some(TICK));
        let _ = sock.set_write_timeout(Some(TICK));
    }
    let conn = Arc::new(Conn {
        client,
        upstream,
        kill: AtomicBool::new(false),
    });
    let id = s.next_id.fetch_add(1, Ordering::SeqCst);
    lock(&s.conns).insert(id, Arc::clone(&conn));
    if *lock(&s.mode) == ProxyMode::Reset {
        conn.reset();
    }
    let (s2, c2) = (Arc::clone(s), Arc::clone(&conn));
    let back = thread::Builder::new()
        .name("fault-proxy-pump".to_owned())
        .spawn(move || pump(&s2, &c2, &c2.upstream, &c2.client));
    pump(s, &conn, &conn.client, &conn.upstream);
    match back {
        Ok(h) => {
            let _ = h.join();
        }
        Err(_) => conn.kill.store(true, Ordering::SeqCst),
    }
    lock(&s.conns).remove(&id);
    // `conn` is dropped here: both sockets close (RST if reset() set linger 0).
}

fn stop_requested(s: &Shared, conn: &Conn) -> bool {
    conn.kill.load(Ordering::SeqCst) || s.shutdown.load(Ordering::SeqCst)
}

/// Copies `from` -> `to` until EOF, an error, or a kill.
fn pump(s: &Shared, conn: &Conn, mut from: &TcpStream, mut to: &TcpStream) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if stop_requested(s, conn) {
            return;
        }
        if *lock(&s.mode) == ProxyMode::Stall {
            thread::sleep(Duration::from_millis(5));
            continue;
        }
        let n = match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) =>
            {
                continue;
            }
            Err(e) => {
                if e.kind() == ErrorKind::ConnectionReset {
                    // Pass the reset on to the other side.
                    conn.reset();
                } else {
                    conn.kill.store(true, Ordering::SeqCst);
                }
                return;
            }
        };
        // Apply the mode that is current now (it may have changed while the
        // read was blocked): hold the chunk while stalled, delay if asked.
        loop {
            if stop_requested(s, conn) {
                return;
            }
            match *lock(&s.mode) {
                ProxyMode::Stall => thread::sleep(Duration::from_millis(5)),
                ProxyMode::Delay(d) => {
                    if !sleep_unless_stopped(s, conn, d) {
                        return;
                    }
                    break;
                }
                _ => break,
            }
        }
        if !write_all(s, conn, &mut to, &buf[..n]) {
            return;
        }
    }
}

fn sleep_unless_stopped(s: &Shared, conn: &Conn, d: Duration) -> bool {
    let deadline = Instant::now() + d;
    loop {
        if stop_requested(s, conn) {
            return false;
        }
        let now = Instant::now();
        if now >= deadline {
            return true;
        }
        thread::sleep((deadline - now).min(TICK));
    }
}

fn write_all(s: &Shared, conn: &Conn, to: &mut &TcpStream, mut data: &[u8]) -> bool {
    while !data.is_empty() {
        if stop_requested(s, conn) {
            return false;
        }
        match to.write(data) {
            Ok(0) => {
                conn.kill.store(true, Ordering::SeqCst);
                return false;
            }
            Ok(n) => data = &data[n..],
            Err(e)
                if matches!(
                    e.kind(),
                    ErrorKind::WouldBlock | ErrorKind::TimedOut | ErrorKind::Interrupted
                ) => {}
            Err(e) => {
                if e.kind() == ErrorKind::ConnectionReset {
                    conn.reset();
                } else {
                    conn.kill.store(true, Ordering::SeqCst);
                }
                return false;
            }
        }
    }
    true
}
