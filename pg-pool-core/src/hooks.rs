//! The six lifecycle hooks: create, acquire, checkout, checkin, release, destroy.

use std::error::Error;
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;

use futures_lite::FutureExt;

use crate::poolable::BoxFuture;

/// Why a hook rejected a connection, or what went wrong inside it.
#[derive(Debug)]
pub struct HookError {
    message: String,
    source: Option<Box<dyn Error + Send + Sync>>,
}

impl HookError {
    /// A rejection with a message.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source: None,
        }
    }

    /// A rejection caused by another error (for example the driver's).
    pub fn from_error(error: impl Error + Send + Sync + 'static) -> Self {
        Self {
            message: error.to_string(),
            source: Some(Box::new(error)),
        }
    }

    pub(crate) fn panicked(hook: &str, message: &str) -> Self {
        Self::new(format!("{hook} hook panicked: {message}"))
    }
}

impl fmt::Display for HookError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl Error for HookError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

/// The message of a panic payload.
pub(crate) fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string payload".into())
}

/// Calls user code that returns a future, then runs the future: a panic in either part, the
/// synchronous call or a poll, becomes `Err` with the panic's message.
pub(crate) async fn caught<F: std::future::Future>(
    call: impl FnOnce() -> F,
) -> Result<F::Output, String> {
    let future = catch_unwind(AssertUnwindSafe(call)).map_err(|p| panic_message(&*p))?;
    AssertUnwindSafe(future)
        .catch_unwind()
        .await
        .map_err(|p| panic_message(&*p))
}

/// What a hook returns: `Ok(())` keeps the connection, an error rejects it.
pub type HookResult = Result<(), HookError>;

/// Why the pool destroyed a connection; passed to the destroy hook and counted in metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DestroyReason {
    /// The driver reported it broken ([`Poolable::has_pending_data`](crate::Poolable::has_pending_data)).
    Broken,
    /// The holder marked it broken, or detached it.
    MarkedBroken,
    /// The holder panicked while holding it.
    Panicked,
    /// It reached its (jittered) `max_lifetime`.
    Lifetime,
    /// It sat idle longer than `idle_timeout` above `min_idle`.
    IdleTimeout,
    /// A ping failed or timed out (health probe or test-on-checkout).
    PingFailed,
    /// A hook rejected it, panicked or ran out of time.
    HookRejected,
    /// Its reset failed or ran out of time.
    ResetFailed,
    /// Evicted by `retain`, `evict_all`, or a resize below the current size.
    Evicted,
    /// The pool is draining or closed.
    Closed,
    /// The checkout that held it was cancelled (its future dropped) while validating it or
    /// running its checkout hook, so its session state is unknown.
    Cancelled,
}

impl DestroyReason {
    /// Every reason, in the order of [`DestroyReason::index`].
    pub const ALL: [DestroyReason; 11] = [
        DestroyReason::Broken,
        DestroyReason::MarkedBroken,
        DestroyReason::Panicked,
        DestroyReason::Lifetime,
        DestroyReason::IdleTimeout,
        DestroyReason::PingFailed,
        DestroyReason::HookRejected,
        DestroyReason::ResetFailed,
        DestroyReason::Evicted,
        DestroyReason::Closed,
        DestroyReason::Cancelled,
    ];

    /// Position of this reason in [`DestroyReason::ALL`].
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short snake_case name, used as a metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            DestroyReason::Broken => "broken",
            DestroyReason::MarkedBroken => "marked_broken",
            DestroyReason::Panicked => "panicked",
            DestroyReason::Lifetime => "lifetime",
            DestroyReason::IdleTimeout => "idle_timeout",
            DestroyReason::PingFailed => "ping_failed",
            DestroyReason::HookRejected => "hook_rejected",
            DestroyReason::ResetFailed => "reset_failed",
            DestroyReason::Evicted => "evicted",
            DestroyReason::Closed => "closed",
            DestroyReason::Cancelled => "cancelled",
        }
    }
}

impl fmt::Display for DestroyReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

type AsyncHook<T> = Arc<dyn for<'a> Fn(&'a mut T) -> BoxFuture<'a, HookResult> + Send + Sync>;
type SyncHook<T> = Arc<dyn Fn(&mut T) -> HookResult + Send + Sync>;
type DestroyHook<T> = Arc<dyn Fn(&T, DestroyReason) + Send + Sync>;

