//! The TLS cluster: certificates verify, `pg_hba.conf` enforces TLS for the TLS roles,
//! and the unix socket asks for a password.

use pg_pool_test_support::TestCluster;

fn psql_tls(
    cluster: &TestCluster,
    user: &str,
    password: &str,
    mode: &str,
) -> std::process::Command {
    let tls = cluster.tls_files().expect("a TLS cluster");
    let mut c = cluster.psql();
    c.args(["-h", tls.server_name(), "-U", user])
        .env("PGPASSWORD", password)
        .env("PGSSLMODE", mode)
        .env("PGSSLROOTCERT", tls.ca_cert());
    c
}

fn output(mut c: std::process::Command) -> (bool, String) {
    let out = c.output().expect("psql runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text.trim().to_owned())
}

#[test]
fn tls_cluster_enforces_tls_and_certificates() {
    let cluster = TestCluster::start_tls().expect("TLS cluster starts");
    let tls = cluster.tls_files().expect("TLS files");
    let ssl_query = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()";

    // verify-full against `localhost` (the certificate's only name) works, with TLS.
    let mut c = psql_tls(&cluster, tls.tls_user(), tls.tls_password(), "verify-full");
    c.args(["-c", ssl_query]);
    assert_eq!(output(c), (true, "t".to_owned()));

    // The TLS-only role is refused in plain text.
    let mut c = psql_tls(&cluster, tls.tls_user(), tls.tls_password(), "disable");
    c.args(["-c", "SELECT 1"]);
    let (ok, text) = output(c);
    assert!(!ok && text.contains("no encryption"), "{text}");

    // The certificate role logs in with its certificate and no password.
    let mut c = psql_tls(&cluster, tls.cert_user(), "", "verify-full");
    c.env("PGSSLCERT", tls.client_cert())
        .env("PGSSLKEY", tls.client_key())
        .args(["-c", "SELECT current_user"]);
    assert_eq!(output(c), (true, tls.cert_user().to_owned()));

    // The wrong CA does not verify the server.
    let mut c = psql_tls(&cluster, cluster.user(), cluster.password(), "verify-ca");
    c.env("PGSSLROOTCERT", tls.other_ca_cert())
        .args(["-c", "SELECT 1"]);
    let (ok, text) = output(c);
    assert!(!ok && text.contains("certificate verify failed"), "{text}");

    // The unix socket asks for the password.
    let dir = cluster.socket_dir().expect("a throwaway cluster");
    let mut c = cluster.psql();
    c.args(["-h"]).arg(dir).args(["-c", "SELECT 1"]);
    assert_eq!(output(c), (true, "1".to_owned()));
    let mut c = cluster.psql();
    c.args(["-h"])
        .arg(dir)
        .env("PGPASSWORD", "wrong")
        .args(["-c", "SELECT 1"]);
    let (ok, text) = output(c);
    assert!(
        !ok && text.contains("password authentication failed"),
        "{text}"
    );
}

#[test]
fn plain_cluster_has_no_tls() {
    let cluster = TestCluster::start_throwaway().expect("cluster starts");
    assert!(cluster.tls_files().is_none());
    let mut c = cluster.psql();
    c.env("PGSSLMODE", "require").args(["-c", "SELECT 1"]);
    let (ok, text) = output(c);
    assert!(!ok && text.contains("does not support SSL"), "{text}");
}
