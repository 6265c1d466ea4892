//! rustls client configurations with libpq's verification levels (feature `rustls`).
//!
//! [`client_config`] turns [`TlsSettings`] into a `rustls::ClientConfig` that checks what
//! libpq checks for the `sslmode`, and nothing more or less:
//!
//! | `sslmode` | chain | host name |
//! |---|---|---|
//! | `allow`, `prefer`, `require` without `sslrootcert` | no | no |
//! | `require` with `sslrootcert`, `verify-ca` | yes | no |
//! | `verify-full` | yes | yes |
//!
//! Even without chain verification the server must prove it holds the certificate's key
//! (the handshake signature is always checked), so `tls-server-end-point` channel binding
//! stays meaningful. The crypto provider is *ring*, passed explicitly (no process-wide
//! default is needed). `sslrootcert=system` loads the platform's roots with
//! `rustls-native-certs` (on Linux the OpenSSL locations libpq uses, honouring
//! `SSL_CERT_FILE` and `SSL_CERT_DIR`); as in libpq, it is only accepted with
//! `verify-full`. Certificates and keys are read from PEM files.

use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use ::rustls::crypto::CryptoProvider;
use ::rustls::{ClientConfig, RootCertStore};

use crate::tls::{RootCerts, SslMode, TlsSettings};

mod files;
mod verifier;

pub use files::{load_client_identity, load_root_certs};
pub use verifier::explain_handshake_error;

use files::load_roots;
use verifier::LibpqVerifier;

/// Why TLS settings could not be turned into a client configuration. Never contains key
/// material: a key file's problems are named, not quoted.
#[derive(Debug)]
#[non_exhaustive]
pub enum TlsConfigError {
    /// The settings contradict each other or ask for something libpq refuses.
    Setting {
        /// The libpq parameter at fault (`sslmode`, `sslrootcert`, `sslcert`, `sslkey`).
        setting: &'static str,
        /// Why.
        reason: String,
    },
    /// A certificate or key file could not be read or holds nothing usable.
    File {
        /// What the file was for (`sslrootcert`, `sslcert`, `sslkey`).
        setting: &'static str,
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// The I/O error, if reading failed.
        source: Option<io::Error>,
    },
    /// rustls rejected the configuration (for example a key that does not match the
    /// client certificate).
    Rustls {
        /// What was being configured.
        what: &'static str,
        /// rustls's error.
        source: ::rustls::Error,
    },
}

impl fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TlsConfigError::Setting { setting, reason } => {
                write!(f, "invalid TLS setting `{setting}`: {reason}")
            }
            TlsConfigError::File {
                setting,
                path,
                reason,
                ..
            } => write!(f, "{setting} file {}: {reason}", path.display()),
            TlsConfigError::Rustls { what, source } => write!(f, "{what}: {source}"),
        }
    }
}

impl std::error::Error for TlsConfigError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            TlsConfigError::File { source, .. } => source.as_ref().map(|e| e as _),
            TlsConfigError::Rustls { source, .. } => Some(source),
            TlsConfigError::Setting { .. } => None,
        }
    }
}

/// How much of the server's certificate is verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verification {
    /// Nothing but the handshake signature (libpq's `allow`, `prefer`, `require` without
    /// a root certificate).
    None,
    /// The chain up to a trusted root, not the host name (`verify-ca`; `require` with a
    /// root certificate).
    Chain,
    /// The chain and the host name (`verify-full`).
    Full,
}

/// What `settings` ask libpq to verify, after checking that they are consistent (see
/// [`client_config`] for the rules); `None` for `sslmode=disable`.
///
/// # Errors
///
/// [`TlsConfigError::Setting`] for settings libpq would refuse.
pub fn verification(settings: &TlsSettings) -> Result<Option<Verification>, TlsConfigError> {
    let bad = |setting, reason: &str| TlsConfigError::Setting {
        setting,
        reason: reason.to_owned(),
    };
    if settings.root_certs == Some(RootCerts::System) && settings.mode != SslMode::VerifyFull {
        return Err(bad(
            "sslrootcert",
            "sslrootcert=system needs sslmode=verify-full (as libpq: the system's roots \
             vouch for host names, so the name must be checked)",
        ));
    }
    match (&settings.client_cert, &settings.client_key) {
        (Some(_), None) => return Err(bad("sslkey", "sslcert is set but sslkey is not")),
        (None, Some(_)) => return Err(bad("sslcert", "sslkey is set but sslcert is not")),
        _ => {}
    }
    let level = match settings.mode {
        SslMode::Disable => return Ok(None),
        SslMode::Allow | SslMode::Prefer => Verification::None,
        SslMode::Require if settings.root_certs.is_some() => Verification::Chain,
        SslMode::Require => Verification::None,
        SslMode::VerifyCa | SslMode::VerifyFull if settings.root_certs.is_none() => {
            return Err(bad(
                "sslrootcert",
                "sslmode=verify-ca and verify-full need sslrootcert (a PEM file of trusted \
                 roots, or `system`)",
            ));
        }
        SslMode::VerifyCa => Verification::Chain,
        SslMode::VerifyFull => Verification::Full,
    };
    Ok(Some(level))
}

