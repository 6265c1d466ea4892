//! [`HostFailures`]: why each host of a multi-host config failed.

use std::fmt;

use crate::error::PgError;
use crate::raw_connect::DialTarget;

/// One host that could not be used, and why.
#[derive(Debug)]
pub struct HostFailure {
    target: DialTarget,
    error: PgError,
}

impl HostFailure {
    pub(crate) fn new(target: DialTarget, error: PgError) -> Self {
        Self { target, error }
    }

    /// The host (or `hostaddr`) and port, or the unix socket, that was dialed.
    pub fn target(&self) -> &DialTarget {
        &self.target
    }

    /// Why it failed: [`PgError::Connect`] (dialing or `connect_timeout`),
    /// [`PgError::Driver`] (TLS or startup, for example `57P03` while a server starts up),
    /// [`PgError::SessionAttrs`] (a server without the `target_session_attrs` asked for),
    /// ...
    pub fn error(&self) -> &PgError {
        &self.error
    }

    /// The error, dropping the host.
    pub fn into_error(self) -> PgError {
        self.error
    }
}

/// `HOST:PORT: REASON`, the reason without the host repeated.
impl fmt::Display for HostFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.target)?;
        match &self.error {
            PgError::Connect { source, .. } => {
                // "Connection refused (os error 111)": lowercase, as every error here.
                let text = source.to_string();
                let mut chars = text.chars();
                if let Some(first) = chars.next() {
                    write!(f, "{}{}", first.to_lowercase(), chars.as_str())?;
                }
                Ok(())
            }
            other => write!(f, "{other}"),
        }
    }
}

/// Why every host tried failed, in the order they were tried (the error of
/// [`PgError::AllHostsFailed`]).
///
/// `Display` names each host and why:
/// `could not connect to any of 2 hosts: 127.0.0.1:5433: connection refused (os error
/// 111); 127.0.0.1:5434: server is not a standby (target_session_attrs=standby)`.
/// `source()` is the first host's error; [`HostFailures::iter`] gives every one.
#[derive(Debug)]
pub struct HostFailures {
    failures: Vec<HostFailure>,
    hosts: usize,
}

impl HostFailures {
    /// `failures` of at least two hosts, out of `hosts` configured.
    pub(crate) fn new(failures: Vec<HostFailure>, hosts: usize) -> Self {
        debug_assert!(failures.len() >= 2 && failures.len() <= hosts);
        Self { failures, hosts }
    }

    /// Each host tried and why it failed, in order.
    pub fn iter(&self) -> std::slice::Iter<'_, HostFailure> {
        self.failures.iter()
    }

    /// The failures, in order.
    pub fn as_slice(&self) -> &[HostFailure] {
        &self.failures
    }

    /// How many hosts were tried (each failed). Less than [`hosts`](Self::hosts) when a
    /// server refused the session during startup: libpq stops there, and so does this
    /// crate (see [`connect_raw_with`](crate::connect_raw_with)).
    pub fn len(&self) -> usize {
        self.failures.len()
    }

    /// Always `false`: there are at least two failures.
    pub fn is_empty(&self) -> bool {
        self.failures.is_empty()
    }

    /// How many hosts the config lists.
    pub fn hosts(&self) -> usize {
        self.hosts
    }
}

impl<'a> IntoIterator for &'a HostFailures {
    type Item = &'a HostFailure;
    type IntoIter = std::slice::Iter<'a, HostFailure>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

impl fmt::Display for HostFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.failures.len() == self.hosts {
            write!(f, "could not connect to any of {} hosts: ", self.hosts)?;
        } else {
            write!(
                f,
                "could not connect to {} of {} hosts, the rest not tried after a server \
                 refused the session: ",
                self.failures.len(),
                self.hosts
            )?;
        }
        for (i, failure) in self.failures.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{failure}")?;
        }
        Ok(())
    }
}

impl std::error::Error for HostFailures {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.failures
            .first()
            .map(|f| &f.error as &(dyn std::error::Error + 'static))
    }
}
