//! A mock connection with a gate on every step, and a counter of live connections.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pg_pool_core::{Connector, Poolable};

mod shared;

pub use shared::MockHandle;
use shared::SharedState;

/// How one step of the mock behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    /// Succeeds at once.
    Pass,
    /// Fails at once.
    Fail,
    /// Succeeds after the given delay (on the test's runtime timer).
    Slow(Duration),
    /// Never finishes.
    Never,
    /// Panics while running (inside the step's future).
    Panic,
    /// Panics as soon as the step is called, before it returns its future.
    PanicNow,
    /// Fails at once with an error the connection type reports as permanent
    /// ([`Poolable::is_permanent_connect_error`]), like a wrong password.
    Refuse,
}

impl Gate {
    /// Every gate but [`Gate::Refuse`], with `slow` as the delay of [`Gate::Slow`].
    pub fn all(slow: Duration) -> [Gate; 6] {
        [
            Gate::Pass,
            Gate::Fail,
            Gate::Slow(slow),
            Gate::Never,
            Gate::Panic,
            Gate::PanicNow,
        ]
    }
}

/// A step of the mock's lifecycle that has a gate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Opening a connection.
    Connect,
    /// `Poolable::ping`.
    Ping,
    /// `Poolable::reset`.
    Reset,
    /// `Poolable::close`.
    Close,
}

/// A synchronous method of the mock that [`Control::panic_next`] can make panic: the
/// checks the pool calls without awaiting, on its checkout and return paths.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// `Poolable::has_pending_data`.
    HasPendingData,
    /// `Poolable::needs_reset`.
    NeedsReset,
    /// `Poolable::server_changed`.
    ServerChanged,
    /// `Poolable::is_permanent_connect_error`, on the next connect error.
    PermanentError,
    /// `Shareable::is_broken`.
    IsBroken,
    /// `Shareable::share`.
    Share,
}

impl Check {
    /// Every check.
    pub const ALL: [Check; 6] = [
        Check::HasPendingData,
        Check::NeedsReset,
        Check::ServerChanged,
        Check::PermanentError,
        Check::IsBroken,
        Check::Share,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// The message prefix of a connect error whose `is_permanent_connect_error` panics.
const PANIC_ON_CHECK: &str = "panics-when-checked:";

/// The mock's error; permanent when its message starts with `permanent:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockError(pub String);

impl MockError {
    /// Whether this is a [`Gate::Refuse`] error.
    pub fn is_permanent(&self) -> bool {
        self.0.starts_with("permanent:")
    }
}

impl fmt::Display for MockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "mock: {}", self.0)
    }
}

impl std::error::Error for MockError {}

type Sleeper = Arc<dyn Fn(Duration) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

#[derive(Default)]
struct Gates {
    standing: [Option<Gate>; 4],
    once: [VecDeque<Gate>; 4],
}

/// Controls every mock connection of one pool and counts them.
pub struct Control {
    gates: Mutex<Gates>,
    sleeper: Sleeper,
    live: AtomicUsize,
    connects: AtomicUsize,
    closes: AtomicUsize,
    pings: AtomicUsize,
    resets: AtomicUsize,
    next_id: AtomicU64,
    reset_everything: AtomicBool,
    lag: Mutex<Option<Duration>>,
    /// Panics still to come in each synchronous check ([`Check`]).
    check_panics: [AtomicUsize; 6],
}

impl fmt::Debug for Control {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Control")
            .field("live", &self.live())
            .field("connects", &self.connects())
            .finish_non_exhaustive()
    }
}

fn index(step: Step) -> usize {
    match step {
        Step::Connect => 0,
        Step::Ping => 1,
        Step::Reset => 2,
        Step::Close => 3,
    }
}

