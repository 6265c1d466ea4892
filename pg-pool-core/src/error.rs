//! Errors: what happened, in which phase, with the last connect error attached.

use std::error::Error;
use std::fmt;
use std::panic::Location;
use std::sync::Arc;
use std::time::Duration;

use crate::config::ConfigError;
use crate::hooks::HookError;
use crate::runtime::NoRuntime;

/// The phase of a checkout that ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Phase {
    /// Waiting in the queue for a connection to come back.
    Wait,
    /// Waiting for a connection being opened for this caller.
    Connect,
    /// Running the acquire or checkout hook.
    Hook,
    /// Pinging a connection that sat idle (test-on-checkout).
    Probe,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Wait => "waiting for a connection",
            Phase::Connect => "connecting",
            Phase::Hook => "running a checkout hook",
            Phase::Probe => "pinging an idle connection",
        })
    }
}

/// What the pool looked like when a checkout ran out of time: enough to tell a pool that is
/// too small or held too long from a server that does not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TimeoutDetails {
    /// The pool's maximum size.
    pub max_size: usize,
    /// Connections idle at that moment.
    pub idle: usize,
    /// Connections checked out (or being validated, reset or probed).
    pub active: usize,
    /// Connection attempts in flight.
    pub connecting: usize,
    /// Other callers still queued.
    pub waiters: usize,
    /// With leak detection on (`leak_detection_threshold`), the checkouts held longest, longest
    /// first (at most three): where the capacity went. Empty otherwise.
    pub held_longest: Vec<HeldCheckout>,
}

/// A checkout still held, as reported in [`TimeoutDetails::held_longest`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldCheckout {
    /// Where `get()` was called.
    pub site: &'static Location<'static>,
    /// How long the connection has been held.
    pub held: Duration,
}

impl fmt::Display for HeldCheckout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (held {:?})", self.site, self.held)
    }
}

/// Why opening a connection failed.
#[derive(Debug)]
#[non_exhaustive]
pub enum ConnectError<E> {
    /// The driver returned an error.
    Driver(E),
    /// The attempt took longer than the pool's `connect_timeout`.
    Timeout(Duration),
    /// The create hook rejected the new connection.
    Hook(HookError),
    /// The driver's connect panicked.
    Panicked(String),
}

impl<E: fmt::Display> fmt::Display for ConnectError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnectError::Driver(e) => write!(f, "connect failed: {e}"),
            ConnectError::Timeout(d) => write!(f, "connect timed out after {d:?}"),
            ConnectError::Hook(e) => write!(f, "create hook rejected the new connection: {e}"),
            ConnectError::Panicked(e) => write!(f, "connect panicked: {e}"),
        }
    }
}

impl<E: Error + 'static> Error for ConnectError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            ConnectError::Driver(e) => Some(e),
            ConnectError::Timeout(_) | ConnectError::Panicked(_) => None,
            ConnectError::Hook(e) => Some(e),
        }
    }
}

/// The error returned by the pool, generic over the driver's error `E`.
#[derive(Debug)]
#[non_exhaustive]
pub enum PoolError<E> {
    /// The checkout did not complete within `checkout_timeout`.
    Timeout {
        /// The phase that was running when the time ran out.
        phase: Phase,
        /// How long the checkout had been running.
        waited: Duration,
        /// The most recent failed connection attempt of this pool, if the pool has not
        /// connected successfully since: usually the real reason for the wait.
        last_connect_error: Option<Arc<ConnectError<E>>>,
        /// The pool's state when the time ran out.
        details: Box<TimeoutDetails>,
    },
    /// The connection attempt made for this caller failed; reported at once.
    Connect(Arc<ConnectError<E>>),
    /// A hook rejected a connection opened for this very checkout: the hook rejects even
    /// fresh connections, so retrying would only open more.
    Hook(HookError),
    /// The pool is draining or closed and accepts no checkouts.
    Closed,
    /// `try_get` found no idle connection and no capacity to hand out at once.
    Exhausted,
    /// The runtime the pool was built on has shut down (it dropped the pool's tasks
    /// unrun), so the pool can no longer open, reset or time out connections; it closed.
    /// Build a new pool on a running runtime.
    RuntimeGone,
    /// [`ClusterPool::get_read`](crate::ClusterPool::get_read) found no healthy replica and
    /// its policy does not fall back to the primary.
    NoHealthyReplica,
}

impl<E> PoolError<E> {
    /// Returns `true` for [`PoolError::Timeout`].
    pub fn is_timeout(&self) -> bool {
        matches!(self, PoolError::Timeout { .. })
    }

