//! The server-certificate verifier for each libpq level, and plain words for its errors.

use std::sync::Arc;

use ::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use ::rustls::crypto::WebPkiSupportedAlgorithms;
use ::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use ::rustls::server::ParsedCertificate;
use ::rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};

use super::Verification;

/// Plain words for a failed handshake's certificate error, naming the setting involved,
/// or `None` when `error` is not about the server's certificate.
pub fn explain_handshake_error(error: &::rustls::Error) -> Option<&'static str> {
    let ::rustls::Error::InvalidCertificate(cert) = error else {
        return None;
    };
    Some(match cert {
        CertificateError::UnknownIssuer => {
            "the server certificate is not signed by a trusted root (wrong CA in sslrootcert?)"
        }
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the server certificate's names do not match the host name (sslmode=verify-full)"
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            "the server certificate has expired"
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            "the server certificate is not valid yet"
        }
        CertificateError::BadSignature => "the server certificate's signature is invalid",
        _ => "the server certificate was rejected",
    })
}

/// Verifies what libpq verifies at `level`; the handshake signature always.
#[derive(Debug)]
pub(super) struct LibpqVerifier {
    pub(super) level: Verification,
    pub(super) roots: Arc<RootCertStore>,
    pub(super) algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for LibpqVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, ::rustls::Error> {
        if self.level == Verification::None {
            return Ok(ServerCertVerified::assertion());
        }
        let cert = ParsedCertificate::try_from(end_entity)?;
        ::rustls::client::verify_server_cert_signed_by_trust_anchor(
            &cert,
            &self.roots,
            intermediates,
            now,
            self.algorithms.all,
        )?;
        if self.level == Verification::Full {
            ::rustls::client::verify_server_name(&cert, server_name)?;
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, ::rustls::Error> {
        ::rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, ::rustls::Error> {
        ::rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}
