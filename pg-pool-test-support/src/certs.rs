//! Certificates for TLS tests, made at test time with the `openssl` command.
//!
//! A test CA signs a server certificate for the DNS name `localhost` only (deliberately
//! not for `127.0.0.1`, so one server serves both "name matches" and "name does not
//! match" tests) and a client certificate whose CN is the kit's certificate-authenticated
//! role. A second, unrelated CA stands for "the wrong CA".

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Error;
use crate::util::{self, RunAs};

/// Role that authenticates with its client certificate (`cert` in `pg_hba.conf`).
pub(crate) const CERT_USER: &str = "pgpool_cert";
/// Password role that may only connect over TLS (`hostssl`, and `reject` for plain).
pub(crate) const TLS_USER: &str = "pgpool_tls";
/// Password of [`TLS_USER`].
pub(crate) const TLS_PASSWORD: &str = "pgpool-tls-pw";
/// The only name in the server certificate.
pub(crate) const SERVER_NAME: &str = "localhost";

/// The PEM files of a TLS test cluster, all in the cluster's directory (removed with it).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    ca_cert: PathBuf,
    other_ca_cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
    client_cert: PathBuf,
    client_key: PathBuf,
    rogue_client_cert: PathBuf,
    rogue_client_key: PathBuf,
}

impl TlsFiles {
    /// The CA that signed the server and client certificates (use as `sslrootcert`).
    pub fn ca_cert(&self) -> &Path {
        &self.ca_cert
    }

    /// A CA that signed nothing the server uses: verifying against it must fail.
    pub fn other_ca_cert(&self) -> &Path {
        &self.other_ca_cert
    }

    /// The server's certificate (DNS name `localhost` only; no IP address).
    pub fn server_cert(&self) -> &Path {
        &self.server_cert
    }

    /// The server's private key (owned by the server's OS user, mode 0600).
    pub(crate) fn server_key(&self) -> &Path {
        &self.server_key
    }

    /// The client certificate (CN = [`cert_user`](Self::cert_user)), for `sslcert`.
    pub fn client_cert(&self) -> &Path {
        &self.client_cert
    }

    /// The client certificate's private key (PKCS#8 PEM), for `sslkey`.
    pub fn client_key(&self) -> &Path {
        &self.client_key
    }

    /// A client certificate for [`cert_user`](Self::cert_user) issued by the *unrelated*
    /// CA: the server must refuse it during the TLS handshake.
    pub fn rogue_client_cert(&self) -> &Path {
        &self.rogue_client_cert
    }

    /// The key of [`rogue_client_cert`](Self::rogue_client_cert).
    pub fn rogue_client_key(&self) -> &Path {
        &self.rogue_client_key
    }

    /// The role that logs in with the client certificate (`cert` authentication).
    pub fn cert_user(&self) -> &str {
        CERT_USER
    }

    /// A password role the server accepts over TLS only.
    pub fn tls_user(&self) -> &str {
        TLS_USER
    }

    /// The password of [`tls_user`](Self::tls_user).
    pub fn tls_password(&self) -> &str {
        TLS_PASSWORD
    }

    /// The host name the server certificate is issued for (`localhost`).
    pub fn server_name(&self) -> &str {
        SERVER_NAME
    }

    /// Makes every file in `dir` (which must exist); the server's key is handed to
    /// `run_as` with mode 0600, as PostgreSQL demands.
    pub(crate) fn generate(dir: &Path, run_as: Option<&RunAs>) -> Result<TlsFiles, Error> {
        let openssl = util::find_tool("openssl").ok_or_else(|| Error::NotInstalled {
            program: "openssl".to_owned(),
            searched: "PATH, /usr/sbin, /usr/bin".to_owned(),
        })?;
        let path = |name: &str| dir.join(name);
        let files = TlsFiles {
            ca_cert: path("ca.crt"),
            other_ca_cert: path("other-ca.crt"),
            server_cert: path("server.crt"),
            server_key: path("server.key"),
            client_cert: path("client.crt"),
            client_key: path("client.key"),
            rogue_client_cert: path("rogue-client.crt"),
            rogue_client_key: path("rogue-client.key"),
        };
        let run = |args: &[&str]| -> Result<(), Error> {
            let mut cmd = Command::new(&openssl);
            cmd.args(args).current_dir(dir);
            util::run(&mut cmd).map(drop)
        };
        let ca = |key: &str, cert: &str, cn: &str| {
            run(&[
                "req",
                "-x509",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                key,
                "-out",
                cert,
                "-days",
                "3",
                "-subj",
                &format!("/CN={cn}"),
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ])
        };
        ca("ca.key", "ca.crt", "pg-pool test CA")?;
        ca("other-ca.key", "other-ca.crt", "pg-pool unrelated CA")?;
        let leaf = |name: &str, issuer: &str, cn: &str, ext: &str| -> Result<(), Error> {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let ext_file = format!("{name}.ext");
            fs::write(dir.join(&ext_file), ext)
                .map_err(|e| Error::io(format!("writing {ext_file}"), e))?;
            run(&[
                "req",
                "-new",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:prime256v1",
                "-nodes",
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={cn}"),
            ])?;
            run(&[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                &format!("{issuer}.crt"),
                "-CAkey",
                &format!("{issuer}.key"),
                "-CAcreateserial",
                "-days",
                "3",
                "-sha256",
                "-extfile",
                &ext_file,
                "-out",
                &format!("{name}.crt"),
            ])
        };
        leaf(
            "server",
            "ca",
            SERVER_NAME,
            &format!(
                "basicConstraints=critical,CA:FALSE\n\
                 keyUsage=critical,digitalSignature,keyEncipherment\n\
                 extendedKeyUsage=serverAuth\n\
                 subjectAltName=DNS:{SERVER_NAME}\n"
            ),
        )?;
        let client_ext = "basicConstraints=critical,CA:FALSE\n\
                          keyUsage=critical,digitalSignature\n\
                          extendedKeyUsage=clientAuth\n";
        leaf("client", "ca", CERT_USER, client_ext)?;
        leaf("rogue-client", "other-ca", CERT_USER, client_ext)?;
        for key in [
            &files.server_key,
            &files.client_key,
            &files.rogue_client_key,
        ] {
            set_mode(key, 0o600)?;
        }
        util::chown(&files.server_key, run_as)?;
        for public in [&files.ca_cert, &files.server_cert] {
            util::chown(public, run_as)?;
        }
        Ok(files)
    }
}

fn set_mode(path: &Path, mode: u32) -> Result<(), Error> {
    use std::os::unix::fs::PermissionsExt as _;
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .map_err(|e| Error::io(format!("chmod {}", path.display()), e))
}
