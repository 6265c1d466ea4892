#!/usr/bin/env bash
# The project's test command: everything CI checks, in the order a failure is cheapest to see.
#
#   bash scripts/test.sh
#
# Installs what the real-server tests need when it is missing (PostgreSQL server binaries,
# psql, pgbouncer, openssl, Prometheus), then runs formatting, clippy, the documentation
# with warnings as errors, the whole test suite with doc tests, the runtime-free check of
# pg-pool-core, the shuttle models, and packages every publishable crate.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test dependencies (PostgreSQL, psql, pgbouncer, openssl, Prometheus)"
bash scripts/install-test-deps.sh

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (all targets, all features, warnings are errors; incompatible_msrv checks rust-version)"
cargo clippy --workspace --all-targets --all-features -- -D warnings

step "pg-pool-tokio-postgres builds for each runtime alone, and for none (a runtime of your own)"
for features in "" "tokio" "smol" "async-std"; do
  cargo clippy -p pg-pool-tokio-postgres --no-default-features --features "tls $features" -- -D warnings
done
cargo clippy -p pg-pool-tokio-postgres --no-default-features -- -D warnings

step "pg-pool-core depends on no async runtime"
forbidden=$(cargo tree -p pg-pool-core -e normal --prefix none | grep -E '^(tokio|async-std|async-io|smol|async-executor) ' || true)
if [ -n "$forbidden" ]; then
  echo "pg-pool-core pulls in a runtime:"; echo "$forbidden"; exit 1
fi
echo "ok: no tokio, async-std, async-io, smol or async-executor in pg-pool-core's tree"

step "cargo doc (workspace, all features, warnings are errors)"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps

step "cargo test (workspace, all features, unit + integration + doc tests)"
cargo test --workspace --all-features

step "shuttle models of the hand-off, accounting and shared leases (cfg(shuttle))"
RUSTFLAGS="--cfg shuttle" cargo test -p pg-pool-core --test shuttle --target-dir target/shuttle

step "cargo package: every publishable crate packages and builds from its package"
# Verification extracts each package into cargo's cache and builds it as a registry crate,
# under the same name and version every time, and cargo never rebuilds a registry crate it
# has built: remove the extracted copies and the build fingerprints left by earlier runs, so
# the packages just made are the ones built (a fresh checkout has neither).
rm -rf "${CARGO_HOME:-$HOME/.cargo}"/registry/src/-*/pg-pool-* target/debug/.fingerprint/pg-pool-*
cargo package --workspace --allow-dirty \
  --exclude pg-pool-bench --exclude pg-pool-examples \
  --exclude pg-pool-conformance --exclude pg-pool-test-support

step "all checks passed"