impl Control {
    /// A control whose [`Gate::Slow`] steps sleep with `sleeper`.
    pub fn new<F, Fut>(sleeper: F) -> Arc<Self>
    where
        F: Fn(Duration) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        Arc::new(Self {
            gates: Mutex::new(Gates::default()),
            sleeper: Arc::new(move |d| Box::pin(sleeper(d))),
            live: AtomicUsize::new(0),
            connects: AtomicUsize::new(0),
            closes: AtomicUsize::new(0),
            pings: AtomicUsize::new(0),
            resets: AtomicUsize::new(0),
            next_id: AtomicU64::new(0),
            reset_everything: AtomicBool::new(false),
            lag: Mutex::new(None),
            check_panics: Default::default(),
        })
    }

    /// Sets the standing gate of `step`.
    pub fn set(&self, step: Step, gate: Gate) {
        self.gates.lock().unwrap().standing[index(step)] = Some(gate);
    }

    /// Queues a gate used once by the next run of `step`, before the standing gate.
    pub fn once(&self, step: Step, gate: Gate) {
        self.gates.lock().unwrap().once[index(step)].push_back(gate);
    }

    /// Sets the replication lag every connection reports (`None`: not a standby).
    pub fn set_lag(&self, lag: Option<Duration>) {
        *self.lag.lock().unwrap() = lag;
    }

    /// Makes the next `times` calls of `check`, on any connection of this control, panic.
    pub fn panic_next(&self, check: Check, times: usize) {
        self.check_panics[check.index()].store(times, Ordering::SeqCst);
    }

    /// Panics still to come in `check` (0 once every one planned has happened).
    pub fn panics_left(&self, check: Check) -> usize {
        self.check_panics[check.index()].load(Ordering::SeqCst)
    }

    /// Takes one planned panic of `check`, if any is left.
    fn take_panic(&self, check: Check) -> bool {
        self.check_panics[check.index()]
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok()
    }

    /// Panics if a panic of `check` is planned.
    fn check(&self, check: Check) {
        if self.take_panic(check) {
            panic!("mock {check:?} panicked");
        }
    }

    /// Makes every returned connection ask for a reset.
    pub fn reset_every_return(&self, on: bool) {
        self.reset_everything.store(on, Ordering::SeqCst);
    }

    fn gate(&self, step: Step) -> Gate {
        let mut gates = self.gates.lock().unwrap();
        let i = index(step);
        gates.once[i]
            .pop_front()
            .or(gates.standing[i])
            .unwrap_or(Gate::Pass)
    }

    /// Takes the next gate of `step`, panicking at once for [`Gate::PanicNow`]: called in
    /// the synchronous part of each step.
    fn gate_now(&self, step: Step) -> Gate {
        let gate = self.gate(step);
        if gate == Gate::PanicNow {
            panic!("mock {step:?} panicked before returning its future");
        }
        gate
    }

    async fn pass(&self, step: Step, gate: Gate) -> Result<(), MockError> {
        match gate {
            Gate::Pass | Gate::PanicNow => Ok(()),
            Gate::Fail if step == Step::Connect && self.take_panic(Check::PermanentError) => {
                Err(MockError(format!("{PANIC_ON_CHECK} {step:?} failed")))
            }
            Gate::Fail => Err(MockError(format!("{step:?} failed"))),
            Gate::Refuse => Err(MockError(format!("permanent: {step:?} refused"))),
            Gate::Slow(d) => {
                (self.sleeper)(d).await;
                Ok(())
            }
            Gate::Never => std::future::pending().await,
            Gate::Panic => panic!("mock {step:?} panicked"),
        }
    }

    /// Mock connections alive right now (created and not yet dropped).
    pub fn live(&self) -> usize {
        self.live.load(Ordering::SeqCst)
    }

    /// Connections opened successfully so far.
    pub fn connects(&self) -> usize {
        self.connects.load(Ordering::SeqCst)
    }

    /// Closes run to completion so far.
    pub fn closes(&self) -> usize {
        self.closes.load(Ordering::SeqCst)
    }

    /// Pings run so far.
    pub fn pings(&self) -> usize {
        self.pings.load(Ordering::SeqCst)
    }

    /// Resets run so far.
    pub fn resets(&self) -> usize {
        self.resets.load(Ordering::SeqCst)
    }

    /// Opens a mock connection through the connect gate.
    ///
    /// # Panics
    ///
    /// At once under [`Gate::PanicNow`], while running under [`Gate::Panic`].
    pub fn open(
        self: &Arc<Self>,
    ) -> impl Future<Output = Result<MockConn, MockError>> + Send + use<> {
        let gate = self.gate_now(Step::Connect);
        let control = Arc::clone(self);
        async move { control.open_through(gate).await }
    }

    async fn open_through(self: &Arc<Self>, gate: Gate) -> Result<MockConn, MockError> {
        self.pass(Step::Connect, gate).await?;
        self.connects.fetch_add(1, Ordering::SeqCst);
        self.live.fetch_add(1, Ordering::SeqCst);
        Ok(MockConn {
            id: self.next_id.fetch_add(1, Ordering::SeqCst),
            control: Arc::clone(self),
            broken: false,
            dirty: false,
            tag: None,
            changed: None,
            shared: SharedState::default(),
        })
    }

    /// A connector for the pool.
    pub fn connector(self: &Arc<Self>) -> impl Connector<MockConn> {
        let control = Arc::clone(self);
        move || control.open()
    }
}

