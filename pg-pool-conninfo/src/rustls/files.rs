//! Reading `sslrootcert`, `sslcert` and `sslkey`: PEM files, or the platform's roots.

use std::io;
use std::path::Path;

use ::rustls::RootCertStore;
use ::rustls::pki_types::pem::PemObject as _;
use ::rustls::pki_types::{CertificateDer, PrivateKeyDer};

use super::{TlsConfigError, verification};
use crate::tls::{RootCerts, TlsSettings};

/// The trusted roots of `root`, each DER-encoded: a PEM file's certificates, or the
/// platform's (`rustls-native-certs`).
///
/// # Errors
///
/// [`TlsConfigError::File`] for an unreadable file or one without a certificate;
/// [`TlsConfigError::Setting`] when the platform has no usable root certificate.
pub fn load_root_certs(root: &RootCerts) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    match root {
        RootCerts::File(path) => read_certs("sslrootcert", path),
        RootCerts::System => {
            let found = rustls_native_certs::load_native_certs();
            if found.certs.is_empty() {
                let why = found
                    .errors
                    .first()
                    .map_or_else(|| "none found".to_owned(), ToString::to_string);
                return Err(TlsConfigError::Setting {
                    setting: "sslrootcert",
                    reason: format!("sslrootcert=system: no system root certificates ({why})"),
                });
            }
            Ok(found.certs)
        }
        #[allow(unreachable_patterns)]
        _ => Err(TlsConfigError::Setting {
            setting: "sslrootcert",
            reason: "this kind of root certificate source is not supported".to_owned(),
        }),
    }
}

pub(super) fn load_roots(root: &RootCerts) -> Result<RootCertStore, TlsConfigError> {
    let certs = load_root_certs(root)?;
    let mut store = RootCertStore::empty();
    let (added, _ignored) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(TlsConfigError::Setting {
            setting: "sslrootcert",
            reason: "none of the root certificates could be parsed".to_owned(),
        });
    }
    Ok(store)
}

/// The client certificate chain and key of `sslcert`/`sslkey`, or `None` if neither is set.
///
/// # Errors
///
/// [`TlsConfigError::File`] for an unreadable file, a file without a certificate, or a
/// key file without a PKCS#8, PKCS#1 or SEC1 private key (the key is never quoted);
/// [`TlsConfigError::Setting`] when only one of the two is set.
pub fn load_client_identity(
    settings: &TlsSettings,
) -> Result<Option<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)>, TlsConfigError> {
    let (cert, key) = match (&settings.client_cert, &settings.client_key) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => return verification(settings).map(|_| None),
    };
    let chain = read_certs("sslcert", cert)?;
    std::fs::metadata(key).map_err(|e| file_error("sslkey", key, "cannot be read", Some(e)))?;
    let key_der = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        let io = match e {
            ::rustls::pki_types::pem::Error::Io(io) => Some(io),
            _ => None,
        };
        file_error(
            "sslkey",
            key,
            "holds no PEM private key (PKCS#8, PKCS#1 or SEC1)",
            io,
        )
    })?;
    Ok(Some((chain, key_der)))
}

fn read_certs(
    setting: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, TlsConfigError> {
    let iter = CertificateDer::pem_file_iter(path).map_err(|e| match e {
        ::rustls::pki_types::pem::Error::Io(io) => {
            file_error(setting, path, "cannot be read", Some(io))
        }
        other => file_error(setting, path, &format!("is not PEM: {other}"), None),
    })?;
    let certs = iter
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| file_error(setting, path, &format!("is not valid PEM: {e}"), None))?;
    if certs.is_empty() {
        return Err(file_error(
            setting,
            path,
            "holds no PEM certificate (-----BEGIN CERTIFICATE-----)",
            None,
        ));
    }
    Ok(certs)
}

fn file_error(
    setting: &'static str,
    path: &Path,
    reason: &str,
    source: Option<io::Error>,
) -> TlsConfigError {
    let reason = match &source {
        Some(io) => format!("{reason} ({io})"),
        None => reason.to_owned(),
    };
    TlsConfigError::File {
        setting,
        path: path.to_owned(),
        reason,
        source,
    }
}
