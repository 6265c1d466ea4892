#!/usr/bin/env bash
# Installs what the pg-pool integration tests need, when missing:
#   - PostgreSQL server binaries (initdb, pg_ctl, postgres)
#   - the psql client
#   - pgbouncer
#   - prometheus and promtool (the metrics scrape test)
#   - openssl (the TLS tests make their certificates with it)
# Idempotent and fast when everything is already present. Meant for a Debian 12
# machine as root (uses apt-get); prints what it did.
set -euo pipefail

log() { printf 'install-test-deps: %s\n' "$*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO="sudo"
    fi
fi

# Mirrors TestCluster's lookup: pg_config --bindir, then PATH, then
# /usr/lib/postgresql/*/bin (newest).
find_pg_bin() {
    local name="$1" dir
    if command -v pg_config >/dev/null 2>&1; then
        dir="$(pg_config --bindir 2>/dev/null || true)"
        if [ -n "$dir" ] && [ -x "$dir/$name" ]; then
            echo "$dir/$name"
            return 0
        fi
    fi
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return 0
    fi
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        if [ -x "$dir/$name" ]; then
            echo "$dir/$name"
            return 0
        fi
    done
    return 1
}

find_pgbouncer() {
    if command -v pgbouncer >/dev/null 2>&1; then
        command -v pgbouncer
        return 0
    fi
    if [ -x /usr/sbin/pgbouncer ]; then
        echo /usr/sbin/pgbouncer
        return 0
    fi
    return 1
}

packages=()
if ! find_pg_bin initdb >/dev/null || ! find_pg_bin pg_ctl >/dev/null || ! find_pg_bin postgres >/dev/null; then
    packages+=(postgresql)
fi
if ! find_pg_bin psql >/dev/null; then
    packages+=(postgresql-client)
fi
if ! find_pgbouncer >/dev/null; then
    packages+=(pgbouncer)
fi
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    packages+=(prometheus)
fi
if ! command -v openssl >/dev/null 2>&1; then
    packages+=(openssl)
fi

ensure_postgres_user() {
    # As root the tests run initdb/postgres/pgbouncer as the `postgres` OS user.
    if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
        useradd --system --user-group --home-dir /var/lib/postgresql --shell /bin/sh postgres
        log "created OS user postgres"
    fi
}

if [ "${#packages[@]}" -eq 0 ]; then
    ensure_postgres_user
    log "all present: initdb=$(find_pg_bin initdb) psql=$(find_pg_bin psql) pgbouncer=$(find_pgbouncer) prometheus=$(command -v prometheus)"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    log "missing: ${packages[*]} and apt-get is not available; install them by hand" >&2
    exit 1
fi

log "missing: ${packages[*]}; running apt-get update"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -q
log "installing: ${packages[*]}"
$SUDO apt-get install -y -q --no-install-recommends "${packages[@]}"

# The Debian packages may create and start a default cluster on 5432 and a
# pgbouncer service. The tests start their own servers: stop those.
stopped=""
if command -v pg_lsclusters >/dev/null 2>&1; then
    while read -r ver name _port status _rest; do
        case "$status" in
        online*)
            $SUDO pg_ctlcluster "$ver" "$name" stop || true
            stopped="$stopped postgresql-$ver/$name"
            ;;
        esac
    done < <(pg_lsclusters -h 2>/dev/null || true)
fi
if command -v service >/dev/null 2>&1; then
    $SUDO service postgresql stop >/dev/null 2>&1 || true
    if find_pgbouncer >/dev/null && pgrep -x pgbouncer >/dev/null 2>&1; then
        $SUDO service pgbouncer stop >/dev/null 2>&1 || true
        stopped="$stopped pgbouncer"
    fi
    if command -v prometheus >/dev/null 2>&1 && pgrep -x prometheus >/dev/null 2>&1; then
        $SUDO service prometheus stop >/dev/null 2>&1 || true
        stopped="$stopped prometheus"
    fi
fi
if [ -n "$stopped" ]; then
    log "stopped packaged services:$stopped"
fi

ensure_postgres_user

initdb_path="$(find_pg_bin initdb || true)"
psql_path="$(find_pg_bin psql || true)"
pgbouncer_path="$(find_pgbouncer || true)"
prometheus_path="$(command -v prometheus || true)"
if [ -z "$initdb_path" ] || [ -z "$psql_path" ] || [ -z "$pgbouncer_path" ] || [ -z "$prometheus_path" ] || ! command -v promtool >/dev/null 2>&1; then
    log "still missing after install (initdb='$initdb_path' psql='$psql_path' pgbouncer='$pgbouncer_path' prometheus='$prometheus_path')" >&2
    exit 1
fi
log "done: initdb=$initdb_path psql=$psql_path pgbouncer=$pgbouncer_path prometheus=$prometheus_path"
