//! [`PasswordProvider`]: a password fetched before each connect (IAM tokens, Vault).

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use crate::secret::Secret;
use futures_lite::FutureExt as _;

/// The error a [`PasswordProvider`] reports: whatever its callback returned, boxed.
pub type ProviderError = Box<dyn std::error::Error + Send + Sync>;
type PasswordFuture = Pin<Box<dyn Future<Output = Result<Secret, ProviderError>> + Send>>;

/// An async callback run before each connect attempt; its password is used for that
/// attempt only (it replaces the config's password and is not stored), so rotating
/// credentials (AWS RDS IAM tokens, Vault leases) reach every new session while
/// established sessions keep working.
///
/// The pool calls it once per attempt and never retries an attempt on its own: a
/// rejected password fails that attempt, and the pool's backoff spaces the next one.
/// An error (or a panic, in the call or while it runs) fails the attempt with the driver's
/// `PasswordProvider` error, whose `Display` does not repeat the provider's error (read it
/// with `source()`), so a secret in it does not reach logs by accident. Both PostgreSQL
/// drivers take the same provider.
///
/// # Examples
///
/// ```
/// use pg_pool_conninfo::PasswordProvider;
///
/// let provider = PasswordProvider::new(|| async {
///     // e.g. an RDS IAM token or a Vault lease, fetched here
///     Ok::<_, std::io::Error>("fresh-token")
/// });
/// # let _ = provider;
/// ```
#[derive(Clone)]
pub struct PasswordProvider(Arc<dyn Fn() -> PasswordFuture + Send + Sync>);

impl PasswordProvider {
    /// Wraps `fetch`, called before each connect attempt.
    pub fn new<F, Fut, P, E>(fetch: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<P, E>> + Send + 'static,
        P: Into<Secret>,
        E: Into<ProviderError>,
    {
        Self(Arc::new(move || {
            let future = fetch();
            Box::pin(async move { future.await.map(Into::into).map_err(Into::into) })
        }))
    }

    /// Runs the callback once, containing a panic in it.
    ///
    /// # Errors
    ///
    /// The callback's error when it fails; an error of its own when it panics or returns a
    /// password with a NUL byte (which the protocol cannot carry). The drivers wrap it in
    /// their `PasswordProvider` error.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future drops the callback's future.
    pub async fn fetch(&self) -> Result<Secret, ProviderError> {
        let failed = |source: ProviderError| source;
        let future = std::panic::catch_unwind(AssertUnwindSafe(|| (self.0)()))
            .map_err(|_| failed("the password provider panicked".into()))?;
        let secret = AssertUnwindSafe(future)
            .catch_unwind()
            .await
            .map_err(|_| failed("the password provider panicked".into()))?
            .map_err(failed)?;
        if secret.expose().contains('\0') {
            return Err(failed(
                "the password provider returned a password with a NUL byte".into(),
            ));
        }
        Ok(secret)
    }
}

impl fmt::Debug for PasswordProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordProvider(..)")
    }
}
