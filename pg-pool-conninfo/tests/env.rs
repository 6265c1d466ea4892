//! libpq's environment variables and passfile, with an injected variable lookup (the
//! process environment is never touched).

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use pg_pool_conninfo::{
    ConnInfo, ENV_VARS, Host, HostPort, Passfile, PassfileError, SslMode, TargetSessionAttrs,
};

fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> + use<> {
    let map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    move |name| map.get(name).cloned()
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    fs::write(path, text).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn every_variable_fills_its_key() {
    let vars = env(&[
        ("PGHOST", "h1,h2"),
        ("PGPORT", "6001,6002"),
        ("PGUSER", "envuser"),
        ("PGPASSWORD", "envpw"),
        ("PGDATABASE", "envdb"),
        ("PGAPPNAME", "envapp"),
        ("PGCONNECT_TIMEOUT", "9"),
        ("PGSSLMODE", "verify-full"),
        ("PGSSLROOTCERT", "/ca.pem"),
        ("PGSSLCERT", "/c.pem"),
        ("PGSSLKEY", "/k.pem"),
        ("PGCHANNELBINDING", "require"),
        ("PGTARGETSESSIONATTRS", "standby"),
        ("PGCLIENTENCODING", "UTF8"),
        ("PGOPTIONS", "-c geqo=off"),
    ]);
    let c = ConnInfo::parse_with_env("", &vars).unwrap();
    assert_eq!(c.hosts.len(), 2);
    assert_eq!(c.hosts[1].port, 6002);
    assert_eq!(c.user.as_deref(), Some("envuser"));
    assert_eq!(c.password.as_ref().unwrap().expose(), "envpw");
    assert_eq!(c.dbname.as_deref(), Some("envdb"));
    assert_eq!(c.application_name.as_deref(), Some("envapp"));
    assert_eq!(c.connect_timeout.unwrap().as_secs(), 9);
    assert_eq!(c.tls.mode, SslMode::VerifyFull);
    assert!(c.tls.root_certs.is_some() && c.tls.client_cert.is_some());
    assert!(c.tls.client_key.is_some());
    assert_eq!(c.target_session_attrs, TargetSessionAttrs::Standby);
    assert_eq!(c.params, vec![("client_encoding".into(), "UTF8".into())]);
    assert_eq!(c.options.as_deref(), Some("-c geqo=off"));
    // The string wins key by key: its port list pairs with PGHOST's hosts.
    let c = ConnInfo::parse_with_env("port=7000 user=me password=x", &vars).unwrap();
    assert_eq!(c.hosts[0].port, 7000);
    assert_eq!(c.hosts[1].port, 7000);
    assert_eq!(c.user.as_deref(), Some("me"));
    assert_eq!(c.dbname.as_deref(), Some("envdb"));
    // Every documented variable is read (none is silently skipped).
    for &(var, key) in ENV_VARS {
        let value = match key {
            "port" | "connect_timeout" => "5",
            "sslmode" => "require",
            "channel_binding" => "disable",
            "target_session_attrs" => "read-only",
            _ => "x",
        };
        let only = env(&[(var, value)]);
        let c = ConnInfo::parse_with_env("", &only).unwrap();
        assert_ne!(c, ConnInfo::default(), "{var} changed nothing");
    }
}

#[test]
fn database_url_and_errors_name_their_source() {
    let vars = env(&[
        (
            "DATABASE_URL",
            "postgres://app@db:5433/shop?sslmode=require",
        ),
        ("PGHOST", "other"),
        ("PGDATABASE", "other"),
        ("PGAPPNAME", "fromenv"),
    ]);
    let c = ConnInfo::from_env(&vars).unwrap();
    assert_eq!(
        c.hosts,
        vec![HostPort {
            host: Host::Tcp("db".into()),
            port: 5433
        }]
    );
    assert_eq!(c.dbname.as_deref(), Some("shop"));
    assert_eq!(c.application_name.as_deref(), Some("fromenv"));
    let e = ConnInfo::from_env(env(&[("DATABASE_URL", "postgres://h/d?sslmode=on")])).unwrap_err();
    assert!(e.to_string().contains("(in DATABASE_URL)"), "{e}");
    let e = ConnInfo::from_env(env(&[("PGPORT", "http")])).unwrap_err();
    assert!(e.to_string().contains("environment variable PGPORT"), "{e}");
    let e = ConnInfo::from_env(env(&[("PGPASSWORD", "se\0cret")])).unwrap_err();
    assert!(e.to_string().contains("PGPASSWORD") && !e.to_string().contains("cret"));
    // No DATABASE_URL, no variables: nothing set.
    assert_eq!(ConnInfo::from_env(env(&[])).unwrap(), ConnInfo::default());
}

#[test]
fn passfile_format() {
    let file = Passfile::parse(
        "# comment\n\
         h\\:x:5432:db:u:first\n\
         h:*:db:u:pa\\:ss\\\\word:ignored\n\
         *:*:*:u:\n\
         \\*:1:*:*:literal-star\n\
         short:line\n\
         *:*:*:*:any\r\n",
    );
    assert_eq!(file.find("h:x", 5432, "db", "u").unwrap().expose(), "first");
    assert_eq!(
        file.find("h", 9, "db", "u").unwrap().expose(),
        "pa:ss\\word"
    );
    assert_eq!(
        file.find("*", 1, "d", "v").unwrap().expose(),
        "literal-star"
    );
    assert_eq!(file.find("zz", 1, "d", "v").unwrap().expose(), "any");
    assert!(!format!("{file:?}").contains("first"));
    assert!(
        Passfile::parse("a:b:c:d:e")
            .find("a", 1, "c", "d")
            .is_none()
    );
}

#[cfg(unix)]
#[test]
fn passfile_fills_a_missing_password_only() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_str().unwrap().to_owned();
    write_private(
        &dir.path().join(".pgpass"),
        "db:5432:shop:app:from-file\nlocalhost:5432:*:postgres:local\n",
        0o600,
    );
    let vars = env(&[("HOME", &home)]);
    let c = ConnInfo::parse_with_env("postgres://app@db/shop", &vars).unwrap();
    assert_eq!(c.password.unwrap().expose(), "from-file");
    // A given password wins; other hosts or databases do not match.
    let c = ConnInfo::parse_with_env("postgres://app:given@db/shop", &vars).unwrap();
    assert_eq!(c.password.unwrap().expose(), "given");
    let c = ConnInfo::parse_with_env("postgres://app@db/other", &vars).unwrap();
    assert!(c.password.is_none());
    // No host and no user: localhost and the drivers' default user.
    let c = ConnInfo::parse_with_env("", &vars).unwrap();
    assert_eq!(c.password.unwrap().expose(), "local");
    // PGPASSFILE (or passfile=) replaces ~/.pgpass.
    let other = dir.path().join("other");
    write_private(&other, "*:*:*:*:other\n", 0o600);
    let vars = env(&[("HOME", &home), ("PGPASSFILE", other.to_str().unwrap())]);
    let c = ConnInfo::parse_with_env("host=db", &vars).unwrap();
    assert_eq!(c.password.unwrap().expose(), "other");
    // Hosts that would get different passwords: an error, not a guess.
    let e = ConnInfo::parse_with_env("postgres://app@db,elsewhere/shop", env(&[("HOME", &home)]))
        .unwrap_err();
    assert!(e.to_string().contains("passfile"), "{e}");
}

#[cfg(unix)]
#[test]
fn passfile_readable_by_others_is_ignored() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(".pgpass");
    write_private(&path, "*:*:*:*:leaky\n", 0o644);
    let e = Passfile::load(&path).unwrap_err();
    assert!(
        matches!(e, PassfileError::Permissive { mode: 0o644 }),
        "{e:?}"
    );
    assert!(e.to_string().contains("0644"), "{e}");
    let home = dir.path().to_str().unwrap().to_owned();
    let c = ConnInfo::parse_with_env("host=h", env(&[("HOME", &home)])).unwrap();
    assert!(c.password.is_none());
    write_private(&path, "*:*:*:*:private\n", 0o600);
    let c = ConnInfo::parse_with_env("host=h", env(&[("HOME", &home)])).unwrap();
    assert_eq!(c.password.unwrap().expose(), "private");
    assert!(matches!(
        Passfile::load(dir.path()),
        Err(PassfileError::NotAFile)
    ));
    assert!(matches!(
        Passfile::load(&dir.path().join("absent")),
        Err(PassfileError::Missing)
    ));
}
