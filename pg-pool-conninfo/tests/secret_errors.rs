//! Malformed connection strings that carry a password: no error, `Display` or `Debug`,
//! quotes it (or a fragment of it).

use pg_pool_conninfo::ConnInfo;

const SECRET: &str = "Zq7SECRETxv";

fn check(s: &str) {
    let parsed = ConnInfo::parse(s);
    let shown = match &parsed {
        Ok(info) => format!("{info:?}"),
        Err(e) => format!("{e} / {e:?}"),
    };
    for fragment in [SECRET, "Zq7", "xv", "SECRET"] {
        assert!(
            !shown.contains(fragment),
            "{s:?} shows {fragment:?}: {shown}"
        );
    }
}

#[test]
fn malformed_strings_with_a_password_never_show_it() {
    for s in [
        format!("postgres://u:{SECRET}@[::1/db"),
        format!("postgres://u:{SECRET}@h:99999/db"),
        format!("postgres://u:{SECRET}@h:port/db"),
        format!("postgres://u:%zz{SECRET}@h/db"),
        format!("postgres://u:{SECRET}%@h/db"),
        format!("postgres://u:{SECRET} more@h/db"),
        format!("postgres://u:{SECRET}@h/db?sslmode=bogus"),
        format!("postgres://u@h/db?password={SECRET}&bogus=1"),
        format!("postgres://u@h/db?password={SECRET}&password"),
        format!("postgres://u@h/db?password={SECRET} x=1"),
        format!("postgresql://u:{SECRET}@h,/db"),
        format!("postgres://u:{SECRET}@h/db#frag"),
        format!("postgres://u:{SECRET}@h/d%zzb"),
        format!("postgres://u:{SECRET}@/db?host=%zz"),
        format!("postgres://u:{SECRET}"),
        format!("postgres://u:{SECRET}@"),
        format!("postgres://:{SECRET}@h:1:2/db"),
        format!("host=h password={SECRET} x"),
        format!("host=h password={SECRET}Zq7 xv=1"),
        format!("host=h password='{SECRET}"),
        format!("host=h password={SECRET}\\"),
        format!("host=h password = '{SECRET}' port=x"),
        format!("host=h password={SECRET}\0"),
        format!("password={SECRET}= host=h"),
        format!("host=h password={SECRET}' port=1"),
        format!("host=h password=\"{SECRET}\" x"),
    ] {
        check(&s);
    }
}