/// A mock connection.
pub struct MockConn {
    /// Unique id, in creation order.
    pub id: u64,
    control: Arc<Control>,
    /// Reported by `has_pending_data`.
    pub broken: bool,
    /// Reported by `needs_reset`; cleared by a successful reset.
    pub dirty: bool,
    /// Free-form state for hooks to set ("session state").
    pub tag: Option<String>,
    /// Reported by `server_changed`: the server this connection reaches is gone or changed.
    pub changed: Option<&'static str>,
    shared: SharedState,
}

impl fmt::Debug for MockConn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockConn")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Drop for MockConn {
    fn drop(&mut self) {
        self.control.live.fetch_sub(1, Ordering::SeqCst);
    }
}

impl pg_pool_core::ReplicaLag for MockConn {
    fn replica_lag(&mut self) -> impl Future<Output = Result<Option<Duration>, MockError>> + Send {
        std::future::ready(Ok(*self.control.lag.lock().unwrap()))
    }
}

impl Poolable for MockConn {
    type Error = MockError;

    fn has_pending_data(&self) -> bool {
        self.control.check(Check::HasPendingData);
        self.broken
            || self.shared.dead.load(Ordering::SeqCst)
            || self.shared.running.load(Ordering::SeqCst) > 0
    }

    fn needs_reset(&mut self) -> bool {
        self.control.check(Check::NeedsReset);
        self.dirty || self.control.reset_everything.load(Ordering::SeqCst)
    }

    fn server_changed(&self) -> Option<&'static str> {
        self.control.check(Check::ServerChanged);
        self.changed
    }

    fn is_permanent_connect_error(error: &MockError) -> bool {
        assert!(
            !error.0.starts_with(PANIC_ON_CHECK),
            "mock PermanentError panicked"
        );
        error.is_permanent()
    }

    fn reset(&mut self) -> impl Future<Output = Result<(), MockError>> + Send {
        self.control.resets.fetch_add(1, Ordering::SeqCst);
        let gate = self.control.gate_now(Step::Reset);
        async move {
            self.control.pass(Step::Reset, gate).await?;
            self.dirty = false;
            self.tag = None;
            Ok(())
        }
    }

    fn ping(&mut self) -> impl Future<Output = Result<(), MockError>> + Send {
        self.control.pings.fetch_add(1, Ordering::SeqCst);
        let gate = self.control.gate_now(Step::Ping);
        let control = Arc::clone(&self.control);
        async move { control.pass(Step::Ping, gate).await }
    }

    fn close(self) -> impl Future<Output = ()> + Send + 'static {
        let control = Arc::clone(&self.control);
        // `self` moves into the future only after the gate is taken: a `PanicNow` close
        // drops the connection during the unwind, as a real driver's would be.
        let gate = control.gate_now(Step::Close);
        async move {
            let result = control.pass(Step::Close, gate).await;
            drop(self);
            if result.is_ok() {
                control.closes.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}