    /// Returns `true` for [`PoolError::Closed`].
    pub fn is_closed(&self) -> bool {
        matches!(self, PoolError::Closed)
    }

    /// Returns the connect error behind this error: the caller's own failed attempt, or
    /// the pool's last one for a timeout.
    pub fn connect_error(&self) -> Option<&ConnectError<E>> {
        match self {
            PoolError::Connect(e) => Some(e),
            PoolError::Timeout {
                last_connect_error: Some(e),
                ..
            } => Some(e),
            _ => None,
        }
    }

    /// Returns the driver's error behind this error, if a driver error caused it.
    pub fn driver_error(&self) -> Option<&E> {
        match self.connect_error()? {
            ConnectError::Driver(e) => Some(e),
            _ => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for PoolError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PoolError::Timeout {
                phase,
                waited,
                last_connect_error,
                details,
            } => {
                write!(
                    f,
                    "checkout timed out after {waited:?} while {phase} ({} of {} connections in use, {} idle, {} connecting, {} other callers queued",
                    details.active,
                    details.max_size,
                    details.idle,
                    details.connecting,
                    details.waiters
                )?;
                if let Some(held) = details.held_longest.first() {
                    write!(f, "; held longest at {held}")?;
                }
                f.write_str(")")?;
                if let Some(e) = last_connect_error {
                    write!(f, "; last connect error: {e}")?;
                }
                Ok(())
            }
            PoolError::Connect(e) => e.fmt(f),
            PoolError::Hook(e) => write!(f, "hook rejected a fresh connection: {e}"),
            PoolError::Closed => f.write_str("pool is closed"),
            PoolError::Exhausted => f.write_str("no idle connection and no capacity available"),
            PoolError::NoHealthyReplica => {
                f.write_str("no replica is healthy and reads do not fall back to the primary")
            }
            PoolError::RuntimeGone => f.write_str(
                "the pool's runtime has shut down; the pool is closed (build a new pool on a running runtime)",
            ),
        }
    }
}

impl<E: Error + 'static> Error for PoolError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            PoolError::Timeout {
                last_connect_error: Some(e),
                ..
            } => Some(&**e),
            PoolError::Connect(e) => Some(&**e),
            PoolError::Hook(e) => Some(e),
            _ => None,
        }
    }
}

/// Why a pool could not be built: what [`ConnPool::new`](crate::ConnPool::new) and
/// [`Builder::build`](crate::Builder::build) return, apart from the checkout errors of
/// [`PoolError`].
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError<E> {
    /// The configuration is invalid.
    Config(ConfigError),
    /// No runtime was given and none is running on this thread.
    NoRuntime(NoRuntime),
    /// One of the first `min_idle` connections could not be opened: a bad address or
    /// password fails the build with its real error.
    Connect(Arc<ConnectError<E>>),
    /// The connector refused its own settings ([`Connector::validate`](crate::Connector::validate)).
    Connector(E),
}

impl<E> BuildError<E> {
    /// The connect error behind this error, if opening a connection failed.
    pub fn connect_error(&self) -> Option<&ConnectError<E>> {
        match self {
            BuildError::Connect(e) => Some(e),
            _ => None,
        }
    }

    /// The driver's error behind this error, if a driver error caused it.
    pub fn driver_error(&self) -> Option<&E> {
        if let BuildError::Connector(e) = self {
            return Some(e);
        }
        match self.connect_error()? {
            ConnectError::Driver(e) => Some(e),
            _ => None,
        }
    }
}

impl<E: fmt::Display> fmt::Display for BuildError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Config(e) => e.fmt(f),
            BuildError::NoRuntime(e) => e.fmt(f),
            BuildError::Connect(e) => write!(f, "opening the pool's first connections: {e}"),
            BuildError::Connector(e) => write!(f, "the connector's settings cannot work: {e}"),
        }
    }
}

impl<E: Error + 'static> Error for BuildError<E> {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            BuildError::Config(e) => Some(e),
            BuildError::NoRuntime(e) => Some(e),
            BuildError::Connect(e) => Some(&**e),
            BuildError::Connector(e) => Some(e),
        }
    }
}

impl<E> From<ConfigError> for BuildError<E> {
    fn from(e: ConfigError) -> Self {
        BuildError::Config(e)
    }
}

impl<E> From<NoRuntime> for BuildError<E> {
    fn from(e: NoRuntime) -> Self {
        BuildError::NoRuntime(e)
    }
}
