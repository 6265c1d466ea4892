//! The connection's contract with the pool, and the two ways of opening one.

use std::error::Error;
use std::fmt;
use std::future::{self, Future};
use std::pin::Pin;
use std::sync::Arc;

/// A connection the pool can manage.
///
/// The pool needs three things from a connection beyond opening it: a cheap synchronous
/// broken check, an optional asynchronous reset when it comes back, and an optional
/// asynchronous ping for the health probe and test-on-checkout. Opening is separate:
/// PostgreSQL drivers implement [`Connect`] (the address, user, password and database of
/// [`ConnPoolConfig`](crate::ConnPoolConfig)); anything else is opened by a [`Connector`], a
/// closure or a type of your own, so no type has to pretend to take those four strings.
///
/// # Examples
///
/// ```
/// use pg_pool_core::Poolable;
///
/// /// A connection that never breaks and needs no reset.
/// #[derive(Debug)]
/// struct Counter(u64);
///
/// impl Poolable for Counter {
///     type Error = std::io::Error;
/// }
/// ```
pub trait Poolable: Sized + Send + 'static {
    /// The driver's error type.
    type Error: Error + Send + Sync + 'static;

    /// Returns `true` when the connection must not be used again: the driver saw it break,
    /// or bytes from an abandoned exchange are still in flight.
    ///
    /// Called on every checkout and return, so it must be cheap and must not block.
    /// Default: `false`.
    fn has_pending_data(&self) -> bool {
        false
    }

    /// Returns `true` when [`Poolable::reset`] must run before the connection is reused, for
    /// example because the session's state was changed.
    ///
    /// When this is `false` and no checkin hook is set, a connection goes back to the pool
    /// synchronously in the guard's `Drop`, with no task spawned. Default: `false`.
    fn needs_reset(&mut self) -> bool {
        false
    }

    /// Brings the session back to a clean state before the connection is reused.
    ///
    /// Runs only when [`Poolable::needs_reset`] says so, bounded by
    /// [`checkin_timeout`](crate::ConnPoolConfig::checkin_timeout). An error destroys the
    /// connection. Default: does nothing.
    fn reset(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        future::ready(Ok(()))
    }

    /// Checks that the server still answers, used by the health probe and test-on-checkout.
    ///
    /// Bounded by [`probe_timeout`](crate::ConnPoolConfig::probe_timeout); an error or a
    /// timeout destroys the connection. Default: succeeds without a round trip.
    fn ping(&mut self) -> impl Future<Output = Result<(), Self::Error>> + Send {
        future::ready(Ok(()))
    }

    /// Returns the cause (say `"25006 read_only_sql_transaction"`) when this connection has
    /// shown that the server it reaches is no longer
    /// the one the pool wants, so every other pooled connection to it is suspect too: a
    /// write refused because the server became a read-only standby (SQLSTATE `25006`), the
    /// server shutting down (`57P01`, `57P02`, `57P03`), or the connection lost (class
    /// `08`), as happens in a failover.
    ///
    /// Checked when the connection comes back. When `Some`, the pool starts a new
    /// generation: it destroys every idle connection at once and each checked-out one when
    /// it returns, ends any connect backoff, and opens new connections through the connector,
    /// which chooses the host again. Counted in [`Metrics::server_changes`](crate::metrics::Metrics::server_changes)
    /// and logged as a warning with the cause. Must be cheap. Default: `None`.
    fn server_changed(&self) -> Option<&'static str> {
        None
    }

    /// Returns `true` when a failed connect means every attempt with the same settings will
    /// fail the same way (wrong password, unknown user or database, a rejected
    /// certificate), rather than a passing condition (server restarting, network down).
    ///
    /// On such an error every caller queued at that moment gets it at once, instead of
    /// waiting out backoff and attempts of their own up to the checkout timeout; the pool
    /// still backs off before its next attempt, so nothing retries in a loop.
    /// Default: `false`.
    fn is_permanent_connect_error(error: &Self::Error) -> bool {
        let _ = error;
        false
    }

    /// Closes the connection properly when the pool destroys it.
    ///
    /// The pool polls the returned future once inline and runs it to completion in the
    /// background only if it is not ready at once, bounded by
    /// [`checkin_timeout`](crate::ConnPoolConfig::checkin_timeout). Default: drops the
    /// connection.
    fn close(self) -> impl Future<Output = ()> + Send + 'static {
        drop(self);
        future::ready(())
    }
}

