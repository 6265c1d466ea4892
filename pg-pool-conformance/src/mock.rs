//! A mock connection with a gate on every step, and a counter of live connections.

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use pg_pool_core::{Connector, Poolable};

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
    /// Panics.
    Panic,
}

impl Gate {
    /// Every gate, with `slow` as the delay of [`Gate::Slow`].
    pub fn all(slow: Duration) -> [Gate; 5] {
        [
            Gate::Pass,
            Gate::Fail,
            Gate::Slow(slow),
            Gate::Never,
            Gate::Panic,
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

/// The mock's error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockError(pub String);

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

    async fn pass(&self, step: Step) -> Result<(), MockError> {
        match self.gate(step) {
            Gate::Pass => Ok(()),
            Gate::Fail => Err(MockError(format!("{step:?} failed"))),
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
    pub async fn open(self: &Arc<Self>) -> Result<MockConn, MockError> {
        self.pass(Step::Connect).await?;
        self.connects.fetch_add(1, Ordering::SeqCst);
        self.live.fetch_add(1, Ordering::SeqCst);
        Ok(MockConn {
            id: self.next_id.fetch_add(1, Ordering::SeqCst),
            control: Arc::clone(self),
            broken: false,
            dirty: false,
            tag: None,
        })
    }

    /// A connector for the pool.
    pub fn connector(self: &Arc<Self>) -> impl Connector<MockConn> {
        let control = Arc::clone(self);
        move || {
            let control = Arc::clone(&control);
            async move { control.open().await }
        }
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

impl Poolable for MockConn {
    type Error = MockError;

    fn has_pending_data(&self) -> bool {
        self.broken
    }

    fn needs_reset(&mut self) -> bool {
        self.dirty || self.control.reset_everything.load(Ordering::SeqCst)
    }

    async fn reset(&mut self) -> Result<(), MockError> {
        self.control.resets.fetch_add(1, Ordering::SeqCst);
        self.control.pass(Step::Reset).await?;
        self.dirty = false;
        self.tag = None;
        Ok(())
    }

    async fn ping(&mut self) -> Result<(), MockError> {
        self.control.pings.fetch_add(1, Ordering::SeqCst);
        self.control.pass(Step::Ping).await
    }

    fn close(self) -> impl Future<Output = ()> + Send + 'static {
        let control = Arc::clone(&self.control);
        async move {
            let result = control.pass(Step::Close).await;
            drop(self);
            if result.is_ok() {
                control.closes.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}