/// The rustls client configuration for `settings`, or `None` for `sslmode=disable`.
///
/// The host name is given per connection (the driver passes the host it dials as the
/// `ServerName`; it is checked only under `verify-full`).
///
/// # Errors
///
/// [`TlsConfigError`] when the settings are inconsistent (as libpq: `sslrootcert=system`
/// with a mode other than `verify-full`; `verify-ca`/`verify-full` without
/// `sslrootcert`; `sslcert` without `sslkey` or the reverse), when a file cannot be
/// read or holds no certificate or key, or when rustls refuses the client key.
pub fn client_config(settings: &TlsSettings) -> Result<Option<Arc<ClientConfig>>, TlsConfigError> {
    let Some(level) = verification(settings)? else {
        return Ok(None);
    };
    let provider = Arc::new(::rustls::crypto::ring::default_provider());
    let roots = match &settings.root_certs {
        Some(root) => load_roots(root)?,
        None => RootCertStore::empty(),
    };
    let verifier = Arc::new(LibpqVerifier {
        level,
        roots: Arc::new(roots),
        algorithms: provider.signature_verification_algorithms,
    });
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|source| TlsConfigError::Rustls {
            what: "TLS protocol versions",
            source,
        })?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match load_client_identity(settings)? {
        Some((chain, key)) => builder
            .with_client_auth_cert(chain, key)
            .map_err(|source| TlsConfigError::Rustls {
                what: "client certificate and key (sslcert, sslkey)",
                source,
            })?,
        None => builder.with_no_client_auth(),
    };
    Ok(Some(Arc::new(config)))
}

/// The crypto provider [`client_config`] uses (*ring*).
pub fn crypto_provider() -> CryptoProvider {
    ::rustls::crypto::ring::default_provider()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(mode: SslMode, root: Option<RootCerts>) -> TlsSettings {
        TlsSettings {
            mode,
            root_certs: root,
            ..TlsSettings::default()
        }
    }

    #[test]
    fn verification_follows_libpq() {
        let file = || Some(RootCerts::File("/nonexistent/ca.crt".into()));
        let level = |mode, root| verification(&settings(mode, root)).unwrap();
        assert_eq!(level(SslMode::Disable, None), None);
        assert_eq!(level(SslMode::Allow, None), Some(Verification::None));
        assert_eq!(level(SslMode::Prefer, file()), Some(Verification::None));
        assert_eq!(level(SslMode::Require, None), Some(Verification::None));
        assert_eq!(level(SslMode::Require, file()), Some(Verification::Chain));
        assert_eq!(level(SslMode::VerifyCa, file()), Some(Verification::Chain));
        assert_eq!(level(SslMode::VerifyFull, file()), Some(Verification::Full));
        let err = |s: &TlsSettings| verification(s).unwrap_err().to_string();
        assert!(err(&settings(SslMode::VerifyCa, None)).contains("need sslrootcert"));
        assert!(err(&settings(SslMode::Require, Some(RootCerts::System))).contains("verify-full"));
        let mut s = settings(SslMode::Require, None);
        s.client_cert = Some("/c.crt".into());
        assert!(err(&s).contains("sslkey is not"));
    }

    #[test]
    fn system_roots_come_from_the_platform() {
        let s = settings(SslMode::VerifyFull, Some(RootCerts::System));
        match load_root_certs(&RootCerts::System) {
            // A machine with a CA bundle (as this project's machines and CI have).
            Ok(roots) => {
                assert!(!roots.is_empty());
                assert!(client_config(&s).unwrap().is_some());
            }
            Err(e) => assert!(e.to_string().contains("no system root certificates"), "{e}"),
        }
    }

    #[test]
    fn file_errors_name_the_file() {
        let s = settings(
            SslMode::VerifyFull,
            Some(RootCerts::File("/nonexistent/ca.crt".into())),
        );
        let e = client_config(&s).unwrap_err();
        assert!(
            e.to_string()
                .contains("sslrootcert file /nonexistent/ca.crt"),
            "{e}"
        );
        assert!(std::error::Error::source(&e).is_some());
        let dir = std::env::temp_dir().join(format!("pg-pool-conninfo-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let key = dir.join("key.pem");
        std::fs::write(&key, "not a key: secret-material").unwrap();
        let mut s = settings(SslMode::Require, None);
        s.client_cert = Some(key.clone());
        s.client_key = Some(key.clone());
        let e = client_config(&s).unwrap_err().to_string();
        assert!(
            e.contains("sslcert") && !e.contains("secret-material"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(
            client_config(&settings(SslMode::Disable, None))
                .unwrap()
                .is_none()
        );
        assert!(
            client_config(&settings(SslMode::Prefer, None))
                .unwrap()
                .is_some()
        );
    }
}