/// Where to connect: the address, user, password and database of the pool's config.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectTarget {
    /// Server address, `host:port`.
    pub addr: String,
    /// User name.
    pub user: String,
    /// Password.
    pub password: String,
    /// Database name.
    pub database: String,
}

// Manual impl: the password must never reach a log.
impl fmt::Debug for ConnectTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectTarget")
            .field("addr", &self.addr)
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .field("database", &self.database)
            .finish()
    }
}

/// A connection opened from a [`ConnectTarget`]: the address, user, password and database
/// fields of [`ConnPoolConfig`](crate::ConnPoolConfig).
///
/// Implemented by the PostgreSQL driver adapters; `ConnPool::new(config, hooks)` uses it.
pub trait Connect: Poolable {
    /// Opens a new connection to `target`.
    ///
    /// The pool bounds the whole attempt by
    /// [`connect_timeout`](crate::ConnPoolConfig::connect_timeout), so an implementation need
    /// not add its own.
    fn connect(target: &ConnectTarget) -> impl Future<Output = Result<Self, Self::Error>> + Send;
}

/// Opens connections for a pool: the alternative to [`Connect`] for connections that need
/// more than four strings (TLS, unix sockets, a driver config) or that are not database
/// connections at all.
///
/// Implemented for every `Fn() -> impl Future<Output = Result<T, T::Error>>`.
///
/// # Examples
///
/// ```
/// use pg_pool_core::{Connector, Poolable};
///
/// #[derive(Debug)]
/// struct Conn;
/// impl Poolable for Conn {
///     type Error = std::io::Error;
/// }
///
/// fn takes_connector(_: impl Connector<Conn>) {}
/// takes_connector(|| async { Ok::<_, std::io::Error>(Conn) });
/// ```
pub trait Connector<T: Poolable>: Send + Sync + 'static {
    /// Opens a new connection.
    fn connect(&self) -> impl Future<Output = Result<T, T::Error>> + Send;

    /// The pool configuration this connector suggests, used by
    /// [`ConnPool::builder`](crate::ConnPool::builder) when no config is given: the
    /// PostgreSQL drivers derive one from their connection string (`pool_max_size`, the
    /// connect timeout, ...). Default: `None` (`ConnPoolConfig::default()`).
    fn pool_config(&self) -> Option<crate::ConnPoolConfig> {
        None
    }

    /// Checks the connector's own settings before a pool is built on it, so that settings
    /// that can never work (a TLS file that does not exist, a NUL byte in a startup value)
    /// fail the build rather than every connect. Called once by
    /// [`ConnPool::builder`](crate::ConnPool::builder). Default: `Ok(())`.
    ///
    /// # Errors
    ///
    /// The driver's error naming the setting; the build fails with
    /// [`BuildError::Connector`](crate::BuildError::Connector).
    fn validate(&self) -> Result<(), T::Error> {
        Ok(())
    }
}

impl<T, F, Fut> Connector<T> for F
where
    T: Poolable,
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<T, T::Error>> + Send,
{
    fn connect(&self) -> impl Future<Output = Result<T, T::Error>> + Send {
        self()
    }
}

/// A boxed future, as returned by hooks and type-erased connectors.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Object-safe form of [`Connector`], so the pool stores any connector without a type
/// parameter. Connecting is not on the hot path, so the box per attempt is irrelevant.
pub(crate) trait DynConnector<T: Poolable>: Send + Sync {
    fn connect(&self) -> BoxFuture<'_, Result<T, T::Error>>;
}

impl<T: Poolable, C: Connector<T>> DynConnector<T> for C {
    fn connect(&self) -> BoxFuture<'_, Result<T, T::Error>> {
        Box::pin(Connector::connect(self))
    }
}

/// The connector behind `ConnPool::new`: [`Connect::connect`] with the config's target.
pub(crate) struct TargetConnector {
    pub(crate) target: Arc<ConnectTarget>,
}

impl<T: Connect> Connector<T> for TargetConnector {
    fn connect(&self) -> impl Future<Output = Result<T, T::Error>> + Send {
        T::connect(&self.target)
    }
}
