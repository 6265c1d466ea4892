//! TLS settings with libpq's meaning.

use std::path::PathBuf;

/// libpq's `sslmode`: whether TLS is used and what is verified.
///
/// | mode | TLS | certificate chain verified | host name verified |
/// |---|---|---|---|
/// | `disable` | never | – | – |
/// | `allow` | only if the server insists (plain first) | no | no |
/// | `prefer` | if the server offers it (TLS first) | no | no |
/// | `require` | always | only if a root certificate is configured (as libpq) | no |
/// | `verify-ca` | always | yes | no |
/// | `verify-full` | always | yes | yes |
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum SslMode {
    /// `disable`: plain text only.
    Disable,
    /// `allow`: plain text first; TLS only if the server refuses plain text.
    Allow,
    /// `prefer` (libpq's default): TLS if the server offers it, plain text if it declines.
    #[default]
    Prefer,
    /// `require`: TLS or fail.
    Require,
    /// `verify-ca`: TLS with a certificate signed by a trusted root.
    VerifyCa,
    /// `verify-full`: as `verify-ca`, and the certificate names the host connected to.
    VerifyFull,
}

/// Where trusted root certificates come from (`sslrootcert`).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RootCerts {
    /// A PEM file of one or more certificates.
    File(PathBuf),
    /// `sslrootcert=system`: the platform's trusted roots.
    System,
}

/// libpq's `channel_binding`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ChannelBinding {
    /// Never use channel binding.
    Disable,
    /// Use it when the server and the TLS connection support it (libpq's default).
    #[default]
    Prefer,
    /// Fail unless the authentication used channel binding.
    Require,
}

/// Everything a connection string says about TLS.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct TlsSettings {
    /// `sslmode`. Default: [`SslMode::Prefer`], as libpq.
    pub mode: SslMode,
    /// `sslrootcert`. Default: `None` (no root configured).
    pub root_certs: Option<RootCerts>,
    /// `sslcert`: the client certificate chain, PEM. Default: `None`.
    pub client_cert: Option<PathBuf>,
    /// `sslkey`: the client certificate's private key, PEM. Default: `None`.
    pub client_key: Option<PathBuf>,
    /// `channel_binding`. Default: [`ChannelBinding::Prefer`].
    pub channel_binding: ChannelBinding,
}