/// The six lifecycle hooks.
///
/// | hook | when | kind | may reject |
/// |---|---|---|---|
/// | create | once per new connection, after connect, before first use | async, `&mut T` | yes: the attempt fails |
/// | acquire | a checkout takes a connection (idle or handed over) | sync, `&mut T` | yes: destroyed, checkout moves on |
/// | checkout | after acquire (and the idle ping), just before the caller gets it | async, `&mut T` | yes: destroyed, checkout moves on |
/// | checkin | the caller returned it, after any reset | async, `&mut T` | yes: destroyed |
/// | release | after checkin, just before it is idle or handed to a waiter | sync, `&mut T` | yes: destroyed |
/// | destroy | the pool destroys it, before it is closed | sync, `&T` + reason | no |
///
/// Every hook runs outside the pool's locks. Async hooks are bounded: create by
/// `connect_timeout`, checkout by the caller's checkout deadline, checkin by
/// `checkin_timeout`. A hook that panics counts as a rejection. Setting a checkin hook moves
/// every return onto a spawned task; leave it unset to keep returns synchronous.
///
/// # Examples
///
/// ```
/// use pg_pool_core::{HookError, LifecycleHooks, Poolable};
///
/// #[derive(Debug, Default)]
/// struct Conn { app_name: String }
/// impl Poolable for Conn { type Error = std::io::Error; }
///
/// let hooks = LifecycleHooks::<Conn>::default()
///     .on_checkout(|conn| Box::pin(async move {
///         conn.app_name = "api".into();
///         Ok(())
///     }))
///     .on_acquire(|conn| {
///         if conn.app_name.len() > 64 { Err(HookError::new("name too long")) } else { Ok(()) }
///     });
/// # drop(hooks);
/// ```
pub struct LifecycleHooks<T> {
    pub(crate) create: Option<AsyncHook<T>>,
    pub(crate) acquire: Option<SyncHook<T>>,
    pub(crate) checkout: Option<AsyncHook<T>>,
    pub(crate) checkin: Option<AsyncHook<T>>,
    pub(crate) release: Option<SyncHook<T>>,
    pub(crate) destroy: Option<DestroyHook<T>>,
}

// Manual impls: a derive would require `T: Default`/`T: Clone`/`T: Debug`.
impl<T> Default for LifecycleHooks<T> {
    fn default() -> Self {
        Self {
            create: None,
            acquire: None,
            checkout: None,
            checkin: None,
            release: None,
            destroy: None,
        }
    }
}

impl<T> Clone for LifecycleHooks<T> {
    fn clone(&self) -> Self {
        Self {
            create: self.create.clone(),
            acquire: self.acquire.clone(),
            checkout: self.checkout.clone(),
            checkin: self.checkin.clone(),
            release: self.release.clone(),
            destroy: self.destroy.clone(),
        }
    }
}

impl<T> fmt::Debug for LifecycleHooks<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LifecycleHooks")
            .field("create", &self.create.is_some())
            .field("acquire", &self.acquire.is_some())
            .field("checkout", &self.checkout.is_some())
            .field("checkin", &self.checkin.is_some())
            .field("release", &self.release.is_some())
            .field("destroy", &self.destroy.is_some())
            .finish()
    }
}

impl<T> LifecycleHooks<T> {
    /// Sets the create hook: runs once on each new connection before its first use.
    pub fn on_create<F>(mut self, hook: F) -> Self
    where
        F: for<'a> Fn(&'a mut T) -> BoxFuture<'a, HookResult> + Send + Sync + 'static,
    {
        self.create = Some(Arc::new(hook));
        self
    }

    /// Sets the acquire hook: a cheap synchronous check whenever a checkout takes a connection.
    pub fn on_acquire<F>(mut self, hook: F) -> Self
    where
        F: Fn(&mut T) -> HookResult + Send + Sync + 'static,
    {
        self.acquire = Some(Arc::new(hook));
        self
    }

    /// Sets the checkout hook: runs just before the caller gets the connection, for example
    /// `SET application_name`.
    pub fn on_checkout<F>(mut self, hook: F) -> Self
    where
        F: for<'a> Fn(&'a mut T) -> BoxFuture<'a, HookResult> + Send + Sync + 'static,
    {
        self.checkout = Some(Arc::new(hook));
        self
    }

    /// Sets the checkin hook: runs when the caller returns the connection, for example
    /// `RESET ALL`. Returns then go through a spawned task.
    pub fn on_checkin<F>(mut self, hook: F) -> Self
    where
        F: for<'a> Fn(&'a mut T) -> BoxFuture<'a, HookResult> + Send + Sync + 'static,
    {
        self.checkin = Some(Arc::new(hook));
        self
    }

    /// Sets the release hook: a cheap synchronous check just before a returned connection
    /// becomes idle or is handed to a waiter.
    pub fn on_release<F>(mut self, hook: F) -> Self
    where
        F: Fn(&mut T) -> HookResult + Send + Sync + 'static,
    {
        self.release = Some(Arc::new(hook));
        self
    }

    /// Sets the destroy hook: runs when the pool destroys a connection, before it is closed.
    pub fn on_destroy<F>(mut self, hook: F) -> Self
    where
        F: Fn(&T, DestroyReason) + Send + Sync + 'static,
    {
        self.destroy = Some(Arc::new(hook));
        self
    }

    /// Runs a synchronous hook, turning a panic into a rejection.
    pub(crate) fn run_sync(hook: &SyncHook<T>, name: &str, conn: &mut T) -> HookResult {
        catch_unwind(AssertUnwindSafe(move || {
            let conn = conn;
            hook(conn)
        }))
        .unwrap_or_else(|payload| Err(HookError::panicked(name, &panic_message(&*payload))))
    }

    /// Runs an asynchronous hook, turning a panic into a rejection.
    pub(crate) async fn run_async(hook: &AsyncHook<T>, name: &str, conn: &mut T) -> HookResult {
        caught(move || hook(conn))
            .await
            .unwrap_or_else(|panic| Err(HookError::panicked(name, &panic)))
    }

    /// Runs the destroy hook, if any, swallowing a panic.
    pub(crate) fn run_destroy(&self, conn: &T, reason: DestroyReason) {
        if let Some(hook) = &self.destroy
            && catch_unwind(AssertUnwindSafe(|| hook(conn, reason))).is_err()
        {
            tracing::warn!("destroy hook panicked");
        }
    }
}
